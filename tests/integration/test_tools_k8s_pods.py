"""k8s_logs and k8s_exec on real pods of a rolled-out Deployment.

The local cluster's kwok nodes serve both: every fake container "prints" the three CRI log lines of
``tests/cluster/localcluster.py`` (POD_LOG, stamped 2026-01-01) and runs exec commands on the test machine
in a scratch directory, so these tests only run ``echo`` and the like.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.exceptions import ToolError

from tests.conftest import BindRole, Kubectl
from tests.integration.test_tools_k8s import server, web
from tests.tools_support import call, deployment, grant, mcp

pytestmark = pytest.mark.cluster
__all__ = ["mcp", "server", "web"]  # fixtures shared with the other Kubernetes tool tests

LOG_LINES = [
    "starting web server on :8080",
    "GET /healthz 200",
    "GET /api/orders 500 upstream timeout",
]


def first_pod(kubectl: Kubectl, namespace: str, app: str) -> str:
    listing = kubectl("get", "pods", "-n", namespace, "-l", f"app={app}", "-o", "json").stdout
    name: str = json.loads(listing)["items"][0]["metadata"]["name"]
    return name


@pytest.fixture
def api(kubectl: Kubectl, namespace: str) -> str:
    """A rolled-out one-replica Deployment whose pod has two containers; returns the pod's name."""
    sidecar = [{"name": "api", "image": "registry.example/api:1"}, {"name": "proxy", "image": "envoy:1"}]
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("api", 1, containers=sidecar))
    kubectl("rollout", "status", "-n", namespace, "deployment/api", "--timeout=90s")
    return first_pod(kubectl, namespace, "api")


async def test_logs_tail_since_and_container_as_the_requester(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, api: str, bind_role: BindRole
) -> None:
    pod = {"name": api, "namespace": namespace}
    proxy = await call(mcp, "k8s_logs", {**pod, "container": "proxy"})
    assert proxy["text"].splitlines() == LOG_LINES
    assert proxy["data"] == {"kind": "Pod", "name": api, "namespace": namespace, "container": "proxy"}
    assert proxy["truncated"] is False

    last = await call(mcp, "k8s_logs", {**pod, "container": "api", "tail": 1})
    assert last["text"].splitlines() == LOG_LINES[-1:]
    # The fake container's lines are stamped 2026-01-01: none falls in the last minute.
    recent = await call(mcp, "k8s_logs", {**pod, "container": "api", "since_seconds": 60})
    assert recent["text"] == "(no log lines)"

    with pytest.raises(ToolError, match=r"BadRequest: a container name must be specified .*api.*proxy"):
        await call(mcp, "k8s_logs", pod)
    with pytest.raises(ToolError, match=r"BadRequest: container nope is not valid .*fix the arguments"):
        await call(mcp, "k8s_logs", {**pod, "container": "nope"})
    with pytest.raises(ToolError, match=r"NotFound: .*not found"):
        await call(mcp, "k8s_logs", {"name": "no-such-pod", "namespace": namespace})

    with pytest.raises(ToolError, match=r'Forbidden: .*User "carol" cannot get resource "pods/log"'):
        await call(mcp, "k8s_logs", {**pod, "container": "api"}, user="carol")
    grant(kubectl, bind_role, namespace, "carol", "view", "get pods/log")
    as_carol = await call(mcp, "k8s_logs", {**pod, "container": "api", "tail": 2}, user="carol")
    assert as_carol["text"].splitlines() == LOG_LINES[-2:]


async def test_previous_logs_of_a_container_that_never_restarted_is_a_clear_error(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str
) -> None:
    pod = first_pod(kubectl, namespace, web)
    with pytest.raises(
        ToolError,
        match=rf"pod {pod} in namespace {namespace}: container web has no previous instance "
        r"\(restartCount 0.*omit previous",
    ):
        await call(mcp, "k8s_logs", {"name": pod, "namespace": namespace, "previous": True})


async def test_exec_runs_an_argument_vector_as_the_requester_and_reports_the_exit_code(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str, bind_role: BindRole
) -> None:
    pod = first_pod(kubectl, namespace, web)
    args = {"name": pod, "namespace": namespace, "command": ["echo", "hello from", "bosun; not a shell"]}

    preview = await call(mcp, "k8s_exec", args, preview=True)
    assert preview["data"]["allowed"] is True
    # The approver sees the argument vector exactly: quoted as a shell would need it, never re-split.
    assert preview["diff"] == f"exec pod/{pod} -c web -- echo 'hello from' 'bosun; not a shell'"

    with pytest.raises(ToolError, match='User "carol" cannot get resource "pods"'):
        await call(mcp, "k8s_exec", args, user="carol", preview=True)
    grant(kubectl, bind_role, namespace, "carol", "view", "get pods")
    carol = await call(mcp, "k8s_exec", args, user="carol", preview=True)
    assert carol["data"]["allowed"] is False
    assert "would be Forbidden" in carol["text"]
    with pytest.raises(
        ToolError, match=r'Forbidden: .*User "carol" cannot (get|create) resource "pods/exec"'
    ):
        await call(mcp, "k8s_exec", args, user="carol")

    grant(kubectl, bind_role, namespace, "alice", "edit", "create pods/exec")
    ran = await call(mcp, "k8s_exec", args, user="alice")
    # One argument stays one argument: the "; " reaches echo, it does not start a second command.
    assert ran["text"] == "hello from bosun; not a shell\n\n[exit code 0]"
    assert ran["data"]["exit_code"] == 0
    assert ran["data"]["container"] == "web"
    assert ran["truncated"] is False

    both = await call(
        mcp, "k8s_exec", {**args, "command": ["sh", "-c", "echo out; echo err >&2"]}, user="alice"
    )
    assert both["text"] == "out\n\n[stderr]\nerr\n\n[exit code 0]"


async def test_long_exec_output_keeps_the_end_behind_a_truncation_marker(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str
) -> None:
    pod = first_pod(kubectl, namespace, web)
    words = [f"{i:03d}" + "x" * 3996 for i in range(10)]  # 10 x 4,000 characters, over the 24,000 cap
    out = await call(mcp, "k8s_exec", {"name": pod, "namespace": namespace, "command": ["echo", *words]})
    assert out["truncated"] is True
    dropped = len(" ".join(words)) + 1 + len("\n[exit code 0]") - 24_000
    assert out["text"].startswith(f"…[truncated {dropped} bytes]\n")
    assert out["text"].endswith(words[-1] + "\n\n[exit code 0]")
    assert "000xxx" not in out["text"]
    assert out["data"]["exit_code"] == 0
