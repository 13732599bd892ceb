"""Starting a step is a conditional write: two operator processes cannot both start the same call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from bosun.api.models import AgentTaskStatus, StepRecord
from bosun.ports.store import Store, TaskConflict
from bosun_tools.client.kube import KubeClient

from tests.e2e.conftest import Operator, apply, deployment, events, grant_doc, status_of, task_doc, wait_phase
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


def record(state: str, attempts: int) -> StepRecord:
    return StepRecord(
        id="r1-s1",
        revision=1,
        step_id="s1",
        tool="k8s_rollout_restart",
        args={},
        mutating=True,
        state=state,
        attempts=attempts,
        started_at=datetime(2026, 11, 24, tzinfo=UTC),
    )


async def test_a_write_from_a_stale_read_is_refused_by_the_api_server(
    cluster: Any, kubectl: Any, namespace: str, bosun_installed: None
) -> None:
    """Two writers that read the same version: only the first write lands, the second gets TaskConflict
    (so two processes never both mark a step Executing, and a delayed write never reverts a newer one)."""
    apply(kubectl, namespace, task_doc("claimed", "restart deployment api"))
    store = Store(KubeClient.from_kubeconfig(cluster.kubeconfig))
    try:
        read = await store.get_task(namespace, "claimed")
        assert read is not None
        base = await store.write_task_status(
            namespace,
            "claimed",
            AgentTaskStatus(steps=[record("Approved", 0)]),
            read["metadata"]["resourceVersion"],
        )
        version = base["metadata"]["resourceVersion"]
        won = await store.write_task_status(
            namespace, "claimed", AgentTaskStatus(steps=[record("Executing", 1)]), version
        )
        assert won["status"]["steps"][0]["state"] == "Executing"
        with pytest.raises(TaskConflict):
            await store.write_task_status(
                namespace, "claimed", AgentTaskStatus(steps=[record("Executing", 1)]), version
            )
        stored = AgentTaskStatus.model_validate(status_of(kubectl, namespace, "claimed"))
        assert (stored.steps[0].state, stored.steps[0].attempts) == ("Executing", 1)
    finally:
        await store.kube.aclose()


def test_two_operator_processes_run_a_step_once(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator]
) -> None:
    """A misconfiguration (two replicas without leader election) still never doubles a call: only one
    process's conditional write marks the step Executing. The other cannot tell a call running elsewhere
    from one interrupted by a crash, so it may stop the task (InterruptedNonIdempotent) — safe, not
    smooth; leader election (tests/e2e/test_failover.py) is what makes two replicas a supported setup."""
    deployment(kubectl, namespace)
    operator_factory()
    operator_factory()
    apply(kubectl, namespace, task_doc("restart-web", f"restart deployment web in {namespace}"), user="bob")
    status = wait_phase(kubectl, namespace, "restart-web", "AwaitingApproval")
    apply(kubectl, namespace, grant_doc("ok", "restart-web", status["proposal"]["hash"]), user="alice")
    status = wait_phase(kubectl, namespace, "restart-web", "Succeeded", "Failed", timeout=120)
    [step] = [r for r in status["steps"] if r["mutating"]]
    assert step["attempts"] == 1
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert step["state"] == "Succeeded" or ready["reason"] == "InterruptedNonIdempotent", ready
    eventually(
        "the call's Events",
        lambda: "ToolStarted" in [e["reason"] for e in events(kubectl, namespace, "restart-web")],
    )
    assert [e["reason"] for e in events(kubectl, namespace, "restart-web")].count("ToolStarted") == 1
