"""Running a command in a container over the ``pods/exec`` websocket (v5/v4 channel protocols).

The websocket is a second transport next to the client's HTTP pool, with the same credentials, TLS
settings and impersonation headers (``KubeClient``). A command that runs cannot be a dry run, so a
previewing client is refused here: a preview says what it would run and never runs it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from bosun_tools.client.kube import DEFAULT_TIMEOUT, KubeClient, KubeError


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int | None
    error: str | None


async def exec_in_pod(
    kube: KubeClient,
    namespace: str,
    pod: str,
    command: Iterable[str],
    *,
    container: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 -- also bounds the websocket handshake
    max_bytes: int = 65536,
) -> ExecResult:
    """Run ``command`` in a container of ``pod`` as ``kube``'s identity.

    The command is an argument vector, never a shell string. Output beyond ``max_bytes`` per stream is
    dropped (the caller marks it truncated); the exit code comes from the error channel's Status. A
    handshake refused with 401 is retried once, as ``KubeClient.request`` does.
    """
    if kube.dry_run:
        raise KubeError(
            405,
            "MethodNotAllowed",
            f"exec in pod {pod} cannot be a dry run; a preview shows the command without running it",
        )
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException
    from websockets.typing import Subprotocol

    query: list[tuple[str, str]] = [("stdout", "true"), ("stderr", "true")]
    query.extend(("command", part) for part in command)
    if container:
        query.append(("container", container))
    credentials = kube.credentials
    url = credentials.host.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    url += f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/exec?"
    url += urlencode(query)
    ssl_arg: ssl.SSLContext | None = None
    if url.startswith("wss://"):
        configured = kube.ssl_context
        if isinstance(configured, ssl.SSLContext):
            ssl_arg = configured
        else:
            ssl_arg = ssl.create_default_context()
            ssl_arg.check_hostname = False
            ssl_arg.verify_mode = ssl.CERT_NONE

    async def stream(authorization: str | None) -> tuple[bytes, bytes, bytes]:
        out, err, status = bytearray(), bytearray(), b""
        async with connect(
            url,
            additional_headers=kube.headers(authorization),
            subprotocols=[Subprotocol("v5.channel.k8s.io"), Subprotocol("v4.channel.k8s.io")],
            ssl=ssl_arg,
            max_size=2**22,
            open_timeout=timeout,
        ) as ws:
            async for message in ws:
                frame = message.encode() if isinstance(message, str) else message
                if not frame:
                    continue
                channel, payload = frame[0], frame[1:]
                if channel == 1 and len(out) < max_bytes:
                    out.extend(payload[: max_bytes - len(out)])
                elif channel == 2 and len(err) < max_bytes:
                    err.extend(payload[: max_bytes - len(err)])
                elif channel == 3:
                    status += payload
        return bytes(out), bytes(err), status

    try:
        async with asyncio.timeout(timeout):
            authorization = await credentials.authorization()
            try:
                frames = await stream(authorization)
            except InvalidStatus as exc:
                renewed = None
                if exc.response.status_code == 401:
                    renewed = await credentials.renewed(authorization)
                if renewed is None:
                    raise
                frames = await stream(renewed)
    except TimeoutError as exc:
        raise KubeError(504, "Timeout", f"exec in pod {pod} did not finish within {timeout:g}s") from exc
    except InvalidStatus as exc:
        response = exc.response
        text = response.body.decode(errors="replace") if response.body else ""
        reason, message = str(response.reason_phrase).replace(" ", ""), text.strip()
        try:
            body = json.loads(text)
            reason, message = str(body.get("reason") or reason), str(body.get("message") or message)
        except ValueError:
            pass
        raise KubeError(response.status_code, reason, message or f"exec into pod {pod} refused") from exc
    except (WebSocketException, OSError) as exc:
        raise KubeError(503, "ServiceUnavailable", f"exec into pod {pod} failed: {exc}") from exc
    return exec_result(*frames)


def exec_result(out: bytes, err: bytes, status: bytes) -> ExecResult:
    """The result of an exec from its stdout, stderr and error-channel (Status) bytes."""
    exit_code: int | None = None
    error: str | None = None
    if status:
        body = json.loads(status.decode(errors="replace"))
        if body.get("status") == "Success":
            exit_code = 0
        else:
            causes = body.get("details", {}).get("causes", [])
            codes = [c.get("message") for c in causes if c.get("reason") == "ExitCode"]
            if codes:
                exit_code = int(codes[0])
            else:
                error = str(body.get("message") or body)
    return ExecResult(out.decode(errors="replace"), err.decode(errors="replace"), exit_code, error)
