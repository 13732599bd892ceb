"""Phase transitions and conditions of an AgentTask, as pure functions.

``phase`` is a summary for people and printer columns; the conditions are the API (Kubernetes conventions:
GitOps tools and ``kubectl wait --for=condition=Ready`` read them). Every transition goes through
``transition`` so the two never disagree, and illegal jumps (say, AwaitingApproval straight to Succeeded,
which would mean a mutation skipped verification) raise instead of being written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from bosun.api.models import TERMINAL_PHASES, AgentTaskStatus, Condition, Proposal, TaskPhase, one_line

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

STAGES = ("Planned", "Approved", "Executed", "Verified")
"""The conditions that tell a task's story, in the order a revision passes them."""

_ENDED_BADLY = ("Stalled", "Failed")
_SIGNALS: dict[str, tuple[str, ...]] = {
    "Planning": ("Reconciling",),
    "AwaitingApproval": (),
    "Executing": ("Reconciling",),
    "Verifying": ("Reconciling",),
    "Succeeded": ("Complete",),
    "Denied": _ENDED_BADLY,
    "Failed": _ENDED_BADLY,
    "Cancelled": _ENDED_BADLY,
    "Expired": _ENDED_BADLY,
}
"""The conditions tools read without knowing Bosun, True (with Ready's reason and message) in each phase and
absent otherwise. kstatus: ``Reconciling`` means in progress, ``Stalled`` means failed, and neither with
Ready=False means in progress waiting for someone (AwaitingApproval), Ready=True current. ``Complete`` and
``Failed`` are a Job's, so ``kubectl wait --for=condition=Complete`` and ``--for=condition=Failed`` both
return once the task ended. Reconciling and Stalled are "abnormal-true" (kstatus): removed, never left
False, when they stop holding. docs/observability.md shows the table."""
SIGNALS = frozenset(t for types in _SIGNALS.values() for t in types)


def _settle(
    conditions: list[Condition], to: str, reason: str, message: str, generation: int | None, now: datetime
) -> list[Condition]:
    """The story conditions after a change of phase, so none is left saying something no longer true.

    Back in Planning, Approved, Executed and Verified are dropped: they were about the earlier revision (the
    replanning message says what went wrong). A finished task leaves nothing open: on Succeeded a stage
    still Unknown (Planned, when a question was answered) is True; on any other end every stage that is not
    True becomes False with the reason and message of the end."""
    if to == "Planning":
        return [c for c in conditions if c.type not in STAGES[1:]]
    if to not in TERMINAL_PHASES:
        return conditions
    settled = list(conditions)
    for c in conditions:
        if c.type not in STAGES:
            continue
        if to == "Succeeded" and c.status == "Unknown":
            settled = set_condition(settled, c.type, "True", reason, message, generation, now)
        elif to != "Succeeded" and c.status != "True":
            settled = set_condition(settled, c.type, "False", reason, message, generation, now)
    return settled


def _signal(conditions: list[Condition], to: str, generation: int | None, now: datetime) -> list[Condition]:
    """Reconciling, Stalled, Complete and Failed as phase ``to`` has them, each repeating Ready's reason and
    message (what kstatus and Argo CD show)."""
    ready = next(c for c in conditions if c.type == "Ready")
    wanted = _SIGNALS[to]
    kept = [c for c in conditions if c.type not in SIGNALS or c.type in wanted]
    for type_ in wanted:
        kept = set_condition(kept, type_, "True", ready.reason, ready.message, generation, now)
    return kept


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
    e.g. Ready's reason on Failed), settles the story conditions, sets the MESSAGE column and, on final
    phases, ``finishedAt``."""
    current = status.phase or "Pending"
    if current in TERMINAL_PHASES or to not in ALLOWED.get(current, frozenset()):
        raise IllegalTransition(f"AgentTask phase {current} cannot become {to}")
    conditions = _settle(list(status.conditions), to, reason, message, generation, now)
    for type_, cond_status, fixed_reason in _EFFECTS[to]:
        conditions = set_condition(
            conditions, type_, cond_status, fixed_reason or reason, message, generation, now
        )
    conditions = _signal(conditions, to, generation, now)
    update: dict[str, object] = {
        "phase": to,
        "conditions": conditions,
        "observed_generation": generation,
        "message": _awaiting(status.proposal) if to == "AwaitingApproval" else one_line(message),
    }
    if to in TERMINAL_PHASES:
        update["finished_at"] = now
        update["pending_steps"] = 0
    return status.model_copy(update=update)


def _awaiting(proposal: Proposal | None) -> str:
    """The MESSAGE column while a proposal waits: what is waited for, not the whole proposal."""
    if proposal is None:
        return "awaiting approval"
    steps = len(proposal.steps)
    return f"awaiting approval of revision {proposal.revision} ({steps} step{'s' if steps != 1 else ''})"


def approvals_pending(
    status: AgentTaskStatus, progress: str, message: str, *, generation: int | None, now: datetime
) -> AgentTaskStatus:
    """Some approvals are in, more are needed (``progress``: "1 of 2 approvals (alice)"): Approved and Ready
    say so with ``message``, which names who may still approve; the MESSAGE column says what is awaited."""
    for type_, reason in (("Approved", "ApprovalsPending"), ("Ready", "ApprovalRequired")):
        status = with_condition(status, type_, "False", reason, message, generation=generation, now=now)
    return status.model_copy(update={"message": one_line(f"awaiting {progress}")})


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
