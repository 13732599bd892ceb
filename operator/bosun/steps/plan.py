"""Planning: a task starts (Pending -> Planning) and each iteration asks the planner, or replays another
task's executed calls, for a proposal; the proposal is hashed and shown for approval.

The model investigates with read-only tools and proposes changes; nothing it proposes runs here. A plan is
proposed whole or not at all: too many steps or too many bytes of arguments fail the task rather than
show a part of it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from bosun_tools.identity import Identity
from bosun_tools.registry import is_registered, safety_of
from bosun_tools.sealing import TaskRef

from bosun.api.models import (
    DIFF_CAP,
    MAX_PROPOSAL_STEPS,
    PREVIEW_CAP,
    PROPOSAL_ARGS_CAP,
    RATIONALE_CAP,
    STEP_ARGS_CAP,
    STEP_OUTPUT_CAP,
    SUMMARY_CAP,
    Proposal,
    ProposedStep,
    StepRecord,
    canonical_json,
    cap,
    one_line,
)
from bosun.core import identity as ids
from bosun.core.approval import plan_hash
from bosun.core.follow_up import Refusal
from bosun.core.identity import ExecutionChoice
from bosun.core.phases import with_condition
from bosun.core.proposals import add_usage, proposal_records, read_record_id, replayable
from bosun.planner import PlannedCall, PlanResult, propose_plan
from bosun.steps.follow_up import follow_up, model_context
from bosun.steps.task import Task

INVESTIGATION_ARGS_CAP = 1024
"""Arguments of a read-only call larger than this are not kept in its record (only that they were)."""


async def start(task: Task) -> bool:
    """Pending -> Planning, stamping the requester; False when the task cannot start (written at once).
    Nothing has run yet, so a crash before the first write only means the task is started again."""
    deps = task.deps
    requester = task.requester_ref
    status = task.status.model_copy(
        update={
            "started_at": deps.now(),
            "iteration": 1,
            "requester": requester,
            "request_preview": one_line(task.spec.request),
        }
    )
    task.status = status
    if requester is None:
        await task.move(
            "Failed",
            "RequesterUnknown",
            "the requester was not stamped at admission, so Bosun will not act for anyone: install the "
            "identity policies (kubectl apply -f crds/) and re-create the task",
            "Warning",
        )
        return False
    if task.spec.cluster_scope and not deps.config.allow_cluster_scope:
        await task.move(
            "Failed",
            "ClusterScopeNotAllowed",
            "spec.clusterScope is true, but this operator does not allow cluster-scoped changes "
            "(BOSUN_ALLOW_CLUSTER_SCOPE, off by default); ask its administrator, or create the task without "
            "clusterScope",
            "Warning",
        )
        return False
    refusal = ids.impersonation_refusal(
        requester, deps.config.privileged_groups, deps.config.protected_namespaces
    )
    if refusal is not None:
        await task.move("Failed", "RequesterNotImpersonable", refusal, "Warning")
        return False
    planning = f"planning the request of {requester.user}"
    if task.spec.follow_up_of:
        found = await follow_up(task)
        if isinstance(found, Refusal):
            await task.move("Failed", found.reason, found.message, "Warning")
            return False
        if found is not None:
            planning += f", a follow-up of AgentTask {found.name} ({found.phase})"
    if task.spec.replay_of or deps.config.model_for(task.spec.model) is None:
        # The offline planner and a replay answer in milliseconds: Planning is written with its outcome.
        # A model may think for minutes, so people see Planning at once.
        task.stage("Planning", "Planning", planning)
    else:
        await task.move("Planning", "Planning", planning)
    return True


async def plan(task: Task) -> None:
    """One planning pass: ends the task (answered, refused, failed) or shows a proposal for approval."""
    deps = task.deps
    execution = await task.execution()
    if execution.problem is not None:
        await task.move("Failed", "ExecutionIdentityInvalid", execution.problem, "Warning")
        return
    model = deps.config.model_for(task.spec.model)
    context = None
    if model is not None and task.spec.follow_up_of:
        # Nothing planned yet: a task that cannot be followed up fails, as it would have at the start.
        found = await model_context(task, strict=task.status.proposal is None and task.status.iteration <= 1)
        if isinstance(found, Refusal):
            await task.move("Failed", found.reason, found.message, "Warning")
            return
        context = found.context if found is not None else None
    ctx = task.planning_context(execution, context)
    if task.spec.replay_of and task.status.proposal is None:
        result, used = await _replay(task, ctx.acting), None
    else:
        result, used = await propose_plan(ctx, deps.gateway, model), model
    task.previewed = task.previewed or may_have_sealed(result)
    status = add_usage(task.status, result.usage, used.model if used is not None else None)
    status = status.model_copy(
        update={"steps": [*status.steps, *investigation_records(result, status.iteration, deps.now())]}
    )
    status = with_condition(
        status,
        "ToolServerAvailable",
        "True",
        "Reachable",
        "the tool server answered",
        generation=task.generation,
        now=deps.now(),
    )
    task.status = status
    if await _finish_without_proposal(task, result):
        return
    await _propose(task, result, execution)


async def _finish_without_proposal(task: Task, result: PlanResult) -> bool:
    """Ends the task when the pass proposed nothing to approve; False when there is a proposal to show."""
    status, summary = task.status, cap(result.summary, SUMMARY_CAP)
    refused = refused_changes(result)
    if result.outcome == "answer" and refused:
        # The model may say it is done, but nothing it meant to change was even proposed: not a success.
        why = f"every change the model tried was refused, nothing was proposed: {'; '.join(refused)}"
        task.status = status.model_copy(update={"summary": cap(f"{why}\n{result.summary}", SUMMARY_CAP)})
        await task.move("Failed", "ChangesRefused", why[:1000], "Warning")
        return True
    if result.outcome == "answer":
        task.status = status.model_copy(update={"summary": summary})
        await task.move("Succeeded", "Answered", (result.summary or "answered")[:1000])
        return True
    if result.outcome == "unsupported":
        task.status = status.model_copy(update={"summary": summary})
        await task.move("Failed", "Unsupported", result.error or result.summary, "Warning")
        return True
    if result.outcome == "failed" or not result.steps:
        why = result.error or result.summary or "the planner proposed nothing"
        reason = (
            "ModelFailed" if result.failure == "model" else "ChangesRefused" if refused else "PlanningFailed"
        )
        task.status = status.model_copy(update={"summary": cap(why, SUMMARY_CAP)})
        await task.move("Failed", reason, why, "Warning")
        return True
    return False


async def _propose(task: Task, result: PlanResult, execution: ExecutionChoice) -> None:
    """Hash the planned calls into the next revision and wait for approval (or fail when too large)."""
    deps, status = task.deps, task.status
    revision = (status.proposal.revision if status.proposal else 0) + 1
    scoped = [
        i for i, call in enumerate(result.steps) if await deps.gateway.cluster_scoped(call.tool, call.args)
    ]
    proposal, problem = build_proposal(
        result.steps,
        task_uid=task.uid,
        revision=revision,
        summary=result.summary,
        now=deps.now(),
        cluster_scoped=scoped,
    )
    if proposal is None:
        await task.move("Failed", "PlanTooLarge", problem or "plan rejected", "Warning")
        return
    # The policy grants are judged by (``Task.policy``), written with the proposal it applies to.
    policy = await task.policy()
    task.status = status.model_copy(
        update={
            "proposal": proposal,
            "approval_policy": policy.as_status(),
            "summary": cap(result.summary, SUMMARY_CAP),
            "steps": [*status.steps, *proposal_records(proposal)],
            "pending_steps": len(proposal.steps),
        }
    )
    steps_text = "; ".join(f"{s.id}: {s.tool} {canonical_json(s.args)}" for s in proposal.steps)
    running_as = f"; approved calls run as {execution.identity.user}" if execution.service_account else ""
    await task.move(
        "AwaitingApproval",
        "ApprovalRequired",
        f"proposal revision {revision} ({proposal.hash}), {len(proposal.steps)} step(s), awaits approval: "
        f"{steps_text}. Approve with "
        f"`kubectl annotate agenttask {task.name} approve=true` or an ApprovalGrant with planHash "
        f"{proposal.hash}{running_as}",
    )


async def _replay(task: Task, acting: Identity) -> PlanResult:
    """``spec.replayOf``: the calls another task ran, each checked for scope and dry-run again as now."""
    name = task.spec.replay_of or ""
    if not await task.deps.store.may_get_task(task.requester, task.namespace, name):
        # Read with the operator's rights only once RBAC said the requester could read it by hand: a
        # replay shows the other task's calls, arguments and all, to whoever asked for it.
        error = (
            f"spec.replayOf: {task.requester.user} may not get agenttasks.bosun.dev {name} in namespace "
            f"{task.namespace}, so Bosun will not propose its calls on their behalf. Ask an admin of the "
            "namespace for get on agenttasks.bosun.dev there (the bosun-requester role has it), or create "
            "the task without spec.replayOf"
        )
        return PlanResult("failed", error, error=error)
    source = await task.deps.store.get_task(task.namespace, name)
    if source is None:
        error = f"spec.replayOf: AgentTask {name} not found in namespace {task.namespace}"
        return PlanResult("failed", error, error=error)
    calls = replay_calls(source)
    if not calls:
        error = f"spec.replayOf: AgentTask {name} has no executed mutations recorded to replay"
        return PlanResult("failed", error, error=error)
    previewed = []
    for call in calls:
        problem = await task.deps.gateway.scope_error(
            call.tool, call.args, task.targets, cluster_scope=task.cluster_scope
        )
        if problem is not None:
            return PlanResult("failed", problem, error=f"cannot replay: {problem}")
        preview = await task.deps.gateway.preview(
            call.tool, call.args, identity=acting, task=TaskRef(task.namespace, task.name, task.uid)
        )
        if not preview.ok:
            error = f"cannot replay {call.tool}: the dry-run failed: {preview.error}"
            return PlanResult("failed", error, error=error)
        args = preview.sealed_args or call.args
        previewed.append(PlannedCall(call.id, call.tool, args, call.rationale, preview.text, preview.diff))
    return PlanResult(
        "proposal", f"Replay of the {len(calls)} executed mutation(s) of task {name}.", previewed
    )


# ----- no I/O, but bound to the tool registry and the planner's types (which bosun.core may not import) ----


def build_proposal(
    calls: list[PlannedCall],
    *,
    task_uid: str,
    revision: int,
    summary: str,
    now: datetime,
    cluster_scoped: Collection[int] = (),
) -> tuple[Proposal | None, str | None]:
    """Turn planned calls into a hashed proposal; bounded, or an error saying why not. ``cluster_scoped``
    holds the indexes of calls that reach beyond one namespace: marked, and approved as destructive."""
    if len(calls) > MAX_PROPOSAL_STEPS:
        return None, f"the plan has {len(calls)} steps; at most {MAX_PROPOSAL_STEPS} may be proposed at once"
    total = sum(len(canonical_json(call.args).encode()) for call in calls)
    if total > PROPOSAL_ARGS_CAP:
        return (
            None,
            f"the plan carries {total} bytes of arguments; at most {PROPOSAL_ARGS_CAP} may be proposed",
        )
    steps = []
    for index, call in enumerate(calls, start=1):
        scoped = index - 1 in cluster_scoped
        size = len(canonical_json(call.args).encode())
        if size > STEP_ARGS_CAP:
            return None, f"step {index} ({call.tool}) has {size} bytes of arguments; at most {STEP_ARGS_CAP}"
        safety = safety_of(call.tool)
        steps.append(
            ProposedStep(
                id=f"s{index}",
                tool=call.tool,
                args=call.args,
                mutating=not safety.read_only,
                destructive=safety.destructive or scoped,
                cluster_scoped=scoped,
                idempotent=safety.idempotent,
                rationale=cap(call.rationale, RATIONALE_CAP) or "",
                preview=cap(call.preview, PREVIEW_CAP),
                diff=cap(call.diff, DIFF_CAP),
                preview_note=cap(call.preview_note, PREVIEW_CAP),
            )
        )
    proposal = Proposal(
        revision=revision,
        hash=plan_hash(task_uid, revision, steps),
        created_at=now,
        summary=cap(summary, SUMMARY_CAP) or "",
        steps=steps,
    )
    return proposal, None


def refused_changes(result: PlanResult) -> list[str]:
    """The changes a planning pass tried that were refused or could not be previewed (unknown tool names
    are not changes: they are mistakes the model is told about)."""
    return [
        f"{item.tool}: {item.text[:300]}"
        for item in result.investigation
        if not item.ok and is_registered(item.tool) and not safety_of(item.tool).read_only
    ]


def may_have_sealed(result: PlanResult) -> bool:
    """Whether a planning pass may have previewed a change, and so sealed its secret values in a holding
    Secret: any pass that did not end as a plain answer (or a request the planner does not support). A
    change withdrawn from a plan was previewed, but its turn held a refused change, which the answer
    carries."""
    return result.outcome not in ("answer", "unsupported") or bool(result.steps or refused_changes(result))


def investigation_records(result: PlanResult, iteration: int, now: datetime) -> list[StepRecord]:
    """The read-only calls of a planning pass, recorded so that the next pass (and a person) sees them."""
    return [
        StepRecord(
            id=read_record_id(iteration, n),
            revision=iteration,
            tool=item.tool,
            args=item.args
            if len(canonical_json(item.args)) <= INVESTIGATION_ARGS_CAP
            else {"compacted": "arguments too large"},
            mutating=False,
            idempotent=True,
            state="Succeeded" if item.ok else "Failed",
            finished_at=now,
            output=cap(item.text, STEP_OUTPUT_CAP) if item.ok else None,
            error=None if item.ok else cap(item.text, STEP_OUTPUT_CAP),
        )
        for n, item in enumerate(result.investigation, start=1)
    ]


def replay_calls(source: Mapping[str, Any]) -> list[PlannedCall]:
    """The mutations another task actually ran, in order, exactly as recorded."""
    name = source["metadata"]["name"]
    return [
        PlannedCall(
            id="",
            tool=record.tool,
            args=record.args,
            rationale=f"Replay of step {record.id} of task {name} (approved by "
            f"{', '.join(u.user for u in record.approved_by or []) or 'unknown'}).",
        )
        for record in replayable(source)
    ]
