"""The tool server over Streamable HTTP, down at first: the task shows why it waits and resumes once the
server is up (no restart of the operator, no action by the user)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Operator, apply, deployment, free_port, status_of, task_doc, wait_phase
from tests.waiting import eventually

pytestmark = pytest.mark.cluster
TOKEN = "e2e-operator-token-0123456789abcdef"


@pytest.fixture
def tools_port() -> int:
    return free_port()


@pytest.fixture
def tool_server(cluster: Any, tools_port: int, tmp_path: Path) -> Iterator[Callable[[], None]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        env = dict(cluster.env, BOSUN_TOOLS_PORT=str(tools_port), BOSUN_TOOLS_OPERATOR_TOKEN=TOKEN)
        with (tmp_path / "tools.log").open("ab") as log:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bosun_tools"], cwd=ROOT, env=env, stdout=log, stderr=log
                )
            )

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=20)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), {})


def test_task_waits_for_the_tool_server_and_resumes(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    tools_port: int,
    tool_server: Callable[[], None],
) -> None:
    deployment(kubectl, namespace)
    operator_factory(BOSUN_TOOLS_URL=f"http://127.0.0.1:{tools_port}/mcp", BOSUN_TOOLS_TOKEN=TOKEN)
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 4"), user="bob")
    eventually(
        "the task to report the tool server down",
        lambda: (
            condition(status_of(kubectl, namespace, "scale-web"), "ToolServerAvailable").get("status")
            == "False"
        ),
    )
    down = status_of(kubectl, namespace, "scale-web")
    assert down["phase"] == "Planning"
    assert f"127.0.0.1:{tools_port}" in condition(down, "ToolServerAvailable")["message"]
    tool_server()
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval", timeout=120)
    assert condition(status, "ToolServerAvailable")["status"] == "True"
    assert "replicas: 3 -> 4" in status["proposal"]["steps"][0]["preview"]
