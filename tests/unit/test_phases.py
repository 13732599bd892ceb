"""Phase transitions and conditions (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bosun.api.models import AgentTaskStatus, Condition
from bosun.core.phases import IllegalTransition, set_condition, transition

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
