"""Prometheus metrics scraped from a real operator (and a real tool server) while a task goes through its
phases: proposed, approved by another user, executed, verified."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ROOT, Operator, apply, deployment, free_port, grant_doc, task_doc, wait_phase
from tests.e2e.test_tool_server import TOKEN
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
RULES = ROOT / "charts" / "bosun" / "files" / "prometheus-rules.yaml"
DASHBOARD = ROOT / "charts" / "bosun" / "files" / "grafana-dashboard.json"
SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``, by name and labels; empty while nothing answers."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.TransportError:
        return {}
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def served_names(port: int) -> set[str]:
    """Every sample name ``/metrics`` declares, counters' ``_total`` and histograms' parts included."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    families = {family.name for family in text_string_to_metric_families(text)}
    return families | {name + suffix for name in families for suffix in SUFFIXES}


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name`` with exactly ``labels`` (0 when absent: a counter not yet moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every sample carrying at least ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def tasks_in(port: int, phase: str, count: int) -> None:
    eventually(
        f"bosun_tasks{{phase={phase!r}}} to be {count}",
        lambda: value(scrape(port), "bosun_tasks", phase=phase) == count,
    )


@pytest.fixture
def metrics_port() -> int:
    return free_port()


def test_metrics_follow_a_task_through_its_phases(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    metrics_port: int,
) -> None:
    deployment(kubectl, namespace)
    operator_factory(BOSUN_METRICS_PORT=str(metrics_port))
    tasks_in(metrics_port, "AwaitingApproval", 0)
    before = scrape(metrics_port)
    assert value(before, "bosun_task_time_to_proposal_seconds_count") == 0
    assert total(before, "bosun_task_outcomes_total") == 0

    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 4"), user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    tasks_in(metrics_port, "AwaitingApproval", 1)
    waiting = scrape(metrics_port)
    assert value(waiting, "bosun_task_time_to_proposal_seconds_count") == 1
    assert total(waiting, "bosun_tool_calls_total", tool="k8s_scale", mode="preview", outcome="ok") == 1
    assert value(waiting, "bosun_tasks", phase="Succeeded") == 0
    assert total(waiting, "bosun_task_outcomes_total") == 0

    grant = grant_doc("approve-scale", "scale-web", status["proposal"]["hash"])
    apply(kubectl, namespace, grant, user="alice")
    wait_phase(kubectl, namespace, "scale-web", "Succeeded", timeout=120)
    tasks_in(metrics_port, "Succeeded", 1)
    after = scrape(metrics_port)
    assert value(after, "bosun_tasks", phase="AwaitingApproval") == 0
    assert value(after, "bosun_task_outcomes_total", phase="Succeeded", reason="Verified") == 1
    assert value(after, "bosun_task_approval_wait_seconds_count", decision="approved") == 1
    assert value(after, "bosun_task_execution_seconds_count", result="verifying") == 1
    assert value(after, "bosun_task_verification_seconds_count", result="Succeeded") == 1
    approved = {"decision": "Approve", "state": "Accepted", "reason": "Approved"}
    assert value(after, "bosun_grant_verdicts_total", **approved) == 1
    executed = {"tool": "k8s_scale", "mode": "execute", "mutating": "true", "outcome": "ok"}
    assert value(after, "bosun_tool_calls_total", **executed) == 1
    assert value(after, "bosun_tool_server_calls_total", **executed) == 1  # the in-process tools
    assert total(after, "bosun_reconcile_errors_total") == 0

    # Bounded labels: no task, namespace or user ever names a series.
    labels = {v for (_, ls) in after for _, v in ls}
    assert not labels & {namespace, "scale-web", "approve-scale", "bob", "alice"}

    # Every metric the chart's alert rules and dashboard use is one the operator serves (a labelled one
    # before any sample).
    served = served_names(metrics_port)
    rules = [r for group in yaml.safe_load(RULES.read_text())["groups"] for r in group["rules"]]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [(r["alert"], r["expr"]) for r in rules]
    queries += [(p["title"], t["expr"]) for p in panels for t in p["targets"]]
    for user, expr in queries:
        used = {word for word in _words(expr) if word.startswith("bosun_")}
        assert used, f"{user} uses no bosun metric"
        assert used <= served, f"{user} uses {used - served}, which /metrics lacks"


def _words(expr: str) -> set[str]:
    return {w for w in "".join(c if c.isalnum() or c == "_" else " " for c in expr).split()}


@pytest.fixture
def metered_tool_server(
    cluster: Any, tmp_path: Path, metrics_port: int
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``python -m bosun_tools`` with ``BOSUN_METRICS_PORT``; yields (its MCP port, the process)."""
    port = free_port()
    env = dict(
        cluster.env,
        BOSUN_TOOLS_PORT=str(port),
        BOSUN_TOOLS_OPERATOR_TOKEN=TOKEN,
        BOSUN_METRICS_PORT=str(metrics_port),
    )
    with (tmp_path / "tools.log").open("ab") as log:
        command = [sys.executable, "-m", "bosun_tools"]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
    yield port, proc
    proc.terminate()
    proc.wait(timeout=20)


def test_the_tool_server_serves_its_own_metrics(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    metered_tool_server: tuple[int, subprocess.Popen[bytes]],
    metrics_port: int,
) -> None:
    tools_port, _ = metered_tool_server
    eventually("the tool server's /metrics to answer", lambda: answers(metrics_port))
    deployment(kubectl, namespace)
    operator_factory(BOSUN_TOOLS_URL=f"http://127.0.0.1:{tools_port}/mcp", BOSUN_TOOLS_TOKEN=TOKEN)
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 4"), user="bob")
    wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval", timeout=120)
    served = scrape(metrics_port)
    previewed = {"tool": "k8s_scale", "mode": "preview", "mutating": "true", "outcome": "ok"}
    assert value(served, "bosun_tool_server_calls_total", **previewed) == 1
    assert value(served, "bosun_tool_server_call_seconds_count", tool="k8s_scale", mode="preview") == 1
    assert "bosun_tasks" not in {name for (name, _) in served}  # the operator's own metrics are not here
