"""Phase transitions and conditions of an AgentTask, as pure functions.

``phase`` is a summary for people and printer columns; the conditions are the API (Kubernetes conventions:
GitOps tools and ``kubectl wait --for=condition=Ready`` read them). Every transition goes through
``transition`` so the two never disagree, and illegal jumps (say, AwaitingApproval straight to Succeeded,
which would mean a mutation skipped verification) raise instead of being written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bosun.api.models import TERMINAL_PHASES, AgentTaskStatus, Condition, TaskPhase

ConditionStatus = Literal["True", "False", "Unknown"]

ALLOWED: dict[str, frozenset[str]] = {
    "Pending": frozenset({"Planning", "Failed", "Cancelled"}),
    "Planning": frozenset({"Planning", "AwaitingApproval", "Succeeded", "Failed", "Cancelled"}),
    "AwaitingApproval": frozenset({"Executing", "Denied", "Failed", "Cancelled", "Expired"}),
    "Executing": frozenset({"Verifying", "Planning", "Failed", "Cancelled"}),
    "Verifying": frozenset({"Planning", "Succeeded", "Failed", "Cancelled"}),
}
"""Where each non-final phase may go. Final phases go nowhere."""


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """Upsert one condition; ``lastTransitionTime`` moves only when ``status`` flips (API conventions)."""
    previous = next((c for c in conditions if c.type == type_), None)
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=previous.last_transition_time
        if previous is not None and previous.status == status
        else now,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type_ else c for c in conditions]


# What each phase says through the conditions: (type, status, reason) tuples; the message is the caller's.
_EFFECTS: dict[str, list[tuple[str, ConditionStatus, str | None]]] = {
    "Planning": [("Planned", "Unknown", "Planning"), ("Ready", "False", "Planning")],
    "AwaitingApproval": [
        ("Planned", "True", "Planned"),
        ("Approved", "False", "ApprovalRequired"),
        ("Ready", "False", "ApprovalRequired"),
    ],
    "Executing": [
        ("Approved", "True", "Approved"),
        ("Executed", "Unknown", "Executing"),
        ("Ready", "False", "Executing"),
    ],
    "Verifying": [
        ("Executed", "True", "ToolSucceeded"),
        ("Verified", "Unknown", "Verifying"),
        ("Ready", "False", "Verifying"),
    ],
    "Succeeded": [("Ready", "True", None)],
    "Denied": [("Approved", "False", "Denied"), ("Ready", "False", "Denied")],
    "Failed": [("Ready", "False", None)],
    "Cancelled": [("Ready", "False", "Cancelled")],
    "Expired": [("Approved", "False", "Expired"), ("Ready", "False", "Expired")],
}


class IllegalTransition(ValueError):
    pass


def transition(
    status: AgentTaskStatus,
    to: TaskPhase,
    *,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> AgentTaskStatus:
    """Move to phase ``to``: sets the phase's conditions (``reason`` fills the ones the phase leaves open,
    e.g. Ready's reason on Failed) and ``finishedAt`` on final phases."""
    current = status.phase or "Pending"
    if current in TERMINAL_PHASES or to not in ALLOWED.get(current, frozenset()):
        raise IllegalTransition(f"AgentTask phase {current} cannot become {to}")
    conditions = list(status.conditions)
    for type_, cond_status, fixed_reason in _EFFECTS[to]:
        conditions = set_condition(
            conditions, type_, cond_status, fixed_reason or reason, message, generation, now
        )
    update: dict[str, object] = {"phase": to, "conditions": conditions, "observed_generation": generation}
    if to in TERMINAL_PHASES:
        update["finished_at"] = now
        update["pending_steps"] = 0
    return status.model_copy(update=update)


def with_condition(
    status: AgentTaskStatus,
    type_: str,
    cond_status: ConditionStatus,
    reason: str,
    message: str,
    *,
    generation: int | None,
    now: datetime,
) -> AgentTaskStatus:
    """A condition change without a phase change (e.g. ToolServerAvailable=False while retrying)."""
    conditions = set_condition(status.conditions, type_, cond_status, reason, message, generation, now)
    return status.model_copy(update={"conditions": conditions})


def is_final(status: AgentTaskStatus) -> bool:
    return (status.phase or "Pending") in TERMINAL_PHASES
