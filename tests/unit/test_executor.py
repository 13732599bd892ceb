"""What the executor does next, decided from status alone: the crash-safety rules."""

from __future__ import annotations

from datetime import UTC, datetime

from bosun.api.models import AgentTaskStatus, StepRecord, UserRef
from bosun.core.approval import apply_verdict
from bosun.core.grants import grant_matches_proposal
from bosun.core.proposals import next_action, proposal_records, skip_remaining
from bosun.planner import PlannedCall
from bosun.steps.plan import build_proposal

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
UID = "0b7c6a0e-1111-4222-8333-444455556666"
CALLS = [
    PlannedCall(
        "", "k8s_scale", {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}, "a"
    ),
    PlannedCall("", "k8s_rollout_restart", {"kind": "deployment", "name": "web", "namespace": "shop"}, "b"),
]
IDEMPOTENT = {"k8s_scale"}


def approved(steps: list[str] | None = None) -> AgentTaskStatus:
    proposal, _ = build_proposal(CALLS, task_uid=UID, revision=1, summary="", now=T0)
    assert proposal is not None
    status = AgentTaskStatus(phase="AwaitingApproval", proposal=proposal, steps=proposal_records(proposal))
    spec = {"taskRef": {"name": "t"}, "planHash": proposal.hash, "decision": "Approve"}
    if steps:
        spec["steps"] = steps
    verdict = grant_matches_proposal(
        {"metadata": {"name": "g"}, "spec": spec},
        task_name="t",
        task_uid=UID,
        phase="AwaitingApproval",
        proposal=proposal,
        approver=UserRef(user="bob"),
        now=T0,
    )
    return apply_verdict(status, verdict, grant_name="g", approver=UserRef(user="bob"), subset=steps, now=T0)


def with_state(status: AgentTaskStatus, step: str, state: str, **extra: object) -> AgentTaskStatus:
    steps = [r.model_copy(update={"state": state, **extra}) if r.step_id == step else r for r in status.steps]
    return status.model_copy(update={"steps": steps})


def decide(status: AgentTaskStatus) -> tuple[str, str | None, str]:
    action = next_action(status, UID, lambda tool: tool in IDEMPOTENT)
    return action.kind, action.step.id if action.step else None, action.reason


def test_runs_approved_steps_in_order_then_is_done() -> None:
    status = approved()
    assert decide(status) == ("run", "s1", "")
    status = with_state(status, "s1", "Succeeded")
    assert decide(status) == ("run", "s2", "")
    assert decide(with_state(status, "s2", "Succeeded")) == ("done", None, "")


def test_denied_steps_of_a_subset_are_passed_over() -> None:
    status = approved(["s2"])
    assert decide(status) == ("run", "s2", "")


def test_interrupted_idempotent_step_runs_again() -> None:
    assert decide(with_state(approved(), "s1", "Executing", attempts=1)) == ("run", "s1", "Resumed")


def test_interrupted_non_idempotent_step_stops_the_task() -> None:
    status = with_state(with_state(approved(), "s1", "Succeeded"), "s2", "Executing", attempts=1)
    kind, step, reason = decide(status)
    assert (kind, step, reason) == ("stop", "s2", "InterruptedNonIdempotent")
    message = next_action(status, UID, lambda tool: tool in IDEMPOTENT).message
    assert "not run again" in message
    assert "k8s_rollout_restart" in message


def test_failed_step_stops_and_later_steps_are_skipped() -> None:
    status = with_state(approved(), "s1", "Failed", error="Forbidden")
    assert decide(status) == ("stop", "s1", "ToolFailed")
    skipped = skip_remaining(status, "not run: ToolFailed", T0)
    assert [r.state for r in skipped.steps] == ["Failed", "Skipped"]


def test_nothing_runs_without_an_accepted_grant() -> None:
    status = approved()
    forged = status.model_copy(update={"approvals": []})
    assert decide(forged) == ("stop", "s1", "NotApproved")
    waiting = with_state(with_state(status, "s1", "AwaitingApproval"), "s2", "AwaitingApproval")
    assert decide(waiting)[2] == "NotApproved"


def test_a_changed_stored_call_is_never_run() -> None:
    status = approved()
    assert status.proposal is not None
    steps = [
        status.proposal.steps[0].model_copy(update={"args": {"replicas": 500}}),
        status.proposal.steps[1],
    ]
    tampered = status.model_copy(update={"proposal": status.proposal.model_copy(update={"steps": steps})})
    assert decide(tampered) == ("stop", None, "ProposalTampered")
    record: StepRecord = status.steps[0].model_copy(update={"args": {"replicas": 500}})
    assert decide(status.model_copy(update={"steps": [record, status.steps[1]]}))[2] == "ProposalTampered"
