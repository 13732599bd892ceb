"""Deterministic execution of exactly the approved, stored calls (no model involved).

The status is a record, not an authority: before each call ``authorize`` re-derives the approval from the
immutable ApprovalGrants (bound to the task UID and the proposal hash, approvers stamped at admission), so
a status edited by someone with rights on ``agenttasks/status`` runs nothing.

Crash safety comes from the write-ahead record in status: a step is written ``Executing`` (and the write
confirmed by the API server) before its call, and with its result after. If the operator dies in between,
the next reconcile finds the step still ``Executing`` and cannot know whether the call took effect: it
re-runs it only if the tool is idempotent (``bosun_tools.registry.safety_of``), and otherwise stops the task
``Failed`` with a condition saying what to check by hand. No call runs without an accepted grant for the
current proposal, and none runs twice unless running it twice is harmless.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from bosun_tools.identity import Identity
from bosun_tools.registry import safety_of

from bosun.api.models import (
    STEP_ERROR_CAP,
    STEP_OUTPUT_CAP,
    AgentTaskStatus,
    ProposedStep,
    StepRecord,
    UserRef,
    canonical_json,
    cap,
)
from bosun.core.approval import plan_hash
from bosun.ports.gateway import ToolGateway

Rebase = Callable[[AgentTaskStatus], AgentTaskStatus | None]
"""Re-applies one change to a freshly read status after a conflict; None when it no longer applies."""


class StatusWriter(Protocol):
    """Writes a task's whole status through the status subresource, conditional on the version last read,
    and returns what the server stored. On a conflict it raises ``bosun.ports.store.TaskConflict``, unless
    ``rebase`` is given: then the change is re-applied to the fresh status and written again."""

    async def __call__(self, status: AgentTaskStatus, rebase: Rebase | None = None) -> AgentTaskStatus: ...


Authorize = Callable[[ProposedStep], Awaitable[str | None]]
"""Re-derives, from the ApprovalGrant objects themselves, whether a step may run now: None if it may, else
why not. The status says a step is Approved; this is what makes it so."""

DATA_CAP = 1024

Emit = Callable[[str, str, str], Awaitable[None]]
"""(type "Normal"|"Warning", reason, message) -> notes a Kubernetes Event about the task, recorded by the
next status write and posted after it (so an Event never reports a change that was not written)."""


@dataclass(frozen=True)
class Action:
    kind: Literal["run", "done", "stop"]
    step: ProposedStep | None = None
    reason: str = ""
    message: str = ""


def step_record_id(revision: int, step_id: str) -> str:
    return f"r{revision}-{step_id}"


def _record(status: AgentTaskStatus, revision: int, step_id: str) -> StepRecord | None:
    wanted = step_record_id(revision, step_id)
    return next((r for r in status.steps if r.id == wanted), None)


def next_action(status: AgentTaskStatus, task_uid: str, is_idempotent: Callable[[str], bool]) -> Action:
    """What the executor must do next, decided from status alone (so a restart decides the same)."""
    proposal = status.proposal
    if proposal is None:
        return Action("stop", reason="NoProposal", message="there is no proposal to execute")
    if plan_hash(task_uid, proposal.revision, proposal.steps) != proposal.hash:
        return Action(
            "stop",
            reason="ProposalTampered",
            message=f"stored proposal revision {proposal.revision} no longer matches its hash; nothing ran",
        )
    accepted = {
        a.grant
        for a in status.approvals
        if a.accepted and a.revision == proposal.revision and a.decision == "Approve"
    }
    for step in proposal.steps:
        record = _record(status, proposal.revision, step.id)
        if record is None:
            return Action(
                "stop",
                step=step,
                reason="HistoryLost",
                message=f"step {step.id} has no record in status.steps; nothing more runs",
            )
        if record.state in ("Succeeded", "Denied", "Skipped"):
            continue
        if record.state == "Failed":
            return Action(
                "stop",
                step=step,
                reason="ToolFailed",
                message=f"step {step.id} ({step.tool}) failed: {record.error}",
            )
        if record.tool != step.tool or record.args != step.args:
            return Action(
                "stop",
                step=step,
                reason="ProposalTampered",
                message=f"the record of step {step.id} differs from the approved call; nothing more runs",
            )
        if record.grant not in accepted:
            return Action(
                "stop",
                step=step,
                reason="NotApproved",
                message=f"step {step.id} has no accepted grant for revision {proposal.revision}; "
                "it does not run",
            )
        if record.state == "Approved":
            return Action("run", step=step)
        if record.state == "Executing":
            if is_idempotent(step.tool):
                return Action(
                    "run", step=step, reason="Resumed", message=f"re-running idempotent {step.tool}"
                )
            return Action(
                "stop",
                step=step,
                reason="InterruptedNonIdempotent",
                message=f"the operator stopped while step {step.id} ({step.tool} {step.args}) was running; "
                f"{step.tool} is not idempotent, so it is not run again. Check by hand whether it took "
                "effect, then create a new task if needed",
            )
        return Action(
            "stop",
            step=step,
            reason="NotApproved",
            message=f"step {step.id} is {record.state}; it does not run",
        )
    return Action("done")


def _replace(status: AgentTaskStatus, record: StepRecord) -> AgentTaskStatus:
    steps = [record if r.id == record.id else r for r in status.steps]
    pending = sum(
        1
        for r in steps
        if status.proposal and r.revision == status.proposal.revision and r.state in ("Approved", "Executing")
    )
    return status.model_copy(update={"steps": steps, "pending_steps": pending})


def skip_remaining(status: AgentTaskStatus, why: str, now: datetime) -> AgentTaskStatus:
    """Mark approved steps that will not run as Skipped (the task is stopping)."""
    proposal = status.proposal
    if proposal is None:
        return status
    for record in status.steps:
        if record.revision == proposal.revision and record.state in ("Approved", "AwaitingApproval"):
            status = _replace(
                status,
                record.model_copy(
                    update={"state": "Skipped", "finished_at": now, "error": cap(why, STEP_ERROR_CAP)}
                ),
            )
    return status


@dataclass(frozen=True)
class ExecutionResult:
    status: AgentTaskStatus
    done: bool
    reason: str = ""
    message: str = ""


async def execute(
    status: AgentTaskStatus,
    *,
    task_uid: str,
    gateway: ToolGateway,
    identity: Identity,
    authorize: Authorize,
    write: StatusWriter,
    emit: Emit,
    now: Callable[[], datetime],
    timeout: float = 120,  # noqa: ASYNC109 - per tool call, handed to the gateway
    on_behalf_of: str | None = None,
) -> ExecutionResult:
    """Run the approved steps in order until all ran (``done``) or one cannot (``reason``/``message``).
    Each call is made as ``identity``, recorded in its step as ``ranAs``; ``on_behalf_of`` names the
    requester in Events when that identity is someone else (an execution ServiceAccount).

    Raises ``bosun.ports.gateway.ToolServerUnavailable`` when the tool server is down before a step started
    (nothing ran; retry later) or during a call (the step stays ``Executing`` and the idempotency rule
    decides on retry), and ``bosun.ports.store.TaskConflict`` when the task changed before a step was claimed.
    """
    ran_as = UserRef(user=identity.user, groups=list(identity.groups))
    acting = identity.user + (f" on behalf of {on_behalf_of}" if on_behalf_of else "")
    while True:
        action = next_action(status, task_uid, lambda tool: safety_of(tool).idempotent)
        if action.kind == "done":
            return ExecutionResult(status, True)
        if action.kind == "stop" or action.step is None:
            if action.reason == "InterruptedNonIdempotent" and action.step is not None:
                status = _close_interrupted(status, action.step, action.message, now())
            return ExecutionResult(status, False, action.reason, action.message)
        step = action.step
        assert status.proposal is not None
        refusal = await authorize(step)
        if refusal is not None:
            return ExecutionResult(status, False, "NotApproved", refusal)
        record = _record(status, status.proposal.revision, step.id)
        assert record is not None
        await gateway.input_schemas()  # reachability first: a down server must not leave a step Executing
        started = now()
        claimed = record.model_copy(
            update={
                "state": "Executing",
                "started_at": started,
                "attempts": record.attempts + 1,
                "ran_as": ran_as,
            }
        )
        if action.reason == "Resumed":
            await emit("Normal", "ToolResumed", f"step {step.id}: {action.message} after an interruption")
        await emit("Normal", "ToolStarted", f"step {step.id}: {step.tool} {_short(step.args)} as {acting}")
        # Conditional on the version read: of two writers, only one marks the step Executing and runs it.
        status = await write(_replace(status, claimed))
        outcome = await gateway.execute(step.tool, step.args, identity=identity, timeout=timeout)
        if outcome.ok:
            result: dict[str, Any] = {
                "state": "Succeeded",
                "finished_at": now(),
                "output": cap(outcome.text, STEP_OUTPUT_CAP),
                "error": None,
                "data": small_data(outcome.data),
            }
            await emit("Normal", "ToolSucceeded", f"step {step.id}: {step.tool}: {outcome.text[:300]}")
        else:
            result = {
                "state": "Failed",
                "finished_at": now(),
                "error": cap(outcome.error or outcome.text, STEP_ERROR_CAP),
            }
            await emit("Warning", "ToolFailed", f"step {step.id}: {step.tool}: {(outcome.error or '')[:600]}")

        finished = claimed.model_copy(update=result)
        status = await write(_replace(status, finished), rebase=_onto_claim(claimed, result))


def _onto_claim(claimed: StepRecord, result: dict[str, Any]) -> Rebase:
    """The call ran: its result goes onto any newer status that still shows this claim of the step."""

    def rebase(fresh: AgentTaskStatus) -> AgentTaskStatus | None:
        mine = next((r for r in fresh.steps if r.id == claimed.id), None)
        if mine is None or (mine.state, mine.attempts) != ("Executing", claimed.attempts):
            return None
        return _replace(fresh, mine.model_copy(update=result))

    return rebase


def _close_interrupted(
    status: AgentTaskStatus, step: ProposedStep, why: str, at: datetime
) -> AgentTaskStatus:
    """A step that will never be re-run must not stay ``Executing`` in a finished task."""
    assert status.proposal is not None
    record = _record(status, status.proposal.revision, step.id)
    if record is None or record.state != "Executing":
        return status
    closed = record.model_copy(
        update={"state": "Failed", "finished_at": at, "error": cap(why, STEP_ERROR_CAP)}
    )
    return _replace(status, closed)


def small_data(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """Structured facts kept for verification (e.g. a build number), only when they are small."""
    if not data or len(canonical_json(data)) > DATA_CAP:
        return None
    return data


def _short(args: dict[str, object]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in args.items())
    return text if len(text) <= 200 else text[:199] + "…"
