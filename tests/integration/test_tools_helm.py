"""Helm tools with the real helm binary against the real control plane, through the MCP server in-process.

The chart is tests/charts/web (a Deployment, a Service and a Secret); kwok's nodes make its pods Ready.
Calls run as impersonated users, so RBAC decides what helm may do, exactly as for a person.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from bosun_tools.client.helm import run_helm
from bosun_tools.errors import ToolError as OwnToolError
from bosun_tools.sealing import TaskRef
from bosun_tools.server import build_server
from bosun_tools.settings import HelmSettings, ToolSettings
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.integration.test_sealing import agenttask_kind, call_for, task
from tests.tools_support import call, mcp
from tests.waiting import eventually

pytestmark = pytest.mark.cluster
__all__ = ["agenttask_kind", "mcp", "task"]  # shared fixtures (the client uses this module's server)

CHART = Path(__file__).resolve().parents[1] / "charts" / "web"
DEFAULT_PASSWORD = "chart-default-password"


def helm_settings(cluster: ClusterAccess, **overrides: Any) -> HelmSettings:
    return HelmSettings(binary=str(cluster.bin_dir / "helm"), charts={"web": str(CHART)}, **overrides)


@pytest.fixture(scope="module")
def server(cluster: ClusterAccess) -> FastMCP:
    settings = ToolSettings(
        kubeconfig=str(cluster.kubeconfig), toolsets=("helm",), helm=helm_settings(cluster)
    )
    return build_server(settings)


def replicas(kubectl: Kubectl, namespace: str, name: str) -> int:
    out = kubectl("get", "deployment", name, "-n", namespace, "-o", "jsonpath={.spec.replicas}")
    return int(out.stdout)


async def test_install_upgrade_rollback_uninstall_as_an_editor(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, task: TaskRef
) -> None:
    """``task`` lets alice edit the namespace, and is the AgentTask the sealed password is held for."""
    release = {"release": "shop", "namespace": namespace}

    preview = await call(mcp, "helm_install", {**release, "chart": "web"}, preview=True, user="alice")
    assert "Would install release shop" in preview["text"]
    assert "Deployment/shop" in preview["text"]
    assert "+  replicas: 1" in preview["diff"]
    assert DEFAULT_PASSWORD not in json.dumps(preview)
    listed = await call(mcp, "helm_get", {"namespace": namespace}, user="alice")
    assert listed["data"]["releases"] == []  # a preview installs nothing

    installed = await call(mcp, "helm_install", {**release, "chart": "web", "wait": True}, user="alice")
    assert installed["data"]["status"] == "deployed"
    assert installed["data"]["revision"] == 1
    kubectl("wait", "-n", namespace, "--for=condition=Available", "deployment/shop", "--timeout=60s")

    status = await call(mcp, "helm_get", release, user="alice")
    assert status["data"]["chart"] == "web-0.1.0"
    assert "Resources: Secret/shop-auth, Service/shop, Deployment/shop" in status["text"]
    assert "runs 1 replica(s)" in status["text"]
    manifest = await call(mcp, "helm_get", {**release, "show": "manifest"}, user="alice")
    assert "kind: Secret" in manifest["text"]
    assert DEFAULT_PASSWORD not in manifest["text"]

    upgrade_args = {
        **release,
        "chart": "web",
        "values": {"replicaCount": 3, "password": "new-password-value"},
    }
    # A preview for a task seals the new password (tests/integration/test_sealing.py has the details).
    diff = await call_for(mcp, "helm_upgrade", upgrade_args, task, preview=True, user="alice")
    assert "-  replicas: 1" in diff["diff"]
    assert "+  replicas: 3" in diff["diff"]
    assert "new-password-value" not in json.dumps(diff)
    assert DEFAULT_PASSWORD not in json.dumps(diff)
    assert diff["sealed_args"]["values"]["password"].startswith("sealed:sha256:")
    assert diff["sealed_args"]["values"]["replicaCount"] == 3
    assert replicas(kubectl, namespace, "shop") == 1  # the preview changed nothing

    upgraded = await call(mcp, "helm_upgrade", diff["sealed_args"], user="alice")
    assert upgraded["data"]["revision"] == 2
    assert replicas(kubectl, namespace, "shop") == 3
    stored = kubectl("get", "secret", "shop-auth", "-n", namespace, "-o", "jsonpath={.data.password}")
    assert base64.b64decode(stored.stdout) == b"new-password-value"  # the sealed value ran
    values = await call(mcp, "helm_get", {**release, "show": "values"}, user="alice")
    assert "replicaCount: 3" in values["text"]
    assert "password: <redacted>" in values["text"]
    computed = await call(mcp, "helm_get", {**release, "show": "all-values"}, user="alice")
    assert "replicaCount: 3" in computed["text"]
    assert "image:" in computed["text"]  # a chart default the upgrade did not set
    assert "new-password-value" not in computed["text"]
    history = await call(mcp, "helm_get", {**release, "show": "history"}, user="alice")
    assert [r["revision"] for r in history["data"]["revisions"]] == [1, 2]

    back = await call(mcp, "helm_rollback", release, preview=True, user="alice")
    assert back["data"]["target_revision"] == 1
    assert "-  replicas: 3" in back["diff"]
    assert "+  replicas: 1" in back["diff"]
    rolled = await call(mcp, "helm_rollback", {**release, "wait": True}, user="alice")
    assert rolled["data"]["revision"] == 3
    assert rolled["data"]["rolled_back_to"] == 1
    assert replicas(kubectl, namespace, "shop") == 1

    gone = await call(mcp, "helm_uninstall", release, preview=True, user="alice")
    assert "deleting: Secret/shop-auth, Service/shop, Deployment/shop" in gone["text"]
    assert "-kind: Deployment" in gone["diff"]
    await call(mcp, "helm_uninstall", release, user="alice")
    assert (await call(mcp, "helm_get", {"namespace": namespace}, user="alice"))["data"]["releases"] == []

    def deployment_deleted() -> bool:
        out = kubectl("get", "deployment", "shop", "-n", namespace, "--ignore-not-found", "-o", "name")
        return out.stdout.strip() == ""

    eventually("the release's Deployment to be deleted", deployment_deleted, timeout=30)


async def test_user_without_rights_is_forbidden_though_the_server_could(
    mcp: Client[Any], kubectl: Kubectl, namespace: str
) -> None:
    as_server = await call(mcp, "helm_get", {"namespace": namespace})
    assert as_server["data"]["releases"] == []
    with pytest.raises(ToolError, match=r"^Forbidden: helm list .* as carol: .*forbidden"):
        await call(mcp, "helm_get", {"namespace": namespace}, user="carol")
    install = {"release": "x", "chart": "web", "namespace": namespace}
    with pytest.raises(ToolError, match=r"^Forbidden: .* as carol"):
        await call(mcp, "helm_install", install, user="carol", preview=True)
    with pytest.raises(ToolError, match=r"^Forbidden: .* as carol"):
        await call(
            mcp, "helm_install", {"release": "x", "chart": "web", "namespace": namespace}, user="carol"
        )
    assert kubectl("get", "secrets", "-n", namespace, "-o", "name").stdout.strip() == ""


async def test_rights_granted_to_a_group_reach_helm(
    mcp: Client[Any], namespace: str, bind_role: BindRole
) -> None:
    bind_role(namespace, "sre", "edit", kind="Group")
    listed = await call(mcp, "helm_get", {"namespace": namespace}, user="bob", groups=("sre",))
    assert listed["data"]["releases"] == []
    with pytest.raises(ToolError, match=r"^Forbidden: .* as bob"):
        await call(mcp, "helm_get", {"namespace": namespace}, user="bob")


async def test_invalid_arguments_never_reach_helm(
    mcp: Client[Any], namespace: str, bind_role: BindRole
) -> None:
    bind_role(namespace, "alice", "edit")
    for bad in ("x --all", "-x", "UPPER", "a" * 54, "x;rm"):
        with pytest.raises(ToolError, match="release"):
            await call(mcp, "helm_get", {"release": bad, "namespace": namespace}, user="alice")
    with pytest.raises(ToolError, match="chart"):
        await call(
            mcp,
            "helm_template",
            {"release": "x", "chart": "--repo=https://evil.example", "namespace": namespace},
            user="alice",
        )
    with pytest.raises(ToolError, match="chart 'evil/chart' is not allowed"):
        await call(
            mcp, "helm_install", {"release": "x", "chart": "evil/chart", "namespace": namespace}, user="alice"
        )
    with pytest.raises(ToolError, match="show=history and revision need a release"):
        await call(mcp, "helm_get", {"namespace": namespace, "show": "history"}, user="alice")
    with pytest.raises(ToolError, match="Helm release web: pass its namespace"):
        await call(mcp, "helm_get", {"release": "web"}, user="alice")
    with pytest.raises(ToolError, match=r"^NotFound: .*helm status nope"):
        await call(mcp, "helm_get", {"release": "nope", "namespace": namespace}, user="alice")
    with pytest.raises(ToolError, match="NotFound: Helm release nope not found"):
        await call(
            mcp,
            "helm_upgrade",
            {"release": "nope", "chart": "web", "namespace": namespace},
            preview=True,
            user="alice",
        )


async def test_template_chart_values_configured_charts_and_truncation(
    cluster: ClusterAccess, mcp: Client[Any]
) -> None:
    rendered = await call(
        mcp,
        "helm_template",
        {"release": "demo", "chart": "web", "namespace": "shop", "values": {"image": {"tag": "2.0.0"}}},
        user="alice",
    )
    assert 'image: "registry.example/web:2.0.0"' in rendered["text"]
    assert DEFAULT_PASSWORD not in rendered["text"]
    shown = await call(mcp, "helm_charts", {"chart": "web"}, user="alice")
    assert "replicaCount: 1" in shown["text"]
    repos = await call(mcp, "helm_charts", {}, user="alice")
    assert repos["data"] == {"repositories": [], "charts": ["web"]}

    small = ToolSettings(
        kubeconfig=str(cluster.kubeconfig), toolsets=("helm",), helm=helm_settings(cluster, output_cap=400)
    )
    async with Client(build_server(small)) as capped:
        out = await call(
            capped, "helm_template", {"release": "demo", "chart": "web", "namespace": "shop"}, user="alice"
        )
    assert out["truncated"] is True
    assert "…[truncated " in out["text"]
    assert len(out["text"].encode()) < 500


def helm_processes(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in cmdline and any(part.endswith(b"helm") for part in cmdline[:1]):
            found.append(int(pid))
    return found


async def test_timeout_kills_helm(cluster: ClusterAccess, kubectl: Kubectl, namespace: str) -> None:
    """Pods that can never be scheduled keep ``helm install --wait`` busy; the timeout must kill it."""
    settings = helm_settings(cluster, kubeconfig=str(cluster.kubeconfig))
    release = f"stuck-{namespace[-5:]}"
    args = [
        "install",
        release,
        str(CHART),
        "-n",
        namespace,
        "--set",
        "nodeSelector.bosun-test=nowhere",
        "--wait",
        "--timeout",
        "5m",
    ]
    with pytest.raises(OwnToolError, match=r"helm install did not finish within 3s and was killed"):
        await run_helm(settings, args, identity=None, timeout=3)
    assert helm_processes(release) == []
    pending = kubectl("get", "pods", "-n", namespace, "-o", "jsonpath={.items[*].status.phase}").stdout
    assert "Running" not in pending
