"""Which objective checks follow which executed tools, the pure comparisons behind them, and how verdicts
become checks. Reads are answered by a scripted reader (canned tool outcomes); the same probes run against
the real API server in tests/integration/test_verify.py."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from bosun.api.models import MAX_CHECKS, ProposedStep, VerificationCheck
from bosun.planner import PlanningContext
from bosun.ports.gateway import ToolCallOutcome, ToolGateway
from bosun.steps.verify.probes.base import Probe, Verdict
from bosun.steps.verify.probes.changes import compare_applied, compare_json_patch, compare_patch
from bosun.steps.verify.probes.compare import quantity, same_value
from bosun.steps.verify.probes.helm import helm_verdict
from bosun.steps.verify.probes.jenkins import build_verdict
from bosun.steps.verify.probes.kubernetes import gone_verdict
from bosun.steps.verify.probes.registry import CHECKS, probes_for
from bosun.steps.verify.probes.rollouts import promote_verdict
from bosun.steps.verify.probes.secret_values import secret_value_state
from bosun.steps.verify.probes.workloads import rollout_verdict, table_names
from bosun.steps.verify.run import bounded, run_probe, verify
from bosun_tools.identity import Identity
from bosun_tools.output import redact, to_yaml
from bosun_tools.registry import REGISTRY, load_toolsets, safety_of

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SECRET_VALUE = "hunter2-very-secret"
SECRET_B64 = base64.b64encode(SECRET_VALUE.encode()).decode()


def ok(data: dict[str, Any] | None = None, text: str = "", truncated: bool = False) -> ToolCallOutcome:
    return ToolCallOutcome(True, text, None, data, None, truncated)


def failed(error: str) -> ToolCallOutcome:
    return ToolCallOutcome(False, error, None, None, error, False)


def yaml_of(obj: dict[str, Any]) -> ToolCallOutcome:
    """What k8s_get with output=yaml returns (Secret values redacted, as the tool does)."""
    return ok({"kind": obj.get("kind")}, to_yaml(redact(obj)))


class Script:
    """A reader that answers each tool from a list of outcomes (the last one repeats) and records calls."""

    def __init__(self, answers: dict[str, list[ToolCallOutcome]], remaining: float = 0.0) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._remaining = remaining

    async def __call__(self, tool: str, args: dict[str, Any]) -> ToolCallOutcome:
        self.calls.append((tool, args))
        queue = self.answers[tool]
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def remaining(self) -> float:
        return self._remaining


class Everything:
    """A reader that answers every tool the same way (an object that does not exist) and records them."""

    def __init__(self) -> None:
        self.called: list[str] = []

    async def __call__(self, tool: str, args: dict[str, Any]) -> ToolCallOutcome:
        self.called.append(tool)
        return failed("NotFound: no such object")

    def remaining(self) -> float:
        return 0.0


async def look(probe: Probe, **answers: list[ToolCallOutcome]) -> Verdict:
    return await probe.look(Script(answers))


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "web:1", "resources": {"requests": {"cpu": "0.5"}}}
                    ]
                },
            },
        },
    }


def live_deployment() -> dict[str, Any]:
    """The same Deployment as the API server returns it: defaults, normalised quantities, server metadata."""
    obj = deployment()
    obj["metadata"].update({"uid": "u-1", "resourceVersion": "42", "generation": 3})
    spec = obj["spec"]["template"]["spec"]
    spec["containers"] = [
        {"name": "sidecar", "image": "proxy:2"},
        {
            "name": "web",
            "image": "web:1",
            "imagePullPolicy": "IfNotPresent",
            "resources": {"requests": {"cpu": "500m"}},
        },
    ]
    spec["restartPolicy"] = "Always"
    obj["status"] = {"replicas": 2}
    return obj


# ----- every mutating tool has a check ----------------------------------------------------------------------

SAMPLE_CALLS: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {
    "k8s_apply": ({"manifest": json.dumps(deployment()), "namespace": "shop"}, None),
    "k8s_patch": (
        {"kind": "configmap", "name": "c", "namespace": "shop", "patch": {"data": {"a": "1"}}},
        None,
    ),
    "k8s_scale": ({"kind": "deploy", "name": "web", "namespace": "shop", "replicas": 5}, None),
    "k8s_set_image": (
        {"kind": "deployment", "name": "web", "namespace": "shop", "container": "web", "image": "web:2"},
        None,
    ),
    "k8s_rollout_restart": ({"name": "web", "namespace": "shop"}, None),
    "k8s_rollout_undo": ({"name": "web", "namespace": "shop"}, {"images": {"web": "web:1"}}),
    "k8s_delete": ({"kind": "pod", "name": "p", "namespace": "shop"}, {"uid": "u-1"}),
    "k8s_cordon": ({"name": "node-1"}, None),
    "k8s_uncordon": ({"name": "node-1"}, None),
    "k8s_drain": ({"name": "node-1"}, None),
    "k8s_create_job_from_cronjob": (
        {"cronjob": "nightly", "namespace": "shop"},
        {"name": "nightly-manual-1"},
    ),
    "k8s_run_pod": ({"name": "debug", "namespace": "shop", "image": "busybox:1"}, None),
    "k8s_exec": ({"name": "p", "namespace": "shop", "command": ["true"]}, {"exit_code": 0}),
    "helm_install": ({"release": "web", "chart": "web", "namespace": "shop"}, {"revision": 1}),
    "helm_upgrade": ({"release": "web", "chart": "web", "namespace": "shop"}, {"revision": 2}),
    "helm_rollback": ({"release": "web", "namespace": "shop"}, {"revision": 3}),
    "helm_uninstall": ({"release": "web", "namespace": "shop"}, None),
    "rollouts_promote": ({"name": "r", "namespace": "shop"}, {"step": 2}),
    "rollouts_pause": ({"name": "r", "namespace": "shop"}, None),
    "rollouts_resume": ({"name": "r", "namespace": "shop"}, None),
    "rollouts_abort": ({"name": "r", "namespace": "shop"}, None),
    "rollouts_retry": ({"name": "r", "namespace": "shop"}, None),
    "rollouts_set_image": ({"name": "r", "namespace": "shop", "container": "*", "image": "web:2"}, None),
    "rollouts_restart": ({"name": "r", "namespace": "shop"}, None),
    "rollouts_undo": ({"name": "r", "namespace": "shop"}, {"changed": True, "images": ["web=web:1"]}),
    "jenkins_trigger_build": ({"job": ["team", "deploy"]}, {"number": 7}),
    "jenkins_stop_build": ({"job": ["team", "deploy"], "number": 7}, None),
}


def mutating_tools() -> set[str]:
    load_toolsets()
    return {spec.name for spec in REGISTRY.specs() if not spec.safety.read_only}


def test_every_mutating_tool_of_the_registry_has_an_objective_check() -> None:
    mutating = mutating_tools()
    assert mutating - set(CHECKS) == set(), (
        "a mutating tool without a check: add it to bosun.steps.verify.probes.registry.CHECKS"
    )
    assert set(CHECKS) - mutating == set(), "a check for a tool that is not a mutating tool of the registry"
    assert set(SAMPLE_CALLS) == mutating, "add a sample call of the new tool to SAMPLE_CALLS"


@pytest.mark.parametrize("tool", sorted(SAMPLE_CALLS))
async def test_each_sample_call_gets_named_checks_that_read_with_read_only_tools_only(tool: str) -> None:
    args, data = SAMPLE_CALLS[tool]
    probes = probes_for(tool, args, data)
    assert probes
    assert all(p.name != f"{tool} call" for p in probes), "the sample call should have its real check"
    reader = Everything()
    for probe in probes:
        await probe.look(reader)
    assert reader.called or tool == "k8s_exec", "only an exec is judged by its recorded exit code alone"
    assert all(safety_of(name).read_only for name in reader.called), reader.called


async def test_a_tool_without_a_known_check_fails_and_says_so() -> None:
    [probe] = probes_for("k8s_frobnicate", {"name": "x"}, None)
    assert await look(probe) == ("unsure", "no objective check is known for k8s_frobnicate")


# ----- Kubernetes checks ------------------------------------------------------------------------------------


async def test_scale_waits_for_the_rollout_with_the_requested_replicas_and_the_time_left() -> None:
    [probe] = probes_for(
        "k8s_scale", {"kind": "deploy", "name": "web", "namespace": "shop", "replicas": 5}, None
    )
    assert probe.name == "deployment shop/web rolled out"
    reader = Script({"k8s_rollout_status": [ok({"complete": True, "replicas": 5, "available": 5})]}, 42.7)
    assert await probe.look(reader) == ("passed", "rolled out, 5/5 available")
    assert reader.calls == [
        ("k8s_rollout_status", {"kind": "deployment", "name": "web", "namespace": "shop", "wait_seconds": 42})
    ]
    assert rollout_verdict({"complete": False, "replicas": 5, "available": 3}, replicas=5)[0] == "pending"
    assert rollout_verdict({"complete": True, "replicas": 3, "available": 3}, replicas=5) == (
        "failed",
        "spec.replicas is 3, expected 5; 3/3 available",
    )


async def test_scale_of_another_kind_reads_spec_replicas() -> None:
    [probe] = probes_for(
        "k8s_scale", {"kind": "rollout", "name": "r", "namespace": "shop", "replicas": 2}, None
    )
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"}}
    assert await look(probe, k8s_get=[yaml_of({**rollout, "spec": {"replicas": 2}})]) == (
        "passed",
        "spec.replicas is 2",
    )
    assert (await look(probe, k8s_get=[yaml_of({**rollout, "spec": {"replicas": 1}})]))[0] == "failed"


async def test_restart_undo_and_image_changes_roll_out_and_hold() -> None:
    db = {"kind": "statefulset", "name": "db", "namespace": "shop"}
    done = ok({"complete": True, "replicas": 2, "available": 2, "images": {"db": "db:1"}})
    [restart] = probes_for("k8s_rollout_restart", db, None)
    assert (await look(restart, k8s_rollout_status=[done]))[0] == "passed"
    [undo] = probes_for("k8s_rollout_undo", db, {"images": {"db": "db:1"}})
    assert (await look(undo, k8s_rollout_status=[done]))[0] == "passed"
    rolled, unrecorded = probes_for("k8s_rollout_undo", db, None)
    assert (await look(rolled, k8s_rollout_status=[done]))[0] == "passed"
    assert (unrecorded.name, (await look(unrecorded))[0]) == ("statefulset shop/db rolled back", "unsure")
    [undo] = probes_for(
        "k8s_rollout_undo", {"name": "web", "namespace": "shop"}, {"images": {"web": "web:1"}}
    )
    moved_on = ok({"complete": True, "replicas": 2, "available": 2, "images": {"web": "web:3"}})
    assert await look(undo, k8s_rollout_status=[moved_on]) == (
        "failed",
        'runs images {"web": "web:3"}, expected {"web": "web:1"}',
    )
    args = {"kind": "deployment", "name": "web", "namespace": "shop", "container": "web", "image": "web:2"}
    image, rollout = probes_for("k8s_set_image", args, None)
    assert (image.name, rollout.name) == ("deployment shop/web image set", "deployment shop/web rolled out")
    assert await look(image, k8s_get=[yaml_of(deployment())]) == (
        "failed",
        "container web has image web:1, expected web:2",
    )


async def test_apply_checks_every_document_and_rolls_out_workloads() -> None:
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}}
    manifest = "\n---\n".join(json.dumps(d) for d in (settings, deployment()))
    held, applied, rolled = probes_for("k8s_apply", {"manifest": manifest, "namespace": "shop"}, None)
    assert [p.name for p in (held, applied, rolled)] == [
        "configmap shop/settings holds the applied fields",
        "deployment shop/web holds the applied fields",
        "deployment shop/web rolled out",
    ]
    reader = Script({"k8s_get": [yaml_of(live_deployment())]})
    assert await applied.look(reader) == ("passed", "all 8 applied fields match the live object")
    assert reader.calls == [
        ("k8s_get", {"kind": "Deployment.apps", "name": "web", "namespace": "shop", "output": "yaml"})
    ]
    missing = failed('NotFound: configmaps "settings" not found in namespace shop; check the name')
    assert (await look(held, k8s_get=[missing]))[0] == "failed"
    assert await look(held, k8s_get=[ok({}, "data: {}", truncated=True)]) == (
        "unsure",
        "it is larger than k8s_get returns (the output was truncated), so it was not compared",
    )


async def test_patch_checks_the_object_and_rolls_out_a_patched_workload() -> None:
    args = {"kind": "deploy", "name": "web", "namespace": "shop", "patch": {"spec": {"replicas": 2}}}
    patched, rolled = probes_for("k8s_patch", args, None)
    assert (patched.name, rolled.name) == ("deploy shop/web patched", "deployment shop/web rolled out")
    assert await look(patched, k8s_get=[yaml_of(live_deployment())]) == (
        "passed",
        "all 1 patched fields hold",
    )
    [only] = probes_for(
        "k8s_patch", {"kind": "configmap", "name": "c", "namespace": "shop", "patch": {}}, None
    )
    assert only.name == "configmap shop/c patched"


async def test_delete_waits_for_the_object_to_go_and_a_new_uid_counts_as_gone() -> None:
    [probe] = probes_for("k8s_delete", {"kind": "pod", "name": "p", "namespace": "shop"}, {"uid": "u-1"})
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u-1"}}
    finalizing = {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "t", "finalizers": ["x/y"]}}
    assert await look(probe, k8s_get=[yaml_of(finalizing)]) == (
        "pending",
        "it is being deleted (finalizers: x/y)",
    )
    recreated = {**pod, "metadata": {"name": "p", "uid": "u-2"}}
    assert (await look(probe, k8s_get=[yaml_of(recreated)]))[0] == "passed"
    assert await look(probe, k8s_get=[failed('NotFound: pods "p" not found')]) == ("passed", "gone")
    assert (await look(probe, k8s_get=[failed("Forbidden: no")]))[0] == "unsure"
    unknown_uid = gone_verdict(yaml_of(recreated), None)
    assert unknown_uid[0] == "pending"
    assert "uid was not recorded" in unknown_uid[1]


async def test_cordon_uncordon_and_drain() -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1"}, "spec": {}}
    [cordon] = probes_for("k8s_cordon", {"name": "node-1"}, None)
    [uncordon] = probes_for("k8s_uncordon", {"name": "node-1"}, None)
    assert await look(cordon, k8s_get=[yaml_of(node)]) == ("failed", "spec.unschedulable is false")
    assert await look(uncordon, k8s_get=[yaml_of(node)]) == ("passed", "spec.unschedulable is false")

    cordoned, drained = probes_for("k8s_drain", {"name": "node-1"}, None)
    assert cordoned.name == "node node-1 cordoned"
    listing = "\n".join(
        [
            "NAMESPACE     NAME        READY   STATUS",
            "kube-system   agent-x     1/1     Running",
            "shop          web-1       1/1     Running",
        ]
    )
    agent = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "agent-x",
            "namespace": "kube-system",
            "ownerReferences": [{"kind": "DaemonSet", "name": "agent", "controller": True}],
        },
    }
    web = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": "shop",
            "ownerReferences": [{"kind": "ReplicaSet", "controller": True}],
        },
    }
    reader = Script({"k8s_get": [ok({"count": 2}, listing), yaml_of(agent), yaml_of(web)]})
    assert await drained.look(reader) == ("pending", "1 evictable pod(s) still on it: shop/web-1")
    gone = failed('NotFound: pods "web-1" not found')
    reader = Script({"k8s_get": [ok({"count": 2}, listing), yaml_of(agent), gone]})
    assert await drained.look(reader) == (
        "passed",
        "no evictable pods left (2 DaemonSet or mirror pod(s) stay)",
    )
    assert table_names("No resources found.") == []
    assert table_names("NAME   READY\nx      1/1") is None


async def test_job_pod_and_exec_checks() -> None:
    [job] = probes_for("k8s_create_job_from_cronjob", {"cronjob": "nightly", "namespace": "shop"}, None)
    assert await look(job) == (
        "unsure",
        "the generated job name was not recorded with the step "
        "(the tool's output data was missing or over 1 KiB)",
    )
    [job] = probes_for(
        "k8s_create_job_from_cronjob", {"cronjob": "nightly", "namespace": "shop"}, {"name": "j"}
    )
    owned = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "j", "ownerReferences": [{"kind": "CronJob", "name": "nightly"}]},
    }
    assert await look(job, k8s_get=[yaml_of(owned)]) == ("passed", "exists, created from cronjob nightly")
    [pod] = probes_for("k8s_run_pod", {"name": "debug", "namespace": "shop", "image": "busybox:1"}, None)
    running = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "debug"},
        "spec": {"containers": [{"image": "busybox:1"}]},
    }
    assert (await look(pod, k8s_get=[yaml_of(running)]))[0] == "passed"
    exec_args = {"name": "p", "namespace": "shop", "command": ["false"]}
    [code] = probes_for("k8s_exec", exec_args, {"exit_code": 1})
    assert (code.name, await look(code)) == ("command in pod shop/p succeeded", ("failed", "exit code 1"))
    [unknown] = probes_for("k8s_exec", exec_args, None)
    assert (await look(unknown))[0] == "unsure"


# ----- Helm, Argo Rollouts, Jenkins -------------------------------------------------------------------------


async def test_helm_checks() -> None:
    [upgrade] = probes_for(
        "helm_upgrade", {"release": "web", "chart": "c", "namespace": "shop"}, {"revision": 2}
    )
    assert upgrade.name == "helm release shop/web deployed"
    assert (await look(upgrade, helm_get=[ok({"status": "deployed", "revision": 2})]))[0] == "passed"
    assert helm_verdict({"status": "pending-upgrade", "revision": 2})[0] == "pending"
    assert helm_verdict({"status": "failed", "revision": 2})[0] == "failed"
    assert helm_verdict({"status": "deployed", "revision": 3}, 2) == (
        "failed",
        "release status deployed, revision 3; the executed change made revision 2",
    )
    [uninstall] = probes_for("helm_uninstall", {"release": "web", "namespace": "shop"}, None)
    assert await look(uninstall, helm_get=[failed("NotFound: release: not found")]) == ("passed", "gone")
    assert (await look(uninstall, helm_get=[ok({"status": "uninstalling"})]))[0] == "pending"
    assert (await look(uninstall, helm_get=[ok({"status": "deployed", "revision": 1})]))[0] == "failed"


async def test_rollout_flags_and_images() -> None:
    expectations = {
        "rollouts_pause": ({"paused": True}, {"paused": False}),
        "rollouts_resume": ({"paused": False}, {"paused": True}),
        "rollouts_abort": ({"aborted": True}, {"aborted": False}),
        "rollouts_retry": ({"aborted": False}, {"aborted": True}),
    }
    for tool, (holds, does_not) in expectations.items():
        [probe] = probes_for(tool, {"name": "r", "namespace": "shop"}, None)
        assert (await look(probe, rollouts_get=[ok(holds)]))[0] == "passed", tool
        assert (await look(probe, rollouts_get=[ok(does_not)]))[0] == "failed", tool
    [image] = probes_for(
        "rollouts_set_image", {"name": "r", "namespace": "shop", "container": "*", "image": "w:2"}, None
    )
    assert await look(image, rollouts_get=[ok({"images": ["a=w:2", "b=w:1"]})]) == (
        "failed",
        "b=w:1, expected w:2",
    )
    [undo] = probes_for("rollouts_undo", {"name": "r", "namespace": "shop"}, {"changed": True, "images": []})
    assert (await look(undo))[0] == "unsure"  # a workloadRef rollout records no template
    [restart] = probes_for("rollouts_restart", {"name": "r", "namespace": "shop"}, None)
    rollout = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "r"}}
    assert await look(restart, k8s_get=[yaml_of({**rollout, "spec": {"restartAt": "T"}})]) == (
        "passed",
        "spec.restartAt is T",
    )


def test_promote_moves_on_or_promotes_fully() -> None:
    steps = {
        "strategy": {
            "canary": {"steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]}
        }
    }
    paused_at = {"pauseConditions": [{"reason": "CanaryPauseStep"}]}
    assert (
        promote_verdict({"spec": steps, "status": {"currentStepIndex": 2}}, full=False, promoted_step=2)[0]
        == "passed"
    )
    later = {"spec": steps, "status": {"currentStepIndex": 3, **paused_at}}
    assert promote_verdict(later, full=False, promoted_step=2) == (
        "passed",
        "moved on to step 3 (paused there by CanaryPauseStep)",
    )
    again = {"spec": steps, "status": {"currentStepIndex": 1, **paused_at}}
    assert promote_verdict(again, full=False, promoted_step=1)[0] == "failed"
    assert promote_verdict(again, full=False, promoted_step=None)[0] == "unsure"
    assert promote_verdict({"spec": {**steps, "paused": True}}, full=False, promoted_step=2)[0] == "failed"
    assert promote_verdict({"status": {"promoteFull": True}}, full=True, promoted_step=None)[0] == "passed"
    done = {"status": {"currentPodHash": "a", "stableRS": "a"}}
    assert promote_verdict(done, full=True, promoted_step=None)[0] == "passed"
    assert promote_verdict({"status": {"abort": True}}, full=True, promoted_step=None)[0] == "failed"


async def test_jenkins_checks() -> None:
    [build] = probes_for("jenkins_trigger_build", {"job": ["team", "deploy"]}, {"number": 7})
    assert build.name == "jenkins build team/deploy #7 succeeded"
    reader = Script({"jenkins_get": [ok({"number": 7, "result": "SUCCESS", "building": False})]})
    assert await build.look(reader) == ("passed", "build #7 result SUCCESS")
    assert reader.calls == [("jenkins_get", {"job": ["team", "deploy"], "show": "build", "number": 7})]
    assert build_verdict({"number": 7, "building": True})[0] == "pending"
    assert build_verdict({"number": 7, "result": "FAILURE"})[0] == "failed"
    [unnumbered] = probes_for("jenkins_trigger_build", {"job": ["deploy"]}, None)
    assert await look(unnumbered) == (
        "unsure",
        "Jenkins gave no build number for the triggered build, so its result is unknown",
    )
    [stop] = probes_for("jenkins_stop_build", {"job": ["deploy"], "number": 9}, None)
    assert await look(stop, jenkins_get=[ok({"building": False, "result": "ABORTED"})]) == (
        "passed",
        "build #9 is not running (result ABORTED)",
    )


# ----- the pure comparisons ---------------------------------------------------------------------------------


def test_applied_fields_are_a_subset_of_the_live_object() -> None:
    result = compare_applied(deployment(), live_deployment())
    assert (result.differences, result.unconfirmed, result.checked) == ([], [], 8)


def test_a_field_the_api_server_dropped_fails_the_apply_and_is_named() -> None:
    doc = deployment()
    doc["spec"]["template"]["spec"]["containers"][0]["unknownField"] = "x"
    [difference] = compare_applied(doc, live_deployment()).differences
    assert difference == (
        'spec.template.spec.containers[web].unknownField: set to "x" by the change, but the live object has '
        "no such field (the API server dropped it, or it was removed since)"
    )


def test_changed_values_lists_and_server_owned_fields() -> None:
    live = live_deployment()
    live["spec"]["replicas"] = 3
    live["spec"]["template"]["spec"]["containers"][1]["image"] = "web:9"
    doc = deployment()
    doc["metadata"].update({"uid": "other", "resourceVersion": "1", "finalizers": ["a/b"]})
    doc["status"] = {"replicas": 99}
    live["metadata"]["finalizers"] = ["x/y", "a/b"]
    assert compare_applied(doc, live).differences == [
        "spec.replicas: 3, expected 2",
        'spec.template.spec.containers[web].image: "web:9", expected "web:1"',
    ]
    live["metadata"]["finalizers"] = ["x/y", "c/d"]
    [missing] = compare_applied(doc, live).differences[:1]
    assert missing == 'metadata.finalizers[0]: no item of the live list (2 items) matches "a/b"'


def test_values_the_api_server_normalises_compare_as_equal() -> None:
    assert quantity("500m") == quantity(0.5) == quantity("0.5")
    assert same_value("1Gi", "1024Mi")
    assert same_value(1, "1")
    assert same_value("1e3", "1k")
    assert not same_value("1Gi", "1G")
    assert not same_value(True, 1)
    assert not same_value("web", "web:1")


def test_a_merge_patch_took_effect_with_its_nulls() -> None:
    live = live_deployment()
    patch = {
        "metadata": {"labels": {"tier": None}},
        "spec": {"replicas": 2, "template": {"spec": {"nodeSelector": None}}},
    }
    result = compare_patch(patch, live)
    assert (result.differences, result.checked) == ([], 3)
    live["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    live["metadata"]["labels"]["tier"] = "db"
    assert compare_patch(patch, live).differences == [
        'metadata.labels.tier: still "db"; the change removes it',
        'spec.template.spec.nodeSelector: still {"disk": "ssd"}; the change removes it',
    ]


def test_a_strategic_patch_with_directives() -> None:
    live = live_deployment()
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "web"}],
                    "containers": [
                        {"name": "sidecar", "$patch": "delete"},
                        {"name": "web", "image": "web:1"},
                    ],
                }
            }
        },
        "metadata": {"$deleteFromPrimitiveList/finalizers": ["a/b"], "$retainKeys": ["labels"]},
    }
    assert compare_patch(patch, live).differences == [
        "spec.template.spec.containers[sidecar]: still present; the change deletes it"
    ]
    odd = compare_patch({"spec": {"$frobnicate": 1}}, live)
    assert odd.verdict("held") == (
        "unsure",
        "spec: patch directive $frobnicate is not checked",
    )


def test_a_json_patch_took_effect() -> None:
    live = live_deployment()
    ops = [
        {"op": "test", "path": "/spec/replicas", "value": 7},
        {"op": "replace", "path": "/spec/replicas", "value": 5},
        {"op": "replace", "path": "/spec/replicas", "value": 2},
        {"op": "add", "path": "/metadata/labels/app", "value": "web"},
        {"op": "remove", "path": "/metadata/labels/tier"},
        {
            "op": "add",
            "path": "/spec/template/spec/containers/-",
            "value": {"name": "sidecar", "image": "proxy:2"},
        },
        {"op": "copy", "from": "/metadata/labels", "path": "/spec/template/metadata/labels"},
    ]
    result = compare_json_patch(ops, live)
    assert (result.differences, result.unconfirmed) == ([], [])
    ops = [
        {"op": "add", "path": "/metadata/annotations", "value": {"a~/b": "1"}},
        {"op": "remove", "path": "/spec/replicas"},
        {"op": "move", "from": "/metadata/labels", "path": "/metadata/tags"},
        {"op": "remove", "path": "/spec/template/spec/containers/0"},
    ]
    result = compare_json_patch(ops, live)
    assert result.differences == [
        "/metadata/annotations: absent in the live object, though the change sets fields there",
        "/spec/replicas: still 2; the patch removes it",
        '/metadata/labels: still {"app": "web"}; the patch removes it',
        "/metadata/tags: absent in the live object; the patch puts a value there",
    ]
    assert result.unconfirmed == [
        "/spec/template/spec/containers/0 (a list item removed by position cannot be told apart from the one "
        "that moved up)"
    ]


# ----- Secret values: by digest, never shown ----------------------------------------------------------------


def secret(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "type": "Opaque", "data": data}


def test_secret_values_are_compared_by_digest() -> None:
    value = SECRET_VALUE.encode()
    assert secret_value_state(value, SECRET_B64) == "same"
    assert secret_value_state(value, base64.b64encode(b"other").decode()) == "different"
    assert secret_value_state(value, f"<redacted {len(value)} bytes>") == "unreadable"
    assert secret_value_state(value, "<redacted 3 bytes>") == "different"
    assert secret_value_state(value, None) == "absent"


def test_secret_values_never_reach_a_message() -> None:
    applied = {**secret(password=SECRET_B64), "stringData": {"token": SECRET_VALUE}}
    applied["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": SECRET_VALUE}
    live = redact(secret(password=base64.b64encode(b"short").decode(), token=SECRET_B64))
    live["metadata"]["annotations"] = redact(applied)["metadata"]["annotations"]
    result = compare_applied(applied, live)
    assert result.differences == [
        "data.password: differs from the value the change set (values are never shown)"
    ]
    assert result.unconfirmed == [
        "data.token (the read tools redact Secret values: the live value has the expected size, "
        "but no digest to compare)"
    ]
    status, message = result.verdict("held")
    patched = compare_json_patch([{"op": "replace", "path": "/data/password", "value": SECRET_B64}], live)
    merged = compare_patch({"data": {"password": SECRET_B64, "gone": None}}, live)
    everything = " ".join([message, *patched.differences, *merged.differences, *merged.unconfirmed])
    assert status == "failed"
    assert patched.differences == [
        "data.password: differs from the value the change set (values are never shown)"
    ]
    for leaked in (SECRET_VALUE, SECRET_B64, "short", base64.b64encode(b"short").decode()):
        assert leaked not in everything
    readable = compare_applied(secret(password=SECRET_B64), secret(password=SECRET_B64))
    assert readable.verdict("held") == ("passed", "held")


# ----- from verdicts to checks ------------------------------------------------------------------------------


def known(verdicts: list[Verdict]) -> Probe:
    async def answer(read: Any) -> Verdict:
        return verdicts.pop(0)

    return Probe("configmap shop/c patched", answer)


async def test_pending_is_asked_again_until_the_deadline_and_failed_or_unsure_end_at_once() -> None:
    soon = Script({}, remaining=0.01)
    passed = await run_probe(known([("pending", "not yet"), ("passed", "held")]), soon)
    assert passed == VerificationCheck(name="configmap shop/c patched", passed=True, message="held")
    late = await run_probe(known([("pending", "not yet")]), Script({}, remaining=0))
    assert (late.passed, late.message) == (False, "not yet (still so at the deadline)")
    unsure = await run_probe(known([("unsure", "no data")]), soon)
    assert unsure.message == "could not be confirmed: no data; check it by hand"
    final = await run_probe(known([("failed", "dropped"), ("passed", "never asked")]), soon)
    assert (final.passed, final.message) == (False, "dropped")


def test_more_checks_than_the_status_holds_are_folded_failures_first() -> None:
    checks = [VerificationCheck(name=f"c{i}", passed=i != 30, message="m") for i in range(40)]
    kept = bounded(checks)
    assert len(kept) == MAX_CHECKS
    assert kept[-2].name == "c30"
    assert kept[-1].name == "21 more checks"
    assert kept[-1].passed


def context() -> PlanningContext:
    return PlanningContext("run the migration", "shop", ["shop"], Identity("bob", ()))


def exec_step() -> ProposedStep:
    return ProposedStep(
        id="s1",
        tool="k8s_exec",
        args={"name": "p", "namespace": "shop", "command": ["migrate"]},
        rationale="",
    )


def at_t0() -> datetime:
    return T0


async def run_verify(executed: list[tuple[ProposedStep, dict[str, Any] | None]]) -> Any:
    unused = cast(ToolGateway, object())  # checks decided from recorded data read nothing
    return await verify(
        executed, ctx=context(), gateway=unused, model=None, revision=1, deadline_seconds=5, now=at_t0
    )


async def test_the_judge_is_asked_only_when_every_check_passed() -> None:
    passed = (await run_verify([(exec_step(), {"exit_code": 0})])).verification
    assert passed.passed
    assert passed.judgement == "objective checks passed: command in pod shop/p succeeded: exit code 0"
    failed_run = (await run_verify([(exec_step(), {"exit_code": 2})])).verification
    assert not failed_run.passed
    assert failed_run.judgement == "objective checks failed: command in pod shop/p succeeded: exit code 2"
    nothing = (await run_verify([])).verification
    assert (nothing.passed, nothing.judgement) == (
        False,
        "objective checks failed: executed changes: no change was executed, so nothing confirms the request",
    )
