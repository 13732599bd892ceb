"""One level-triggered reconcile of an AgentTask: read status, do the next thing, write status, repeat
until the task waits for a person or is finished.

kopf handlers, the periodic sweep and a restart all call ``reconcile_task``; everything it needs to decide
is in the object (status is the semantic checkpoint), so any of them may run it at any time. A per-task
lock keeps two of them from working on one task at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bosun_tools.kube import Identity, KubeError
from bosun_tools.registry import safety_of

from bosun import identity as ids
from bosun.approval import (
    ApprovalPolicy,
    GrantVerdict,
    already_considered,
    apply_verdict,
    approval_hint,
    grant_status,
    judge_grant,
    parse_timestamp,
    plan_hash,
    strictest,
    tally,
)
from bosun.config import OperatorConfig
from bosun.executor import Claim, ExecutionResult, StepClaimLost, execute, skip_remaining
from bosun.gateway import ToolGateway, ToolServerUnavailable
from bosun.identity import ExecutionChoice
from bosun.kube import Store
from bosun.models import (
    API_VERSION,
    DIFF_CAP,
    GROUP,
    MAX_PROPOSAL_STEPS,
    PREVIEW_CAP,
    PROPOSAL_ARGS_CAP,
    RATIONALE_CAP,
    STEP_ARGS_CAP,
    STEP_OUTPUT_CAP,
    SUMMARY_CAP,
    AgentTaskSpec,
    AgentTaskStatus,
    Proposal,
    ProposedStep,
    StepRecord,
    TaskPhase,
    UserRef,
    bound_status,
    canonical_json,
    cap,
)
from bosun.models import Usage as UsageModel
from bosun.models import now as utcnow
from bosun.phases import is_final, transition, with_condition
from bosun.planner import PlannedCall, PlanningContext, PlanResult, Usage, propose_plan
from bosun.verify import verify

log = logging.getLogger("bosun")

CANCEL_ANNOTATION = "cancel"
GRANT_SEEN = f"{GROUP}/grant-seen"
TRUE_VALUES = frozenset({"true", "yes", "1", "approve", "approved"})


@dataclass
class Deps:
    """What a reconcile needs; built once at operator start."""

    store: Store
    gateway: ToolGateway
    config: OperatorConfig
    operator_identity: Identity | None
    identity_trusted: bool
    now: Callable[[], datetime] = utcnow
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def locked(self, uid: str, *, wait: bool = True) -> AsyncIterator[bool]:
        lock = self.locks.setdefault(uid, asyncio.Lock())
        if not wait and lock.locked():
            yield False
            return
        async with lock:
            yield True


@dataclass
class Task:
    """One reconcile's view of a task: its identity, spec, the status being built, and how to write it."""

    body: dict[str, Any]
    spec: AgentTaskSpec
    status: AgentTaskStatus
    deps: Deps

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"]["namespace"])

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])

    @property
    def generation(self) -> int | None:
        value = self.body["metadata"].get("generation")
        return int(value) if value is not None else None

    @property
    def annotations(self) -> dict[str, str]:
        return dict(self.body["metadata"].get("annotations") or {})

    @property
    def targets(self) -> list[str]:
        return list(self.spec.target_namespaces or [self.namespace])

    @property
    def requester(self) -> Identity:
        assert self.status.requester is not None
        return ids.as_identity(self.status.requester)

    async def write(
        self, status: AgentTaskStatus | None = None, claim: Claim | None = None
    ) -> AgentTaskStatus:
        status = bound_status(status or self.status)
        status = status.model_copy(update={"observed_generation": self.generation})
        self.status = await self.deps.store.write_task_status(self.namespace, self.name, status, claim)
        return self.status

    async def emit(self, type_: str, reason: str, message: str) -> None:
        await self.deps.store.post_event(self.body, type_, reason, message)

    async def move(self, to: TaskPhase, reason: str, message: str, event_type: str = "Normal") -> None:
        self.status = transition(
            self.status, to, reason=reason, message=message, generation=self.generation, now=self.deps.now()
        )
        await self.write()
        await self.emit(event_type, reason, message)


def add_usage(status: AgentTaskStatus, usage: Usage) -> AgentTaskStatus:
    total = UsageModel(
        calls=status.usage.calls + usage.calls,
        prompt_tokens=status.usage.prompt_tokens + usage.prompt_tokens,
        completion_tokens=status.usage.completion_tokens + usage.completion_tokens,
        costUSD=round(status.usage.cost_usd + usage.cost_usd, 6),
    )
    return status.model_copy(update={"usage": total})


def history_lines(status: AgentTaskStatus) -> list[str]:
    """Compact model context rebuilt from status (no LangGraph checkpoint is kept anywhere)."""
    lines = []
    for record in status.steps:
        result = record.output or record.error or ""
        lines.append(
            f"[{record.id}] {record.tool} {canonical_json(record.args)[:300]} -> {record.state}: "
            f"{result[:400]}"
        )
    if status.verification is not None:
        outcome = "passed" if status.verification.passed else "FAILED"
        lines.append(
            f"verification of revision {status.verification.revision} {outcome}: "
            f"{status.verification.judgement}"
        )
    return lines


def build_proposal(
    calls: list[PlannedCall], *, task_uid: str, revision: int, summary: str, now: datetime
) -> tuple[Proposal | None, str | None]:
    """Turn planned calls into a hashed proposal; bounded, or an error saying why not."""
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
                destructive=safety.destructive,
                idempotent=safety.idempotent,
                rationale=cap(call.rationale, RATIONALE_CAP) or "",
                preview=cap(call.preview, PREVIEW_CAP),
                diff=cap(call.diff, DIFF_CAP),
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


def proposal_records(proposal: Proposal) -> list[StepRecord]:
    return [
        StepRecord(
            id=f"r{proposal.revision}-{step.id}",
            revision=proposal.revision,
            step_id=step.id,
            tool=step.tool,
            args=step.args,
            mutating=True,
            idempotent=step.idempotent,
            state="AwaitingApproval",
        )
        for step in proposal.steps
    ]


def replay_calls(source: Mapping[str, Any]) -> list[PlannedCall]:
    """The mutations another task actually ran, in order, exactly as recorded."""
    status = AgentTaskStatus.model_validate(source.get("status") or {})
    name = source["metadata"]["name"]
    return [
        PlannedCall(
            id="",
            tool=record.tool,
            args=record.args,
            rationale=f"Replay of step {record.id} of task {name} (approved by "
            f"{', '.join(u.user for u in record.approved_by or []) or 'unknown'}).",
        )
        for record in status.steps
        if record.mutating and record.state == "Succeeded" and "compacted" not in record.args
    ]


# ----- phases ----------------------------------------------------------------------------------------------


def _planning_context(task: Task, execution: ExecutionChoice) -> PlanningContext:
    """The model's context, rebuilt from ``.status`` every time (no LangGraph checkpoints in etcd)."""
    status = task.status
    return PlanningContext(
        request=task.spec.request,
        namespace=task.namespace,
        target_namespaces=task.targets,
        identity=task.requester,
        iteration=status.iteration,
        max_iterations=task.spec.max_iterations,
        history=history_lines(status),
        executor=execution.identity if execution.service_account else None,
    )


async def _namespace_annotations(task: Task) -> dict[str, dict[str, str]]:
    """The Namespace annotations of the task's namespace and of every namespace it may change."""
    store = task.deps.store
    return {
        ns: await store.namespace_annotations(ns) for ns in dict.fromkeys([task.namespace, *task.targets])
    }


async def _execution(task: Task) -> ExecutionChoice:
    """Who runs the approved calls, decided again in every phase from the Namespaces' current settings."""
    return ids.execution_identity(
        task.requester,
        task.namespace,
        task.deps.config.execution_service_account,
        await _namespace_annotations(task),
    )


def _running_as(execution: ExecutionChoice) -> str:
    if execution.service_account is None:
        return ""
    return f"; approved calls run as {execution.identity.user}"


async def _plan(task: Task) -> None:
    deps, status = task.deps, task.status
    execution = await _execution(task)
    if execution.problem is not None:
        await task.move("Failed", "ExecutionIdentityInvalid", execution.problem, "Warning")
        return
    ctx = _planning_context(task, execution)
    if task.spec.replay_of and status.proposal is None:
        result = await _replay(task, ctx.acting)
    else:
        result = await propose_plan(ctx, deps.gateway, deps.config.model_for(task.spec.model))
    status = add_usage(task.status, result.usage)
    records = [
        StepRecord(
            id=f"p{status.iteration}-i{n}",
            revision=status.iteration,
            tool=item.tool,
            args=item.args
            if len(canonical_json(item.args)) <= 1024
            else {"compacted": "arguments too large"},
            mutating=False,
            idempotent=True,
            state="Succeeded" if item.ok else "Failed",
            finished_at=deps.now(),
            output=cap(item.text, STEP_OUTPUT_CAP) if item.ok else None,
            error=None if item.ok else cap(item.text, STEP_OUTPUT_CAP),
        )
        for n, item in enumerate(result.investigation, start=1)
    ]
    status = status.model_copy(update={"steps": [*status.steps, *records]})
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
    summary = cap(result.summary, SUMMARY_CAP)
    if result.outcome == "answer":
        task.status = status.model_copy(update={"summary": summary})
        await task.move("Succeeded", "Answered", (result.summary or "answered")[:1000])
        return
    if result.outcome == "unsupported":
        task.status = status.model_copy(update={"summary": summary})
        await task.move("Failed", "Unsupported", result.error or result.summary, "Warning")
        return
    if result.outcome == "failed" or not result.steps:
        why = result.error or result.summary or "the planner proposed nothing"
        reason = "ModelFailed" if result.failure == "model" else "PlanningFailed"
        task.status = status.model_copy(update={"summary": cap(why, SUMMARY_CAP)})
        await task.move("Failed", reason, why, "Warning")
        return
    revision = (status.proposal.revision if status.proposal else 0) + 1
    proposal, problem = build_proposal(
        result.steps, task_uid=task.uid, revision=revision, summary=result.summary, now=deps.now()
    )
    if proposal is None:
        await task.move("Failed", "PlanTooLarge", problem or "plan rejected", "Warning")
        return
    if ids.APPROVE_ANNOTATION in task.annotations:
        # An approve=true set before this proposal existed must not approve it.
        await deps.store.annotate_task(task.namespace, task.name, {ids.APPROVE_ANNOTATION: None})
        await task.emit(
            "Warning", "ApprovalIgnored", "approve annotation set before the proposal existed; removed"
        )
    task.status = status.model_copy(
        update={
            "proposal": proposal,
            "summary": summary,
            "steps": [*status.steps, *proposal_records(proposal)],
            "pending_steps": len(proposal.steps),
        }
    )
    steps_text = "; ".join(f"{s.id}: {s.tool} {canonical_json(s.args)}" for s in proposal.steps)
    await task.emit("Normal", "Planned", f"revision {revision}: {len(proposal.steps)} step(s): {steps_text}")
    await task.move(
        "AwaitingApproval",
        "ApprovalRequired",
        f"proposal revision {revision} ({proposal.hash}) awaits approval: {steps_text}. Approve with "
        f"`kubectl annotate agenttask {task.name} approve=true` or an ApprovalGrant with planHash "
        f"{proposal.hash}{_running_as(execution)}",
    )


async def _replay(task: Task, acting: Identity) -> PlanResult:
    name = task.spec.replay_of or ""
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
        problem = task.deps.gateway.scope_error(call.tool, call.args, task.targets)
        if problem is not None:
            return PlanResult("failed", problem, error=f"cannot replay: {problem}")
        preview = await task.deps.gateway.call(call.tool, call.args, identity=acting, preview=True)
        if not preview.ok:
            error = f"cannot replay {call.tool}: the dry-run failed: {preview.error}"
            return PlanResult("failed", error, error=error)
        previewed.append(
            PlannedCall(call.id, call.tool, call.args, call.rationale, preview.text, preview.diff)
        )
    return PlanResult(
        "proposal", f"Replay of the {len(calls)} executed mutation(s) of task {name}.", previewed
    )


async def _record_annotation_approval(task: Task) -> None:
    """``approve=true`` becomes an ApprovalGrant created by the operator on behalf of the stamped user."""
    deps, proposal = task.deps, task.status.proposal
    value = task.annotations.get(ids.APPROVE_ANNOTATION, "")
    if proposal is None or task.status.phase != "AwaitingApproval":
        await deps.store.annotate_task(task.namespace, task.name, {ids.APPROVE_ANNOTATION: None})
        await task.emit(
            "Warning", "ApprovalIgnored", f"approve={value} ignored: no proposal is awaiting approval"
        )
        return
    approver = ids.annotation_approver_of(task.body["metadata"]) if deps.identity_trusted else None
    if value.lower() not in TRUE_VALUES or approver is None:
        why = (
            f"approve={value} is not true"
            if approver is not None
            else "the annotating user was not stamped at admission (install crds/identity-policy.yaml)"
        )
        await deps.store.annotate_task(task.namespace, task.name, {ids.APPROVE_ANNOTATION: None})
        await task.emit("Warning", "ApprovalIgnored", f"approve annotation ignored: {why}")
        return
    # One record per approver and revision: a crash between create and annotation removal finds it again,
    # and two people approving by annotation (N-of-M) get two grants.
    digest = hashlib.sha256(approver.user.encode()).hexdigest()[:10]
    grant = {
        "apiVersion": API_VERSION,
        "kind": "ApprovalGrant",
        "metadata": {
            "name": f"{task.name[:200]}-r{proposal.revision}-approve-{digest}",
            "namespace": task.namespace,
            "labels": {f"{GROUP}/via": "annotation"},
            "annotations": {
                ids.ON_BEHALF_OF: approver.user,
                ids.ON_BEHALF_OF_GROUPS: ids.encode_groups(approver.groups),
            },
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": "AgentTask", "name": task.name, "uid": task.uid}
            ],
        },
        "spec": {
            "taskRef": {"name": task.name, "uid": task.uid},
            "planHash": proposal.hash,
            "decision": "Approve",
            "reason": f"kubectl annotate agenttask {task.name} approve={value}",
        },
    }
    await deps.store.create_grant(task.namespace, grant)
    await deps.store.annotate_task(task.namespace, task.name, {ids.APPROVE_ANNOTATION: None})


async def _policy(task: Task) -> ApprovalPolicy:
    """The strictest policy of the task's namespace and of every namespace it may change."""
    approval = task.deps.config.approval
    found = await _namespace_annotations(task)
    return strictest(
        approval.for_namespace(namespace, annotations) for namespace, annotations in found.items()
    )


async def _await_approval(task: Task) -> bool:
    """Apply pending decisions; True when the task moved on (Executing, Denied, Expired)."""
    deps, proposal = task.deps, task.status.proposal
    assert proposal is not None
    if ids.APPROVE_ANNOTATION in task.annotations:
        await _record_annotation_approval(task)
    policy: ApprovalPolicy | None = None
    for grant in await deps.store.list_grants(task.namespace):
        meta, spec = grant["metadata"], grant.get("spec") or {}
        if (spec.get("taskRef") or {}).get("name") != task.name:
            continue
        if (grant.get("status") or {}).get("state") or already_considered(task.status, meta["name"]):
            continue
        policy = policy or await _policy(task)
        approver, via_annotation = (
            ids.grant_origin(meta, deps.operator_identity) if deps.identity_trusted else (None, False)
        )
        may_create = True
        if via_annotation and approver is not None:
            may_create = await deps.store.may_create_grants(ids.as_identity(approver), task.namespace)
        now = deps.now()
        verdict = judge_grant(
            grant,
            task_name=task.name,
            task_uid=task.uid,
            namespace=task.namespace,
            phase=task.status.phase,
            proposal=task.status.proposal,
            requester=task.status.requester,
            approver=approver,
            via_annotation=via_annotation,
            may_create_grants=may_create,
            policy=policy,
            approvals=task.status.approvals,
            now=now,
        )
        subset = spec.get("steps")
        task.status = apply_verdict(
            task.status,
            verdict,
            grant_name=meta["name"],
            approver=approver,
            subset=subset,
            now=now,
            policy=policy,
            created_at=parse_timestamp(meta.get("creationTimestamp")),
            expires_at=parse_timestamp(spec.get("expiresAt")),
        )
        outcome = tally(task.status, policy, now)
        who = approver.user if approver else "unknown"
        # The decision and the phase it leads to are one status write, so a crash cannot leave a recorded
        # approval without its effect; the grant's own status follows (it only explains).
        moved = verdict.accepted and outcome.complete
        if not verdict.accepted:
            await task.write()
        elif not outcome.complete:
            counted = [u.user for u in outcome.counted()]
            excluded = [who, *counted]
            if policy.four_eyes and task.status.requester is not None:
                excluded.append(task.status.requester.user)
            waiting = (
                f"{outcome.progress()} for revision {proposal.revision}; "
                f"{policy.required_approvals - len(counted)} more needed: "
                + approval_hint(task.namespace, excluded)
            )
            verdict = dataclasses.replace(verdict, reason="ApprovalCounted", message=waiting)
            task.status = with_condition(
                task.status,
                "Approved",
                "False",
                "ApprovalsPending",
                waiting,
                generation=task.generation,
                now=now,
            )
            await task.write()
            await task.emit("Normal", "ApprovalCounted", f"{who} approved (grant {meta['name']}): {waiting}")
        elif not outcome.approved:
            task.status = skip_remaining(task.status, f"denied by {who}", now)
            await task.move(
                "Denied", "Denied", f"denied by {who} with grant {meta['name']}: {verdict.message}", "Warning"
            )
        else:
            approved_by = ", ".join(sorted({u.user for us in outcome.approvers.values() for u in us}))
            await task.move(
                "Executing",
                "Approved",
                f"{verdict.message} by {approved_by} ({outcome.progress()}; last grant {meta['name']})",
            )
        with contextlib.suppress(KubeError):
            await deps.store.write_grant_status(
                task.namespace,
                meta["name"],
                grant_status(
                    verdict,
                    approver=approver,
                    task_uid=task.uid,
                    revision=proposal.revision,
                    generation=meta.get("generation"),
                    now=now,
                ),
            )
        grant_event = ("Normal", "GrantAccepted") if verdict.accepted else ("Warning", "GrantRejected")
        await deps.store.post_event(
            {"apiVersion": API_VERSION, "kind": "ApprovalGrant", **grant},
            *grant_event,
            f"{who}: {verdict.reason}: {verdict.message} (task {task.name}, revision {proposal.revision})",
        )
        if moved:
            return True
        if not verdict.accepted:
            await task.emit(
                "Warning",
                "GrantRejected",
                f"grant {meta['name']} by {who}: {verdict.reason}: {verdict.message}",
            )
    waited = deps.now() - proposal.created_at
    if waited > timedelta(seconds=deps.config.approval_timeout_seconds):
        task.status = skip_remaining(task.status, "nobody decided in time", deps.now())
        await task.move(
            "Expired", "Expired", f"no decision within {deps.config.approval_timeout_seconds:g}s", "Warning"
        )
        return True
    return False


async def _execute(task: Task) -> None:
    deps = task.deps

    async def write(status: AgentTaskStatus, claim: Claim | None = None) -> AgentTaskStatus:
        return await task.write(status, claim)

    execution = await _execution(task)
    if execution.problem is not None:
        result = ExecutionResult(task.status, False, "ExecutionIdentityInvalid", execution.problem)
    else:
        result = await execute(
            task.status,
            task_uid=task.uid,
            gateway=deps.gateway,
            identity=execution.identity,
            write=write,
            emit=task.emit,
            now=deps.now,
            timeout=deps.config.tool_timeout_seconds,
            on_behalf_of=task.requester.user if execution.service_account else None,
        )
    task.status = result.status
    if result.done:
        await task.move("Verifying", "Executed", "all approved steps ran; verifying the outcome")
        return
    task.status = skip_remaining(task.status, f"not run: {result.reason}", deps.now())
    task.status = with_condition(
        task.status,
        "Executed",
        "False",
        result.reason,
        result.message,
        generation=task.generation,
        now=deps.now(),
    )
    await task.move("Failed", result.reason, result.message, "Warning")


async def _verify(task: Task) -> None:
    deps, status = task.deps, task.status
    proposal = status.proposal
    assert proposal is not None
    executed = []
    for step in proposal.steps:
        record = next((r for r in status.steps if r.id == f"r{proposal.revision}-{step.id}"), None)
        if record is not None and record.state == "Succeeded":
            executed.append((step, record.data))
    execution = await _execution(task)
    if execution.problem is not None:
        await task.move("Failed", "ExecutionIdentityInvalid", execution.problem, "Warning")
        return
    ctx = _planning_context(task, execution)
    result = await verify(
        executed,
        ctx=ctx,
        gateway=deps.gateway,
        model=deps.config.model_for(task.spec.model),
        revision=proposal.revision,
        deadline_seconds=deps.config.verify_seconds,
        now=deps.now,
    )
    status = add_usage(status, result.usage).model_copy(update={"verification": result.verification})
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
    await task.emit("Warning", "VerificationFailed", message)
    task.status = task.status.model_copy(update={"iteration": status.iteration + 1})
    await task.move(
        "Planning", "Replanning", f"iteration {status.iteration + 1}: replanning after: {message}"
    )


# ----- entry points ----------------------------------------------------------------------------------------


async def _finished(task: Task) -> float | None:
    ttl = task.spec.ttl_seconds_after_finished
    if ttl is None or task.status.finished_at is None:
        return None
    due = task.status.finished_at + timedelta(seconds=ttl)
    remaining = (due - task.deps.now()).total_seconds()
    if remaining <= 0:
        await task.deps.store.delete_task(task.namespace, task.name)
        return None
    return remaining


async def _start(task: Task) -> bool:
    """Pending -> Planning, stamping the requester; False when the task cannot start."""
    deps = task.deps
    requester: UserRef | None = ids.requester_of(task.body["metadata"]) if deps.identity_trusted else None
    status = task.status.model_copy(update={"started_at": deps.now(), "iteration": 1, "requester": requester})
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
    await task.move("Planning", "Planning", f"planning the request of {requester.user}")
    return True


async def reconcile_task(body: dict[str, Any], deps: Deps) -> float | None:
    """Advance one task as far as it can go now. Returns seconds until it wants to be looked at again
    (tool server down, TTL), or None."""
    status = AgentTaskStatus.model_validate(body.get("status") or {})
    spec = AgentTaskSpec.model_validate(body.get("spec") or {})
    task = Task(body, spec, status, deps)
    if is_final(status):
        return await _finished(task)
    if task.annotations.get(CANCEL_ANNOTATION, "").lower() in TRUE_VALUES:
        task.status = skip_remaining(task.status, "cancelled", deps.now())
        await task.move("Cancelled", "Cancelled", "cancelled by annotation cancel=true", "Warning")
        return await _finished(task)
    if status.phase in (None, "Pending") and not await _start(task):
        return await _finished(task)
    try:
        while not is_final(task.status):
            phase = task.status.phase
            if phase == "Planning":
                await _plan(task)
            elif phase == "AwaitingApproval":
                if not await _await_approval(task):
                    return None
            elif phase == "Executing":
                await _execute(task)
            elif phase == "Verifying":
                await _verify(task)
    except StepClaimLost as exc:
        log.warning("%s; another operator process is working on it, leaving it alone", exc)
        return None
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
        await task.write()
        await task.emit("Warning", "ToolServerUnavailable", str(exc))
        return deps.config.sweep_seconds
    return await _finished(task)


async def touch_for_grant(grant: dict[str, Any], deps: Deps) -> None:
    """A new grant wakes its task at once (annotation change -> the task's update handler)."""
    meta, spec = grant["metadata"], grant.get("spec") or {}
    if (grant.get("status") or {}).get("state"):
        return
    task_name = (spec.get("taskRef") or {}).get("name")
    if not task_name:
        return
    task = await deps.store.get_task(meta["namespace"], task_name)
    if task is None:
        verdict = GrantVerdict(
            False, "TaskNotFound", f"AgentTask {task_name} not found in {meta['namespace']}"
        )
        approver = ids.approver_of(meta, deps.operator_identity) if deps.identity_trusted else None
        await deps.store.write_grant_status(
            meta["namespace"],
            meta["name"],
            grant_status(
                verdict,
                approver=approver,
                task_uid=None,
                revision=None,
                generation=meta.get("generation"),
                now=deps.now(),
            ),
        )
        return
    await deps.store.annotate_task(meta["namespace"], task_name, {GRANT_SEEN: meta["name"]})
