"""A test double of a webhook receiver (a ticket system, Slack's or Teams' incoming webhook): a real HTTP
server on 127.0.0.1 that records every POST and answers as a test scripts it.

Each path is its own receiver (``url("/slack/T0-secret")``). By default a path answers 200; ``answer``
scripts the next answers of one path (``answer(path, 500, 500)`` fails twice, then the default again) and
``HANG`` holds a request open without answering until the double stops, as a receiver that accepted the
connection and never replied; ``refused_url`` is a receiver that is gone. Requests are recorded as they
arrive, before they are answered.

``verify`` checks a request's signature the way the README tells a receiver to, written from that
description rather than from the operator's code, so that a test of it checks the documented contract.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1
"""Scripted instead of a status: hold the request open, never answer it."""
REPLAY_WINDOW_SECONDS = 300


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def verify(request: Received, key: bytes, now: float | None = None) -> bool:
    """What a receiver does (README, "Notifications"): HMAC-SHA256 with the shared key over the timestamp
    header, a dot and the raw body, compared in constant time, and the timestamp within five minutes."""
    timestamp = request.headers.get("x-bosun-timestamp", "")
    sent = request.headers.get("x-bosun-signature", "")
    if not timestamp.isdigit() or not sent.startswith("sha256="):
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return False
    expected = hmac.new(key, timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(sent.removeprefix("sha256="), expected)


class FakeWebhook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, list[int]] = {}
        self._received: list[Received] = []
        self._open = 0
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-webhook", daemon=True)
        self._unheard = socket.socket()
        self._unheard.bind(("127.0.0.1", 0))  # bound and never listening: connections are refused

    def url(self, path: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{path}"

    def refused_url(self, path: str) -> str:
        """A URL on 127.0.0.1 where every connection is refused (a receiver that is gone); the port stays
        reserved while the double runs, so nothing else can start answering there."""
        host, port = self._unheard.getsockname()[:2]
        return f"http://{host!s}:{port}{path}"

    def answer(self, path: str, *statuses: int) -> None:
        """The next answers of ``path``, in order (``HANG`` for none); then 200 again."""
        with self._lock:
            self._scripts.setdefault(path, []).extend(statuses)

    def received(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    @property
    def open_requests(self) -> int:
        """Requests received and not answered (held by ``HANG``)."""
        with self._lock:
            return self._open

    def _take(self, request: Received) -> int:
        with self._lock:
            self._received.append(request)
            script = self._scripts.get(request.path) or []
            status = script.pop(0) if script else 200
            if status == HANG:
                self._open += 1
            return status

    def __enter__(self) -> FakeWebhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()  # lets held requests go
        self._server.shutdown()
        self._server.server_close()
        self._unheard.close()
        self._thread.join(timeout=10)


def _handler_for(fake: FakeWebhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = fake._take(Received(self.path, headers, body))
            if status == HANG:
                fake._stopping.wait()
                return
            answer = b"ok" if status < 300 else b"receiver failure scripted by the test"
            with contextlib.suppress(OSError):  # the client may have given up already
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read what was received, not an access log."""

    return Handler
