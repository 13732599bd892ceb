"""Pure parts of ``bosun_tools.client.kube`` (the exec status channel, discovery matching, the proxy the
environment names) and what its transport makes of answers cut anywhere, of a path below the server's own,
of no answer at all (a stand-in server on 127.0.0.1); the rest of the wire is exercised against the real API
server in tests/integration/test_tools_k8s_client.py."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from urllib.parse import parse_qsl

import pytest
from bosun_tools.client.exec import exec_in_pod, exec_result
from bosun_tools.client.kube import KubeClient, KubeError, ResourceInfo, _as_dry_run, _match, env_proxy
from bosun_tools.identity import Identity
from kubernetes import client as k8s_client


def _status(body: dict[str, object]) -> bytes:
    return json.dumps(body).encode()


def test_exec_status_channel_gives_the_exit_code_or_the_error() -> None:
    ok = exec_result(b"hello\n", b"", _status({"status": "Success"}))
    assert (ok.stdout, ok.exit_code, ok.error) == ("hello\n", 0, None)
    failed = exec_result(
        b"",
        b"no such file\n",
        _status(
            {
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": "2"}]},
            }
        ),
    )
    assert (failed.stderr, failed.exit_code, failed.error) == ("no such file\n", 2, None)
    broken = exec_result(b"", b"", _status({"status": "Failure", "message": "container not found"}))
    assert (broken.exit_code, broken.error) == (None, "container not found")
    assert exec_result(b"x", b"", b"").exit_code is None


def test_matching_prefers_the_first_served_version_and_honours_groups() -> None:
    def info(group: str, version: str, kind: str, plural: str, short: tuple[str, ...] = ()) -> ResourceInfo:
        return ResourceInfo(group, version, kind, plural, True, ("get",), kind.lower(), short)

    served = [
        info("", "v1", "Event", "events", ("ev",)),
        info("events.k8s.io", "v1", "Event", "events", ("ev",)),
        info("argoproj.io", "v1alpha1", "Rollout", "rollouts", ("ro",)),
        info("apps", "v1", "Deployment", "deployments", ("deploy",)),
    ]
    assert _match(served, "ev", None) == served[0]
    assert _match(served, "events.events.k8s.io", None) == served[1]
    assert _match(served, "events", "events.k8s.io/v1") == served[1]
    assert _match(served, "rollouts.argoproj.io", None) == served[2]
    assert _match(served, "Rollout", None) == served[2]
    assert _match(served, "deploy", "apps/v2") is None
    assert _match(served, "rollout", "v1") is None


def test_a_dry_run_write_says_so_in_the_query_and_in_body_options() -> None:
    """The API server reads a DELETE's options, and an Eviction's deleteOptions, from the body and ignores
    ``?dryRun`` then: both places must ask for a dry run."""
    assert _as_dry_run({"fieldManager": "bosun"}, {"kind": "ConfigMap"}) == (
        {"fieldManager": "bosun", "dryRun": "All"},
        {"kind": "ConfigMap"},
    )
    options = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
    assert _as_dry_run(None, options) == ({"dryRun": "All"}, {**options, "dryRun": ["All"]})
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}}
    assert _as_dry_run(None, eviction)[1] == {**eviction, "deleteOptions": {"dryRun": ["All"]}}


async def test_a_previewing_client_never_runs_a_command() -> None:
    """exec cannot be a dry run: a previewing client refuses it before opening any connection."""
    offline = KubeClient.from_configuration(k8s_client.Configuration(host="http://127.0.0.1:9"))
    preview = offline.impersonating(Identity("alice")).previewing()
    assert (preview.dry_run, preview.identity) == (True, Identity("alice"))
    with pytest.raises(KubeError) as refused:
        await exec_in_pod(preview, "shop", "web-0", ["rm", "-rf", "/data"])
    await offline.aclose()
    assert (refused.value.status, refused.value.reason) == (405, "MethodNotAllowed")


# ----- the wire, against a stand-in server on 127.0.0.1 -----------------------------------------------------


@contextlib.asynccontextmanager
async def stand_in(answer: Callable[[bytes], list[bytes]]) -> AsyncIterator[tuple[str, list[bytes]]]:
    """An HTTP server that records each request's head and writes ``answer(head)``'s pieces one by one,
    then closes the connection (so a body needs no length): what the client makes of pieces cut anywhere.
    An empty list never answers."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        pieces = answer(head)
        if not pieces:
            await asyncio.Event().wait()  # never set: no answer until the server is closed
        for piece in pieces:
            writer.write(piece)
            await writer.drain()
            # The client runs in this event loop: yielding to it lets it read this piece before the next.
            await asyncio.sleep(0)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", heads
    finally:
        server.close()


def _client(host: str) -> KubeClient:
    return KubeClient.from_configuration(k8s_client.Configuration(host=host))


async def test_watch_events_cut_across_reads_arrive_whole_and_in_order() -> None:
    events = [
        {"type": "ADDED", "object": {"metadata": {"name": f"t{i}", "note": "x" * 300}}} for i in range(3)
    ]
    stream = b"".join(json.dumps(e).encode() + b"\n" for e in events[:2]) + json.dumps(events[2]).encode()
    cuts = [0, 7, 150, 340, 341, 600, len(stream)]
    pieces = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"]
    pieces += [stream[a:b] for a, b in itertools.pairwise(cuts)]
    info = ResourceInfo("bosun.dev", "v1alpha1", "AgentTask", "agenttasks", True, ("watch",))
    async with stand_in(lambda _: pieces) as (host, _heads):
        client = _client(host)
        try:
            seen = [event async for event in client.watch(info, "shop", resource_version="7")]
        finally:
            await client.aclose()
    assert seen == events  # the last one without a newline too


async def test_a_request_goes_below_the_servers_own_path_with_its_query() -> None:
    """A kubeconfig ``server`` may have a path (an API server behind a proxy): every request goes below
    it. Names are quoted once, booleans are lower case (as httpx wrote them), None leaves a parameter out,
    and each impersonated group is a header of its own."""
    ok = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"]
    async with stand_in(lambda _: ok) as (host, heads):
        client = _client(f"{host}/k8s/clusters/c-1/").impersonating(Identity("bob", ("dev", "ops")))
        try:
            info = ResourceInfo("", "v1", "ConfigMap", "configmaps", True, ("get",))
            path = info.path("shop", "a b")
            params = {"labelSelector": "app in (web, api)", "watch": False, "limit": 5, "continue": None}
            assert await client.request("GET", path, params=params) == {}
        finally:
            await client.aclose()
    [head] = heads
    line, *fields = head.decode().split("\r\n")
    method, target, _ = line.split(" ")
    path, _, query = target.partition("?")
    assert (method, path) == ("GET", "/k8s/clusters/c-1/api/v1/namespaces/shop/configmaps/a%20b")
    assert parse_qsl(query, keep_blank_values=True) == [
        ("labelSelector", "app in (web, api)"),
        ("watch", "false"),
        ("limit", "5"),
    ]
    assert [f for f in fields if f.startswith("Impersonate-")] == [
        "Impersonate-User: bob",
        "Impersonate-Group: dev",
        "Impersonate-Group: ops",
    ]
    # The audit log names Bosun, and a write naming no field manager is recorded as Bosun's.
    assert "User-Agent: bosun" in fields


async def test_an_api_server_that_does_not_answer_in_time_is_a_timeout() -> None:
    async with stand_in(lambda _: []) as (host, _heads):
        client = _client(host)
        try:
            with pytest.raises(KubeError) as late:
                await client.request("GET", "/api/v1/namespaces", timeout=0.2)
        finally:
            await client.aclose()
    assert (late.value.status, late.value.reason) == (504, "Timeout")


async def test_an_error_answer_is_read_from_its_status() -> None:
    body = json.dumps({"kind": "Status", "reason": "Conflict", "message": "the object has been modified"})
    head = f"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    answer = [head.encode(), body.encode()]
    async with stand_in(lambda _: answer) as (host, _heads):
        client = _client(host)
        try:
            with pytest.raises(KubeError) as refused:
                await client.request(
                    "PATCH", "/apis/bosun.dev/v1alpha1/namespaces/shop/agenttasks/t", json=[]
                )
        finally:
            await client.aclose()
    assert (refused.value.status, refused.value.reason, refused.value.message) == (
        409,
        "Conflict",
        "the object has been modified",
    )


def test_the_environment_names_the_proxy_unless_no_proxy_covers_the_api_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert env_proxy("https://10.0.0.1:6443") is None
    monkeypatch.setenv("HTTPS_PROXY", "proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "kubernetes.default.svc,127.0.0.1")
    assert env_proxy("https://10.0.0.1:6443") == "http://proxy.corp:3128"
    assert env_proxy("https://kubernetes.default.svc:443") is None
    assert env_proxy("https://127.0.0.1:6443") is None
    assert env_proxy("http://10.0.0.1:8080") is None  # HTTPS_PROXY is for https only
