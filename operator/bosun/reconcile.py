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
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bosun_tools.client.kube import KubeError
from bosun_tools.identity import Identity
from bosun_tools.registry import is_registered, safety_of
from bosun_tools.sealing import CLEANUP_TOOL, TaskRef

from bosun.api.models import (
    API_VERSION,
    DIFF_CAP,
    EVENT_MESSAGE_CAP,
    GROUP,
    MAX_PENDING_EVENTS,
    MAX_PROPOSAL_STEPS,
    PREVIEW_CAP,
    PROPOSAL_ARGS_CAP,
    RATIONALE_CAP,
    STEP_ARGS_CAP,
    STEP_OUTPUT_CAP,
    SUMMARY_CAP,
    TERMINAL_PHASES,
    AgentTaskSpec,
    AgentTaskStatus,
    PendingEvent,
    Proposal,
    ProposedStep,
    StepRecord,
    TaskPhase,
    UserRef,
    bound_status,
    canonical_json,
    cap,
)
from bosun.api.models import Usage as UsageModel
from bosun.api.models import now as utcnow
from bosun.config import OperatorConfig
from bosun.core import identity as ids
from bosun.core.approval import (
    ApprovalPolicy,
    GrantFacts,
    GrantVerdict,
    already_considered,
    apply_verdict,
    approval_hint,
    authorize,
    grant_status,
    judge_grant,
    parse_timestamp,
    plan_hash,
    strictest,
    tally,
)
from bosun.core.identity import ExecutionChoice
from bosun.core.phases import is_final, transition, with_condition
from bosun.executor import Authorize, ExecutionResult, Rebase, execute, skip_remaining
from bosun.planner import (
    MODEL_CALLS_PER_ITERATION,
    PlannedCall,
    PlanningContext,
    PlanResult,
    Usage,
    propose_plan,
)
from bosun.ports.gateway import ToolGateway, ToolServerUnavailable
from bosun.ports.store import Store, TaskConflict
from bosun.verify import verify

log = logging.getLogger("bosun")

CANCEL_ANNOTATION = "cancel"
GRANT_SEEN = f"{GROUP}/grant-seen"
APPROVE_VALUES = frozenset({"true", "yes", "1", "approve", "approved"})
"""What ``approve=`` may say to approve."""
CANCEL_VALUES = frozenset({"true", "yes", "1"})
"""What ``cancel=`` may say to cancel (``cancel=approved`` does not cancel)."""


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


WRITE_ATTEMPTS = 5
"""Conflicting writes re-applied from fresh state (``rebase``) before the reconcile starts over."""


@dataclass
class Task:
    """One reconcile's view of a task: the object as the API server last returned it, its spec, the status
    being built, and how to write it.

    ``body`` is replaced by the server's answer after every write, and every status write is conditional
    on ``body``'s resourceVersion: no decision is ever taken on a copy older than the last write, and a
    stale writer (another process, a delayed reconcile) gets ``TaskConflict`` instead of overwriting."""

    body: dict[str, Any]
    spec: AgentTaskSpec
    status: AgentTaskStatus
    deps: Deps
    unsent: list[PendingEvent] = field(default_factory=list)
    """Events noted since the last write; the next write records them, then they are posted."""

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
    def cluster_scope(self) -> bool:
        """Cluster-scoped changes need both the task's consent and the operator's."""
        return self.spec.cluster_scope and self.deps.config.allow_cluster_scope

    @property
    def requester_ref(self) -> UserRef | None:
        """The requester as admission stamped it on the object (None when the stamps cannot be trusted).
        Never ``status.requester``: whoever may write ``agenttasks/status`` could name anyone there."""
        return ids.requester_of(self.body["metadata"]) if self.deps.identity_trusted else None

    @property
    def requester(self) -> Identity:
        requester = self.requester_ref
        assert requester is not None, "tasks without a stamped requester never leave Pending"
        return ids.as_identity(requester)

    def _adopt(self, body: dict[str, Any]) -> None:
        self.body = body
        self.status = AgentTaskStatus.model_validate(body.get("status") or {})

    async def write(
        self, status: AgentTaskStatus | None = None, rebase: Rebase | None = None
    ) -> AgentTaskStatus:
        """Write ``status`` if the task is still as last read, and continue from what the server stored.

        On a conflict the task is read again. If only its metadata changed (an annotation, a label), the
        status this change was decided on still stands and the write is repeated on the new version;
        if the status changed, ``rebase`` (when given) re-applies the change to the fresh status, and
        otherwise ``TaskConflict`` propagates and the reconcile starts over from a fresh read. A finished
        task's phase is never changed."""
        wanted = bound_status(status or self.status)
        deps = self.deps
        for _ in range(WRITE_ATTEMPTS):
            stored = (self.body.get("status") or {}).get("phase")
            if stored in TERMINAL_PHASES and wanted.phase != stored:
                raise TaskConflict(
                    f"agenttask {self.namespace}/{self.name} is {stored}; a finished task is never reopened"
                )
            events = [*wanted.pending_events, *self.unsent][-MAX_PENDING_EVENTS:]
            written = wanted.model_copy(
                update={"observed_generation": self.generation, "pending_events": events}
            )
            try:
                body = await deps.store.write_task_status(
                    self.namespace, self.name, written, str(self.body["metadata"]["resourceVersion"])
                )
            except TaskConflict:
                fresh = await deps.store.get_task(self.namespace, self.name)
                if fresh is None or fresh["metadata"]["uid"] != self.uid:
                    raise
                decided_on = self.body.get("status")
                self._adopt(fresh)
                if fresh.get("status") == decided_on:
                    continue
                rebased = rebase(self.status) if rebase else None
                if rebased is None:
                    raise
                wanted = bound_status(rebased)
                continue
            self._adopt(body)
            self.unsent = []
            await self.post_pending()
            return self.status
        raise TaskConflict(f"agenttask {self.namespace}/{self.name} kept changing; starting over")

    def note(self, type_: str, reason: str, message: str) -> None:
        """An Event to be recorded by the next status write and posted right after it: the change and
        its report are one write, so a crash in between loses neither and posts nothing twice."""
        flat = " ".join(message.split())
        self.unsent.append(
            PendingEvent(
                id=uuid.uuid4().hex[:16],
                type="Warning" if type_ == "Warning" else "Normal",
                reason=reason,
                message=flat if len(flat) <= EVENT_MESSAGE_CAP else flat[: EVENT_MESSAGE_CAP - 1] + "…",
                at=datetime.now(UTC),
            )
        )

    async def note_async(self, type_: str, reason: str, message: str) -> None:
        """``note`` for callers that take an awaitable emitter (the executor)."""
        self.note(type_, reason, message)

    async def emit(self, type_: str, reason: str, message: str) -> None:
        """An Event on its own: noted, recorded with a status write, posted."""
        self.note(type_, reason, message)
        await self.write()

    async def post_pending(self) -> None:
        """Post the Events the stored status records as pending; their derived names make a second post
        of the same entry (after a crash) a no-op. The next write drops them from the stored status."""
        for event in self.status.pending_events:
            await self.deps.store.post_event(
                self.body, event.type, event.reason, event.message, event_id=event.id, at=event.at
            )
        self.status = self.status.model_copy(update={"pending_events": []})

    async def move(self, to: TaskPhase, reason: str, message: str, event_type: str = "Normal") -> None:
        self.status = transition(
            self.status, to, reason=reason, message=message, generation=self.generation, now=self.deps.now()
        )
        self.note(event_type, reason, message)
        await self.write()


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
        model_calls_left=max(0, task.spec.max_iterations * MODEL_CALLS_PER_ITERATION - status.usage.calls),
        cluster_scope=task.cluster_scope,
        task_name=task.name,
        task_uid=task.uid,
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
    refused = refused_changes(result)
    if result.outcome == "answer" and refused:
        # The model may say it is done, but nothing it meant to change was even proposed: not a success.
        why = f"every change the model tried was refused, nothing was proposed: {'; '.join(refused)}"
        task.status = status.model_copy(update={"summary": cap(f"{why}\n{result.summary}", SUMMARY_CAP)})
        await task.move("Failed", "ChangesRefused", why[:1000], "Warning")
        return
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
        reason = (
            "ModelFailed" if result.failure == "model" else "ChangesRefused" if refused else "PlanningFailed"
        )
        task.status = status.model_copy(update={"summary": cap(why, SUMMARY_CAP)})
        await task.move("Failed", reason, why, "Warning")
        return
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
    task.status = status.model_copy(
        update={
            "proposal": proposal,
            "summary": summary,
            "steps": [*status.steps, *proposal_records(proposal)],
            "pending_steps": len(proposal.steps),
        }
    )
    steps_text = "; ".join(f"{s.id}: {s.tool} {canonical_json(s.args)}" for s in proposal.steps)
    task.note("Normal", "Planned", f"revision {revision}: {len(proposal.steps)} step(s): {steps_text}")
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


def _grant_name(task: Task, plan_hash: str, approver: UserRef) -> str:
    """One name per task, hash and approver: a crash between creating the grant and removing the
    annotation finds the same grant again, and two people approving by annotation get two grants. The
    task's name is cut so that the result is a valid name whatever the task is called."""
    prefix = task.name[:200].rstrip(".-")
    digest = hashlib.sha256(f"{task.uid}|{plan_hash}|{approver.user}".encode()).hexdigest()[:16]
    return f"{prefix}-approve-{digest}"


async def _take_annotation_approval(task: Task) -> None:
    """``approve=true`` becomes an ApprovalGrant for exactly the hash admission stamped beside it.

    The stamped hash is the proposal the annotating person could see when they set it ('' when none was
    awaiting approval, or when the annotation came in the task's own YAML, which admission strips). An
    annotation whose hash is not the current proposal's approves nothing and is reported. Either way the
    annotation and its stamps are removed, but only while they still say what was read, so an approval
    set meanwhile is never lost."""
    approval = ids.annotation_approval(task.body["metadata"])
    if approval is None:
        return
    deps, proposal = task.deps, task.status.proposal
    approver = approval.approver if deps.identity_trusted else None
    awaiting = proposal if task.status.phase == "AwaitingApproval" else None
    why: str | None = None
    if approver is None:
        why = "the annotating user was not stamped at admission (install crds/identity-policy.yaml)"
    elif approval.value.lower() not in APPROVE_VALUES:
        why = f"approve={approval.value} is not true"
    elif not approval.plan_hash:
        why = (
            f"{approver.user} set it while no proposal was awaiting approval (or it came with the task's "
            "YAML), so it approves nothing; review the proposal once shown and set approve=true again"
        )
    elif awaiting is None or approval.plan_hash != awaiting.hash:
        now_shown = (
            f"the proposal awaiting approval is revision {awaiting.revision} ({awaiting.hash})"
            if awaiting
            else "no proposal is awaiting approval"
        )
        why = (
            f"{approver.user} approved {approval.plan_hash}, but {now_shown}; an approval approves only the "
            "proposal its author saw: review the current one and approve it"
        )
    elif awaiting is not None:
        await deps.store.create_grant(
            task.namespace, _annotation_grant(task, approver, awaiting, approval.value)
        )
    stamps = (ids.APPROVE_ANNOTATION, *ids.APPROVAL_STAMPS)
    expected = {key: value for key, value in task.annotations.items() if key in stamps}
    task._adopt(await deps.store.remove_task_annotations(task.namespace, task.name, expected))
    if why is not None:
        await task.emit("Warning", "ApprovalIgnored", f"approve annotation ignored: {why}")


def _annotation_grant(task: Task, approver: UserRef, proposal: Proposal, value: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ApprovalGrant",
        "metadata": {
            "name": _grant_name(task, proposal.hash, approver),
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
            "reason": f"kubectl annotate agenttask {task.name} approve={value} "
            f"(revision {proposal.revision})",
        },
    }


async def _grant_facts(task: Task, grant: dict[str, Any]) -> GrantFacts:
    """Who decided a grant (as admission stamped it) and, for annotation approvals, RBAC's answer."""
    deps = task.deps
    approver, via_annotation = (
        ids.grant_origin(grant["metadata"], deps.operator_identity)
        if deps.identity_trusted
        else (None, False)
    )
    may_create = True
    if via_annotation and approver is not None:
        may_create = await deps.store.may_create_grants(ids.as_identity(approver), task.namespace)
    return GrantFacts(grant, approver, via_annotation, may_create)


async def _grants_of(task: Task) -> list[dict[str, Any]]:
    grants = await task.deps.store.list_grants(task.namespace)
    return [g for g in grants if ((g.get("spec") or {}).get("taskRef") or {}).get("name") == task.name]


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
    policy: ApprovalPolicy | None = None
    for grant in await _grants_of(task):
        meta, spec = grant["metadata"], grant.get("spec") or {}
        if (grant.get("status") or {}).get("state") or already_considered(task.status, meta["name"]):
            continue
        policy = policy or await _policy(task)
        facts = await _grant_facts(task, grant)
        approver = facts.approver
        now = deps.now()
        verdict = judge_grant(
            grant,
            task_name=task.name,
            task_uid=task.uid,
            namespace=task.namespace,
            phase=task.status.phase,
            proposal=task.status.proposal,
            requester=task.requester_ref,
            approver=approver,
            via_annotation=facts.via_annotation,
            may_create_grants=facts.may_create_grants,
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
            task.note(
                "Warning",
                "GrantRejected",
                f"grant {meta['name']} by {who}: {verdict.reason}: {verdict.message}",
            )
            await task.write()
        elif not outcome.complete:
            counted = [u.user for u in outcome.counted()]
            excluded = [who, *counted]
            if policy.four_eyes:
                excluded.append(task.requester.user)
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
            task.note("Normal", "ApprovalCounted", f"{who} approved (grant {meta['name']}): {waiting}")
            await task.write()
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
    waited = deps.now() - proposal.created_at
    if waited > timedelta(seconds=deps.config.approval_timeout_seconds):
        task.status = skip_remaining(task.status, "nobody decided in time", deps.now())
        await task.move(
            "Expired", "Expired", f"no decision within {deps.config.approval_timeout_seconds:g}s", "Warning"
        )
        return True
    return False


def _authorizer(task: Task) -> Authorize:
    """The executor's check before each call: the grants, not the status, say whether a step may run."""
    deps = task.deps

    async def check(step: ProposedStep) -> str | None:
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
        facts = [await _grant_facts(task, grant) for grant in await _grants_of(task)]
        outcome = authorize(
            facts,
            task_name=task.name,
            task_uid=task.uid,
            namespace=task.namespace,
            proposal=proposal,
            requester=requester,
            policy=await _policy(task),
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

    return check


async def _execute(task: Task) -> None:
    deps = task.deps
    execution = await _execution(task)
    if execution.problem is not None:
        result = ExecutionResult(task.status, False, "ExecutionIdentityInvalid", execution.problem)
    else:
        result = await execute(
            task.status,
            task_uid=task.uid,
            gateway=deps.gateway,
            identity=execution.identity,
            authorize=_authorizer(task),
            write=task.write,
            emit=task.note_async,
            now=deps.now,
            timeout=deps.config.tool_timeout_seconds,
            on_behalf_of=task.requester.user if execution.service_account else None,
        )
    task.status = result.status
    await _spend_grants(task)
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
    if result.reason == "ToolFailed" and task.status.iteration < task.spec.max_iterations:
        # Like a failed verification: the rest of the proposal is recorded as not run, the failure goes
        # back to the planner with the history, and whatever it proposes next needs a new approval.
        await _replan(task, f"step failed during execution: {result.message}")
        return
    await task.move("Failed", result.reason, result.message, "Warning")


async def _spend_grants(task: Task) -> None:
    """Execution of this revision is over (done or stopped): its grants approve nothing more. Written
    before the task leaves Executing, so a crash in between only repeats this."""
    proposal = task.status.proposal
    if proposal is None:
        return
    for grant in await _grants_of(task):
        spec, status = grant.get("spec") or {}, grant.get("status") or {}
        if spec.get("planHash") == proposal.hash and not status.get("executedAt"):
            await task.deps.store.mark_grant_executed(
                task.namespace, grant["metadata"]["name"], task.deps.now()
            )


async def _replan(task: Task, why: str) -> None:
    """Back to planning for the next iteration (the caller checked that one is left)."""
    task.status = task.status.model_copy(update={"iteration": task.status.iteration + 1})
    await task.move("Planning", "Replanning", f"iteration {task.status.iteration}: replanning after: {why}")


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
    task.note("Warning", "VerificationFailed", message)
    await _replan(task, message)


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
    await task.move("Planning", "Planning", f"planning the request of {requester.user}")
    return True


async def reconcile_task(body: dict[str, Any], deps: Deps) -> float | None:
    """Advance one task as far as it can go now. Returns seconds until it wants to be looked at again
    (tool server down, TTL), or None. Raises ``TaskConflict`` when the task changed under it: the caller
    reads it again and starts over."""
    status = AgentTaskStatus.model_validate(body.get("status") or {})
    spec = AgentTaskSpec.model_validate(body.get("spec") or {})
    task = Task(body, spec, status, deps)
    await task.post_pending()
    if is_final(status):
        return await _finished(task)
    if task.annotations.get(CANCEL_ANNOTATION, "").lower() in CANCEL_VALUES:
        task.status = skip_remaining(task.status, "cancelled", deps.now())
        await task.move("Cancelled", "Cancelled", "cancelled by annotation cancel=true", "Warning")
        await _close_grants(task)
        await _release_sealed(task)
        return await _finished(task)
    if status.phase in (None, "Pending") and not await _start(task):
        return await _finished(task)
    await _take_annotation_approval(task)
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
        return deps.config.sweep_seconds
    await _close_grants(task)
    await _release_sealed(task)
    return await _finished(task)


async def _release_sealed(task: Task) -> None:
    """Delete the Secrets holding the task's sealed values once it is finished (what was approved ran, or
    never will), as the identity that sealed them. When that fails they stay, owned by the task, until the
    task is deleted; an Event says so."""
    if task.requester_ref is None:
        return
    execution = await _execution(task)
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


async def _reject_grant(
    deps: Deps, grant: dict[str, Any], verdict: GrantVerdict, task_uid: str | None
) -> None:
    """Tell a grant's author that it decided nothing and why (the grant's status is all they watch)."""
    meta = grant["metadata"]
    approver = ids.approver_of(meta, deps.operator_identity) if deps.identity_trusted else None
    await deps.store.write_grant_status(
        meta["namespace"],
        meta["name"],
        grant_status(
            verdict,
            approver=approver,
            task_uid=task_uid,
            revision=None,
            generation=meta.get("generation"),
            now=deps.now(),
        ),
    )


def _finished_verdict(task_name: str, phase: str | None) -> GrantVerdict:
    return GrantVerdict(
        False,
        "TaskFinished",
        f"AgentTask {task_name} is {phase}: it awaits no approval any more, so this grant approved nothing; "
        "create a new task for new work",
    )


async def _close_grants(task: Task) -> None:
    """Once a task is finished, the grants it never considered are answered, not left without a status."""
    if not is_final(task.status):
        return
    for grant in await _grants_of(task):
        name = grant["metadata"]["name"]
        if (grant.get("status") or {}).get("state") or already_considered(task.status, name):
            continue
        with contextlib.suppress(KubeError):
            await _reject_grant(task.deps, grant, _finished_verdict(task.name, task.status.phase), task.uid)


async def touch_for_grant(grant: dict[str, Any], deps: Deps) -> None:
    """A new grant wakes its task at once (annotation change -> the task's update handler); a grant for a
    task that does not exist or has finished is answered at once."""
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
        await _reject_grant(deps, grant, verdict, None)
        return
    phase = (task.get("status") or {}).get("phase")
    if phase in TERMINAL_PHASES:
        await _reject_grant(deps, grant, _finished_verdict(task_name, phase), task["metadata"]["uid"])
        return
    await deps.store.annotate_task(meta["namespace"], task_name, {GRANT_SEEN: meta["name"]})
