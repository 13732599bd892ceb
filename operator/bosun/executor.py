"""Deterministic execution of exactly the approved, stored calls (no model involved).

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

from bosun_tools.kube import Identity
from bosun_tools.registry import safety_of

from bosun.approval import plan_hash
from bosun.gateway import ToolGateway
from bosun.models import (
    STEP_ERROR_CAP,
    STEP_OUTPUT_CAP,
    AgentTaskStatus,
    ProposedStep,
    StepRecord,
    UserRef,
    canonical_json,
    cap,
)


@dataclass(frozen=True)
class Claim:
    """What the stored record of a step must still be for this writer to start it: the write that marks
    it ``Executing`` is conditional on it, so two operator processes (a misconfigured second replica, a
    zombie) cannot both start the same call."""

    index: int
    id: str
    state: str
    attempts: int


class StepClaimLost(Exception):
    """Another writer changed the step first; this reconcile must stop and re-read."""


class StatusWriter(Protocol):
    """Writes a task's whole status through the status subresource and returns what the server stored;
    with a ``claim``, only if the step is still as claimed (else ``StepClaimLost``)."""

    async def __call__(self, status: AgentTaskStatus, claim: Claim | None = None) -> AgentTaskStatus: ...


DATA_CAP = 1024

Emit = Callable[[str, str, str], Awaitable[None]]
"""(type "Normal"|"Warning", reason, message) -> posts a Kubernetes Event about the task."""


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
    write: StatusWriter,
    emit: Emit,
    now: Callable[[], datetime],
    timeout: float = 120,  # noqa: ASYNC109 - per tool call, handed to the gateway
    on_behalf_of: str | None = None,
) -> ExecutionResult:
    """Run the approved steps in order until all ran (``done``) or one cannot (``reason``/``message``).
    Each call is made as ``identity``, recorded in its step as ``ranAs``; ``on_behalf_of`` names the
    requester in Events when that identity is someone else (an execution ServiceAccount).

    Raises ``bosun.gateway.ToolServerUnavailable`` when the tool server is down before a step started
    (nothing ran; retry later) or during a call (the step stays ``Executing`` and the idempotency rule
    decides on retry).
    """
    ran_as = UserRef(user=identity.user, groups=list(identity.groups))
    acting = identity.user + (f" on behalf of {on_behalf_of}" if on_behalf_of else "")
    while True:
        action = next_action(status, task_uid, lambda tool: safety_of(tool).idempotent)
        if action.kind == "done":
            return ExecutionResult(status, True)
        if action.kind == "stop" or action.step is None:
            return ExecutionResult(status, False, action.reason, action.message)
        step = action.step
        assert status.proposal is not None
        record = _record(status, status.proposal.revision, step.id)
        assert record is not None
        await gateway.input_schemas()  # reachability first: a down server must not leave a step Executing
        started = now()
        claim = Claim(status.steps.index(record), record.id, record.state, record.attempts)
        status = await write(
            _replace(
                status,
                record.model_copy(
                    update={
                        "state": "Executing",
                        "started_at": started,
                        "attempts": record.attempts + 1,
                        "ran_as": ran_as,
                    }
                ),
            ),
            claim,
        )
        if action.reason == "Resumed":
            await emit("Normal", "ToolResumed", f"step {step.id}: {action.message} after an interruption")
        await emit("Normal", "ToolStarted", f"step {step.id}: {step.tool} {_short(step.args)} as {acting}")
        outcome = await gateway.call(step.tool, step.args, identity=identity, preview=False, timeout=timeout)
        running = _record(status, status.proposal.revision, step.id) if status.proposal else None
        base = running or record
        if outcome.ok:
            finished = base.model_copy(
                update={
                    "state": "Succeeded",
                    "finished_at": now(),
                    "output": cap(outcome.text, STEP_OUTPUT_CAP),
                    "error": None,
                    "data": small_data(outcome.data),
                }
            )
            await emit("Normal", "ToolSucceeded", f"step {step.id}: {step.tool}: {outcome.text[:300]}")
        else:
            finished = base.model_copy(
                update={
                    "state": "Failed",
                    "finished_at": now(),
                    "error": cap(outcome.error or outcome.text, STEP_ERROR_CAP),
                }
            )
            await emit("Warning", "ToolFailed", f"step {step.id}: {step.tool}: {(outcome.error or '')[:600]}")
        status = await write(_replace(status, finished))


def small_data(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """Structured facts kept for verification (e.g. a build number), only when they are small."""
    if not data or len(canonical_json(data)) > DATA_CAP:
        return None
    return data


def _short(args: dict[str, object]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in args.items())
    return text if len(text) <= 200 else text[:199] + "…"
