"""Phase transitions and conditions (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bosun.api.models import COLUMN_CAP, AgentTaskStatus, Condition, Proposal
from bosun.core.phases import (
    SIGNALS,
    STAGES,
    IllegalTransition,
    approvals_pending,
    set_condition,
    transition,
    with_condition,
)

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def condition(status: AgentTaskStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def _go(status: AgentTaskStatus, to: str, reason: str = "R", at: datetime = T0) -> AgentTaskStatus:
    return transition(status, to, reason=reason, message=f"to {to}", generation=1, now=at)  # type: ignore[arg-type]


def test_happy_path_sets_the_conditions_gitops_tools_read() -> None:
    status = _go(AgentTaskStatus(), "Planning")
    status = _go(status, "AwaitingApproval")
    ready = condition(status, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "ApprovalRequired")
    assert condition(status, "Planned").status == "True"  # type: ignore[union-attr]
    status = _go(status, "Executing")
    assert condition(status, "Approved").reason == "Approved"  # type: ignore[union-attr]
    status = _go(status, "Verifying")
    assert condition(status, "Executed").reason == "ToolSucceeded"  # type: ignore[union-attr]
    status = _go(status, "Succeeded", "Verified", T0 + timedelta(minutes=1))
    ready = condition(status, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("True", "Verified")
    assert ready.observed_generation == 1
    assert status.finished_at == T0 + timedelta(minutes=1)
    assert status.observed_generation == 1


def test_failures_keep_ready_false_with_the_callers_reason() -> None:
    status = _go(_go(AgentTaskStatus(), "Planning"), "Failed", "ModelFailed")
    ready = condition(status, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == ("False", "ModelFailed")


@pytest.mark.parametrize(
    ("path", "to"),
    [
        (["Planning", "AwaitingApproval"], "Succeeded"),
        (["Planning", "AwaitingApproval"], "Verifying"),
        (["Planning"], "Executing"),
        (["Planning", "Succeeded"], "Planning"),
        (["Planning", "Failed"], "Cancelled"),
    ],
)
def test_illegal_transitions_raise(path: list[str], to: str) -> None:
    status = AgentTaskStatus()
    for phase in path:
        status = _go(status, phase)
    with pytest.raises(IllegalTransition):
        _go(status, to)


def test_last_transition_time_moves_only_when_status_flips() -> None:
    first = set_condition([], "Ready", "False", "Planning", "m", 1, T0)
    same = set_condition(first, "Ready", "False", "ApprovalRequired", "m2", 1, T0 + timedelta(seconds=5))
    assert same[0].last_transition_time == T0
    assert same[0].reason == "ApprovalRequired"
    flipped = set_condition(same, "Ready", "True", "Verified", "ok", 1, T0 + timedelta(seconds=9))
    assert flipped[0].last_transition_time == T0 + timedelta(seconds=9)
    assert len(flipped) == 1


def true_signals(status: AgentTaskStatus) -> dict[str, str]:
    """The tool-facing conditions that hold, with their reason (Reconciling, Stalled, Complete, Failed)."""
    return {c.type: c.reason for c in status.conditions if c.type in SIGNALS and c.status == "True"}


PATHS: dict[str, list[tuple[str, str]]] = {
    "Planning": [("Planning", "Planning")],
    "AwaitingApproval": [("Planning", "Planning"), ("AwaitingApproval", "ApprovalRequired")],
    "Executing": [
        ("Planning", "Planning"),
        ("AwaitingApproval", "ApprovalRequired"),
        ("Executing", "Approved"),
    ],
    "Verifying": [
        ("Planning", "Planning"),
        ("AwaitingApproval", "ApprovalRequired"),
        ("Executing", "Approved"),
        ("Verifying", "Executed"),
    ],
    "Succeeded": [("Planning", "Planning"), ("Succeeded", "Answered")],
    "Failed": [("Planning", "Planning"), ("Failed", "ModelFailed")],
    "Denied": [("Planning", "Planning"), ("AwaitingApproval", "ApprovalRequired"), ("Denied", "Denied")],
    "Expired": [("Planning", "Planning"), ("AwaitingApproval", "ApprovalRequired"), ("Expired", "Expired")],
    "Cancelled": [("Planning", "Planning"), ("Cancelled", "Cancelled")],
}


@pytest.mark.parametrize(
    ("phase", "signals"),
    [
        ("Planning", {"Reconciling": "Planning"}),
        ("AwaitingApproval", {}),
        ("Executing", {"Reconciling": "Executing"}),
        ("Verifying", {"Reconciling": "Verifying"}),
        ("Succeeded", {"Complete": "Answered"}),
        ("Failed", {"Stalled": "ModelFailed", "Failed": "ModelFailed"}),
        ("Denied", {"Stalled": "Denied", "Failed": "Denied"}),
        ("Expired", {"Stalled": "Expired", "Failed": "Expired"}),
        ("Cancelled", {"Stalled": "Cancelled", "Failed": "Cancelled"}),
    ],
)
def test_each_phase_holds_exactly_its_tool_facing_conditions(phase: str, signals: dict[str, str]) -> None:
    status = AgentTaskStatus()
    for to, reason in PATHS[phase]:
        status = _go(status, to, reason)
    assert true_signals(status) == signals
    assert not [c.type for c in status.conditions if c.type in SIGNALS and c.status != "True"]
    ready = condition(status, "Ready")
    assert ready is not None
    for type_ in signals:
        held = condition(status, type_)
        assert held is not None
        assert (held.reason, held.message) == (ready.reason, ready.message)


def test_a_finished_task_leaves_no_stage_open() -> None:
    failed = _go(_go(AgentTaskStatus(), "Planning"), "Failed", "ModelFailed")
    planned = condition(failed, "Planned")
    assert planned is not None
    assert (planned.status, planned.reason, planned.message) == ("False", "ModelFailed", "to Failed")
    answered = _go(_go(AgentTaskStatus(), "Planning"), "Succeeded", "Answered")
    assert condition(answered, "Planned").status == "True"  # type: ignore[union-attr]
    status = AgentTaskStatus()
    for to, reason in PATHS["Executing"]:
        status = _go(status, to, reason)
    cancelled = _go(status, "Cancelled", "Cancelled")
    stages = {c.type: (c.status, c.reason) for c in cancelled.conditions if c.type in STAGES}
    assert stages == {
        "Planned": ("True", "Planned"),
        "Approved": ("True", "Approved"),
        "Executed": ("False", "Cancelled"),
    }


def test_replanning_drops_what_was_said_about_the_earlier_revision() -> None:
    status = AgentTaskStatus()
    for to, reason in PATHS["Verifying"]:
        status = _go(status, to, reason)
    status = with_condition(
        status, "Verified", "False", "VerificationFailed", "not rolled out", generation=1, now=T0
    )
    replanning = _go(status, "Planning", "Replanning")
    assert {c.type for c in replanning.conditions} == {"Planned", "Ready", "Reconciling"}
    assert condition(replanning, "Planned").status == "Unknown"  # type: ignore[union-attr]


def test_the_message_column_is_one_short_line_saying_what_is_awaited_or_why_it_ended() -> None:
    status = _go(AgentTaskStatus(), "Planning")
    proposal = Proposal(revision=2, hash="sha256:" + "ab" * 32, created_at=T0, summary="scale", steps=[])
    awaiting = _go(status.model_copy(update={"proposal": proposal}), "AwaitingApproval")
    assert awaiting.message == "awaiting approval of revision 2 (0 steps)"
    assert proposal.short_hash == "sha256:abababababab"
    counted = approvals_pending(
        awaiting,
        "1 of 2 approvals (alice)",
        "1 of 2 approvals for revision 2; 1 more needed",
        generation=1,
        now=T0,
    )
    assert counted.message == "awaiting 1 of 2 approvals (alice)"
    ready, approved = condition(counted, "Ready"), condition(counted, "Approved")
    assert ready is not None
    assert approved is not None
    assert (ready.reason, approved.reason) == ("ApprovalRequired", "ApprovalsPending")
    assert ready.message == approved.message == "1 of 2 approvals for revision 2; 1 more needed"
    failed = transition(
        counted, "Failed", reason="ModelFailed", message="the model\nsaid " + "x" * 200, generation=1, now=T0
    )
    assert failed.message is not None
    assert len(failed.message) == COLUMN_CAP
    assert failed.message.startswith("the model said xxx")
    assert failed.message.endswith("…")
