"""``python -m bosun``: run the operator in the foreground.

The process moves through three states, each visible on ``/readyz`` (``BOSUN_HEALTH_PORT``):

1. **starting** — the startup checks (``bosun.health``) run until they pass, logging what to fix;
2. **standby** — with ``BOSUN_LEADER_ELECTION=true``, it waits for the Lease (``bosun.leader``);
3. **leader** — kopf watches and reconciles; the Lease is renewed beside it. Losing it ends the process at
   once with exit code 1 (no cleanup, nothing more is done), so the pod restarts as a standby — what
   controller-runtime does. A graceful stop (SIGTERM) stops kopf first, then releases the Lease so the
   standby takes over without waiting for it to expire.

Watches all namespaces, or those in ``BOSUN_NAMESPACES``; the rest of the configuration is in
``bosun.config``. Connects with ``$KUBECONFIG`` or the in-cluster ServiceAccount. With
``BOSUN_METRICS_PORT`` set, ``/metrics`` is served from the start, whatever the state (``bosun.metrics``);
with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans are exported until the process ends, the last ones flushed
after kopf's cleanup (``bosun.tracing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

import kopf
from bosun_tools import logs
from bosun_tools.local import prepare
from bosun_tools.settings import ToolSettings
from bosun_tools.tracing import exporting

# kopf's Insights (private, pinned kopf version): the only place kopf says which watches it started.
from kopf._cogs.structs.references import Insights

from bosun.config import OperatorConfig
from bosun.handlers import build_registry
from bosun.health import Health, Started, StartupProblem, startup_checks
from bosun.leader import LeaderElector
from bosun.metrics import OperatorMetrics, activated

log = logging.getLogger("bosun")

EXIT_LEADERSHIP_LOST = 1
STARTUP_RETRY_FIRST = 2.0
STARTUP_RETRY_MAX = 60.0
WATCHED = frozenset({"agenttasks", "approvalgrants"})


def leadership_lost(reason: str) -> None:
    """Stop acting now: no handler, sweep or tool call may run once another replica may lead."""
    log.critical("leadership lost: %s; exiting so that this pod restarts as a standby", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_LEADERSHIP_LOST)


async def checked(config: OperatorConfig, health: Health) -> Started:
    """Run the startup checks until they pass; unready meanwhile, saying what to fix."""
    delay = STARTUP_RETRY_FIRST
    while True:
        try:
            started = await startup_checks(config)
        except StartupProblem as problem:
            health.problem = str(problem)
            log.error("not ready: %s (checking again in %.0fs)", problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, STARTUP_RETRY_MAX)
            continue
        health.problem = None
        return started


def _prepare_tools() -> None:
    prepare(ToolSettings.from_env())


async def run(config: OperatorConfig) -> None:
    health = Health()
    probes = await health.serve(config.health_port) if config.health_port else None
    started: Started | None = None
    elector: LeaderElector | None = None
    keeper: asyncio.Task[None] | None = None
    # The tools called in process are made ready in a thread while the checks wait for the API server.
    preparing = None if config.tools_url else asyncio.create_task(asyncio.to_thread(_prepare_tools))
    try:
        started = await checked(config, health)
        if preparing is not None:
            await preparing
        if config.leader_election is not None:
            elector = LeaderElector(started.kube, config.leader_election, on_lost=leadership_lost)
            health.role, health.holder = "standby", lambda: elector.holder if elector else ""
            await elector.acquire()
            keeper = asyncio.create_task(elector.keep(), name="bosun-lease-renewal")
        ready = asyncio.Event()
        insights = Insights()
        health.role = "leader"
        health.watching = lambda: ready.is_set() and {r.plural for r in insights.watched_resources} >= WATCHED
        namespaces = list(config.namespaces)
        operator = asyncio.create_task(
            kopf.operator(
                registry=build_registry(),
                standalone=True,
                clusterwide=not namespaces,
                namespaces=namespaces,
                memo=kopf.Memo(started=started, config=config, health=health),
                ready_flag=ready,
                insights=insights,
            )
        )
        health.running = lambda: not operator.done()
        await operator
    finally:
        if keeper is not None:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
        if elector is not None:
            await elector.release()
        if started is not None:
            await started.kube.aclose()
        if probes is not None:
            await probes.cleanup()


def main() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        config = OperatorConfig.from_env()
    except ValueError as exc:
        sys.exit(f"bosun: bad configuration: {exc}")
    logs.configure(config.log_format, config.log_level)
    with contextlib.ExitStack() as serving:
        if config.metrics is not None:
            model = config.model.model if config.model else None
            metrics = serving.enter_context(activated(OperatorMetrics(model)))
            serving.enter_context(config.metrics.serving(metrics.registry))
            log.info("serving /metrics on %s:%d", config.metrics.address, config.metrics.port)
        if serving.enter_context(exporting("bosun-operator")) is not None:
            log.info("exporting traces over OTLP/HTTP (OTEL_EXPORTER_OTLP_*)")
        asyncio.run(run(config))


if __name__ == "__main__":
    main()
