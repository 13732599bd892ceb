"""Sharding by namespace: two Bosun processes with disjoint ``BOSUN_NAMESPACES`` against one process.

Four fresh namespaces, each with a Deployment ``web`` (for the proposals) and bob allowed to use Bosun.
Two runs on them, each with the same load: ``TASKS`` tasks created at once by bob, spread round-robin over
the four namespaces, alternately a question (ends ``Succeeded``) and a proposal (ends
``AwaitingApproval``), as in ``live.py``:

- **one process** watching all four namespaces;
- **two shards**: ``shard-a`` watching the first two, ``shard-b`` the last two.

The two runs alternate, ``ROUNDS`` times each. Each process is warmed up by one question in one of its
namespaces before the load (start-up is not throughput). Throughput is tasks over (last phase seen - first
create sent), the median of the rounds; CPU is ``/proc`` utime + stime over the load, until the processes
are quiet again, and "busy" that CPU over the load's duration (a process near 100 % is what sharding
relieves; below that, the API server or the machine sets the pace).

Who handled each task is read from two independent records:

- the Events Bosun posted about it: their ``reportingInstance`` is the process's ``HOSTNAME`` (the pod's
  name in a cluster; set to the shard's name here), and no reason of them may be posted twice (no step
  of its life recorded twice);
- each process's JSON log (``BOSUN_LOG_FORMAT=json``): a line names the task (``object.uid``) whenever its
  watch delivered the task to that process or the process reconciled it. A second process handling a task
  shows up here even where the conditional status writes kept it from changing anything, so the logs are
  the record that would reveal a double handling.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import localcluster

from tests.bench.compare import (
    BOSUN_WRONG,
    REQUESTER,
    Flavour,
    Process,
    allowed,
    flavours,
    grant_requester,
)
from tests.bench.kube import Api, PhaseWatch, cpu_seconds, purge, settled
from tests.bench.live import LOAD_TIMEOUT, asks, load
from tests.tools_support import deployment

TASKS = 200
ROUNDS = 3
SHARDS = {"shard-a": ("a1", "a2"), "shard-b": ("b1", "b2")}
"""Shard name → suffixes of the namespaces it watches."""
ONE_PROCESS = "bosun-all"
BOSUN_COMPONENT = "bosun.dev/operator"
"""The ``reportingComponent`` of the Events Bosun itself posts (``bosun.ports.store``)."""


def _bosun_events(events: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    """(uid of the object it is about, Event) for each Event Bosun posted."""
    for event in events:
        if event.get("reportingComponent") == BOSUN_COMPONENT:
            yield str((event.get("involvedObject") or {}).get("uid")), event


def reporters(events: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Per object uid (tasks and grants), the ``reportingInstance`` of each of Bosun's Events about it:
    which processes wrote them."""
    found: dict[str, set[str]] = {}
    for uid, event in _bosun_events(events):
        found.setdefault(uid, set()).add(str(event.get("reportingInstance")))
    return found


def repeated(events: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """Per object uid, the reasons of Bosun's Events posted about it more than once: a step of its life
    (planned, proposed, answered, executed...) recorded twice. Objects with none are left out."""
    counted = Counter((uid, str(event.get("reason"))) for uid, event in _bosun_events(events))
    found: dict[str, set[str]] = {}
    for (uid, reason), times in counted.items():
        if times > 1:
            found.setdefault(uid, set()).add(reason)
    return found


def logged_uids(log: Path) -> set[str]:
    """The uids of the objects a JSON operator log (``BOSUN_LOG_FORMAT=json``) has lines about (``object``):
    every task or grant its watch delivered or it reconciled."""
    uids = set()
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            uid = (json.loads(line).get("object") or {}).get("uid")
            if uid:
                uids.add(str(uid))
    return uids


@dataclass(frozen=True)
class Outcome:
    """One run: the load's duration, the CPU used, and who handled which task."""

    seconds: float
    operator_cpu: dict[str, float]
    apiserver_cpu: float
    rss: dict[str, float]
    owner: dict[str, str]
    """task uid → the process that watches its namespace."""
    reported_by: dict[str, set[str]]
    repeated: dict[str, set[str]]
    logged_by: dict[str, set[str]]


def shard_flavour(bosun: Flavour, name: str, namespaces: Iterable[str]) -> Flavour:
    """Bosun watching ``namespaces``, its Events reported as ``name``, logging JSON."""
    watched = ",".join(namespaces)
    env = {**bosun.env, "BOSUN_NAMESPACES": watched, "HOSTNAME": name, "BOSUN_LOG_FORMAT": "json"}
    return replace(bosun, label=name, env=env)


async def one_run(
    cluster: localcluster.Cluster,
    api: Api,
    requester: Api,
    bosun: Flavour,
    shards: Mapping[str, tuple[str, ...]],
    log_dir: Path,
) -> Outcome:
    """Start one process per entry of ``shards`` (name → the namespaces it watches), put the load on them,
    and read who handled what before the tasks are deleted."""
    processes = {
        name: Process(shard_flavour(bosun, name, watched), log_dir / f"{name}.log")
        for name, watched in shards.items()
    }
    namespaces = [ns for watched in shards.values() for ns in watched]
    owner_of = {ns: name for name, watched in shards.items() for ns in watched}

    def check() -> None:
        for process in processes.values():
            process.check()

    try:
        async with contextlib.AsyncExitStack() as stack:
            watches = {
                ns: await stack.enter_async_context(PhaseWatch(api, bosun.path(ns), BOSUN_WRONG))
                for ns in namespaces
            }
            firsts = [asks(watched[:1], 1, f"first-{name}")[0] for name, watched in shards.items()]
            for first in firsts:
                await requester.create(bosun.path(first.namespace), bosun.doc(first.name, first.request))
            for process in processes.values():
                process.start()
            for first in firsts:
                await watches[first.namespace].reached(
                    [first.name], first.phase, within=LOAD_TIMEOUT, check=check
                )
            for process in processes.values():
                await settled(process.pid)
            apiserver = cluster.pids["kube-apiserver"]
            cpu0 = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            api0 = cpu_seconds(apiserver)
            seconds = await load(requester, bosun, watches, asks(namespaces, TASKS, "load"), check)
            for process in processes.values():
                await settled(process.pid)
            operator_cpu = {name: cpu_seconds(p.pid) - cpu0[name] for name, p in processes.items()}
            apiserver_cpu = cpu_seconds(apiserver) - api0
            rss = {name: localcluster.rss_mib(p.pid) for name, p in processes.items()}
            owner: dict[str, str] = {}
            events: list[dict[str, Any]] = []
            for ns in namespaces:
                for item in (await api.call("GET", bosun.path(ns)))["items"]:
                    owner[item["metadata"]["uid"]] = owner_of[ns]
                events += (await api.call("GET", f"/api/v1/namespaces/{ns}/events"))["items"]
    finally:
        for process in processes.values():
            process.stop()
        for ns in namespaces:
            await purge(api, bosun.path(ns))
    logged_by: dict[str, set[str]] = {}
    for name, process in processes.items():
        for uid in logged_uids(process.log):
            logged_by.setdefault(uid, set()).add(name)
    return Outcome(
        seconds, operator_cpu, apiserver_cpu, rss, owner, reporters(events), repeated(events), logged_by
    )


def report(label: str, runs: list[Outcome], baseline: list[Outcome] | None = None) -> None:
    """Throughput (median of the rounds) and CPU, then per process what it handled over all rounds, from
    its Events and its log."""
    rates = [TASKS / run.seconds for run in runs]
    rate = statistics.median(rates)
    versus = ""
    if baseline:
        one = statistics.median(TASKS / run.seconds for run in baseline)
        versus = f"; {100 * rate / one:.0f} % of one process"
    rounds = ", ".join(f"{r:.1f}" for r in rates)
    print(f"  {label}: {rate:.1f} tasks/s (median; rounds {rounds}){versus}")
    cpu = statistics.median(sum(run.operator_cpu.values()) for run in runs)
    apiserver = statistics.median(run.apiserver_cpu for run in runs)
    print(
        f"    CPU per task: operators {1000 * cpu / TASKS:.1f} ms, "
        f"kube-apiserver {1000 * apiserver / TASKS:.1f} ms"
    )
    for name in runs[0].operator_cpu:
        seen = Counter[str]()
        for run in runs:
            mine = {uid for uid, owner in run.owner.items() if owner == name}
            by_events = {uid for uid in run.owner if name in run.reported_by.get(uid, set())}
            by_log = {uid for uid in run.owner if name in run.logged_by.get(uid, set())}
            seen["own"] += len(mine)
            seen["reported"] += len(by_events & mine)
            seen["reported other"] += len(by_events - mine)
            seen["logged"] += len(by_log & mine)
            seen["logged other"] += len(by_log - mine)
        rss = statistics.median(run.rss[name] for run in runs)
        busy = statistics.median(run.operator_cpu[name] / run.seconds for run in runs)
        print(
            f"    {name}: {seen['own']} tasks in its namespaces; Events from it on {seen['reported']} of "
            f"them and {seen['reported other']} others; its log names {seen['logged']} of them and "
            f"{seen['logged other']} others; busy {100 * busy:.0f} % of a core; RSS {rss:.0f} MiB"
        )
    counts = Counter[str]()
    for run in runs:
        for uid in run.owner:
            counts["tasks"] += 1
            counts["logged twice"] += len(run.logged_by.get(uid, set())) > 1
            counts["reported twice"] += len(run.reported_by.get(uid, set())) > 1
            counts["recorded twice"] += uid in run.repeated
            counts["unhandled"] += not run.logged_by.get(uid)
    print(
        f"    of {counts['tasks']} tasks: named in two logs {counts['logged twice']}; with Events from two "
        f"processes {counts['reported twice']}; with an Event posted twice {counts['recorded twice']}; "
        f"handled by nobody {counts['unhandled']}"
    )


async def bench_shards(cluster: localcluster.Cluster, base: str) -> None:
    """Creates and deletes its own namespaces (``<base>-a1`` ...)."""
    api = Api(cluster.kubeconfig)
    requester = Api(cluster.user_kubeconfig(REQUESTER))
    shards = {name: tuple(f"{base}-{suffix}" for suffix in suffixes) for name, suffixes in SHARDS.items()}
    namespaces = [ns for watched in shards.values() for ns in watched]
    layouts = {"one process": {ONE_PROCESS: tuple(namespaces)}, "two shards": shards}
    log_dir = cluster.log_dir / base / "shards"
    try:
        for ns in namespaces:
            localcluster.kubectl(cluster, "create", "namespace", ns)
            localcluster.kubectl(cluster, "apply", "-n", ns, "-f", "-", stdin=deployment("web", 1))
            grant_requester(cluster, ns)
        _floor, bosun = flavours(cluster, namespaces[0])
        await allowed(requester, [bosun.path(ns) for ns in namespaces])
        runs: dict[str, list[Outcome]] = {label: [] for label in layouts}
        for index in range(ROUNDS):
            for label, layout in layouts.items():
                started = time.monotonic()
                logs = log_dir / f"{label.replace(' ', '-')}-{index}"
                logs.mkdir(parents=True, exist_ok=True)
                runs[label].append(await one_run(cluster, api, requester, bosun, layout, logs))
                print(f"  {label} round {index + 1}/{ROUNDS} done in {time.monotonic() - started:.0f} s")
        print()
        print(
            f"{TASKS} tasks created at once over {len(namespaces)} namespaces (half questions, half "
            f"proposals), {ROUNDS} rounds, alternately; who handled each task from its Events "
            "(reportingInstance) and the processes' logs"
        )
        report(f"one process ({len(namespaces)} namespaces)", runs["one process"])
        split = "; ".join(f"{name}: {', '.join(watched)}" for name, watched in shards.items())
        report(f"two shards ({split})", runs["two shards"], baseline=runs["one process"])
        print(f"  operator logs in {log_dir}")
    finally:
        for ns in namespaces:
            with contextlib.suppress(RuntimeError):
                localcluster.kubectl(cluster, "delete", "namespace", ns, "--wait=false")
        await api.aclose()
        await requester.aclose()
