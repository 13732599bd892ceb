"""Argo Rollouts tools against real Rollout objects in the real control plane.

The CRDs come from the argo-rollouts Go module at test time (``go mod download``), not from a copy in this
repository. No Rollouts controller runs, so the tests play the controller's part where needed (status set
with ``kubectl patch --subresource=status``, ReplicaSets created by hand) and check what each tool does
to the objects: the same fields the ``kubectl argo rollouts`` plugin would change.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from bosun_tools.server import build_server
from bosun_tools.settings import ToolSettings
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.tools_support import call, deployment, mcp, rollout_replicaset
from tests.waiting import crds_established

pytestmark = pytest.mark.cluster
__all__ = ["mcp"]  # the shared client fixture, used with this module's server fixture

ARGO_ROLLOUTS_MODULE = "github.com/argoproj/argo-rollouts@v1.8.3"
EDITOR_ROLE = "bosun-test-rollouts-editor"
STEPS = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "10s"}}]
PAUSED_AT_STEP_1 = {
    "phase": "Paused",
    "message": "CanaryPauseStep",
    "currentStepIndex": 1,
    "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-11-24T09:00:00Z"}],
    "controllerPause": True,
    "stableRS": "aaa111",
    "currentPodHash": "bbb222",
    "replicas": 2,
    "updatedReplicas": 1,
    "readyReplicas": 2,
    "availableReplicas": 2,
    "canary": {
        "weights": {
            "canary": {"weight": 20, "podTemplateHash": "bbb222"},
            "stable": {"weight": 80, "podTemplateHash": "aaa111"},
        }
    },
}


@pytest.fixture(scope="module")
def rollout_crds(kubectl: Kubectl) -> None:
    """Install the Argo Rollouts CRDs of a pinned release, taken from its Go module."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            found = subprocess.run(
                ["go", "mod", "download", "-json", ARGO_ROLLOUTS_MODULE],
                cwd=scratch,
                capture_output=True,
                text=True,
                timeout=600,
                check=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            pytest.fail(
                f"cannot download {ARGO_ROLLOUTS_MODULE} with go (needs Go and the module proxy): {exc}"
            )
    crds = sorted((Path(json.loads(found.stdout)["Dir"]) / "manifests" / "crds").glob("*-crd.yaml"))
    assert crds, f"no CRDs in {ARGO_ROLLOUTS_MODULE}"
    files = [arg for crd in crds for arg in ("-f", str(crd))]
    kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=bosun-tests", *files)

    names = ("rollouts.argoproj.io", "experiments.argoproj.io", "analysisruns.argoproj.io")
    crds_established(kubectl, *names)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": EDITOR_ROLE},
        "rules": [
            {
                "apiGroups": ["argoproj.io"],
                "resources": ["rollouts", "rollouts/status", "experiments", "analysisruns"],
                "verbs": ["get", "list", "watch", "patch", "update"],
            },
            {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["get", "list", "watch"]},
        ],
    }
    kubectl("apply", "-f", "-", input=json.dumps(role))


@pytest.fixture(scope="module")
def server(cluster: ClusterAccess, rollout_crds: None) -> FastMCP:
    return build_server(ToolSettings(kubeconfig=str(cluster.kubeconfig), toolsets=("rollouts",)))


def rollout_manifest(name: str = "web") -> str:
    """The shared Deployment turned into a canary Rollout with a sidecar (set_image must pick one)."""
    containers = [
        {"name": "web", "image": "registry.example/web:1.0"},
        {"name": "proxy", "image": "registry.example/envoy:1"},
    ]
    body = json.loads(deployment(name, containers=containers))
    body.update(apiVersion="argoproj.io/v1alpha1", kind="Rollout")
    body["spec"]["strategy"] = {"canary": {"steps": STEPS}}
    return json.dumps(body)


@pytest.fixture
def web(kubectl: Kubectl, namespace: str, bind_role: BindRole) -> str:
    """A canary Rollout paused at its first pause step as the controller leaves it; alice may edit it."""
    bind_role(namespace, "alice", EDITOR_ROLE)
    kubectl("apply", "-n", namespace, "-f", "-", input=rollout_manifest())
    kubectl(
        "patch",
        "rollout",
        "web",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": PAUSED_AT_STEP_1}),
    )
    return "web"


def rollout(kubectl: Kubectl, namespace: str, name: str = "web") -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl("get", "rollout", name, "-n", namespace, "-o", "json").stdout)
    return result


async def test_status_list_and_promote(mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str) -> None:
    target = {"name": web, "namespace": namespace}
    listed = await call(mcp, "rollouts_get", {"namespace": namespace}, user="alice")
    row = listed["text"].splitlines()[1].split()
    assert row[:6] == ["web", namespace, "Canary", "Paused", "1/4", "20"]
    status = await call(mcp, "rollouts_get", target, user="alice")
    assert status["data"]["phase"] == "Paused"
    assert status["data"]["step"] == 1
    assert status["data"]["set_weight"] == 20
    assert "paused by CanaryPauseStep" in status["text"]
    assert "Step: 1/4  set weight: 20  actual weight: 20" in status["text"]
    assert 'Current step: {"pause":{}}' in status["text"]

    preview = await call(mcp, "rollouts_promote", target, preview=True, user="alice")
    assert f'merge patch of rollouts/{web}/status: {{"status":{{"pauseConditions":null}}}}' in preview["text"]
    assert "status.pauseConditions[0].reason: CanaryPauseStep -> (removed)" in preview["diff"]
    assert rollout(kubectl, namespace)["status"]["pauseConditions"]  # the dry run changed nothing

    await call(mcp, "rollouts_promote", target, user="alice")
    after = rollout(kubectl, namespace)["status"]
    assert "pauseConditions" not in after
    assert after["currentStepIndex"] == 1  # the controller, not the plugin, moves past a cleared pause

    stepped = await call(mcp, "rollouts_promote", target, user="alice")
    assert "status.currentStepIndex: 1 -> 2" in stepped["text"]
    assert rollout(kubectl, namespace)["status"]["currentStepIndex"] == 2

    await call(mcp, "rollouts_promote", {**target, "full": True}, user="alice")
    assert rollout(kubectl, namespace)["status"]["promoteFull"] is True


async def test_pause_resume_abort_retry_restart_and_set_image(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str
) -> None:
    target = {"name": web, "namespace": namespace}
    await call(mcp, "rollouts_pause", target, user="alice")
    assert rollout(kubectl, namespace)["spec"]["paused"] is True
    await call(mcp, "rollouts_resume", target, user="alice")
    assert rollout(kubectl, namespace)["spec"]["paused"] is False

    abort = await call(mcp, "rollouts_abort", target, preview=True, user="alice")
    assert "status.abort: (unset) -> true" in abort["diff"]
    assert "abort" not in rollout(kubectl, namespace)["status"]
    await call(mcp, "rollouts_abort", target, user="alice")
    assert rollout(kubectl, namespace)["status"]["abort"] is True
    assert (await call(mcp, "rollouts_get", target, user="alice"))["data"]["aborted"] is True
    await call(mcp, "rollouts_retry", target, user="alice")
    assert rollout(kubectl, namespace)["status"]["abort"] is False

    restarted = await call(mcp, "rollouts_restart", target, user="alice")
    restart_at = rollout(kubectl, namespace)["spec"]["restartAt"]
    assert f"spec.restartAt: (unset) -> {restart_at}" in restarted["text"]

    image = {**target, "container": "web", "image": "registry.example/web:2.0"}
    preview = await call(mcp, "rollouts_set_image", image, preview=True, user="alice")
    assert (
        "spec.template.spec.containers[web].image: registry.example/web:1.0 -> registry.example/web:2.0"
        in (preview["diff"])
    )
    assert '"op":"test","path":"/spec/template/spec/containers/0/name","value":"web"' in preview["text"]
    await call(mcp, "rollouts_set_image", image, user="alice")
    containers = rollout(kubectl, namespace)["spec"]["template"]["spec"]["containers"]
    assert [c["image"] for c in containers] == ["registry.example/web:2.0", "registry.example/envoy:1"]
    with pytest.raises(ToolError, match='no container named "db"; its containers are web, proxy'):
        await call(mcp, "rollouts_set_image", {**image, "container": "db"}, user="alice")


def replicaset(owner: dict[str, Any], revision: int, image: str) -> str:
    """Revision ``revision`` of the web Rollout, running ``image`` beside its proxy."""
    proxy = {"name": "proxy", "image": "registry.example/envoy:1"}
    return json.dumps(rollout_replicaset(owner, revision, [{"name": "web", "image": image}, proxy]))


async def test_history_and_undo(mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str) -> None:
    owner = rollout(kubectl, namespace)
    kubectl("apply", "-n", namespace, "-f", "-", input=replicaset(owner, 1, "registry.example/web:0.9"))
    kubectl("apply", "-n", namespace, "-f", "-", input=replicaset(owner, 2, "registry.example/web:1.0"))
    target = {"name": web, "namespace": namespace}

    history = await call(mcp, "rollouts_get", {**target, "show": "history"}, user="alice")
    assert history["data"]["revisions"] == [2, 1]
    assert "web=registry.example/web:0.9" in history["text"]

    preview = await call(mcp, "rollouts_undo", target, preview=True, user="alice")
    assert (
        "spec.template.spec.containers[web].image: registry.example/web:1.0 -> registry.example/web:0.9"
        in (preview["diff"])
    )
    assert "rollouts-pod-template-hash" not in preview["text"]
    assert rollout(kubectl, namespace)["spec"]["template"]["spec"]["containers"][0]["image"].endswith("1.0")

    await call(mcp, "rollouts_undo", target, user="alice")
    template = rollout(kubectl, namespace)["spec"]["template"]
    assert template["spec"]["containers"][0]["image"] == "registry.example/web:0.9"
    assert template["metadata"]["labels"] == {"app": "web"}

    same = await call(mcp, "rollouts_undo", {**target, "to_revision": 1}, user="alice")
    assert same["data"]["changed"] is False
    await call(mcp, "rollouts_undo", {**target, "to_revision": 2}, user="alice")
    assert rollout(kubectl, namespace)["spec"]["template"]["spec"]["containers"][0]["image"].endswith(
        "web:1.0"
    )
    with pytest.raises(ToolError, match="has no revision 9 in its history"):
        await call(mcp, "rollouts_undo", {**target, "to_revision": 9}, user="alice")


async def test_experiments_and_analysis_runs_filtered_by_owner(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str
) -> None:
    meta = rollout(kubectl, namespace)["metadata"]
    owner = [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web", "uid": meta["uid"]}]
    for name, owners in (("web-exp", owner), ("other-exp", [])):
        experiment = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Experiment",
            "metadata": {"name": name, "ownerReferences": owners},
            "spec": {
                "templates": [
                    {
                        "name": "canary",
                        "selector": {"matchLabels": {"x": name}},
                        "template": {
                            "metadata": {"labels": {"x": name}},
                            "spec": {"containers": [{"name": "c", "image": "i"}]},
                        },
                    }
                ]
            },
        }
        run = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AnalysisRun",
            "metadata": {"name": name.replace("exp", "run"), "ownerReferences": owners},
            "spec": {
                "metrics": [
                    {
                        "name": "errors",
                        "provider": {
                            "job": {
                                "spec": {
                                    "template": {
                                        "spec": {
                                            "containers": [{"name": "c", "image": "i"}],
                                            "restartPolicy": "Never",
                                        }
                                    }
                                }
                            }
                        },
                    }
                ]
            },
        }
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(experiment))
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(run))
    kubectl(
        "patch",
        "analysisrun",
        "web-run",
        "-n",
        namespace,
        "--type=merge",
        "-p",
        json.dumps(
            {
                "status": {
                    "phase": "Failed",
                    "message": "errors too high",
                    "metricResults": [{"name": "errors", "phase": "Failed"}],
                }
            }
        ),
    )

    experiments = {"namespace": namespace, "show": "experiments"}
    every = await call(mcp, "rollouts_get", experiments, user="alice")
    assert sorted(every["data"]["experiments"]) == ["other-exp", "web-exp"]
    mine = await call(mcp, "rollouts_get", {**experiments, "name": web}, user="alice")
    assert mine["data"]["experiments"] == ["web-exp"]
    runs = await call(
        mcp, "rollouts_get", {"namespace": namespace, "name": web, "show": "analysis-runs"}, user="alice"
    )
    assert runs["data"]["analysis_runs"] == [{"name": "web-run", "phase": "Failed"}]
    assert "errors=Failed" in runs["text"]


async def test_forbidden_not_found_and_invalid_arguments(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str
) -> None:
    target = {"name": web, "namespace": namespace}
    assert (await call(mcp, "rollouts_get", target))["data"]["phase"] == "Paused"
    with pytest.raises(ToolError, match=r"^Forbidden: .*carol.*(as carol)"):
        await call(mcp, "rollouts_abort", target, user="carol")
    with pytest.raises(ToolError, match=r"^Forbidden: "):
        await call(mcp, "rollouts_promote", target, user="carol", preview=True)
    assert "abort" not in rollout(kubectl, namespace)["status"]
    with pytest.raises(ToolError, match=f"NotFound: rollout nope not found in namespace {namespace}"):
        await call(mcp, "rollouts_get", {"name": "nope", "namespace": namespace}, user="alice")
    with pytest.raises(ToolError, match="show=history needs the rollout's name"):
        await call(mcp, "rollouts_get", {"namespace": namespace, "show": "history"}, user="alice")
    with pytest.raises(ToolError, match="show=experiments lists one namespace: pass namespace"):
        await call(mcp, "rollouts_get", {"show": "experiments"}, user="alice")
    for bad in ({"name": "web --all"}, {"name": "-web"}, {"namespace": "a b"}):
        with pytest.raises(ToolError, match="validation error"):
            await call(mcp, "rollouts_pause", {**target, **bad}, user="alice")
    with pytest.raises(ToolError, match="validation error"):
        await call(
            mcp, "rollouts_set_image", {**target, "container": "web", "image": "--privileged"}, user="alice"
        )
    assert rollout(kubectl, namespace)["spec"].get("paused") is not True
