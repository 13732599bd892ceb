"""The operator's metrics without a cluster: the gauge read from the watch's index, the figures the phase
observer takes from a task's status timestamps, and the bounds on every label."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bosun.api.models import AgentTaskStatus, Proposal, ProposedStep
from bosun.core.grants import GrantVerdict
from bosun.core.phases import transition
from bosun.metrics import MODELS_KEPT, OperatorMetrics
from bosun_tools.metrics import OTHER, BoundedValues, MetricsEndpoint

CREATED = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
BODY = {"metadata": {"name": "scale-web", "creationTimestamp": "2026-01-01T12:00:00Z"}}


def sample(metrics: OperatorMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return found if found is not None else 0.0


def test_tasks_by_phase_are_counted_from_the_index_with_the_oldest_proposal_age() -> None:
    metrics = OperatorMetrics(now=lambda: CREATED + timedelta(hours=3))
    # No index: this process does not lead (yet), so it serves no task figure at all.
    assert metrics.registry.get_sample_value("bosun_tasks", {"phase": "Planning"}) is None
    metrics.tasks.index = {
        "AwaitingApproval": ["2026-01-01T12:00:00Z", "2026-01-01T14:00:00Z"],
        "Succeeded": [None],
        "Bogus": [None],  # a status forged with an unknown phase is not a label
    }
    assert sample(metrics, "bosun_tasks", phase="AwaitingApproval") == 2
    assert sample(metrics, "bosun_tasks", phase="Succeeded") == 1
    assert sample(metrics, "bosun_tasks", phase="Planning") == 0
    assert metrics.registry.get_sample_value("bosun_tasks", {"phase": "Bogus"}) is None
    assert sample(metrics, "bosun_oldest_awaiting_approval_seconds") == 3 * 3600


def _proposed(at: datetime) -> AgentTaskStatus:
    step = ProposedStep(id="s1", tool="k8s_scale", args={"name": "web"}, rationale="asked for")
    proposal = Proposal(revision=1, hash="sha256:" + "a" * 64, created_at=at, summary="scale", steps=[step])
    status = transition(
        AgentTaskStatus(), "Planning", reason="Planning", message="", generation=1, now=CREATED
    )
    status = status.model_copy(update={"proposal": proposal})
    return transition(status, "AwaitingApproval", reason="Planned", message="", generation=1, now=at)


def test_the_phase_observer_times_each_phase_from_the_status_timestamps() -> None:
    metrics = OperatorMetrics()
    proposed_at = CREATED + timedelta(seconds=20)
    status = _proposed(proposed_at)
    metrics.observe_phase(BODY, status)
    assert sample(metrics, "bosun_task_time_to_proposal_seconds_sum") == 20
    at = proposed_at + timedelta(minutes=5)
    status = transition(status, "Executing", reason="Approved", message="", generation=1, now=at)
    metrics.observe_phase(BODY, status)
    assert sample(metrics, "bosun_task_approval_wait_seconds_sum", decision="approved") == 300
    at += timedelta(seconds=7)
    status = transition(status, "Verifying", reason="Verifying", message="", generation=1, now=at)
    metrics.observe_phase(BODY, status)
    assert sample(metrics, "bosun_task_execution_seconds_sum", result="verifying") == 7
    status = transition(
        status, "Succeeded", reason="Verified", message="", generation=1, now=at + timedelta(seconds=9)
    )
    metrics.observe_phase(BODY, status)
    assert sample(metrics, "bosun_task_verification_seconds_sum", result="Succeeded") == 9
    assert sample(metrics, "bosun_task_outcomes_total", phase="Succeeded", reason="Verified") == 1
    # Each figure was taken once: the observer is told once per phase change.
    assert sample(metrics, "bosun_task_time_to_proposal_seconds_count") == 1
    assert sample(metrics, "bosun_task_approval_wait_seconds_count", decision="approved") == 1


def test_a_proposal_that_expires_counts_its_wait_and_its_outcome_not_an_execution() -> None:
    metrics = OperatorMetrics()
    status = _proposed(CREATED)
    at = CREATED + timedelta(days=7)
    status = transition(status, "Expired", reason="Expired", message="", generation=1, now=at)
    metrics.observe_phase(BODY, status)
    assert sample(metrics, "bosun_task_approval_wait_seconds_sum", decision="expired") == 7 * 86400
    assert sample(metrics, "bosun_task_outcomes_total", phase="Expired", reason="Expired") == 1
    assert sample(metrics, "bosun_task_execution_seconds_count", result="Expired") == 0


def test_labels_stay_bounded_whatever_tasks_and_models_name() -> None:
    metrics = OperatorMetrics(model="openai/gpt-4.1")
    for n in range(MODELS_KEPT + 5):
        metrics.model_call(f"spec/model-{n}", ok=True, seconds=0.1, prompt=10, completion=2, cost=0.01)
    metrics.model_call("openai/gpt-4.1", ok=False, seconds=1.0)
    models = {
        s.labels["model"]
        for family in metrics.registry.collect()
        for s in family.samples
        if "model" in s.labels
    }
    assert len(models) == MODELS_KEPT + 1  # the bound, and "other" for the rest
    assert {"openai/gpt-4.1", OTHER} <= models  # the operator's own model always has its label
    assert sample(metrics, "bosun_model_calls_total", model="openai/gpt-4.1", outcome="error") == 1
    # The operator's model takes one of the kept names: 15 tasks' models kept, 6 calls read "other".
    assert sample(metrics, "bosun_model_tokens_total", model=OTHER, kind="prompt") == 60

    metrics.tool_call("made_up_by_a_model", "read", "error", 0.01)
    metrics.tool_call("k8s_get", "read", "ok", 0.01)
    assert sample(
        metrics, "bosun_tool_calls_total", tool="unknown", mode="read", mutating="true", outcome="error"
    )
    assert sample(
        metrics, "bosun_tool_calls_total", tool="k8s_get", mode="read", mutating="false", outcome="ok"
    )

    metrics.grant_verdict(GrantVerdict(False, "StaleHash", "hash of revision 1", "Approve"), "Rejected")
    metrics.grant_verdict(GrantVerdict(False, "free text from somewhere", "x"), "Rejected")
    assert sample(
        metrics, "bosun_grant_verdicts_total", decision="Approve", state="Rejected", reason="StaleHash"
    )
    assert sample(metrics, "bosun_grant_verdicts_total", decision="unknown", state="Rejected", reason=OTHER)


def test_bounded_values_admit_words_up_to_their_limit() -> None:
    bounded = BoundedValues(2, ("Verified",))
    assert [bounded(v) for v in ("Verified", "ToolFailed", "Denied", "ToolFailed", "", None)] == [
        "Verified",
        "ToolFailed",
        OTHER,
        "ToolFailed",
        OTHER,
        OTHER,
    ]
    assert BoundedValues(5)("two words") == OTHER


def test_the_metrics_endpoint_comes_from_the_environment() -> None:
    assert MetricsEndpoint.from_env({}) is None
    assert MetricsEndpoint.from_env({"BOSUN_METRICS_PORT": " "}) is None
    assert MetricsEndpoint.from_env({"BOSUN_METRICS_PORT": "9090"}) == MetricsEndpoint(9090, "127.0.0.1")
    chart = {"BOSUN_METRICS_PORT": "9090", "BOSUN_METRICS_ADDRESS": "0.0.0.0"}
    assert MetricsEndpoint.from_env(chart) == MetricsEndpoint(9090, "0.0.0.0")
    with pytest.raises(ValueError, match="BOSUN_METRICS_PORT='http' is not a TCP port"):
        MetricsEndpoint.from_env({"BOSUN_METRICS_PORT": "http"})
