"""Execution: exactly the approved, stored calls run, in order, with no model involved.

The status is a record, not an authority: before each call the approval is derived again from the
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

from dataclasses import dataclass
from typing import Any

from bosun_tools.identity import Identity
from bosun_tools.registry import safety_of

from bosun.api.models import (
    STEP_ERROR_CAP,
    STEP_OUTPUT_CAP,
    AgentTaskStatus,
    ProposedStep,
    StepRecord,
    UserRef,
    cap,
)
from bosun.core.approval import authorize
from bosun.core.phases import with_condition
from bosun.core.proposals import (
    close_interrupted,
    next_action,
    record_of,
    skip_remaining,
    small_data,
    with_record,
)
from bosun.steps.task import Rebase, Task


@dataclass(frozen=True)
class Stopped:
    """Why execution stopped before every approved step ran."""

    reason: str
    message: str


async def execute(task: Task) -> None:
    """Run the approved steps; then on to Verifying, back to planning after a failed call (while
    iterations are left), or Failed."""
    deps = task.deps
    execution = await task.execution()
    if execution.problem is not None:
        stopped: Stopped | None = Stopped("ExecutionIdentityInvalid", execution.problem)
    else:
        on_behalf_of = task.requester.user if execution.service_account else None
        stopped = await run_approved_calls(task, execution.identity, on_behalf_of)
    await _spend_grants(task)
    if stopped is None:
        await task.move("Verifying", "Executed", "all approved steps ran; verifying the outcome")
        return
    task.status = skip_remaining(task.status, f"not run: {stopped.reason}", deps.now())
    task.status = with_condition(
        task.status,
        "Executed",
        "False",
        stopped.reason,
        stopped.message,
        generation=task.generation,
        now=deps.now(),
    )
    if stopped.reason == "ToolFailed" and task.status.iteration < task.spec.max_iterations:
        # Like a failed verification: the rest of the proposal is recorded as not run, the failure goes
        # back to the planner with the history, and whatever it proposes next needs a new approval.
        await task.replan(f"step failed during execution: {stopped.message}")
        return
    await task.move("Failed", stopped.reason, stopped.message, "Warning")


async def run_approved_calls(task: Task, identity: Identity, on_behalf_of: str | None) -> Stopped | None:
    """Run the approved steps in order until all ran (None) or one cannot (why not).
    Each call is made as ``identity``, recorded in its step as ``ranAs``; ``on_behalf_of`` names the
    requester in Events when that identity is someone else (an execution ServiceAccount).

    Raises ``bosun.ports.gateway.ToolServerUnavailable`` when the tool server is down before a step started
    (nothing ran; retry later) or during a call (the step stays ``Executing`` and the idempotency rule
    decides on retry), and ``bosun.ports.store.TaskConflict`` when the task changed before a step was claimed.
    """
    deps = task.deps
    ran_as = UserRef(user=identity.user, groups=list(identity.groups))
    acting = identity.user + (f" on behalf of {on_behalf_of}" if on_behalf_of else "")
    while True:
        action = next_action(task.status, task.uid, lambda tool: safety_of(tool).idempotent)
        if action.kind == "done":
            return None
        if action.kind == "stop" or action.step is None:
            if action.reason == "InterruptedNonIdempotent" and action.step is not None:
                task.status = close_interrupted(task.status, action.step, action.message, deps.now())
            return Stopped(action.reason, action.message)
        step = action.step
        assert task.status.proposal is not None
        refusal = await _refusal(task, step)
        if refusal is not None:
            return Stopped("NotApproved", refusal)
        record = record_of(task.status, task.status.proposal.revision, step.id)
        assert record is not None
        await (
            deps.gateway.input_schemas()
        )  # reachability first: a down server must not leave a step Executing
        claimed = record.model_copy(
            update={
                "state": "Executing",
                "started_at": deps.now(),
                "attempts": record.attempts + 1,
                "ran_as": ran_as,
            }
        )
        if action.reason == "Resumed":
            task.note("Normal", "ToolResumed", f"step {step.id}: {action.message} after an interruption")
        task.note("Normal", "ToolStarted", f"step {step.id}: {step.tool} {_short(step.args)} as {acting}")
        # Conditional on the version read: of two writers, only one marks the step Executing and runs it.
        await task.write(with_record(task.status, claimed))
        outcome = await deps.gateway.execute(
            step.tool, step.args, identity=identity, timeout=deps.config.tool_timeout_seconds
        )
        if outcome.ok:
            result: dict[str, Any] = {
                "state": "Succeeded",
                "finished_at": deps.now(),
                "output": cap(outcome.text, STEP_OUTPUT_CAP),
                "error": None,
                "data": small_data(outcome.data),
            }
            task.note("Normal", "ToolSucceeded", f"step {step.id}: {step.tool}: {outcome.text[:300]}")
        else:
            result = {
                "state": "Failed",
                "finished_at": deps.now(),
                "error": cap(outcome.error or outcome.text, STEP_ERROR_CAP),
            }
            task.note("Warning", "ToolFailed", f"step {step.id}: {step.tool}: {(outcome.error or '')[:600]}")
        finished = claimed.model_copy(update=result)
        await task.write(with_record(task.status, finished), rebase=_onto_claim(claimed, result))


def _onto_claim(claimed: StepRecord, result: dict[str, Any]) -> Rebase:
    """The call ran: its result goes onto any newer status that still shows this claim of the step."""

    def rebase(fresh: AgentTaskStatus) -> AgentTaskStatus | None:
        mine = next((r for r in fresh.steps if r.id == claimed.id), None)
        if mine is None or (mine.state, mine.attempts) != ("Executing", claimed.attempts):
            return None
        return with_record(fresh, mine.model_copy(update=result))

    return rebase


async def _refusal(task: Task, step: ProposedStep) -> str | None:
    """The check before each call: None when the grants, not the status, say the step may run now."""
    deps = task.deps
    proposal, requester = task.status.proposal, task.requester_ref
    if proposal is None or requester is None:
        return "no proposal, or no requester stamped at admission; nothing runs"
    recorded = task.status.requester
    if recorded is None or recorded.user != requester.user:
        return (
            f"status.requester ({recorded.user if recorded else 'none'}) is not the requester stamped at "
            f"admission ({requester.user}): the status was edited outside Bosun; nothing runs"
        )
    # The proposal in status may have been written by someone else: scope is checked again here.
    out_of_scope = await deps.gateway.scope_error(
        step.tool, step.args, task.targets, cluster_scope=task.cluster_scope
    )
    if out_of_scope is not None:
        return f"step {step.id}: {out_of_scope}; nothing runs"
    # Whether a step is destructive decides who may approve it: derived again, never read from status.
    steps = [
        s.model_copy(
            update={
                "destructive": safety_of(s.tool).destructive
                or await deps.gateway.cluster_scoped(s.tool, s.args)
            }
        )
        for s in proposal.steps
    ]
    proposal = proposal.model_copy(update={"steps": steps})
    facts = [await task.grant_facts(grant) for grant in await task.grants()]
    outcome = authorize(
        facts,
        task_name=task.name,
        task_uid=task.uid,
        namespace=task.namespace,
        proposal=proposal,
        requester=requester,
        policy=await task.policy(),
        now=deps.now(),
    )
    if isinstance(outcome, str):
        return outcome
    if step.id in outcome.approved:
        return None
    return (
        f"no ApprovalGrant approves step {step.id} of revision {proposal.revision} "
        f"(hash {proposal.hash}) now ({outcome.progress()}); the status says it is approved, but only "
        "grants approve: the status was edited outside Bosun, or a grant expired or was outweighed; "
        "nothing runs"
    )


async def _spend_grants(task: Task) -> None:
    """Execution of this revision is over (done or stopped): its grants approve nothing more. Written
    before the task leaves Executing, so a crash in between only repeats this."""
    proposal = task.status.proposal
    if proposal is None:
        return
    for grant in await task.grants():
        spec, status = grant.get("spec") or {}, grant.get("status") or {}
        if spec.get("planHash") == proposal.hash and not status.get("executedAt"):
            await task.deps.store.mark_grant_executed(
                task.namespace, grant["metadata"]["name"], task.deps.now()
            )


def _short(args: dict[str, object]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in args.items())
    return text if len(text) <= 200 else text[:199] + "…"
