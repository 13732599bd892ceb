"""The tool server as a real process (``python -m bosun_tools``) over Streamable HTTP: bearer tokens,
read-only external clients, identity honoured only from the operator token."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import httpx
import pytest
from bosun_tools.registry import safety_of
from fastmcp import Client
from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.tools_support import call
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

OPERATOR_TOKEN = "operator-token-for-tests-0123456789"
EXTERNAL_TOKEN = "external-token-for-tests-9876543210"
ServeTools = Callable[..., str]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def serve_tools(cluster: ClusterAccess) -> Iterator[ServeTools]:
    """Start ``python -m bosun_tools`` on a free port with the given extra environment; returns its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(**env: str) -> str:
        port = _free_port()
        full = {
            **cluster.env,
            "BOSUN_TOOLS_PORT": str(port),
            "BOSUN_TOOLS_OPERATOR_TOKEN": OPERATOR_TOKEN,
            "BOSUN_TOOLS_EXTERNAL_TOKEN": EXTERNAL_TOKEN,
            "BOSUN_TOOLS_TOOLSETS": "kubernetes",
            **env,
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bosun_tools"], env=full, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        eventually(
            f"tool server on port {port}",
            lambda: proc.poll() is not None or _healthy(f"{base}/healthz"),
            timeout=60,
        )
        if proc.poll() is not None:
            raise AssertionError(f"tool server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        return f"{base}/mcp"

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def _mutating(names: list[str]) -> list[str]:
    return [n for n in names if not safety_of(n).read_only]


async def test_requests_without_a_valid_token_are_rejected(serve_tools: ServeTools) -> None:
    url = serve_tools()
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient() as http:
        assert (await http.post(url, json=body, headers=headers)).status_code == 401
        wrong = {**headers, "Authorization": "Bearer not-the-token"}
        assert (await http.post(url, json=body, headers=wrong)).status_code == 401
    with pytest.raises(MCPError):  # the MCP client cannot even initialize a session
        async with Client(url) as client:
            await client.list_tools()


async def test_external_clients_get_read_only_tools_as_the_external_identity(
    serve_tools: ServeTools, kubectl: Kubectl, namespace: str, bind_role: BindRole
) -> None:
    url = serve_tools(BOSUN_TOOLS_EXTERNAL_USER="carol")
    kubectl("create", "configmap", "settings", "-n", namespace)
    bind_role(namespace, "alice", "edit")
    settings = {"kind": "configmap", "name": "settings", "namespace": namespace}
    async with Client(url, auth=EXTERNAL_TOKEN) as external:
        names = [t.name for t in await external.list_tools()]
        assert "k8s_get" in names
        assert _mutating(names) == []
        with pytest.raises(ToolError, match="k8s_delete"):
            await external.call_tool("k8s_delete", settings)
        with pytest.raises(ToolError, match=r'Forbidden: .*User "carol"'):
            await call(external, "k8s_get", settings, user="alice")
    assert kubectl("get", "configmap", "settings", "-n", namespace, check=False).returncode == 0

    async with Client(url, auth=OPERATOR_TOKEN) as operator:
        names = [t.name for t in await operator.list_tools()]
        assert "k8s_delete" in _mutating(names)
        got = await call(operator, "k8s_get", settings, user="alice")
        assert "settings" in got["text"]
        with pytest.raises(ToolError, match=r'Forbidden: .*User "bob"'):
            await call(operator, "k8s_delete", settings, user="bob")
        preview = await call(operator, "k8s_delete", settings, user="alice", preview=True)
        assert preview["data"]["dry_run"] is True
    assert kubectl("get", "configmap", "settings", "-n", namespace, check=False).returncode == 0


async def test_mutations_for_external_clients_only_when_enabled(serve_tools: ServeTools) -> None:
    url = serve_tools(BOSUN_TOOLS_ALLOW_EXTERNAL_MUTATIONS="true")
    async with Client(url, auth=EXTERNAL_TOKEN) as external:
        names = [t.name for t in await external.list_tools()]
    assert "k8s_scale" in _mutating(names)
