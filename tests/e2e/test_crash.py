"""SIGKILL the operator mid-task: after a restart the task completes and no step runs twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import (
    Operator,
    apply,
    deployment,
    events,
    get,
    grant_doc,
    replace_status,
    status_of,
    task_doc,
    wait_phase,
)
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


def started_calls(kubectl: Any, namespace: str, name: str) -> int:
    return sum(1 for e in events(kubectl, namespace, name) if e["reason"] == "ToolStarted")


def test_kill_while_awaiting_approval(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator]
) -> None:
    deployment(kubectl, namespace)
    op = operator_factory()
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 4"), user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    op.kill()
    apply(kubectl, namespace, grant_doc("ok", "scale-web", status["proposal"]["hash"]), user="alice")
    op.start()
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/scale-web", "--timeout=120s")
    status = status_of(kubectl, namespace, "scale-web")
    [record] = [r for r in status["steps"] if r["mutating"]]
    assert record["attempts"] == 1
    assert record["state"] == "Succeeded"
    assert started_calls(kubectl, namespace, "scale-web") == 1
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 4


def test_kill_during_execution_or_verification(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator]
) -> None:
    """The kill lands as soon as the task leaves AwaitingApproval (Executing, or Verifying while the
    rollout is checked); a scale is too fast to always catch inside its call, which the crash-state test
    below reproduces exactly."""
    deployment(kubectl, namespace)
    op = operator_factory()
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 6"), user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    apply(kubectl, namespace, grant_doc("ok", "scale-web", status["proposal"]["hash"]), user="alice")
    caught = wait_phase(kubectl, namespace, "scale-web", "Executing", "Verifying", "Succeeded", timeout=60)
    op.kill()
    op.start()
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/scale-web", "--timeout=120s")
    status = status_of(kubectl, namespace, "scale-web")
    [record] = [r for r in status["steps"] if r["mutating"]]
    assert record["state"] == "Succeeded"
    # k8s_scale is idempotent: only a kill inside the call itself may legitimately run it a second time.
    assert record["attempts"] == 1 or caught["phase"] == "Executing", (caught["phase"], record)
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 6


def _crash_state(kubectl: Any, namespace: str, name: str, grant: str) -> None:
    """Write exactly what the operator writes just before a call, as if it died right after: alice's real
    grant exists (the executor re-derives approval from grants, never from status alone)."""
    status = status_of(kubectl, namespace, name)
    apply(kubectl, namespace, grant_doc(grant, name, status["proposal"]["hash"]), user="alice")
    revision = status["proposal"]["revision"]
    now = "2026-11-24T09:00:00Z"
    status["approvals"] = [
        {
            "grant": grant,
            "decision": "Approve",
            "accepted": True,
            "revision": revision,
            "approver": {"user": "alice", "groups": []},
            "reason": "Approved",
            "at": now,
        }
    ]
    for record in status["steps"]:
        if record["mutating"]:
            record.update(
                state="Executing",
                grant=grant,
                attempts=1,
                startedAt=now,
                approvedBy=[{"user": "alice", "groups": []}],
            )
    status["phase"] = "Executing"
    replace_status(kubectl, namespace, name, status)


def test_restart_with_a_step_left_executing(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator]
) -> None:
    deployment(kubectl, namespace, "web")
    deployment(kubectl, namespace, "api")
    op = operator_factory()
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 4"), user="bob")
    apply(kubectl, namespace, task_doc("restart-api", f"restart deployment api in {namespace}"), user="bob")
    wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    wait_phase(kubectl, namespace, "restart-api", "AwaitingApproval")
    op.kill()
    _crash_state(kubectl, namespace, "scale-web", "g-web")
    _crash_state(kubectl, namespace, "restart-api", "g-api")
    op.start()

    # Idempotent (k8s_scale): run again, once more, and the task completes.
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/scale-web", "--timeout=120s")
    web = status_of(kubectl, namespace, "scale-web")
    [record] = [r for r in web["steps"] if r["mutating"]]
    assert (record["state"], record["attempts"]) == ("Succeeded", 2)
    assert "ToolResumed" in [e["reason"] for e in events(kubectl, namespace, "scale-web")]

    # Not idempotent (k8s_rollout_restart): never re-run; the task stops and says what to check.
    api = wait_phase(kubectl, namespace, "restart-api", "Failed")
    ready = next(c for c in api["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InterruptedNonIdempotent"
    assert "Check by hand" in ready["message"]
    [record] = [r for r in api["steps"] if r["mutating"]]
    # Not left Executing in a finished task: Failed, saying it was not re-run.
    assert (record["state"], record["attempts"]) == ("Failed", 1)
    assert "not run again" in record["error"]
    template = get(kubectl, namespace, "deployment", "api")["spec"]["template"]
    assert "kubectl.kubernetes.io/restartedAt" not in (template["metadata"].get("annotations") or {})
    assert started_calls(kubectl, namespace, "restart-api") == 0
    eventually(
        "no further call on the failed task",
        lambda: status_of(kubectl, namespace, "restart-api")["phase"] == "Failed",
    )
