"""Which objective checks follow which executed tools, and how their facts are judged."""

from __future__ import annotations

from bosun.models import ProposedStep
from bosun.verify import probes_for


def step(tool: str, **args: object) -> ProposedStep:
    return ProposedStep(id="s1", tool=tool, args=args, rationale="")


def test_scale_is_checked_by_rollout_status_with_the_requested_replicas() -> None:
    [probe] = probes_for(step("k8s_scale", kind="deploy", name="web", namespace="shop", replicas=5), None)
    assert probe.tool == "k8s_rollout_status"
    assert probe.args == {"kind": "deployment", "name": "web", "namespace": "shop"}
    assert probe.judge({"complete": True, "replicas": 5, "available": 5}) == (
        True,
        "rolled out, 5/5 available",
    )
    assert probe.judge({"complete": False, "replicas": 5, "available": 3})[0] is False
    assert probe.judge({"complete": True, "replicas": 3, "available": 3})[0] is False


def test_restart_and_image_changes_wait_for_the_rollout() -> None:
    for tool in ("k8s_rollout_restart", "k8s_set_image", "k8s_rollout_undo", "k8s_patch"):
        [probe] = probes_for(step(tool, kind="statefulset", name="db", namespace="shop"), None)
        assert probe.judge({"complete": True, "replicas": 2, "available": 2})[0]


def test_helm_and_jenkins_checks() -> None:
    [helm] = probes_for(step("helm_upgrade", release="web", chart="c", namespace="shop"), None)
    assert helm.tool == "helm_status"
    assert helm.judge({"status": "deployed", "revision": 2})[0]
    assert not helm.judge({"status": "failed"})[0]
    [build] = probes_for(step("jenkins_trigger_build", job="deploy"), {"number": 7})
    assert build.args == {"job": "deploy", "number": 7}
    assert build.judge({"number": 7, "result": "SUCCESS", "building": False})[0]
    assert not build.judge({"number": 7, "building": True})[0]
    assert probes_for(step("jenkins_trigger_build", job="deploy"), None) == []


def test_tools_without_a_known_check_get_none() -> None:
    assert probes_for(step("k8s_patch", kind="configmap", name="c", namespace="shop"), None) == []
    assert probes_for(step("k8s_scale", kind="rollout", name="r", namespace="shop", replicas=2), None) == []
