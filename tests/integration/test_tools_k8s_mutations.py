"""Mutating Kubernetes tools against the real control plane: previews change nothing and show exactly
what would change; executions change exactly that, as the impersonated requester."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from bosun_tools.output import LAST_APPLIED
from bosun_tools.toolsets.kubernetes.read import CHANGE_CAUSE
from fastmcp import Client
from fastmcp.exceptions import ToolError

from tests.conftest import BindRole, Kubectl
from tests.integration.test_tools_k8s import SECRET_VALUE, server, web
from tests.tools_support import call, deployment, mcp
from tests.waiting import eventually

pytestmark = pytest.mark.cluster
__all__ = ["mcp", "server", "web"]  # fixtures shared with the read-only tests


def live(kubectl: Kubectl, namespace: str | None, *ref: str) -> dict[str, Any]:
    args = ["get", *ref, "-o", "json"] + (["-n", namespace] if namespace else [])
    result: dict[str, Any] = json.loads(kubectl(*args).stdout)
    return result


async def test_scale_preview_then_execute_as_the_requester(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str, bind_role: BindRole
) -> None:
    args = {"kind": "deployment", "name": web, "namespace": namespace, "replicas": 5}
    bind_role(namespace, "alice", "edit")
    preview = await call(mcp, "k8s_scale", args, user="alice", preview=True)
    assert preview["data"]["changes"] == ["spec.replicas: 2 -> 5"]
    assert preview["data"]["dry_run"] is True
    assert preview["text"] == f"Would scale deployment web in namespace {namespace}:\n  spec.replicas: 2 -> 5"
    assert "-  replicas: 2\n+  replicas: 5" in preview["diff"]
    assert [
        line for line in preview["diff"].splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")
    ] == [
        "-  replicas: 2",
        "+  replicas: 5",
    ]
    assert live(kubectl, namespace, "deployment", web)["spec"]["replicas"] == 2

    done = await call(mcp, "k8s_scale", args, user="alice")
    assert done["data"]["replicas"] == 5
    assert done["data"]["previous_replicas"] == 2
    assert done["diff"] is None
    assert live(kubectl, namespace, "deployment", web)["spec"]["replicas"] == 5
    again = await call(mcp, "k8s_scale", args, user="alice", preview=True)
    assert again["data"]["changes"] == []
    assert again["text"].endswith("no change.")


async def test_scale_rejects_kinds_without_a_scale_subresource(mcp: Client[Any], namespace: str) -> None:
    with pytest.raises(ToolError, match="configmaps cannot be scaled"):
        await call(
            mcp, "k8s_scale", {"kind": "configmap", "name": "x", "namespace": namespace, "replicas": 1}
        )


async def test_set_image_preview_shows_only_the_image_then_history_and_undo(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str
) -> None:
    args = {
        "kind": "deployment",
        "name": web,
        "namespace": namespace,
        "container": web,
        "image": "registry.example/web:2.0",
    }
    preview = await call(mcp, "k8s_set_image", args, preview=True)
    assert preview["data"]["changes"] == [
        "spec.template.spec.containers[web].image: registry.example/web:1.0 -> registry.example/web:2.0"
    ]
    changed = [
        line for line in preview["diff"].splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")
    ]
    assert changed == ["-        image: registry.example/web:1.0", "+        image: registry.example/web:2.0"]
    assert live(kubectl, namespace, "deployment", web)["spec"]["template"]["spec"]["containers"][0][
        "image"
    ] == ("registry.example/web:1.0")
    with pytest.raises(ToolError, match="has no container nginx; containers: web"):
        await call(mcp, "k8s_set_image", {**args, "container": "nginx"}, preview=True)

    done = await call(mcp, "k8s_set_image", args)
    assert done["data"]["previous_image"] == "registry.example/web:1.0"
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    status = await call(mcp, "k8s_rollout_status", {"name": web, "namespace": namespace, "wait_seconds": 60})
    assert status["data"]["images"] == {"web": "registry.example/web:2.0"}
    history = await call(mcp, "k8s_rollout_history", {"name": web, "namespace": namespace})
    assert history["data"]["revisions"] == [1, 2]

    undo_preview = await call(mcp, "k8s_rollout_undo", {"name": web, "namespace": namespace}, preview=True)
    assert undo_preview["data"]["revision"] == 1
    assert undo_preview["data"]["changes"] == [
        "spec.template.spec.containers[web].image: registry.example/web:2.0 -> registry.example/web:1.0"
    ]
    undone = await call(mcp, "k8s_rollout_undo", {"name": web, "namespace": namespace, "to_revision": 1})
    assert undone["data"]["images"] == {"web": "registry.example/web:1.0"}
    image = live(kubectl, namespace, "deployment", web)["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example/web:1.0"
    with pytest.raises(ToolError, match="has no revision 7; revisions: "):
        await call(mcp, "k8s_rollout_undo", {"name": web, "namespace": namespace, "to_revision": 7})


async def test_undo_restores_the_annotations_of_the_revision_as_kubectl_does(
    mcp: Client[Any], kubectl: Kubectl, namespace: str
) -> None:
    manifest = json.loads(deployment("api", 1))
    manifest["metadata"]["annotations"] = {CHANGE_CAUSE: "release 1.0", "example.com/ticket": "OPS-1"}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))  # writes last-applied too
    kubectl("rollout", "status", "-n", namespace, "deployment/api", "--timeout=90s")
    kubectl("set", "image", "-n", namespace, "deployment/api", "api=registry.example/web:2.0")
    kubectl("rollout", "status", "-n", namespace, "deployment/api", "--timeout=90s")
    # Annotating after the rollout: the controller copies these onto revision 2's ReplicaSet only.
    kubectl(
        "annotate",
        "-n",
        namespace,
        "deployment/api",
        "--overwrite",
        f"{CHANGE_CAUSE}=release 2.0",
        "example.com/ticket=OPS-2",
        "example.com/added-later=yes",
    )
    eventually(
        "revision 2's ReplicaSet to carry the new change-cause",
        lambda: any(
            rs["metadata"].get("annotations", {}).get(CHANGE_CAUSE) == "release 2.0"
            for rs in live(kubectl, namespace, "replicasets")["items"]
        ),
    )
    args = {"name": "api", "namespace": namespace}

    preview = await call(mcp, "k8s_rollout_undo", args, preview=True)
    assert preview["data"]["revision"] == 1
    assert sorted(preview["data"]["changes"]) == [
        "metadata.annotations.example.com/added-later: yes -> (removed)",
        "metadata.annotations.example.com/ticket: OPS-2 -> OPS-1",
        "metadata.annotations.kubernetes.io/change-cause: release 2.0 -> release 1.0",
        "spec.template.spec.containers[api].image: registry.example/web:2.0 -> registry.example/web:1.0",
    ]
    assert live(kubectl, namespace, "deployment", "api")["metadata"]["annotations"][CHANGE_CAUSE] == (
        "release 2.0"
    )

    await call(mcp, "k8s_rollout_undo", args)
    annotations = live(kubectl, namespace, "deployment", "api")["metadata"]["annotations"]
    assert annotations[CHANGE_CAUSE] == "release 1.0"
    assert annotations["example.com/ticket"] == "OPS-1"
    assert "example.com/added-later" not in annotations
    # What describes the live object, not the revision, is the Deployment's own.
    assert LAST_APPLIED in annotations
    assert "deployment.kubernetes.io/desired-replicas" not in annotations
    kubectl("rollout", "status", "-n", namespace, "deployment/api", "--timeout=90s")
    history = await call(mcp, "k8s_rollout_history", args)
    assert history["data"]["revisions"] == [2, 3]
    assert "release 1.0" in history["text"].splitlines()[-1]

    kubectl("rollout", "pause", "-n", namespace, "deployment/api")
    with pytest.raises(ToolError, match=f"deployment api in namespace {namespace} is paused .*resume it"):
        await call(mcp, "k8s_rollout_undo", args, preview=True)


async def test_rollout_restart_stamps_the_pod_template(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str
) -> None:
    preview = await call(mcp, "k8s_rollout_restart", {"name": web, "namespace": namespace}, preview=True)
    assert len(preview["data"]["changes"]) == 1
    assert preview["data"]["changes"][0].startswith(
        "spec.template.metadata.annotations.kubectl.kubernetes.io/restartedAt: (unset) -> "
    )
    assert "restartedAt" not in json.dumps(live(kubectl, namespace, "deployment", web)["spec"]["template"])
    done = await call(mcp, "k8s_rollout_restart", {"name": web, "namespace": namespace})
    annotations = live(kubectl, namespace, "deployment", web)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == done["data"]["restarted_at"]


async def test_apply_preview_lists_new_and_changed_fields_then_applies(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str
) -> None:
    manifest = "\n---\n".join(
        [
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "settings"},
                    "data": {"mode": "fast"},
                }
            ),
            deployment("web", 3),
        ]
    )
    with pytest.raises(ToolError, match=r"conflict with \"kubectl-client-side-apply\".*pass force=true"):
        await call(mcp, "k8s_apply", {"manifest": manifest, "namespace": namespace}, preview=True)
    preview = await call(
        mcp, "k8s_apply", {"manifest": manifest, "namespace": namespace, "force": True}, preview=True
    )
    actions = {o["name"]: o["action"] for o in preview["data"]["objects"]}
    assert actions == {"settings": "created", "web": "configured"}
    assert "configmap/settings: data.mode: (unset) -> fast" in preview["data"]["changes"]
    assert "deployment/web: spec.replicas: 2 -> 3" in preview["data"]["changes"]
    assert "+  mode: fast" in preview["diff"]
    assert "+  replicas: 3" in preview["diff"]
    assert kubectl("get", "configmap", "settings", "-n", namespace, check=False).returncode != 0

    done = await call(mcp, "k8s_apply", {"manifest": manifest, "namespace": namespace, "force": True})
    assert {o["name"]: o["action"] for o in done["data"]["objects"]} == actions
    assert live(kubectl, namespace, "configmap", "settings")["data"] == {"mode": "fast"}
    assert live(kubectl, namespace, "deployment", web)["spec"]["replicas"] == 3
    again = await call(
        mcp, "k8s_apply", {"manifest": manifest, "namespace": namespace, "force": True}, preview=True
    )
    assert {o["action"] for o in again["data"]["objects"]} == {"unchanged"}

    with pytest.raises(ToolError, match="not valid YAML"):
        await call(mcp, "k8s_apply", {"manifest": "a: [", "namespace": namespace})
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "other"}}
    with pytest.raises(ToolError, match="names namespace other but the call is for namespace"):
        await call(mcp, "k8s_apply", {"manifest": json.dumps(other), "namespace": namespace})


async def test_apply_preview_of_a_secret_without_a_task_is_refused_without_the_value(
    mcp: Client[Any], namespace: str
) -> None:
    """A preview seals new secret values into a holding Secret of the task it is for
    (tests/integration/test_sealing.py); without a task there is nowhere to keep them."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"pw": SECRET_VALUE},
    }
    with pytest.raises(ToolError) as refused:
        await call(mcp, "k8s_apply", {"manifest": json.dumps(secret), "namespace": namespace}, preview=True)
    assert "would write secret values (manifest document 1 (Secret db) stringData.pw)" in str(refused.value)
    assert SECRET_VALUE not in str(refused.value)


async def test_patch_in_each_flavour(mcp: Client[Any], kubectl: Kubectl, namespace: str, web: str) -> None:
    base = {"kind": "deployment", "name": web, "namespace": namespace}
    merge = await call(
        mcp,
        "k8s_patch",
        {**base, "patch": {"metadata": {"labels": {"tier": "front"}}}, "patch_type": "merge"},
    )
    assert merge["data"]["changes"] == ["metadata.labels.tier: (unset) -> front"]
    strategic = await call(
        mcp,
        "k8s_patch",
        {
            **base,
            "patch": {
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "web", "env": [{"name": "MODE", "value": "x"}]}]}
                    }
                }
            },
        },
        preview=True,
    )
    assert strategic["data"]["changes"] == [
        "spec.template.spec.containers[web].env[MODE].name: (unset) -> MODE",
        "spec.template.spec.containers[web].env[MODE].value: (unset) -> x",
    ]
    json_patch = await call(
        mcp,
        "k8s_patch",
        {**base, "patch": [{"op": "replace", "path": "/spec/replicas", "value": 4}], "patch_type": "json"},
    )
    assert json_patch["data"]["changes"] == ["spec.replicas: 2 -> 4"]
    assert live(kubectl, namespace, "deployment", web)["metadata"]["labels"]["tier"] == "front"
    with pytest.raises(ToolError, match="patch_type json needs a list"):
        await call(mcp, "k8s_patch", {**base, "patch": {"spec": {}}, "patch_type": "json"})
    with pytest.raises(ToolError, match=r"Invalid: .*replicas"):
        await call(mcp, "k8s_patch", {**base, "patch": {"spec": {"replicas": -3}}, "patch_type": "merge"})


async def test_delete_preview_keeps_the_object_and_execute_removes_it(
    mcp: Client[Any], kubectl: Kubectl, namespace: str
) -> None:
    kubectl("create", "configmap", "old", "-n", namespace, "--from-literal=k=v")
    args = {"kind": "configmap", "name": "old", "namespace": namespace}
    preview = await call(mcp, "k8s_delete", args, preview=True)
    assert preview["text"] == f"Would delete configmap old in namespace {namespace} (propagation Background)."
    assert preview["data"]["changes"] == ["configmap/old: deleted"]
    removed = [
        line for line in preview["diff"].splitlines() if line.startswith("-") and not line.startswith("---")
    ]
    assert "-  k: v" in removed
    assert all(not line.startswith("+") or line.startswith("+++") for line in preview["diff"].splitlines())
    assert kubectl("get", "configmap", "old", "-n", namespace, check=False).returncode == 0
    await call(mcp, "k8s_delete", args)
    assert kubectl("get", "configmap", "old", "-n", namespace, check=False).returncode != 0
    with pytest.raises(ToolError, match=f'configmaps "old" not found in namespace {namespace}'):
        await call(mcp, "k8s_delete", args)


async def test_job_from_cronjob_and_one_off_pod(mcp: Client[Any], kubectl: Kubectl, namespace: str) -> None:
    kubectl(
        "create",
        "cronjob",
        "nightly",
        "-n",
        namespace,
        "--image=registry.example/batch:1",
        "--schedule=0 3 * * *",
        "--",
        "run",
        "--all",
    )
    preview = await call(
        mcp,
        "k8s_create_job_from_cronjob",
        {"cronjob": "nightly", "namespace": namespace, "job_name": "nightly-now"},
        preview=True,
    )
    assert (
        "spec.template.spec.containers[nightly].image: (unset) -> registry.example/batch:1"
        in (preview["data"]["changes"])
    )
    assert kubectl("get", "job", "nightly-now", "-n", namespace, check=False).returncode != 0
    await call(
        mcp,
        "k8s_create_job_from_cronjob",
        {"cronjob": "nightly", "namespace": namespace, "job_name": "nightly-now"},
    )
    job = live(kubectl, namespace, "job", "nightly-now")
    assert job["metadata"]["ownerReferences"][0]["name"] == "nightly"
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"

    run = {
        "name": "debug",
        "namespace": namespace,
        "image": "registry.example/tools:1",
        "command": ["sleep", "60"],
    }
    preview_pod = await call(mcp, "k8s_run_pod", run, preview=True)
    assert 'spec.containers[debug].command: (unset) -> ["sleep", "60"]' in preview_pod["data"]["changes"]
    await call(mcp, "k8s_run_pod", run)
    eventually(
        "pod debug Running",
        lambda: live(kubectl, namespace, "pod", "debug").get("status", {}).get("phase") == "Running",
    )


@pytest.fixture
def spare_node(kubectl: Kubectl) -> Iterator[str]:
    """A kwok node of our own, tainted so that only this test's pods land on it (draining a shared node
    would disturb every other test)."""
    name = f"drain-{uuid.uuid4().hex[:6]}"
    node = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"kubernetes.io/hostname": name, "type": "kwok"},
        },
        "spec": {"taints": [{"key": "bosun.dev/drain-test", "value": name, "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "50"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "50"},
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(node))
    kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=60s")
    yield name
    kubectl("delete", "node", name, "--wait=false", check=False)


async def test_cordon_uncordon_and_drain_a_node(
    mcp: Client[Any], kubectl: Kubectl, namespace: str, spare_node: str
) -> None:
    pin = {
        "nodeSelector": {"kubernetes.io/hostname": spare_node},
        "tolerations": [{"key": "bosun.dev/drain-test", "operator": "Exists"}],
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("pinned", 2, **pin))
    daemonset = json.loads(deployment("agent", 1, **pin))
    daemonset["kind"] = "DaemonSet"
    del daemonset["spec"]["replicas"]
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(daemonset))
    bare = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bare"},
        "spec": {"containers": [{"name": "bare", "image": "registry.example/bare:1"}], **pin},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(bare))
    kubectl("rollout", "status", "-n", namespace, "deployment/pinned", "--timeout=90s")
    kubectl("rollout", "status", "-n", namespace, "daemonset/agent", "--timeout=90s")

    cordon = await call(mcp, "k8s_cordon", {"name": spare_node}, preview=True)
    assert cordon["data"]["changes"] == ["spec.unschedulable: (unset) -> true"]
    await call(mcp, "k8s_cordon", {"name": spare_node})
    assert live(kubectl, None, "node", spare_node)["spec"]["unschedulable"] is True
    uncordon = await call(mcp, "k8s_uncordon", {"name": spare_node})
    assert uncordon["data"]["changes"] == ["spec.unschedulable: true -> (removed)"]

    with pytest.raises(ToolError, match=f"cannot drain node {spare_node}: {namespace}/bare is not managed"):
        await call(mcp, "k8s_drain", {"name": spare_node})
    assert "unschedulable" not in live(kubectl, None, "node", spare_node)["spec"]

    def on_node() -> list[str]:
        listed = kubectl(
            "get", "pods", "-n", namespace, "--field-selector", f"spec.nodeName={spare_node}", "-o", "json"
        )
        return sorted(p["metadata"]["name"] for p in json.loads(listed.stdout)["items"])

    before = on_node()
    assert len(before) == 4
    preview = await call(mcp, "k8s_drain", {"name": spare_node, "force": True}, preview=True)
    assert len(preview["data"]["evicted"]) == 3
    assert on_node() == before
    assert len(preview["data"]["skipped"]) == 1
    assert preview["data"]["skipped"][0].startswith(f"{namespace}/agent-")
    assert preview["data"]["skipped"][0].endswith("(DaemonSet-managed)")
    assert "unschedulable" not in live(kubectl, None, "node", spare_node)["spec"]

    done = await call(mcp, "k8s_drain", {"name": spare_node, "force": True, "timeout_seconds": 90})
    assert done["data"]["remaining"] == []
    assert live(kubectl, None, "node", spare_node)["spec"]["unschedulable"] is True
    assert [name.split("-")[0] for name in on_node()] == ["agent"]


async def test_apply_requires_the_namespace_argument_for_namespaced_objects(mcp: Client[Any]) -> None:
    """The operator's scope check reads the call's namespace argument, so a manifest may not pick its own."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "kube-system"}}
    with pytest.raises(ToolError, match="ConfigMap x is namespaced: pass namespace"):
        await call(mcp, "k8s_apply", {"manifest": json.dumps(cm)}, preview=True)


async def test_statefulset_image_change_status_and_undo_through_controller_revisions(
    mcp: Client[Any], kubectl: Kubectl, namespace: str
) -> None:
    sts = json.loads(deployment("db", 2, image="registry.example/db:1"))
    sts["kind"] = "StatefulSet"
    sts["spec"]["serviceName"] = "db"
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(sts))
    base = {"name": "db", "namespace": namespace, "kind": "statefulset"}
    first = await call(mcp, "k8s_rollout_status", {**base, "wait_seconds": 90})
    assert first["data"]["complete"] is True
    await call(mcp, "k8s_set_image", {**base, "container": "db", "image": "registry.example/db:2"})
    second = await call(mcp, "k8s_rollout_status", {**base, "wait_seconds": 120})
    assert second["data"]["complete"] is True, second["text"]
    assert second["data"]["images"] == {"db": "registry.example/db:2"}
    history = await call(mcp, "k8s_rollout_history", base)
    assert history["data"]["revisions"] == [1, 2]

    preview = await call(mcp, "k8s_rollout_undo", base, preview=True)
    assert preview["data"]["revision"] == 1
    assert preview["data"]["changes"] == [
        "spec.template.spec.containers[db].image: registry.example/db:2 -> registry.example/db:1"
    ]
    await call(mcp, "k8s_rollout_undo", base)
    image = live(kubectl, namespace, "statefulset", "db")["spec"]["template"]["spec"]["containers"][0][
        "image"
    ]
    assert image == "registry.example/db:1"


async def test_daemonset_restart_and_status(mcp: Client[Any], kubectl: Kubectl, namespace: str) -> None:
    ds = json.loads(deployment("agent", 1))
    ds["kind"] = "DaemonSet"
    del ds["spec"]["replicas"]
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(ds))
    base = {"name": "agent", "namespace": namespace, "kind": "daemonset"}
    status = await call(mcp, "k8s_rollout_status", {**base, "wait_seconds": 90})
    assert status["data"]["complete"] is True
    assert status["text"] == 'daemon set "agent" successfully rolled out'
    restarted = await call(mcp, "k8s_rollout_restart", base)
    assert restarted["data"]["kind"] == "DaemonSet"
    history = await call(mcp, "k8s_rollout_history", base)
    assert history["data"]["revisions"] == [1, 2]
