"""kopf wiring, kept thin: task events hand the object to ``bosun.reconcile``, grant events to
``bosun.steps.approve``; ``build_registry`` registers them.

Bosun uses kopf's watches, its event handlers and its indexes, and none of its per-object bookkeeping:
status is written by the reconcile itself (it needs confirmed writes between tool calls), so kopf stores
no progress, no last-handled configuration and no finalizer on any object — no extra write per task, and
``kubectl delete`` never waits for the operator. ``wants_reconcile`` decides from each watch event whether
the task needs work: when it is new or first seen (creation, operator start, a re-listing), and when its
``approve`` or ``cancel`` annotation is set; the operator's own status writes wake nothing. The event's
object is reconciled as it came (every status write is conditional on its resourceVersion, so a stale one
only costs a fresh read). A grant's creation reconciles its task directly. The sweep runs every
``BOSUN_SWEEP_SECONDS`` over tasks that are unfinished or wait for their TTL (retries after a tool-server
outage, approval expiry, TTL), listing them a page at a time; it is a plain loop, not a kopf timer, because
kopf puts a finalizer on every object a timer watches (and runs an asyncio task per object for it).
Handlers never raise: a reconcile that cannot finish records why in the task's conditions and the sweep
looks again.

Two indexes (``Watched``) spare a request per lookup: the ``bosun.dev/`` annotations of every Namespace
(approval policy, execution ServiceAccount) and the names of the grants naming each task. A third counts
the watched tasks by phase for the ``bosun_tasks`` gauge (``bosun.metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import kopf
from bosun_tools import logs
from bosun_tools.client.kube import KubeClient, KubeError
from bosun_tools.tracing import active as active_tracing

from bosun import tracing
from bosun.api.models import API_VERSION, GROUP, TERMINAL_PHASES, VERSION
from bosun.config import OperatorConfig
from bosun.core.identity import APPROVE_ANNOTATION
from bosun.core.words import is_true
from bosun.health import Health, Started
from bosun.metrics import active as active_metrics
from bosun.metrics import record_reconcile_error
from bosun.ports.gateway import ToolGateway
from bosun.ports.store import TaskConflict
from bosun.reconcile import CANCEL_ANNOTATION, reconcile_task
from bosun.steps.approve import task_of_grant
from bosun.steps.task import Deps, Watched

if TYPE_CHECKING:
    from bosun.notify.sender import Notifier

log = logging.getLogger("bosun")


def _gateway(config: OperatorConfig, kube: KubeClient) -> ToolGateway:
    """A separate tool server when one is configured (its MCP client is imported only then), else the
    tools in this process, sharing the operator's client ``kube`` (its pool, its discovery) unless they
    are told to use another kubeconfig context."""
    if config.tools_url and config.tools_token:
        from bosun.ports.mcp_tools import over_http

        return over_http(config.tools_url, config.tools_token)
    from bosun_tools.settings import ToolSettings

    settings = ToolSettings.from_env()
    return ToolGateway.in_process(settings, kube=kube if settings.context is None else None)


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff-base ("last handled configuration") for an operator without change handlers: none.
    kopf builds an object's essence on every watch event, a deep copy of the whole object, to tell its
    change handlers what changed; Bosun has only event handlers and indexes, which never read it, and its
    own status writes are watch events too. Nothing is ever stored (kopf stores a diff-base only after
    change handlers ran)."""

    def build(
        self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None
    ) -> kopf.BodyEssence:
        return {}

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


WORKER_IDLE_SECONDS = 1.0
"""How long kopf keeps an object's worker (an asyncio task and its queue) once the object's events are
handled; the next event starts a new one. kopf's default, 5 s, costs memory per recently active task: the
idle worker holds its last watch event, the whole object as parsed JSON. Bosun keeps nothing in a worker
(no change handlers, no patches for kopf to wait on), so a shorter wait only means a new asyncio task for an
event that comes later."""


GC_THRESHOLDS = (10_000, 10, 10)
"""Allocations between two collections of the youngest generation, and collections of each generation
between two of the next (CPython's defaults: 700, 10, 10)."""


def collect_garbage_less() -> None:
    """Once everything is loaded and wired: what exists now (modules, kopf, the tools' registry, pydantic's
    schemas: about 100,000 objects) is kept out of every later garbage collection (``gc.freeze``), and the
    youngest generation is collected after ``GC_THRESHOLDS[0]`` allocations instead of 700. Each watch event
    and API answer is parsed into thousands of objects, almost all freed by reference counting within the
    reconcile; collected every 700 allocations they were traversed again and again, and a full collection
    traversed everything loaded at start: about 1 ms of CPU per task (``make bench``), now about 0.1."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _notifier(config: OperatorConfig) -> Notifier | None:
    """The notification sinks' sender, when any sink is configured; its HTTP client is imported only then
    (httpx costs every start about 50 ms)."""
    if not config.notify.sinks:
        return None
    from bosun.notify.sender import Notifier

    return Notifier.start(config.notify, annotation_approvals=config.approval.annotation_approvals)


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **indexes: Any) -> None:
    """Wire the reconcile's dependencies from what ``bosun.__main__`` checked before kopf started (the
    credentials work, the CRDs are served, the RBAC holds, the identity policies are installed). kopf
    hands its indexes to every handler as keyword arguments named after them."""
    settings.peering.standalone = True
    settings.posting.reporting_component = "bosun"
    settings.persistence.diffbase_storage = NoDiffBase()
    settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    started: Started = memo["started"]
    config: OperatorConfig = memo["config"]
    notifier = _notifier(config)
    memo["notifier"] = notifier
    metrics = active_metrics()
    if metrics is not None:
        metrics.tasks.index = indexes["task_phases"]
    deps = Deps(
        store=started.store,
        gateway=_gateway(config, started.kube),
        config=config,
        operator_identity=started.identity,
        identity_trusted=True,  # the startup checks refuse to go on while the policies are missing
        watched=Watched(indexes["namespace_annotations"], indexes["grant_names"]),
        phase_observers=((notifier.observe,) if notifier else ())
        + ((metrics.observe_phase,) if metrics else ())
        + ((tracing.observe_phase,) if active_tracing() else ()),
    )
    memo["deps"] = deps
    memo["sweeper"] = asyncio.create_task(_sweep(deps, memo["health"]))
    collect_garbage_less()
    log.info(
        "bosun operator as %s; model %s; tools %s; namespaces %s",
        started.identity.user,
        config.model.model if config.model else "none (offline planner)",
        config.tools_url or "in-process",
        ",".join(config.namespaces) or "all",
    )


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    sweeper = memo.get("sweeper")
    if sweeper is not None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    deps: Deps | None = memo.get("deps")
    if deps is not None:
        await deps.gateway.aclose()
    notifier: Notifier | None = memo.get("notifier")
    if notifier is not None:
        await notifier.stop()


RECONCILE_ATTEMPTS = 5
"""Fresh reads after ``TaskConflict`` before a reconcile is left to the next event or sweep."""


async def _run(
    deps: Deps,
    namespace: str,
    name: str,
    uid: str,
    *,
    wait: bool = True,
    seen: dict[str, Any] | None = None,
) -> None:
    """Reconcile one task from a fresh read, and again from a fresh read whenever it changed meanwhile.

    Never raises: an API outage or a bug in one task is logged (and posted as an Event when the task could
    be read) and left to the sweep, so kopf never retries a half-done reconcile on its own. Every line
    logged meanwhile names the task (``bosun_tools.logs.about``). ``seen`` is the task as a watch event
    or a listing delivered it: the first attempt starts from it instead of reading the task again."""
    with logs.about(apiVersion=API_VERSION, kind="AgentTask", namespace=namespace, name=name, uid=uid):
        await _reconcile(deps, namespace, name, uid, wait=wait, seen=seen)


async def _reconcile(
    deps: Deps, namespace: str, name: str, uid: str, *, wait: bool, seen: dict[str, Any] | None
) -> None:
    async with deps.locked(uid, wait=wait) as got:
        if not got:
            return
        async with deps.slots:
            await _reconcile_from(deps, namespace, name, uid, seen)


async def _reconcile_from(
    deps: Deps, namespace: str, name: str, uid: str, seen: dict[str, Any] | None
) -> None:
    body: dict[str, Any] | None = None
    try:
        for _ in range(RECONCILE_ATTEMPTS):
            body, seen = seen or await deps.store.get_task(namespace, name), None
            if body is None or body["metadata"]["uid"] != uid:
                return
            try:
                await reconcile_task(body, deps)
                return
            except TaskConflict as exc:
                log.info("%s; reconciling again from a fresh read", exc)
        log.warning("agenttask %s/%s kept changing under this operator; the sweep retries", namespace, name)
    except Exception as exc:
        log.exception("reconcile of agenttask %s/%s failed; the sweep retries", namespace, name)
        record_reconcile_error(exc)
        if body is not None:
            with contextlib.suppress(Exception):
                await deps.store.post_event(body, "Warning", "ReconcileError", f"{type(exc).__name__}: {exc}")


def _due(body: Mapping[str, Any]) -> bool:
    """Whether a task still needs looking at: unfinished, or finished and waiting for its TTL."""
    status = body.get("status") or {}
    if status.get("phase") not in TERMINAL_PHASES:
        return True
    return (body.get("spec") or {}).get("ttlSecondsAfterFinished") is not None


async def _recheck_policies(deps: Deps, health: Health) -> None:
    """Trust admission's stamps only while the identity policies are still installed: a ``helm upgrade
    --set identityPolicies.install=false`` or a deleted binding must not leave a running operator trusting
    annotations any client could now write. Missing policies make tasks fail ``RequesterUnknown`` (fail
    closed) and the pod unready until they are back."""
    try:
        missing = await deps.store.missing_policies()
    except (KubeError, OSError) as exc:
        # An API blip says nothing about the policies; a task failed for it could not be run again.
        log.warning("could not check the identity admission policies (%s); the next check does", exc)
        return
    trusted = not missing
    if trusted != deps.identity_trusted:
        deps.identity_trusted = trusted
        if trusted:
            log.info("identity admission policies are installed again; requesters and approvers are trusted")
            health.problem = None
        else:
            health.problem = (
                f"the identity admission policies went missing ({', '.join(missing)}): requesters and "
                "approvers are not trusted (tasks fail RequesterUnknown); install them again (kubectl apply "
                "-f crds/identity-policy.yaml, or the chart with identityPolicies.install=true)"
            )
            log.error("%s", health.problem)


async def _sweep(deps: Deps, health: Health) -> None:
    """The safety net: retries after a tool-server outage, approval expiry, TTL, missed events; and the
    identity policies, looked at again each time."""
    namespaces: list[str | None] = list(deps.config.namespaces) or [None]
    while True:
        await asyncio.sleep(deps.config.sweep_seconds)
        await _recheck_policies(deps, health)
        for namespace in namespaces:
            await _sweep_namespace(deps, namespace)


SWEEP_PAGE = 50
"""Tasks per page of the sweep's listing. The sweep holds one page at a time, never every task of the
namespace: parsed, a task takes about as much memory as its JSON (6 KiB in ``make bench``), and while an
answer is parsed its bytes and their decoded text are held as well. A whole listing of 500 tasks was 8 MiB
of RSS that the process kept, and the sweep held the last listing until its next pass."""


async def _sweep_namespace(deps: Deps, namespace: str | None) -> None:
    """Reconcile every due task of ``namespace`` (None: every namespace), each from the body the listing
    gave, one page after the other. The pages of one listing come from one snapshot while its continue
    token lives, until etcd compacts that revision (kube-apiserver compacts every 5 minutes). When slow
    reconciles outlast it, the listing starts again from the first page and skips the tasks this pass
    already reconciled, so each task listed is still looked at once per pass."""
    swept: set[str] = set()
    after: str | None = None
    while True:
        try:
            page, after = await deps.store.task_page(namespace, SWEEP_PAGE, after)
        except (KubeError, OSError) as exc:
            expired = isinstance(exc, KubeError) and exc.status == 410 and after is not None
            if not expired:
                log.exception("sweep could not list agenttasks")
                return
            log.info("the sweep's listing of agenttasks expired (%s); listing them again", exc)
            after = None
            continue
        for body in page:
            meta = body["metadata"]
            if meta["uid"] in swept or not _due(body):
                continue
            swept.add(meta["uid"])
            await _run(deps, meta["namespace"], meta["name"], meta["uid"], wait=False, seen=body)
        if after is None:
            return


def wants_reconcile(event_type: str | None, body: Mapping[str, Any]) -> bool:
    """Whether a watch event of a task calls for a reconcile (see the module docstring). ``None`` is kopf's
    type for an object found by listing (operator start, a re-listing after the watch expired)."""
    if event_type == "DELETED":
        return False
    if event_type in (None, "ADDED"):
        return _due(body)
    meta = body.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    phase = (body.get("status") or {}).get("phase")
    if APPROVE_ANNOTATION in annotations:
        return True
    if phase in (None, "Pending"):
        return True
    return phase not in TERMINAL_PHASES and is_true(annotations.get(CANCEL_ANNOTATION, ""))


def task_event_wanted(event: kopf.RawEvent, **_: Any) -> bool:
    """kopf's ``when=`` filter: an event nothing is done for is not even handed to a handler."""
    return wants_reconcile(event.get("type"), event["object"])


def grant_event_wanted(event: kopf.RawEvent, **_: Any) -> bool:
    """A grant that is new or first seen, and not yet answered, wakes its task."""
    answered = (event["object"].get("status") or {}).get("state")
    return event.get("type") in (None, "ADDED") and not answered


async def on_task_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    body = event["object"]
    meta = body["metadata"]
    await _run(memo["deps"], meta["namespace"], meta["name"], meta["uid"], seen=copy.deepcopy(dict(body)))


# The index handlers are coroutines although they never wait: kopf runs a plain function in a worker thread
# (an executor hop, a shielded task and two wake-ups per call) and a coroutine in the event loop, and they run
# on every watch event of their kind.


async def index_namespace_annotations(name: str, annotations: kopf.Annotations, **_: Any) -> dict[str, Any]:
    return {name: {k: v for k, v in annotations.items() if k.startswith(f"{GROUP}/")}}


async def index_task_phases(status: kopf.Status, **_: Any) -> dict[str, str | None]:
    """Each task under its phase (Pending before the operator first wrote it), with when its proposal was
    written: ``bosun_tasks{phase}`` and the age of the oldest proposal awaiting approval."""
    return {status.get("phase") or "Pending": (status.get("proposal") or {}).get("createdAt")}


async def index_grant_names(namespace: str | None, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    task = (spec.get("taskRef") or {}).get("name")
    return {(namespace, task): name} if task else {}


async def on_grant_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    body = event["object"]
    deps: Deps = memo["deps"]
    try:
        task = await task_of_grant(copy.deepcopy(dict(body)), deps)
    except Exception:
        # Handlers never raise (see the module docstring); the sweep judges the grant with its task.
        log.exception("could not hand grant %s to its task; the sweep picks it up", body["metadata"]["name"])
        return
    if task is not None:
        await _run(deps, *task)


def build_registry() -> kopf.OperatorRegistry:
    """Every handler of the operator, in a registry of its own (kopf's login included)."""
    registry = kopf.OperatorRegistry()
    # kopf's own login through the kubernetes client's loaders (kubeconfig with exec plugins and OIDC,
    # in-cluster), as kopf's default registry would install it.
    kopf.on.login(registry=registry, errors=kopf.ErrorsMode.IGNORED)(kopf.login_via_client)
    kopf.on.startup(id="bosun-startup", registry=registry)(startup)
    kopf.on.cleanup(id="bosun-cleanup", registry=registry)(cleanup)
    grants = (GROUP, VERSION, "approvalgrants")
    kopf.index("", "v1", "namespaces", id="namespace_annotations", registry=registry)(
        index_namespace_annotations
    )
    kopf.index(*grants, id="grant_names", registry=registry)(index_grant_names)
    tasks = (GROUP, VERSION, "agenttasks")
    kopf.index(*tasks, id="task_phases", registry=registry)(index_task_phases)
    kopf.on.event(*tasks, id="task", when=task_event_wanted, registry=registry)(on_task_event)
    kopf.on.event(*grants, id="grant", when=grant_event_wanted, registry=registry)(on_grant_event)
    return registry
