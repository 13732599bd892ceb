"""Starting a step is a conditional write: two operator processes cannot both start the same call."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from bosun.executor import Claim, StepClaimLost
from bosun.kube import Store
from bosun.models import AgentTaskStatus, StepRecord
from bosun_tools.kube import KubeClient

from tests.e2e.conftest import Operator, apply, deployment, events, grant_doc, status_of, task_doc, wait_phase

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


async def test_a_stale_claim_is_refused_by_the_api_server(
    cluster: Any, kubectl: Any, namespace: str, bosun_installed: None
) -> None:
    apply(kubectl, namespace, task_doc("claimed", "restart deployment api"))
    store = Store(KubeClient.from_kubeconfig(cluster.kubeconfig))
    try:
        await store.write_task_status(namespace, "claimed", AgentTaskStatus(steps=[record("Approved", 0)]))
        first = Claim(0, "r1-s1", "Approved", 0)
        won = await store.write_task_status(
            namespace, "claimed", AgentTaskStatus(steps=[record("Executing", 1)]), first
        )
        assert won.steps[0].state == "Executing"
        with pytest.raises(StepClaimLost):
            await store.write_task_status(
                namespace, "claimed", AgentTaskStatus(steps=[record("Executing", 1)]), first
            )
        stored = AgentTaskStatus.model_validate(status_of(kubectl, namespace, "claimed"))
        assert (stored.steps[0].state, stored.steps[0].attempts) == ("Executing", 1)
    finally:
        await store.kube.aclose()


def test_two_operator_processes_run_a_step_once(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator]
) -> None:
    """A misconfiguration (two replicas without peering) still never doubles a call."""
    deployment(kubectl, namespace)
    operator_factory()
    operator_factory()
    apply(kubectl, namespace, task_doc("restart-web", f"restart deployment web in {namespace}"), user="bob")
    status = wait_phase(kubectl, namespace, "restart-web", "AwaitingApproval")
    apply(kubectl, namespace, grant_doc("ok", "restart-web", status["proposal"]["hash"]), user="alice")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/restart-web", "--timeout=120s")
    status = status_of(kubectl, namespace, "restart-web")
    [step] = [r for r in status["steps"] if r["mutating"]]
    assert (step["state"], step["attempts"]) == ("Succeeded", 1)
    assert [e["reason"] for e in events(kubectl, namespace, "restart-web")].count("ToolStarted") == 1
