"""The gateway over Streamable HTTP against the real tool server process (``python -m bosun_tools``).

Shows the calling convention across a real network hop: the bearer token, the requester's identity in
``_meta`` (so RBAC answers as alice or carol, not as the server), and the tool server going away and
coming back (ToolServerUnavailable, then the same gateway works again).
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bosun.planner.toolsets import openai_tools
from bosun.ports.gateway import ToolServerUnavailable
from bosun.ports.mcp_tools import over_http
from bosun_tools.identity import Identity

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.tools_support import deployment
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "operator-test-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def accepting(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class ToolServerProcess:
    """The tool server as the Helm chart runs it: its own process, configured from the environment."""

    def __init__(self, cluster: ClusterAccess, port: int, log: Path) -> None:
        self.port = port
        self.log = log
        self.env = {
            **cluster.env,
            "BOSUN_TOOLS_OPERATOR_TOKEN": TOKEN,
            "BOSUN_TOOLS_PORT": str(port),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bosun_tools"], cwd=ROOT, env=self.env, stdout=log, stderr=log
            )
        proc = self.proc
        eventually(
            f"the tool server to listen on port {self.port}",
            lambda: accepting(self.port) or proc.poll() is not None,
            timeout=60,
        )
        if proc.poll() is not None:
            raise AssertionError(
                f"the tool server exited with {proc.returncode}:\n{self.log.read_text()[-3000:]}"
            )

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None


@pytest.fixture
def tool_server(cluster: ClusterAccess, tmp_path: Path) -> Iterator[ToolServerProcess]:
    server = ToolServerProcess(cluster, free_port(), tmp_path / "tool-server.log")
    server.start()
    yield server
    server.stop()


async def test_identity_travels_in_meta_over_http(
    tool_server: ToolServerProcess, namespace: str, kubectl: Kubectl, bind_role: BindRole
) -> None:
    bind_role(namespace, "alice", "view")
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("web", replicas=1))
    gw = over_http(tool_server.url, TOKEN)
    try:
        args = {"kind": "deployment", "name": "web", "namespace": namespace}
        as_alice = await gw.read("k8s_get", args, identity=Identity("alice"))
        assert as_alice.ok
        assert "web" in as_alice.text
        as_carol = await gw.read("k8s_get", args, identity=Identity("carol"))
        assert not as_carol.ok
        assert as_carol.error is not None
        assert "Forbidden" in as_carol.error
        assert "carol" in as_carol.error
        scale = {**args, "replicas": 2}
        preview = await gw.preview("k8s_scale", scale, identity=Identity("alice"))
        assert not preview.ok
        assert preview.error is not None
        assert "Forbidden" in preview.error
    finally:
        await gw.aclose()


async def test_wrong_token_is_unavailable_with_a_reason(tool_server: ToolServerProcess) -> None:
    gw = over_http(tool_server.url, "not-the-token")
    try:
        with pytest.raises(ToolServerUnavailable, match=r"refused the operator's token \(HTTP 401\)"):
            await openai_tools(gw, ["kubernetes"])
    finally:
        await gw.aclose()


async def test_server_going_away_and_coming_back(tool_server: ToolServerProcess, namespace: str) -> None:
    gw = over_http(tool_server.url, TOKEN)
    args = {"kind": "pods", "namespace": namespace}
    admin = Identity("admin-user", ("system:masters",))
    try:
        assert (await gw.read("k8s_get", args, identity=admin)).ok
        tool_server.stop()
        with pytest.raises(ToolServerUnavailable):
            await gw.read("k8s_get", args, identity=admin)
        tool_server.start()
        assert (await gw.read("k8s_get", args, identity=admin)).ok
    finally:
        await gw.aclose()
