"""A test double imitating the OpenAI chat completions API (``POST /v1/chat/completions``).

No model provider can be reached here, so tests point LiteLLM at this real HTTP server on 127.0.0.1
(``api_base=fake.url``, any non-empty key) and script what "the model" answers: assistant text, tool calls,
HTTP errors such as 500 or 429, and slow answers. The server records every request body it received (and
its size in bytes on the wire) so a test can assert which tools and messages were sent and how large each
request was, and it reports usage numbers like a provider does.

It is not a model: each request consumes the first scripted reply whose optional ``match`` string occurs in
the request's messages; with nothing left it answers with the ``default`` reply if one was given, otherwise
with HTTP 400 "script exhausted" (not retried, so a test with too short a script fails fast and clearly).

Reply format (one JSON object per model answer)::

    {"content": "text"}                                             # final answer
    {"tool_calls": [{"name": "k8s_get", "arguments": {...}}], "content": "optional text"}
    {"status": 500, "error": "overloaded"}                          # an HTTP error; "retry_after": seconds
    {"delay": 2.0, ...}                                             # answer only after this many seconds
    {"match": "scale", ...}                                         # only for requests mentioning "scale"
    {"usage": {"prompt_tokens": 10, "completion_tokens": 5}, ...}   # otherwise estimated from sizes

Use it in-process (``with FakeLLM([...]) as fake: ... fake.url ... fake.requests``) or as a process for
end-to-end tests::

    python -m tests.fakes.llm --port 0 --script replies.json     # prints "FAKE_LLM_URL=http://..."

The script file is a JSON list of replies or ``{"replies": [...], "default": {...}}``. While running, more
replies can be queued with ``POST /_script`` (same format) and the recorded requests read with
``GET /_requests``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

Reply = dict[str, Any]


def text(content: str, **extra: Any) -> Reply:
    """A final assistant answer."""
    return {"content": content, **extra}


def call(name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None) -> Reply:
    """One tool call, for ``tool_calls(...)``; a str ``arguments`` is sent verbatim (to script bad JSON)."""
    entry: Reply = {"name": name, "arguments": {} if arguments is None else arguments}
    if id is not None:
        entry["id"] = id
    return entry


def tool_calls(*calls: Reply, content: str | None = None, **extra: Any) -> Reply:
    """An assistant turn that asks for tool calls."""
    reply: Reply = {"tool_calls": list(calls), **extra}
    if content is not None:
        reply["content"] = content
    return reply


def error(status: int, message: str, *, retry_after: float | None = None, **extra: Any) -> Reply:
    """An HTTP error answer in the OpenAI error envelope."""
    reply: Reply = {"status": status, "error": message, **extra}
    if retry_after is not None:
        reply["retry_after"] = retry_after
    return reply


class FakeLLM:
    """The scripted server; thread-safe, so the test's event loop and the HTTP threads can share it."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        default: Reply | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._lock = threading.Lock()
        self._replies: list[Reply] = [dict(r) for r in replies]
        self._default = default
        self._requests: list[dict[str, Any]] = []
        self._sizes: list[int] = []
        self._ids = itertools.count(1)
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The ``api_base`` to give LiteLLM (ends in ``/v1``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat-completion requests received so far, oldest first."""
        with self._lock:
            return [json.loads(json.dumps(r)) for r in self._requests]

    @property
    def request_sizes(self) -> list[int]:
        """Bytes of each chat-completion request body as received, oldest first."""
        with self._lock:
            return list(self._sizes)

    @property
    def pending(self) -> int:
        """How many scripted replies are still unconsumed."""
        with self._lock:
            return len(self._replies)

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._replies.extend(dict(r) for r in replies)

    def start(self) -> FakeLLM:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fake-llm", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def _next_reply(self, body: dict[str, Any], size: int) -> Reply | None:
        haystack = json.dumps(body.get("messages", []))
        with self._lock:
            self._requests.append(body)
            self._sizes.append(size)
            for index, reply in enumerate(self._replies):
                if "match" not in reply or str(reply["match"]) in haystack:
                    return self._replies.pop(index)
            return dict(self._default) if self._default is not None else None

    def respond(self, body: dict[str, Any], size: int) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Turn one request body (``size`` bytes on the wire) into (status, headers, JSON body)."""
        reply = self._next_reply(body, size)
        if reply is None:
            return (
                400,
                {},
                _error_body(
                    f"fake LLM script exhausted after {len(self.requests)} requests: script more replies"
                ),
            )
        delay = float(reply.get("delay", 0))
        if delay > 0 and self._closing.wait(delay):
            return 503, {}, _error_body("fake LLM is shutting down")
        if "status" in reply:
            headers = {}
            if "retry_after" in reply:
                headers["Retry-After"] = str(reply["retry_after"])
            return int(reply["status"]), headers, _error_body(str(reply.get("error", "scripted error")))
        return 200, {}, self._completion(body, reply)

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        number = next(self._ids)
        content = reply.get("content")
        message: dict[str, Any] = {"role": "assistant", "content": content}
        calls = []
        for index, raw in enumerate(reply.get("tool_calls", [])):
            arguments = raw.get("arguments", {})
            calls.append(
                {
                    "id": raw.get("id", f"call_{number}_{index}"),
                    "type": "function",
                    "function": {
                        "name": raw["name"],
                        "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
                    },
                }
            )
        if calls:
            message["tool_calls"] = calls
        usage = reply.get("usage") or {
            "prompt_tokens": max(
                1, len(json.dumps(body.get("messages", [])) + json.dumps(body.get("tools", []))) // 4
            ),
            "completion_tokens": max(1, len(json.dumps(message)) // 4),
        }
        usage = {**usage, "total_tokens": int(usage["prompt_tokens"]) + int(usage["completion_tokens"])}
        return {
            "id": f"chatcmpl-fake-{number}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
            "usage": usage,
        }

    def load(self, document: Any) -> None:
        """Queue replies from a script document (a list, or an object with replies/default)."""
        if isinstance(document, list):
            self.script(*document)
            return
        self.script(*document.get("replies", []))
        if "default" in document:
            with self._lock:
                self._default = document["default"]


def _error_body(message: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": "fake_llm_error", "param": None, "code": None}}


def _handler_for(fake: FakeLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: pytest output should show the test's story, not access logs."""

        def _send(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first (a test of its timeout); nobody is left to answer.
                self.close_connection = True

        def _body(self) -> tuple[Any, int]:
            length = int(self.headers.get("Content-Length", "0"))
            return json.loads(self.rfile.read(length) or b"null"), length

        def do_GET(self) -> None:
            if self.path == "/_requests":
                self._send(200, fake.requests)
            elif self.path in ("/_health", "/v1/models"):
                self._send(200, {"object": "list", "data": [], "pending": fake.pending})
            else:
                self._send(404, _error_body(f"no such path {self.path}"))

        def do_POST(self) -> None:
            body, size = self._body()
            if self.path == "/_script":
                fake.load(body)
                self._send(200, {"pending": fake.pending})
            elif self.path.rstrip("/").endswith("/chat/completions"):
                status, headers, payload = fake.respond(body, size)
                self._send(status, payload, headers)
            else:
                self._send(
                    404, _error_body(f"no such path {self.path}; the fake serves /v1/chat/completions")
                )

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.llm", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--script", type=Path, help="JSON list of replies, or {replies, default}")
    args = parser.parse_args(argv)
    fake = FakeLLM(host=args.host, port=args.port)
    if args.script is not None:
        fake.load(json.loads(args.script.read_text()))
    print(f"FAKE_LLM_URL={fake.url}", flush=True)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
