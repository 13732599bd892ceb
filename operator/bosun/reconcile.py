"""One level-triggered reconcile of an AgentTask: read status, do the next thing, write status, repeat
until the task waits for a person or is finished.

kopf handlers, the periodic sweep and a restart all call ``reconcile_task``; everything it needs to decide
is in the object (status is the semantic checkpoint), so any of them may run it at any time. The phases
themselves are in ``bosun.steps``; this module is the loop over them, cancellation, and what happens once
a task is finished (its grants answered, its sealed values released, its TTL).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bosun_tools.sealing import CLEANUP_TOOL

from bosun import tracing
from bosun.api.models import SUMMARY_CAP, AgentTaskSpec, AgentTaskStatus, cap
from bosun.core.follow_up import FollowUp
from bosun.core.phases import is_final, with_condition
from bosun.core.proposals import add_usage, record_of, skip_remaining
from bosun.core.words import is_true
from bosun.ports.gateway import ToolServerUnavailable
from bosun.steps.approve import await_approval, close_grants, take_annotation_approval
from bosun.steps.execute import execute
from bosun.steps.follow_up import model_context
from bosun.steps.plan import plan, start
from bosun.steps.task import Deps, Task
from bosun.steps.verify.run import verify

CANCEL_ANNOTATION = "cancel"


async def reconcile_task(body: dict[str, Any], deps: Deps) -> None:
    """Advance one task as far as it can go now. Raises ``TaskConflict`` when the task changed under it:
    the caller reads it again and starts over. What waits (a person, the tool server, the TTL) is picked
    up by the next event or by the sweep. Each pass is one trace (``bosun.tracing``)."""
    with tracing.task_pass(body):
        await _advance(body, deps)


async def _advance(body: dict[str, Any], deps: Deps) -> None:
    status = AgentTaskStatus.model_validate(body.get("status") or {})
    spec = AgentTaskSpec.model_validate(body.get("spec") or {})
    task = Task(body, spec, status, deps)
    await task.post_pending()
    if is_final(status):
        await _delete_when_expired(task)
        return
    if is_true(task.annotations.get(CANCEL_ANNOTATION, "")):
        task.status = skip_remaining(task.status, "cancelled", deps.now())
        await task.move("Cancelled", "Cancelled", "cancelled by annotation cancel=true", "Warning")
        await _finish(task)
        return
    if status.phase in (None, "Pending") and not await start(task):
        await _delete_when_expired(task)
        return
    await take_annotation_approval(task)
    try:
        while not is_final(task.status):
            phase = task.status.phase
            with tracing.phase_step(phase or "Pending"):
                if phase == "Planning":
                    await plan(task)
                elif phase == "AwaitingApproval":
                    if not await await_approval(task):
                        return
                elif phase == "Executing":
                    await execute(task)
                    await _tool_server_back(task)
                elif phase == "Verifying":
                    await _verify(task)
                    await _tool_server_back(task)
    except ToolServerUnavailable as exc:
        task.status = with_condition(
            task.status,
            "ToolServerAvailable",
            "False",
            "ToolServerUnavailable",
            f"{exc}; the task resumes when the tool server is back",
            generation=task.generation,
            now=deps.now(),
        )
        task.note("Warning", "ToolServerUnavailable", str(exc))
        await task.write()
        return
    await _finish(task)


async def _finish(task: Task) -> None:
    """A task just finished: answer its unconsidered grants, release its sealed values, honour its TTL."""
    await close_grants(task)
    await _release_sealed(task)
    await _delete_when_expired(task)


async def _delete_when_expired(task: Task) -> None:
    """``spec.ttlSecondsAfterFinished``: a finished task is deleted once that long has passed (the sweep
    looks at finished tasks with a TTL again until then)."""
    ttl = task.spec.ttl_seconds_after_finished
    if ttl is None or task.status.finished_at is None:
        return
    if task.status.finished_at + timedelta(seconds=ttl) <= task.deps.now():
        await task.deps.store.delete_task(task.namespace, task.name)


async def _verify(task: Task) -> None:
    """Check what the approved calls did; Succeeded, back to planning, or Failed when no iteration is left."""
    deps, status = task.deps, task.status
    proposal = status.proposal
    assert proposal is not None
    executed = []
    for step in proposal.steps:
        record = record_of(status, proposal.revision, step.id)
        if record is not None and record.state == "Succeeded":
            executed.append((step, record.data))
    execution = await task.execution()
    if execution.problem is not None:
        await task.move("Failed", "ExecutionIdentityInvalid", execution.problem, "Warning")
        return
    model = deps.config.model_for(task.spec.model)
    found = await model_context(task, strict=False) if model is not None else None
    result = await verify(
        executed,
        ctx=task.planning_context(execution, found.context if isinstance(found, FollowUp) else None),
        gateway=deps.gateway,
        model=model,
        revision=proposal.revision,
        deadline_seconds=deps.config.verify_seconds,
        now=deps.now,
    )
    status = add_usage(status, result.usage, model.model if model is not None else None)
    status = status.model_copy(update={"verification": result.verification})
    message = result.verification.judgement or ""
    if result.verification.passed:
        status = with_condition(
            status, "Verified", "True", "Verified", message, generation=task.generation, now=deps.now()
        )
        done = [
            f"{r.step_id}: {' '.join((r.output or r.tool).split())[:300]}"
            for r in status.steps
            if r.revision == proposal.revision and r.mutating and r.state == "Succeeded"
        ]
        summary = "\n".join([*done, f"Verified: {message}"])
        task.status = status.model_copy(update={"summary": cap(summary, SUMMARY_CAP)})
        await task.move("Succeeded", "Verified", message)
        return
    status = with_condition(
        status, "Verified", "False", "VerificationFailed", message, generation=task.generation, now=deps.now()
    )
    task.status = status
    if status.iteration >= task.spec.max_iterations:
        await task.move(
            "Failed",
            "VerificationFailed",
            f"{message}; maxIterations ({task.spec.max_iterations}) reached, nothing more is tried",
            "Warning",
        )
        return
    task.note("Warning", "VerificationFailed", message)
    await task.replan(message)


async def _release_sealed(task: Task) -> None:
    """Delete the Secrets holding the task's sealed values once it is finished (what was approved ran, or
    never will), as the identity that sealed them. When that fails they stay, owned by the task, until the
    task is deleted; an Event says so. Only changes are previewed and sealed: a task that never proposed
    one (an answer, a refusal) has none, and nothing is asked of the tool server. (A process that
    previewed, crashed, and never planned again leaves them to the task's deletion, which takes them.)"""
    if task.requester_ref is None or not (task.previewed or task.status.proposal is not None):
        return
    execution = await task.execution()
    identity = execution.identity if execution.problem is None else task.requester
    try:
        outcome = await task.deps.gateway.execute(
            CLEANUP_TOOL, {"namespace": task.namespace, "task_uid": task.uid}, identity=identity
        )
        why = None if outcome.ok else (outcome.error or outcome.text)
    except ToolServerUnavailable as exc:
        why = str(exc)
    if why is not None:
        await task.emit(
            "Warning",
            "SealedValuesKept",
            f"the Secrets holding this task's sealed values were not deleted ({why}); they are deleted "
            "with the task",
        )


async def _tool_server_back(task: Task) -> None:
    """A phase that used the tool server finished: a ``ToolServerAvailable=False`` left by an outage is
    no longer true, so it must not stay (GitOps tools and people read it)."""
    if not any(c.type == "ToolServerAvailable" and c.status == "False" for c in task.status.conditions):
        return
    task.status = with_condition(
        task.status,
        "ToolServerAvailable",
        "True",
        "Reachable",
        "the tool server answered again",
        generation=task.generation,
        now=task.deps.now(),
    )
    await task.write()
