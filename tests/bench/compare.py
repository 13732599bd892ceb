"""Bosun against the floor (``floor.py``, the cheapest kopf operator) on the same control plane.

The two are started alternately, never both at once, ``repeats`` times each, every run a fresh process
watching the bench namespace and nothing else running meanwhile. The objects of both are created by the
ordinary user bob (Bosun acts for no member of system:masters) through the API with the Python client (no
kubectl process in any timed path), and watched as the admin. One run:

1. one object is created *before* the process starts; start → first object handled is from just before
   the process is spawned to the watch seeing that object in its phase;
2. idle RSS: once that object is handled and the process has used no CPU for a moment;
3. 1 in flight, spaced: ``SEQUENTIAL`` proposals one at a time, each created ``ARRIVAL_GAP`` (250 ms)
   after the watch saw the previous one in its phase, then as many questions the same way; each latency
   is from just before the POST that creates the object to the watch seeing the target phase. The gap
   stands for people's requests, which arrive independently of each other and not the moment the
   previous one is done. It is longer than the 100 ms at which the API server asks etcd how far it has
   got (``ARRIVAL_GAP`` says why that matters): without it, every consistent LIST of a tight loop would
   wait for that timer, and the figure would be the timer's period rather than the operator's work;
4. 1 in flight, back to back: ``SEQUENTIAL`` proposals and then as many questions again, each created the
   moment the watch saw the previous one in its phase (no gap), reported as figures of their own so
   that what a tight loop costs stays visible;
5. 20 in flight: ``BATCH`` proposals created concurrently, then as many questions; throughput is objects
   over (last phase seen - first create sent); operator and kube-apiserver CPU (``/proc/<pid>/stat``
   utime + stime) over the batch, until the operator has been idle for a moment after the last one, per
   object;
6. loaded RSS after the batches; then the process is stopped (SIGTERM) and the objects are deleted.

Bosun's proposal is a scale request reaching ``AwaitingApproval`` (offline planner: validation, scope
check, server-side dry-run preview, the proposal written to status); its answer is "list pods in <ns>"
reaching ``Succeeded`` (one read-only tool call, the answer in status). The floor's proposal and answer
are both ``status.phase = Done``. A third kind of run, Bosun with a scripted zero-latency model (the
OpenAI-compatible double ``tests/fakes/llm.py`` through LiteLLM; the model asks for one ``k8s_scale``
and then stops), measures the model path's create → proposal, spaced as in 3.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import localcluster

from tests.bench.kube import Api, PhaseWatch, collection, cpu_seconds, crd_established, purge, settled
from tests.fakes.llm import FakeLLM, call, text, tool_calls
from tests.waiting import eventually_async

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SEQUENTIAL = 20
BATCH = 20
TIMEOUT = 180.0
ARRIVAL_GAP = 0.25
"""Seconds between one object reaching its phase and the next one's create, in the 1-in-flight figures: the
bench's arrival process, the same for every operator. People's requests arrive independently, not the
moment the previous one is done, and back to back the API server's own timer sets the pace of every
answer that lists. Since Kubernetes 1.31 kube-apiserver serves a consistent LIST (no resourceVersion, as
kubectl and Bosun's tools send it) from its watch cache once the cache has caught up with etcd's current
revision; to learn that revision when nothing it watches has changed it asks etcd for a progress
notification, at most once per ``progressRequestPeriod`` = 100 ms (k8s.io/apiserver
pkg/storage/cacher/progress/watch_progress.go, ``ConditionalProgressRequester``: a timer restarted after
each request). A consistent LIST less than 100 ms after the previous request waits for the next tick, so
a loop that creates the next task as soon as the previous answer is seen locks onto that period (about
100 ms per answer, whatever the operator does); after an idle gap longer than the period the request goes
out at once and the same LIST takes a few ms (``python -m tests.bench`` prints both first: "pods LIST
right after a write"). 250 ms is that period plus a margin. The back-to-back figures are measured as
well (``b2b_proposal``, ``b2b_answer``)."""
BOSUN_WRONG = frozenset({"AwaitingApproval", "Succeeded", "Denied", "Failed", "Cancelled", "Expired"})


@dataclass(frozen=True)
class Flavour:
    """One kind of operator process and the objects it handles."""

    label: str
    argv: list[str]
    env: dict[str, str]
    group: str
    version: str
    kind: str
    plural: str
    proposal_phase: str
    answer_phase: str
    model: FakeLLM | None = None

    def path(self, namespace: str) -> str:
        return collection(self.group, self.version, self.plural, namespace)

    def doc(self, name: str, request: str) -> dict[str, Any]:
        return {
            "apiVersion": f"{self.group}/{self.version}",
            "kind": self.kind,
            "metadata": {"name": name},
            "spec": {"request": request},
        }

    def before_proposal(self, namespace: str) -> None:
        """With the scripted model: what it answers for the next proposal (one k8s_scale, then text)."""
        if self.model is not None:
            args = {"kind": "deployment", "name": "web", "namespace": namespace, "replicas": 4}
            self.model.script(tool_calls(call("k8s_scale", args)), text("Proposed: scale web to 4."))


@dataclass
class Run:
    """The figures of one operator process."""

    start_first: float = 0.0
    idle_rss: float = 0.0
    loaded_rss: float = 0.0
    spaced_proposal: list[float] = field(default_factory=list)
    spaced_answer: list[float] = field(default_factory=list)
    b2b_proposal: list[float] = field(default_factory=list)
    b2b_answer: list[float] = field(default_factory=list)
    batch_proposal: list[float] = field(default_factory=list)
    batch_answer: list[float] = field(default_factory=list)
    rate_proposal: float = 0.0
    rate_answer: float = 0.0
    op_cpu_proposal: float = 0.0
    op_cpu_answer: float = 0.0
    api_cpu_proposal: float = 0.0
    api_cpu_answer: float = 0.0


def flavours(cluster: localcluster.Cluster, namespace: str) -> tuple[Flavour, Flavour]:
    base = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{cluster.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    for key in (
        "BOSUN_MODEL",
        "BOSUN_API_BASE",
        "BOSUN_API_KEY",
        "BOSUN_TOOLS_URL",
        "BOSUN_TOOLS_TOKEN",
        "BOSUN_HEALTH_PORT",
        "BOSUN_LEADER_ELECTION",
        "BOSUN_NAMESPACES",
    ):
        base.pop(key, None)
    floor = Flavour(
        "floor",
        [sys.executable, str(HERE / "floor.py")],
        {**base, "FLOOR_NAMESPACE": namespace},
        "bench.bosun.dev",
        "v1",
        "FloorTask",
        "floortasks",
        "Done",
        "Done",
    )
    bosun = Flavour(
        "Bosun",
        [sys.executable, "-m", "bosun"],
        {**base, "BOSUN_NAMESPACES": namespace},
        "bosun.dev",
        "v1alpha1",
        "AgentTask",
        "agenttasks",
        "AwaitingApproval",
        "Succeeded",
    )
    return floor, bosun


def with_model(bosun: Flavour, model: FakeLLM) -> Flavour:
    env = {
        **bosun.env,
        "BOSUN_MODEL": "openai/gpt-4.1-mini",
        "BOSUN_API_BASE": model.url,
        "BOSUN_API_KEY": "test",
    }
    return Flavour(
        "Bosun + model",
        bosun.argv,
        env,
        bosun.group,
        bosun.version,
        bosun.kind,
        bosun.plural,
        bosun.proposal_phase,
        bosun.answer_phase,
        model=model,
    )


class Process:
    """The operator process of one run, its output in ``log``."""

    def __init__(self, flavour: Flavour, log: Path) -> None:
        self.flavour = flavour
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.flavour.argv, cwd=ROOT, env=self.flavour.env, stdout=out, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check(self) -> None:
        """Raise if the process has ended (with the end of its output)."""
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.flavour.label} exited {self.proc.returncode}; its output:\n{tail}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{uuid.uuid4().hex[:8]}" for _ in range(n)]


async def one_run(
    api: Api,
    requester: Api,
    flavour: Flavour,
    namespace: str,
    log: Path,
    apiserver_pid: int,
    full: bool = True,
) -> Run:
    """One process of ``flavour``: objects created by ``requester``, watched and deleted by ``api``."""
    path = flavour.path(namespace)
    proposal = f"scale deployment web in {namespace} to 4"
    answer = f"list pods in {namespace}"
    run = Run()
    process = Process(flavour, log)
    wrong = BOSUN_WRONG if flavour.group == "bosun.dev" else frozenset()
    try:
        async with PhaseWatch(api, path, wrong) as watch:

            async def created(name: str, request: str) -> float:
                if request == proposal:
                    flavour.before_proposal(namespace)
                sent = time.perf_counter()
                await requester.create(path, flavour.doc(name, request))
                return sent

            async def one_at_a_time(request: str, phase: str, n: int, *, spaced: bool) -> list[float]:
                latencies = []
                for name in _names("spaced" if spaced else "b2b", n):
                    if spaced:
                        # The arrival process of the 1-in-flight figures, not a wait for anything: the
                        # next request comes ARRIVAL_GAP after the previous one was done (see there why).
                        await asyncio.sleep(ARRIVAL_GAP)
                    sent = await created(name, request)
                    seen = await watch.reached([name], phase, within=TIMEOUT, check=process.check)
                    latencies.append(seen[name] - sent)
                return latencies

            async def batch(request: str, phase: str, n: int) -> tuple[list[float], float, float, float]:
                names = _names("batch", n)
                op0, api0 = cpu_seconds(process.pid), cpu_seconds(apiserver_pid)
                sent = await asyncio.gather(*(created(name, request) for name in names))
                seen = await watch.reached(names, phase, within=TIMEOUT, check=process.check)
                await settled(process.pid)
                op1, api1 = cpu_seconds(process.pid), cpu_seconds(apiserver_pid)
                latencies = [seen[name] - at for name, at in zip(names, sent, strict=True)]
                rate = n / (max(seen.values()) - min(sent))
                return latencies, rate, (op1 - op0) / n, (api1 - api0) / n

            first = f"first-{uuid.uuid4().hex[:8]}"
            await created(first, proposal)
            spawned = time.perf_counter()
            process.start()
            seen = await watch.reached([first], flavour.proposal_phase, within=TIMEOUT, check=process.check)
            run.start_first = seen[first] - spawned
            await settled(process.pid)
            run.idle_rss = localcluster.rss_mib(process.pid)
            run.spaced_proposal = await one_at_a_time(
                proposal, flavour.proposal_phase, SEQUENTIAL, spaced=True
            )
            if not full:
                return run
            run.spaced_answer = await one_at_a_time(answer, flavour.answer_phase, SEQUENTIAL, spaced=True)
            run.b2b_proposal = await one_at_a_time(proposal, flavour.proposal_phase, SEQUENTIAL, spaced=False)
            run.b2b_answer = await one_at_a_time(answer, flavour.answer_phase, SEQUENTIAL, spaced=False)
            run.batch_proposal, run.rate_proposal, run.op_cpu_proposal, run.api_cpu_proposal = await batch(
                proposal, flavour.proposal_phase, BATCH
            )
            run.batch_answer, run.rate_answer, run.op_cpu_answer, run.api_cpu_answer = await batch(
                answer, flavour.answer_phase, BATCH
            )
            run.loaded_rss = localcluster.rss_mib(process.pid)
            return run
    finally:
        process.stop()
        await purge(api, path)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Figure:
    label: str
    value: Callable[[list[Run]], float]
    unit: str
    throughput: bool = False


def _pooled(attr: str, q: float) -> Callable[[list[Run]], float]:
    return lambda runs: 1000 * _pct([s for r in runs for s in getattr(r, attr)], q)


def _median(attr: str, scale: float = 1.0) -> Callable[[list[Run]], float]:
    return lambda runs: scale * statistics.median(getattr(r, attr) for r in runs)


FIGURES = (
    Figure("create → proposal, 1 in flight, spaced, p50", _pooled("spaced_proposal", 0.5), "ms"),
    Figure("create → proposal, 1 in flight, spaced, p99", _pooled("spaced_proposal", 0.99), "ms"),
    Figure("create → answer, 1 in flight, spaced, p50", _pooled("spaced_answer", 0.5), "ms"),
    Figure("create → answer, 1 in flight, spaced, p99", _pooled("spaced_answer", 0.99), "ms"),
    Figure("create → proposal, 1 in flight, back to back, p50", _pooled("b2b_proposal", 0.5), "ms"),
    Figure("create → answer, 1 in flight, back to back, p50", _pooled("b2b_answer", 0.5), "ms"),
    Figure(f"create → proposal, {BATCH} in flight, p50", _pooled("batch_proposal", 0.5), "ms"),
    Figure(f"create → proposal, {BATCH} in flight, p99", _pooled("batch_proposal", 0.99), "ms"),
    Figure(f"create → answer, {BATCH} in flight, p50", _pooled("batch_answer", 0.5), "ms"),
    Figure(f"throughput, {BATCH} in flight: proposals", _median("rate_proposal"), "/s", True),
    Figure(f"throughput, {BATCH} in flight: answers", _median("rate_answer"), "/s", True),
    Figure("operator CPU per proposal", _median("op_cpu_proposal", 1000), "ms"),
    Figure("operator CPU per answer", _median("op_cpu_answer", 1000), "ms"),
    Figure("kube-apiserver CPU per proposal", _median("api_cpu_proposal", 1000), "ms"),
    Figure("kube-apiserver CPU per answer", _median("api_cpu_answer", 1000), "ms"),
    Figure("start → first object handled (proposal)", _median("start_first", 1000), "ms"),
    Figure("idle RSS (started, first object handled)", _median("idle_rss"), "MiB"),
    Figure(f"loaded RSS (after the {BATCH}-in-flight batches)", _median("loaded_rss"), "MiB"),
)


def _ratio(bosun: float, floor: float, percent: bool = False) -> str:
    if not floor:
        return "-"
    return f"{100 * bosun / floor:.0f} %" if percent else f"{bosun / floor:.1f} x"


def table(floor: list[Run], bosun: list[Run], model: list[Run]) -> list[str]:
    lines = [
        "| figure | floor | Bosun | ratio |",
        "|---|---:|---:|---:|",
    ]
    for figure in FIGURES:
        f, b = figure.value(floor), figure.value(bosun)
        ratio = _ratio(b, f, percent=figure.throughput)
        digits = 2 if figure.throughput and max(f, b) < 10 else 1
        lines.append(f"| {figure.label} ({figure.unit}) | {f:.{digits}f} | {b:.{digits}f} | {ratio} |")
    if model:
        f = _pooled("spaced_proposal", 0.5)(floor)
        m50, m99 = _pooled("spaced_proposal", 0.5)(model), _pooled("spaced_proposal", 0.99)(model)
        lines.append(
            f"| create → proposal with a zero-latency scripted model, 1 in flight, spaced, p50 (ms) "
            f"| {f:.1f} | {m50:.1f} | {_ratio(m50, f)} |"
        )
        lines.append(f"| ... p99 (ms) | | {m99:.1f} | |")
        start = _median("start_first", 1000)
        lines.append(
            f"| start → first object handled, with the model (ms) | {start(floor):.1f} "
            f"| {start(model):.1f} | {_ratio(start(model), start(floor))} |"
        )
        rss = _median("idle_rss")
        lines.append(
            f"| idle RSS, with the model (MiB) | {rss(floor):.1f} | {rss(model):.1f} "
            f"| {_ratio(rss(model), rss(floor))} |"
        )
    return lines


MIB = 1024 * 1024
Measure = Callable[[list[Run], list[Run], list[Run]], float]
"""A figure computed from the runs of the floor, of Bosun and of Bosun with the scripted model."""


@dataclass(frozen=True)
class Target:
    """One of Bosun's speed and memory targets: what is compared, and the limit it must not pass."""

    label: str
    value: Measure
    limit: float
    unit: str
    at_least: bool = False


def _ratio_of(attr: str, pooled: float | None = None) -> Measure:
    figure = _pooled(attr, pooled) if pooled is not None else _median(attr)
    return lambda floor, bosun, model: figure(bosun) / figure(floor)


def _idle_megabytes(with_model: bool) -> Measure:
    """The memory targets are in MB (10^6 bytes); the process' RSS is read in MiB."""
    return lambda floor, bosun, model: _median("idle_rss")(model if with_model else bosun) * MIB / 1e6


TARGETS = (
    Target("create → proposal, 1 in flight, spaced, p50", _ratio_of("spaced_proposal", 0.5), 3, "x floor"),
    Target("create → proposal, 1 in flight, spaced, p99", _ratio_of("spaced_proposal", 0.99), 3, "x floor"),
    Target("create → answer, 1 in flight, spaced, p50", _ratio_of("spaced_answer", 0.5), 3, "x floor"),
    Target("create → answer, 1 in flight, spaced, p99", _ratio_of("spaced_answer", 0.99), 3, "x floor"),
    Target(f"throughput, {BATCH} in flight: proposals", _ratio_of("rate_proposal"), 0.5, "x floor", True),
    Target(f"throughput, {BATCH} in flight: answers", _ratio_of("rate_answer"), 0.5, "x floor", True),
    Target("operator CPU per proposal", _ratio_of("op_cpu_proposal"), 2.5, "x floor"),
    Target("operator CPU per answer", _ratio_of("op_cpu_answer"), 2.5, "x floor"),
    Target("kube-apiserver CPU per proposal", _ratio_of("api_cpu_proposal"), 2, "x floor"),
    Target("kube-apiserver CPU per answer", _ratio_of("api_cpu_answer"), 2, "x floor"),
    Target("start → first object handled, offline", _ratio_of("start_first"), 1.5, "x floor"),
    Target("idle RSS, offline", _idle_megabytes(with_model=False), 100, "MB"),
    Target("idle RSS, with the model", _idle_megabytes(with_model=True), 230, "MB"),
)


def targets(floor: list[Run], bosun: list[Run], model: list[Run]) -> list[str]:
    """Each target this part measures, met or not (the numbers, not a test: nothing fails)."""
    lines = ["targets (medians and pooled percentiles as in the table; memory in MB, 10^6 bytes):"]
    for target in TARGETS:
        if target.label.endswith("with the model") and not model:
            continue
        value = target.value(floor, bosun, model)
        met = value >= target.limit if target.at_least else value <= target.limit
        bound = ">=" if target.at_least else "<="
        lines.append(
            f"  {'met   ' if met else 'MISSED'} {target.label:<44} {value:7.2f} {target.unit}"
            f" ({bound} {target.limit:g})"
        )
    return lines


def _p50(samples: list[float]) -> str:
    return f"{1000 * statistics.median(samples):.1f} ms"


def details(label: str, runs: list[Run]) -> list[str]:
    out = []
    for index, run in enumerate(runs):
        proposal = f"proposal p50 {_p50(run.spaced_proposal)} spaced"
        if run.b2b_proposal:
            proposal += f", {_p50(run.b2b_proposal)} back to back"
        parts = [f"start {1000 * run.start_first:.0f} ms", f"idle {run.idle_rss:.0f} MiB", proposal]
        if run.spaced_answer:
            parts += [
                f"answer p50 {_p50(run.spaced_answer)} spaced, {_p50(run.b2b_answer)} back to back",
                f"batch {run.rate_proposal:.2f} proposals/s {run.rate_answer:.2f} answers/s",
                f"CPU/proposal operator {1000 * run.op_cpu_proposal:.1f} ms"
                f" apiserver {1000 * run.api_cpu_proposal:.1f} ms",
                f"loaded {run.loaded_rss:.0f} MiB",
            ]
        out.append(f"  {label} run {index + 1}: " + "; ".join(parts))
    return out


REQUESTER = "bob"


def grant_requester(cluster: localcluster.Cluster, namespace: str) -> None:
    """The objects are created by an ordinary user, as in production: Bosun refuses to act for
    system:masters (whose rights RBAC cannot bound). bob may use both kinds and edit the namespace."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "bench-requester", "namespace": namespace},
        "rules": [
            {
                "apiGroups": ["bosun.dev", "bench.bosun.dev"],
                "resources": ["agenttasks", "approvalgrants", "floortasks"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            }
        ],
    }
    bindings = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"bench-{kind.lower()}-{name}", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": REQUESTER}],
        }
        for kind, name in (("Role", "bench-requester"), ("ClusterRole", "edit"))
    ]
    docs = "\n---\n".join(json.dumps(d) for d in (role, *bindings))
    localcluster.kubectl(cluster, "apply", "-f", "-", stdin=docs)


async def allowed(requester: Api, paths: list[str], within: float = 30.0) -> None:
    """Wait until the requester's new rights are in effect (the authorizer's cache follows RBAC)."""

    async def readable(path: str) -> bool:
        try:
            await requester.call("GET", path)
        except RuntimeError:
            return False
        return True

    for path in paths:
        await eventually_async(f"the requester to read {path}", lambda p=path: readable(p), within, 0.1)


async def compare(cluster: localcluster.Cluster, namespace: str, repeats: int, model: bool) -> None:
    api = Api(cluster.kubeconfig)
    requester = Api(cluster.user_kubeconfig(REQUESTER))
    crd = "floortasks.bench.bosun.dev"
    localcluster.kubectl(cluster, "apply", "-f", str(HERE / "floor-crd.yaml"))
    try:
        await crd_established(api, crd)
        await crd_established(api, "agenttasks.bosun.dev")
        floor, bosun = flavours(cluster, namespace)
        grant_requester(cluster, namespace)
        await allowed(requester, [floor.path(namespace), bosun.path(namespace)])
        apiserver = cluster.pids["kube-apiserver"]
        log_dir = cluster.log_dir / namespace
        log_dir.mkdir(parents=True, exist_ok=True)
        results: dict[str, list[Run]] = {"floor": [], "Bosun": [], "Bosun + model": []}
        with FakeLLM(default=text("Nothing more to do.")) as fake:
            scripted = with_model(bosun, fake)
            for repeat in range(repeats):
                for flavour in (floor, bosun, scripted) if model else (floor, bosun):
                    started = time.monotonic()
                    log = log_dir / f"{flavour.label.replace(' ', '')}-{repeat}.log"
                    full = flavour is not scripted
                    run = await one_run(api, requester, flavour, namespace, log, apiserver, full=full)
                    results[flavour.label].append(run)
                    took = time.monotonic() - started
                    print(f"  {flavour.label} run {repeat + 1}/{repeats} done in {took:.0f} s")
            if model:
                print(f"  Bosun + model: {len(fake.requests)} model requests answered")
        print()
        print(
            f"Bosun (offline planner, in-process tools) against the floor operator, {repeats} alternating "
            f"runs each; latencies pooled over the runs ({SEQUENTIAL * repeats} samples per figure at 1 in "
            f"flight, {BATCH * repeats} at {BATCH}), other figures the median of the runs; ratio Bosun/floor "
            "(throughput: Bosun as % of floor). 1 in flight, spaced: each object created "
            f"{1000 * ARRIVAL_GAP:.0f} ms after the previous one reached its phase (requests arriving "
            "independently); back to back: the moment it did (see ARRIVAL_GAP in tests/bench/compare.py)"
        )
        print()
        for line in table(results["floor"], results["Bosun"], results["Bosun + model"]):
            print(line)
        print()
        for line in targets(results["floor"], results["Bosun"], results["Bosun + model"]):
            print(line)
        print()
        print("per run:")
        for label, runs in results.items():
            for line in details(label, runs):
                print(line)
        print(f"  operator logs in {log_dir}")
    finally:
        with contextlib.suppress(Exception):
            localcluster.kubectl(cluster, "delete", "crd", crd, "--wait=false")
        await api.aclose()
        await requester.aclose()
