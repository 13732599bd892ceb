"""Prometheus metrics of the tool server, and of the Kubernetes client the operator shares with it.

``BOSUN_METRICS_PORT`` (unset: no metrics) and ``BOSUN_METRICS_ADDRESS`` (default ``127.0.0.1``, so a process
run by hand does not publish its figures to the network; the chart sets ``0.0.0.0``, Prometheus scrapes the
pod's IP) say where ``/metrics`` is served, by prometheus-client's own HTTP server in a thread of its own.
The operator reads the same two variables, and its registry holds these metrics too (its Kubernetes client,
and its tools when they run in process).

Each process serves its own ``CollectorRegistry``, never prometheus-client's global one, so a test can build
several. Which registry is recorded into is the one ``activate`` made current for the running context: the
Kubernetes client is built in many places (per tool server, per operator, per command-line client) and is
deep below the tools, so a context variable set once where the process starts reaches every request without
a parameter threaded through each constructor; code run where nothing was activated records nothing.

Label values are bounded: a tool label is a registered tool's name (``unknown`` otherwise:
``bosun_tools.registry.tool_label``), a code is an
HTTP status, and free words chosen by the code (reasons, model names) go through ``BoundedValues``. Never a
task, namespace or user name: those grow with the cluster.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from threading import Lock
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from bosun_tools.scoped import Scoped

LATENCY_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
"""Seconds of one call (a tool, a model, an API request): from a cached read to a tool's timeout."""
OTHER: Final = "other"
"""The label value of whatever a ``BoundedValues`` no longer admits."""

_LABEL_WORD = re.compile(r"^[A-Za-z][A-Za-z0-9_.:/-]{0,79}$")


class BoundedValues:
    """Label values taken as the code wrote them, at most ``limit`` distinct ones: later newcomers, and any
    value that is not one word, read ``other``. A bound rather than a fixed list, because these words (a
    failure's reason, a model name a task chose) are spread over the code or come from a spec, and a series
    per value must never grow without end."""

    def __init__(self, limit: int, admitted: tuple[str, ...] = ()) -> None:
        self._limit = limit
        self._seen: set[str] = set(admitted)
        self._lock = Lock()

    def __call__(self, value: str | None) -> str:
        if not value or not _LABEL_WORD.match(value):
            return OTHER
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
            return value


class ToolServerMetrics:
    """The tool server's metrics: calls served per tool, and the API server's error answers.

    ``bosun_kube_api_errors_total`` counts every answer of 400 or above after the client's own retry of a
    401, and transport failures as the client reports them (503: unreachable, 504: no answer in time)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.api_errors = Counter(
            "bosun_kube_api_errors",
            "Kubernetes API requests answered with an error, by HTTP status (503/504: transport failure).",
            ["code", "method"],
            registry=registry,
        )
        self.served_calls = Counter(
            "bosun_tool_server_calls",
            "Tool calls the tool server ran, by tool, mode (preview, execute) and outcome (ok, error).",
            ["tool", "mode", "mutating", "outcome"],
            registry=registry,
        )
        self.served_seconds = Histogram(
            "bosun_tool_server_call_seconds",
            "How long the tool server took to run a tool call.",
            ["tool", "mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def api_error(self, method: str, code: int) -> None:
        self.api_errors.labels(code=str(code), method=method.upper()).inc()

    def served(self, tool: str, *, mutating: bool, preview: bool, ok: bool, seconds: float) -> None:
        """One call of ``tool``, a registered tool's name (the server serves no other)."""
        mode = "preview" if preview else "execute"
        outcome = "ok" if ok else "error"
        self.served_calls.labels(tool=tool, mode=mode, mutating=str(mutating).lower(), outcome=outcome).inc()
        self.served_seconds.labels(tool=tool, mode=mode).observe(seconds)


_SCOPE: Final[Scoped[ToolServerMetrics]] = Scoped("bosun_tools_metrics")
activated = _SCOPE.activated
"""Record into the given metrics within this block, and in every task and thread context started in it."""
active = _SCOPE.active


def record_api_error(method: str, code: int) -> None:
    metrics = active()
    if metrics is not None:
        metrics.api_error(method, code)


def record_served(tool: str, *, mutating: bool, preview: bool, ok: bool, since: float) -> None:
    """One tool call served, begun at ``since`` (``time.monotonic``)."""
    metrics = active()
    if metrics is not None:
        metrics.served(tool, mutating=mutating, preview=preview, ok=ok, seconds=time.monotonic() - since)


@dataclass(frozen=True)
class MetricsEndpoint:
    """Where ``/metrics`` is served (``BOSUN_METRICS_ADDRESS``:``BOSUN_METRICS_PORT``)."""

    port: int
    address: str = "127.0.0.1"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> MetricsEndpoint | None:
        """None when ``BOSUN_METRICS_PORT`` is unset or empty: no metrics are served."""
        raw = env.get("BOSUN_METRICS_PORT", "").strip()
        if not raw:
            return None
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ValueError(
                f"BOSUN_METRICS_PORT={raw!r} is not a TCP port; set it to e.g. 9090, or unset it to serve "
                "no metrics"
            )
        address = env.get("BOSUN_METRICS_ADDRESS", "").strip() or "127.0.0.1"
        return cls(int(raw), address)

    @contextlib.contextmanager
    def serving(self, registry: CollectorRegistry) -> Iterator[None]:
        """Serve ``registry`` on ``/metrics`` within this block (in a thread: a scrape never waits for the
        event loop, and a busy loop never delays a scrape)."""
        server, thread = start_http_server(self.port, addr=self.address, registry=registry)
        try:
            yield
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
