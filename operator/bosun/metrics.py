"""The operator's Prometheus metrics: what its tasks, tools, model and approvers did (README, "Metrics").

Served on ``BOSUN_METRICS_ADDRESS``:``BOSUN_METRICS_PORT`` (``bosun_tools.metrics.MetricsEndpoint``; unset
port: none) from a registry of this process's own. The registry also holds the tool server's metrics
(``bosun_tools.metrics.ToolServerMetrics``): the operator's Kubernetes client and its in-process tools
record there.

Where each figure comes from, and why so:

- **Tasks by phase** is a gauge computed at scrape time from the operator's watch of AgentTasks (a kopf index,
  ``handlers.index_task_phases``), not a counter kept up to date by hand, so it is right after a restart and
  on a second replica. Only the leader watches, so a standby serves none of it.
- **Outcomes and phase durations** come from the phase observer (``bosun.steps.task.PhaseObserver``): told
  once, by the one writer whose conditional status write changed the phase. Durations are read from the
  timestamps in the status (``metadata.creationTimestamp``, ``proposal.createdAt``, the conditions'
  ``lastTransitionTime``, ``finishedAt``), never from this process's clock at the start of a phase, so an
  operator restarted meanwhile does not distort them. A replan drops the conditions of the revision it
  leaves (``bosun.core.phases``), so an execution or verification that ends in a replan is not timed here
  (its failed calls are in ``bosun_tool_calls_total``).
- **Tool calls, model calls and grant verdicts** are recorded where they happen (``bosun.ports.gateway``,
  ``bosun.planner.llm``, ``bosun.steps.approve``) into the metrics ``activated`` for the running context:
  the calls happen deep below the reconcile (LangGraph's nodes call the model), so a context variable set
  where the operator starts reaches them without a parameter threaded through every layer; code run where
  nothing was activated (unit tests) records nothing.

Every label is bounded: phases and modes are fixed sets, tools are registered names, reasons and model names
are words the code or the operator's settings chose, kept to a bounded number (``BoundedValues``). Never a
task, namespace or user name.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import datetime
from typing import Any, Final, get_args

from bosun_tools import metrics as tool_metrics
from bosun_tools.metrics import LATENCY_BUCKETS, BoundedValues, ToolServerMetrics
from bosun_tools.registry import safety_of, tool_label
from bosun_tools.scoped import Scoped
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bosun.api.models import TERMINAL_PHASES, AgentTaskStatus, TaskPhase
from bosun.api.models import now as utcnow
from bosun.core.grants import GrantVerdict, parse_timestamp

PHASES: Final[tuple[str, ...]] = get_args(TaskPhase)
PHASE_BUCKETS: Final = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 14400.0, 86400.0)
"""Seconds of a phase: from an offline plan made at once to a proposal waiting a day for its approvers."""
REASONS_KEPT: Final = 64
"""Distinct reasons (of outcomes, of grant verdicts) a label keeps before the rest read ``other``."""
MODELS_KEPT: Final = 16
"""Distinct model names a label keeps: the operator's own, and the first ones tasks' ``spec.model`` chose."""
APPROVAL_DECISIONS: Final = {
    "Executing": "approved",
    "Denied": "denied",
    "Expired": "expired",
    "Cancelled": "cancelled",
    "Failed": "failed",
}
"""How a wait for approval ended, by the phase that ended it."""


TaskPhaseIndex = Mapping[str, Collection[str | None]]
"""kopf's index of the watched AgentTasks by phase: phase -> per task in it, its ``proposal.createdAt``."""


class TasksByPhase(Collector):
    """``bosun_tasks{phase}`` and the age of the oldest proposal awaiting approval, computed at scrape time
    from the watch's index. Looks up single keys and copies one entry's values at once (``list``), so a
    scrape in the server's thread does not trip over the event loop updating the index."""

    def __init__(self, now: Callable[[], datetime] = utcnow) -> None:
        self.index: TaskPhaseIndex | None = None
        self._now = now

    def collect(self) -> Iterator[Metric]:
        index = self.index
        if index is None:  # not leading (yet): this process watches no task
            return
        meaning = "AgentTasks the operator watches, by phase (Pending: not started)."
        gauge = GaugeMetricFamily("bosun_tasks", meaning, labels=["phase"])
        for phase in PHASES:
            gauge.add_metric([phase], len(index.get(phase) or ()))
        yield gauge
        written = [parse_timestamp(at) for at in list(index.get("AwaitingApproval") or ())]
        oldest = min((at for at in written if at is not None), default=None)
        yield GaugeMetricFamily(
            "bosun_oldest_awaiting_approval_seconds",
            "Age of the oldest proposal awaiting approval (0: none awaits).",
            value=_seconds(oldest, self._now()) or 0.0,
        )


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


class OperatorMetrics:
    """Every metric of one operator process, in a registry of its own."""

    def __init__(self, model: str | None = None, now: Callable[[], datetime] = utcnow) -> None:
        """``model``: the operator's configured model, always given its own label value."""
        registry = self.registry = CollectorRegistry()
        self.tools = ToolServerMetrics(registry)
        self.tasks = TasksByPhase(now)
        registry.register(self.tasks)
        self._reasons = BoundedValues(REASONS_KEPT)
        self._grant_reasons = BoundedValues(REASONS_KEPT)
        self._models = BoundedValues(MODELS_KEPT, (model,) if model else ())
        self._errors = BoundedValues(REASONS_KEPT)
        self.outcomes = Counter(
            "bosun_task_outcomes",
            "AgentTasks that ended, by final phase and Ready's reason.",
            ["phase", "reason"],
            registry=registry,
        )
        self.time_to_proposal = Histogram(
            "bosun_task_time_to_proposal_seconds",
            "From a task's creation to its first proposal awaiting approval.",
            buckets=PHASE_BUCKETS,
            registry=registry,
        )
        self.approval_wait = Histogram(
            "bosun_task_approval_wait_seconds",
            "How long a proposal awaited approval, by how the wait ended.",
            ["decision"],
            buckets=PHASE_BUCKETS,
            registry=registry,
        )
        self.execution = Histogram(
            "bosun_task_execution_seconds",
            "From approval to the end of execution (result: verifying, or the phase it ended in).",
            ["result"],
            buckets=PHASE_BUCKETS,
            registry=registry,
        )
        self.verification = Histogram(
            "bosun_task_verification_seconds",
            "From the end of execution to the end of the task, by its final phase.",
            ["result"],
            buckets=PHASE_BUCKETS,
            registry=registry,
        )
        self.tool_calls = Counter(
            "bosun_tool_calls",
            "Tool calls the operator made, by tool, mode (read, preview, execute), whether the tool mutates, "
            "and outcome (ok, error: the tool failed, unavailable: the tool server was not reached).",
            ["tool", "mode", "mutating", "outcome"],
            registry=registry,
        )
        self.tool_call_seconds = Histogram(
            "bosun_tool_call_seconds",
            "How long a tool call took, as the operator saw it.",
            ["tool", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_calls = Counter(
            "bosun_model_calls",
            "Model calls (each with its own retries), by model and outcome (ok, error).",
            ["model", "outcome"],
            registry=registry,
        )
        self.model_call_seconds = Histogram(
            "bosun_model_call_seconds",
            "How long a model call took, retries included.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_tokens = Counter(
            "bosun_model_tokens",
            "Tokens the model calls used, by model and kind (prompt, completion).",
            ["model", "kind"],
            registry=registry,
        )
        self.model_cost = Counter(
            "bosun_model_cost_usd",
            "What the model calls cost, in US dollars, as LiteLLM prices them (0 for unpriced models).",
            ["model"],
            registry=registry,
        )
        self.grant_verdicts = Counter(
            "bosun_grant_verdicts",
            "ApprovalGrants judged (an approve=true annotation is one), by decision (Approve, Deny), state "
            "(Accepted, Rejected, Superseded) and reason (Approved, FourEyes, StaleHash, ...).",
            ["decision", "state", "reason"],
            registry=registry,
        )
        self.reconcile_errors = Counter(
            "bosun_reconcile_errors",
            "Reconciles that failed unexpectedly (left to the sweep), by exception type.",
            ["exception"],
            registry=registry,
        )

    # ----- the phase observer ---------------------------------------------------------------------------

    def observe_phase(self, body: Mapping[str, Any], status: AgentTaskStatus) -> None:
        """A ``PhaseObserver``: the outcome and the durations a phase change completes."""
        phase = status.phase or "Pending"
        conditions = {c.type: c for c in status.conditions}
        proposal = status.proposal
        approved, executed = conditions.get("Approved"), conditions.get("Executed")
        if phase == "AwaitingApproval" and proposal is not None and proposal.revision == 1:
            created = parse_timestamp((body.get("metadata") or {}).get("creationTimestamp"))
            self._observe(self.time_to_proposal, _seconds(created, proposal.created_at))
        ended_at = status.finished_at
        if phase in APPROVAL_DECISIONS and proposal is not None and approved is not None:
            # Executing: just approved. A final phase with Approved still False: it ended while awaiting.
            if phase == "Executing" and approved.status == "True":
                waited = _seconds(proposal.created_at, approved.last_transition_time)
            elif phase in TERMINAL_PHASES and approved.status == "False":
                waited = _seconds(proposal.created_at, ended_at)
            else:
                waited = None
            self._observe(self.approval_wait.labels(decision=APPROVAL_DECISIONS[phase]), waited)
        if approved is not None and approved.status == "True" and executed is not None:
            if phase == "Verifying":
                took = _seconds(approved.last_transition_time, executed.last_transition_time)
                self._observe(self.execution.labels(result="verifying"), took)
            elif phase in TERMINAL_PHASES and executed.status != "True":
                took = _seconds(approved.last_transition_time, ended_at)
                self._observe(self.execution.labels(result=phase), took)
            elif phase in TERMINAL_PHASES:
                took = _seconds(executed.last_transition_time, ended_at)
                self._observe(self.verification.labels(result=phase), took)
        if phase in TERMINAL_PHASES:
            ready = conditions.get("Ready")
            self.outcomes.labels(phase=phase, reason=self._reasons(ready.reason if ready else None)).inc()

    @staticmethod
    def _observe(histogram: Histogram, seconds: float | None) -> None:
        if seconds is not None:
            histogram.observe(seconds)

    # ----- where things happen --------------------------------------------------------------------------

    def tool_call(self, tool: str, mode: str, outcome: str, seconds: float) -> None:
        name, mutating = tool_label(tool), str(not safety_of(tool).read_only).lower()
        self.tool_calls.labels(tool=name, mode=mode, mutating=mutating, outcome=outcome).inc()
        self.tool_call_seconds.labels(tool=name, mode=mode).observe(seconds)

    def model_call(
        self, model: str, *, ok: bool, seconds: float, prompt: int = 0, completion: int = 0, cost: float = 0.0
    ) -> None:
        name = self._models(model)
        self.model_calls.labels(model=name, outcome="ok" if ok else "error").inc()
        self.model_call_seconds.labels(model=name).observe(seconds)
        self.model_tokens.labels(model=name, kind="prompt").inc(prompt)
        self.model_tokens.labels(model=name, kind="completion").inc(completion)
        self.model_cost.labels(model=name).inc(cost)

    def grant_verdict(self, verdict: GrantVerdict, state: str | None) -> None:
        """``state``: the grant's ``status.state`` as written (always set by ``grant_status``)."""
        decision, reason = verdict.decision or "unknown", self._grant_reasons(verdict.reason)
        self.grant_verdicts.labels(decision=decision, state=state or "unknown", reason=reason).inc()

    def reconcile_error(self, exc: BaseException) -> None:
        self.reconcile_errors.labels(exception=self._errors(type(exc).__name__)).inc()


_SCOPE: Final[Scoped[OperatorMetrics]] = Scoped("bosun_metrics")
active = _SCOPE.active


@contextlib.contextmanager
def activated(metrics: OperatorMetrics) -> Iterator[OperatorMetrics]:
    """Record into ``metrics`` (and its tool-server part) within this block and every task started in it."""
    with _SCOPE.activated(metrics), tool_metrics.activated(metrics.tools):
        yield metrics


def record_tool_call(tool: str, mode: str, outcome: str, since: float) -> None:
    """A call of ``tool`` begun at ``since`` (``time.monotonic``) ended with ``outcome``."""
    metrics = active()
    if metrics is not None:
        metrics.tool_call(tool, mode, outcome, time.monotonic() - since)


def record_model_call(
    model: str, since: float, *, ok: bool, prompt: int = 0, completion: int = 0, cost: float = 0.0
) -> None:
    """A model call begun at ``since`` ended (``ok``: with a reply whose usage is given)."""
    metrics = active()
    if metrics is not None:
        seconds = time.monotonic() - since
        metrics.model_call(model, ok=ok, seconds=seconds, prompt=prompt, completion=completion, cost=cost)


def record_grant_verdict(verdict: GrantVerdict, state: str | None) -> None:
    metrics = active()
    if metrics is not None:
        metrics.grant_verdict(verdict, state)


def record_reconcile_error(exc: BaseException) -> None:
    metrics = active()
    if metrics is not None:
        metrics.reconcile_error(exc)
