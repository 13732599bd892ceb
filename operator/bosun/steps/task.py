"""One reconcile's view of a task, and what every phase looks up about it.

``Task`` holds the object as the API server last returned it and writes its status, conditionally on
that version, together with the Events that report the change. The lookups below (who executes, which
policy applies, which grants exist) are looked up again in every phase rather than remembered, because the
Namespaces and grants they come from may change while a task waits: Namespace annotations from the
operator's watch of Namespaces (as fresh as the watch, no request), grants by name from the watch of
grants and then each read fresh, because whether a grant is spent must never come from a cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bosun_tools.identity import Identity

from bosun.api.models import (
    EVENT_MESSAGE_CAP,
    MAX_PENDING_EVENTS,
    TERMINAL_PHASES,
    AgentTaskSpec,
    AgentTaskStatus,
    PendingEvent,
    TaskPhase,
    UserRef,
    one_line,
)
from bosun.api.models import now as utcnow
from bosun.config import OperatorConfig
from bosun.core import identity as ids
from bosun.core.approval import GrantFacts
from bosun.core.approval_policy import ApprovalPolicy, strictest
from bosun.core.follow_up import FollowUp, Refusal
from bosun.core.identity import ExecutionChoice
from bosun.core.phases import transition
from bosun.core.proposals import grants_for, history_lines
from bosun.core.status_bounds import bound_status
from bosun.planner import MODEL_CALLS_PER_ITERATION, PlanningContext
from bosun.ports.gateway import ToolGateway
from bosun.ports.store import Store, TaskConflict

WRITE_ATTEMPTS = 5
"""Conflicting writes re-applied from fresh state (``rebase``) before the reconcile starts over."""

Rebase = Callable[[AgentTaskStatus], AgentTaskStatus | None]
"""Re-applies one change to a freshly read status after a conflict; None when it no longer applies."""

PhaseObserver = Callable[[Mapping[str, Any], AgentTaskStatus], None]
"""Told the task as stored (body, status) after a status write that changed the phase or wrote a new
proposal: only the one writer whose conditional write made the change is told, and reading a task tells
nobody (``bosun.notify`` builds its guarantee on this). Must neither raise nor wait."""


def _milestone(body: Mapping[str, Any]) -> tuple[Any, Any]:
    """What observers are told about when it changes: the phase, and the proposal's hash."""
    status = body.get("status") or {}
    return status.get("phase"), (status.get("proposal") or {}).get("hash")


class PostedEvents:
    """The pending Events (``status.pendingEvents``) this process has posted, by task UID and Event id, so
    that a reconcile of a task whose stored status still records them (a task awaiting approval keeps its
    last write's entries until its next write, and the sweep looks at it every ``BOSUN_SWEEP_SECONDS``)
    does not post each again only to be answered 409 AlreadyExists. Only a post that succeeded is
    remembered, and only the newest ``limit``: one forgotten, or a restart, costs a post answered 409
    (the Event's name is derived from its id), never a second Event."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._keys: dict[str, None] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def add(self, key: str) -> None:
        self._keys[key] = None
        if len(self._keys) > self.limit:
            del self._keys[next(iter(self._keys))]


@dataclass(frozen=True)
class Watched:
    """kopf's in-memory indexes, filled by the operator's watches before any handler runs.

    ``namespace_annotations``: Namespace name -> its ``bosun.dev/`` annotations (one entry per Namespace).
    ``grant_names``: (namespace, task name) -> the names of the ApprovalGrants naming that task."""

    namespace_annotations: Mapping[str, Collection[Mapping[str, str]]]
    grant_names: Mapping[tuple[str, str], Collection[str]]


@dataclass
class Deps:
    """What a reconcile needs; built once at operator start."""

    store: Store
    gateway: ToolGateway
    config: OperatorConfig
    operator_identity: Identity | None
    identity_trusted: bool
    now: Callable[[], datetime] = utcnow
    watched: Watched | None = None
    """What the operator's watches know (None outside kopf, e.g. in tests: then everything is read)."""
    phase_observers: tuple[PhaseObserver, ...] = ()
    """Told of every phase change this process writes (the notifications, ``bosun.notify``)."""
    slots: asyncio.Semaphore = field(init=False)
    """``config.parallel_tasks`` reconciles at once, the rest wait (see ``OperatorConfig.parallel_tasks``)."""
    locks: weakref.WeakValueDictionary[str, asyncio.Lock] = field(default_factory=weakref.WeakValueDictionary)
    """One lock per task UID, kept only while a reconcile holds or awaits it: held weakly, so a finished
    or deleted task leaves no lock behind in a long-running operator."""
    posted: PostedEvents = field(default_factory=PostedEvents)
    """The pending Events this process posted (``Task.post_pending``)."""

    def __post_init__(self) -> None:
        self.slots = asyncio.Semaphore(self.config.parallel_tasks)

    @contextlib.asynccontextmanager
    async def locked(self, uid: str, *, wait: bool = True) -> AsyncIterator[bool]:
        """Keeps two reconciles (an event, the sweep) from working on one task at once; with
        ``wait=False`` yields False instead of waiting when one already is."""
        lock = self.locks.setdefault(uid, asyncio.Lock())
        if not wait and lock.locked():
            yield False
            return
        async with lock:
            yield True


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
    previewed: bool = False
    """A planning pass of this reconcile previewed changes, so holding Secrets may have sealed values of
    them even when nothing was proposed (a plan too large)."""
    follow_up: FollowUp | Refusal | None = None
    """The task ``spec.followUpOf`` names as this reconcile read it (``bosun.steps.follow_up``), or why it
    cannot be followed up; None until read."""

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

    def adopt(self, body: dict[str, Any]) -> None:
        """Continue from ``body``, the object as the API server returned it."""
        self.body = body
        self.status = AgentTaskStatus.model_validate(body.get("status") or {})

    # ----- writing ---------------------------------------------------------------------------------------

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
            was = _milestone(self.body)
            try:
                body = await deps.store.write_task_status(
                    self.namespace, self.name, written, str(self.body["metadata"]["resourceVersion"])
                )
            except TaskConflict:
                fresh = await deps.store.get_task(self.namespace, self.name)
                if fresh is None or fresh["metadata"]["uid"] != self.uid:
                    raise
                decided_on = self.body.get("status")
                self.adopt(fresh)
                if fresh.get("status") == decided_on:
                    continue
                rebased = rebase(self.status) if rebase else None
                if rebased is None:
                    raise
                wanted = bound_status(rebased)
                continue
            self.adopt(body)
            self.unsent = []
            if _milestone(body) != was:
                for observe in deps.phase_observers:
                    observe(self.body, self.status)
            await self.post_pending()
            return self.status
        raise TaskConflict(f"agenttask {self.namespace}/{self.name} kept changing; starting over")

    def note(self, type_: str, reason: str, message: str) -> None:
        """An Event to be recorded by the next status write and posted right after it: the change and
        its report are one write, so a crash in between loses neither and posts nothing twice."""
        self.unsent.append(
            PendingEvent(
                id=uuid.uuid4().hex[:16],
                type="Warning" if type_ == "Warning" else "Normal",
                reason=reason,
                message=one_line(message, EVENT_MESSAGE_CAP),
                at=datetime.now(UTC),
            )
        )

    async def emit(self, type_: str, reason: str, message: str) -> None:
        """An Event on its own: noted, recorded with a status write, posted."""
        self.note(type_, reason, message)
        await self.write()

    async def post_pending(self) -> None:
        """Post the Events the stored status records as pending; their derived names make a second post
        of the same entry (after a crash) a no-op. The next write drops them from the stored status; until
        then a reconcile of this process does not post again those it posted (``PostedEvents``)."""
        posted = self.deps.posted
        for event in self.status.pending_events:
            key = f"{self.uid}/{event.id}"
            if key in posted:
                continue
            if await self.deps.store.post_event(
                self.body, event.type, event.reason, event.message, event_id=event.id, at=event.at
            ):
                posted.add(key)
        self.status = self.status.model_copy(update={"pending_events": []})

    def stage(self, to: TaskPhase, reason: str, message: str) -> None:
        """Enter phase ``to`` without writing it: the next write records the phase that follows. For a
        phase that lasts milliseconds, one status write (one row in ``kubectl get -w``) and one Event
        instead of two of each."""
        self.status = transition(
            self.status, to, reason=reason, message=message, generation=self.generation, now=self.deps.now()
        )

    async def move(self, to: TaskPhase, reason: str, message: str, event_type: str = "Normal") -> None:
        self.stage(to, reason, message)
        self.note(event_type, reason, message)
        await self.write()

    async def replan(self, why: str) -> None:
        """Back to planning for the next iteration (the caller checked that one is left)."""
        self.status = self.status.model_copy(update={"iteration": self.status.iteration + 1})
        await self.move(
            "Planning", "Replanning", f"iteration {self.status.iteration}: replanning after: {why}"
        )

    # ----- looked up again in every phase -----------------------------------------------------------------

    async def namespace_annotations(self) -> dict[str, dict[str, str]]:
        """The Namespace annotations of the task's namespace and of every namespace it may change: from the
        watch of Namespaces, or read when the watch has not seen one (not yet, or it does not exist)."""
        store, watched = self.deps.store, self.deps.watched
        found: dict[str, dict[str, str]] = {}
        for ns in dict.fromkeys([self.namespace, *self.targets]):
            seen = watched.namespace_annotations.get(ns) if watched is not None else None
            found[ns] = dict(next(iter(seen))) if seen else await store.namespace_annotations(ns)
        return found

    async def execution(self) -> ExecutionChoice:
        """Who runs the approved calls, decided again in every phase from the Namespaces' current settings."""
        return ids.execution_identity(
            self.requester,
            self.namespace,
            self.deps.config.execution_service_account,
            await self.namespace_annotations(),
        )

    def planning_context(self, execution: ExecutionChoice, follow_up: str | None = None) -> PlanningContext:
        """The model's context, rebuilt from ``.status`` every time (no LangGraph checkpoints in etcd);
        ``follow_up``: what it is told of the earlier tasks this one follows up."""
        status = self.status
        return PlanningContext(
            follow_up=follow_up,
            request=self.spec.request,
            namespace=self.namespace,
            target_namespaces=self.targets,
            identity=self.requester,
            iteration=status.iteration,
            max_iterations=self.spec.max_iterations,
            history=history_lines(status),
            executor=execution.identity if execution.service_account else None,
            model_calls_left=max(
                0, self.spec.max_iterations * MODEL_CALLS_PER_ITERATION - status.usage.calls
            ),
            cluster_scope=self.cluster_scope,
            task_name=self.name,
            task_uid=self.uid,
        )

    async def policy(self) -> ApprovalPolicy:
        """The strictest policy of the task's namespace and of every namespace it may change."""
        approval = self.deps.config.approval
        found = await self.namespace_annotations()
        return strictest(
            approval.for_namespace(namespace, annotations) for namespace, annotations in found.items()
        )

    async def grants(self) -> list[dict[str, Any]]:
        """The ApprovalGrants naming this task, read fresh: whether a grant is spent (``executedAt``) must
        never come from a cache, or a spent grant could approve again. The watch of grants only says which
        to read; a grant it has not seen yet is judged when its own event wakes the task."""
        store, watched = self.deps.store, self.deps.watched
        if watched is None:
            return grants_for(await store.list_grants(self.namespace), self.name)
        names = watched.grant_names.get((self.namespace, self.name)) or ()
        return grants_for(await store.get_grants(self.namespace, sorted(names)), self.name) if names else []

    async def grant_facts(self, grant: dict[str, Any]) -> GrantFacts:
        """Who decided a grant (as admission stamped it) and, for annotation approvals, RBAC's answer."""
        deps = self.deps
        approver, via_annotation = (
            ids.grant_origin(grant["metadata"], deps.operator_identity)
            if deps.identity_trusted
            else (None, False)
        )
        may_create = True
        if via_annotation and approver is not None:
            may_create = await deps.store.may_create_grants(ids.as_identity(approver), self.namespace)
        return GrantFacts(grant, approver, via_annotation, may_create)
