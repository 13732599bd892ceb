"""kopf wiring, kept thin: every handler hands the object to ``bosun.reconcile``.

Handlers never raise: a reconcile that cannot finish records why in the task's conditions, and the sweep
(started here) looks again after ``BOSUN_SWEEP_SECONDS``. kopf is used for watching and triggering only;
status is written by the reconcile itself (it needs confirmed writes between tool calls), so no handler
returns a value and no progress is kept in ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf
from bosun_tools.kube import KubeClient, KubeError

from bosun.config import OperatorConfig
from bosun.gateway import ToolGateway
from bosun.kube import Store
from bosun.models import GROUP, TERMINAL_PHASES, VERSION
from bosun.reconcile import Deps, reconcile_task, touch_for_grant

KOPF_PREFIX = f"kopf.{GROUP}"
"""kopf's own bookkeeping prefix. Not ``bosun.dev`` itself: kopf ignores every annotation under its prefix
when diffing, and the operator reacts to ``bosun.dev/grant-seen``."""

log = logging.getLogger("bosun")


def _gateway(config: OperatorConfig) -> ToolGateway:
    if config.tools_url and config.tools_token:
        return ToolGateway.over_http(config.tools_url, config.tools_token)
    from bosun_tools.server import ToolSettings

    return ToolGateway.in_process(ToolSettings.from_env())


@kopf.on.startup(id="bosun-startup")
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{KOPF_PREFIX}/finalizer"
    settings.peering.standalone = True
    settings.posting.reporting_component = "bosun"
    config = OperatorConfig.from_env()
    kube = KubeClient.from_kubeconfig()
    store = Store(kube)
    operator_identity = await store.whoami()
    missing = await store.missing_policies()
    if missing:
        log.warning(
            "identity admission policies missing (%s): requesters and approvers cannot be trusted, so tasks "
            "fail with RequesterUnknown and grants approve nothing; install them with kubectl apply -f crds/",
            ", ".join(missing),
        )
    deps = Deps(
        store=store,
        gateway=_gateway(config),
        config=config,
        operator_identity=operator_identity,
        identity_trusted=not missing,
    )
    memo["deps"] = deps
    memo["kube"] = kube
    memo["sweeper"] = asyncio.create_task(_sweep(deps))
    log.info(
        "bosun operator as %s; model %s; tools %s; namespaces %s",
        operator_identity.user,
        config.model.model if config.model else "none (offline planner)",
        config.tools_url or "in-process",
        ",".join(config.namespaces) or "all",
    )


@kopf.on.cleanup(id="bosun-cleanup")
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    sweeper = memo.get("sweeper")
    if sweeper is not None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    deps: Deps | None = memo.get("deps")
    if deps is not None:
        await deps.gateway.aclose()
        await memo["kube"].aclose()


async def _run(deps: Deps, namespace: str, name: str, uid: str, *, wait: bool = True) -> None:
    async with deps.locked(uid, wait=wait) as got:
        if not got:
            return
        body = await deps.store.get_task(namespace, name)
        if body is None or body["metadata"]["uid"] != uid:
            deps.locks.pop(uid, None)
            return
        try:
            await reconcile_task(body, deps)
        except (KubeError, ValueError, OSError) as exc:
            log.exception("reconcile of agenttask %s/%s failed; the sweep retries", namespace, name)
            await deps.store.post_event(body, "Warning", "ReconcileError", f"{type(exc).__name__}: {exc}")


def _due(body: dict[str, Any]) -> bool:
    status = body.get("status") or {}
    if status.get("phase") not in TERMINAL_PHASES:
        return True
    return (body.get("spec") or {}).get("ttlSecondsAfterFinished") is not None


async def _sweep(deps: Deps) -> None:
    """The safety net: retries after a tool-server outage, approval expiry, TTL, missed events."""
    namespaces: list[str | None] = list(deps.config.namespaces) or [None]
    while True:
        await asyncio.sleep(deps.config.sweep_seconds)
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
                try:
                    await _run(deps, meta["namespace"], meta["name"], meta["uid"], wait=False)
                except Exception:
                    # The sweep is the retry path of last resort: one broken task must not stop it for all.
                    log.exception("sweep of agenttask %s/%s failed", meta["namespace"], meta["name"])


@kopf.on.resume(GROUP, VERSION, "agenttasks", id="task-resume")
@kopf.on.create(GROUP, VERSION, "agenttasks", id="task-create")
@kopf.on.update(GROUP, VERSION, "agenttasks", id="task-annotations", field="metadata.annotations")
async def on_task(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    meta = body["metadata"]
    await _run(memo["deps"], meta["namespace"], meta["name"], meta["uid"])


@kopf.on.resume(GROUP, VERSION, "approvalgrants", id="grant-resume")
@kopf.on.create(GROUP, VERSION, "approvalgrants", id="grant-create")
async def on_grant(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    deps: Deps = memo["deps"]
    try:
        await touch_for_grant(dict(body), deps)
    except KubeError:
        log.exception("could not hand grant %s to its task; the sweep picks it up", body["metadata"]["name"])
