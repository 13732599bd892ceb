"""kopf wiring, kept thin: task handlers hand the object to ``bosun.reconcile``, grant handlers to
``bosun.steps.approve``; ``build_registry`` registers them.

A task is reconciled when it is created or resumed, when its ``approve`` or ``cancel`` annotation changes
(a kopf filter: no other annotation wakes it), when a grant for it arrives (the grant handler reconciles the
task directly), and by the sweep every ``BOSUN_SWEEP_SECONDS`` while it is unfinished or waits for its TTL
(retries after a tool-server outage, approval expiry, TTL). The sweep is a plain loop, not a kopf timer:
kopf puts a finalizer on every object a timer watches, which costs each task three more writes and would
block ``kubectl delete`` of every unfinished task whenever the operator is not running. Handlers never
raise: a reconcile that cannot finish records why in the task's conditions and the sweep looks again.
Status is written by the reconcile itself (it needs confirmed writes between tool calls), so no handler
returns a value and kopf keeps no progress in ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from bosun_tools import logs
from bosun_tools.client.kube import KubeError

from bosun.api.models import API_VERSION, GROUP, TERMINAL_PHASES, VERSION
from bosun.config import OperatorConfig
from bosun.core.identity import APPROVE_ANNOTATION
from bosun.health import Health, Started
from bosun.ports.gateway import ToolGateway
from bosun.ports.store import TaskConflict
from bosun.reconcile import CANCEL_ANNOTATION, reconcile_task
from bosun.steps.approve import task_of_grant
from bosun.steps.task import Deps

KOPF_PREFIX = f"kopf.{GROUP}"
"""kopf's own bookkeeping prefix, apart from Bosun's own ``bosun.dev/`` annotations (the identity stamps)."""

log = logging.getLogger("bosun")


def _gateway(config: OperatorConfig) -> ToolGateway:
    if config.tools_url and config.tools_token:
        return ToolGateway.over_http(config.tools_url, config.tools_token)
    from bosun_tools.settings import ToolSettings

    return ToolGateway.in_process(ToolSettings.from_env())


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Wire the reconcile's dependencies from what ``bosun.__main__`` checked before kopf started (the
    credentials work, the CRDs are served, the RBAC holds, the identity policies are installed)."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{KOPF_PREFIX}/finalizer"
    settings.peering.standalone = True
    settings.posting.reporting_component = "bosun"
    started: Started = memo["started"]
    config: OperatorConfig = memo["config"]
    deps = Deps(
        store=started.store,
        gateway=_gateway(config),
        config=config,
        operator_identity=started.identity,
        identity_trusted=True,  # the startup checks refuse to go on while the policies are missing
    )
    memo["deps"] = deps
    memo["sweeper"] = asyncio.create_task(_sweep(deps, memo["health"]))
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


RECONCILE_ATTEMPTS = 5
"""Fresh reads after ``TaskConflict`` before a reconcile is left to the next event or sweep."""


async def _run(deps: Deps, namespace: str, name: str, uid: str, *, wait: bool = True) -> None:
    """Reconcile one task from a fresh read, and again from a fresh read whenever it changed meanwhile.

    Never raises: an API outage or a bug in one task is logged (and posted as an Event when the task could
    be read) and left to the sweep, so kopf never retries a half-done reconcile on its own. Every line
    logged meanwhile names the task (``bosun_tools.logs.about``)."""
    with logs.about(apiVersion=API_VERSION, kind="AgentTask", namespace=namespace, name=name, uid=uid):
        await _reconcile(deps, namespace, name, uid, wait=wait)


async def _reconcile(deps: Deps, namespace: str, name: str, uid: str, *, wait: bool) -> None:
    async with deps.locked(uid, wait=wait) as got:
        if not got:
            return
        body: dict[str, Any] | None = None
        try:
            for _ in range(RECONCILE_ATTEMPTS):
                body = await deps.store.get_task(namespace, name)
                if body is None or body["metadata"]["uid"] != uid:
                    return
                try:
                    await reconcile_task(body, deps)
                    return
                except TaskConflict as exc:
                    log.info("%s; reconciling again from a fresh read", exc)
            log.warning(
                "agenttask %s/%s kept changing under this operator; the sweep retries", namespace, name
            )
        except Exception as exc:
            log.exception("reconcile of agenttask %s/%s failed; the sweep retries", namespace, name)
            if body is not None:
                with contextlib.suppress(Exception):
                    await deps.store.post_event(
                        body, "Warning", "ReconcileError", f"{type(exc).__name__}: {exc}"
                    )


def _due(body: dict[str, Any]) -> bool:
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
            try:
                tasks = await deps.store.list_tasks(namespace)
            except (KubeError, OSError):
                log.exception("sweep could not list agenttasks")
                continue
            for body in tasks:
                if not _due(body):
                    continue
                meta = body["metadata"]
                await _run(deps, meta["namespace"], meta["name"], meta["uid"], wait=False)


async def on_task(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    meta = body["metadata"]
    await _run(memo["deps"], meta["namespace"], meta["name"], meta["uid"])


async def on_grant(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    deps: Deps = memo["deps"]
    try:
        task = await task_of_grant(dict(body), deps)
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
    tasks = (GROUP, VERSION, "agenttasks")
    kopf.on.resume(*tasks, id="task-resume", registry=registry)(on_task)
    kopf.on.create(*tasks, id="task-create", registry=registry)(on_task)
    for annotation in (APPROVE_ANNOTATION, CANCEL_ANNOTATION):
        field = f"metadata.annotations.{annotation}"
        kopf.on.update(*tasks, id=f"task-{annotation}", field=field, registry=registry)(on_task)
    grants = (GROUP, VERSION, "approvalgrants")
    kopf.on.resume(*grants, id="grant-resume", registry=registry)(on_grant)
    kopf.on.create(*grants, id="grant-create", registry=registry)(on_grant)
    return registry
