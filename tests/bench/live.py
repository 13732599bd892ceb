"""500 live tasks: the memory one Bosun process needs per task present, and that none is lost.

One Bosun operator (offline planner, in-process tools, started as ``compare.py`` starts it, watching the
bench namespace), its tasks created by the ordinary user bob:

1. one question is created before the process starts; once it is answered and the process has used no CPU
   for a moment, idle RSS;
2. ``LIVE`` tasks are created at once (concurrent POSTs), alternately a question ("list pods in <ns>",
   ending ``Succeeded``) and a proposal ("scale deployment web in <ns> to 4", ending ``AwaitingApproval``
   and staying there: an undecided proposal is the task an operator keeps looking at longest, the sweep
   re-checks it every ``BOSUN_SWEEP_SECONDS``);
3. each must reach its phase (one ending anywhere else fails the bench at once); then the collection is
   listed and counted per phase (none lost, none ``Failed``; with the mean size of one task as JSON, for
   scale) and, once the process is quiet, loaded RSS: RSS per live task = (loaded - idle) / ``LIVE``,
   against the 50 KB target of issue 12;
4. the tasks are deleted with the process still running and RSS is read again: what it keeps once they are
   gone is memory the allocator holds on to, not state per task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

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
from tests.bench.kube import Api, PhaseWatch, purge, settled

LIVE = 500
TARGET_BYTES_PER_TASK = 50_000
"""Issue 12: "RSS per live task <= 50 KB"."""
LOAD_TIMEOUT = 300.0


@dataclass(frozen=True)
class Ask:
    """One task of a load: where it is created, what it asks and the phase it must reach."""

    namespace: str
    name: str
    request: str
    phase: str


def asks(namespaces: Sequence[str], n: int, prefix: str) -> list[Ask]:
    """``n`` tasks spread round-robin over ``namespaces``, alternately a question (ends ``Succeeded``) and
    a proposal (ends ``AwaitingApproval``; needs the Deployment ``web`` in its namespace)."""
    made = []
    for index in range(n):
        namespace = namespaces[index % len(namespaces)]
        if index % 2:
            request, phase = f"scale deployment web in {namespace} to 4", "AwaitingApproval"
        else:
            request, phase = f"list pods in {namespace}", "Succeeded"
        made.append(Ask(namespace, f"{prefix}-{index:04d}", request, phase))
    return made


async def load(
    requester: Api,
    bosun: Flavour,
    watches: Mapping[str, PhaseWatch],
    tasks: Sequence[Ask],
    check: Callable[[], None],
) -> float:
    """Create every task at once as ``requester`` and wait until each reached its phase; returns the
    seconds from the first create sent to the last phase seen."""
    started = time.perf_counter()
    await asyncio.gather(
        *(requester.create(bosun.path(t.namespace), bosun.doc(t.name, t.request)) for t in tasks)
    )
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for task in tasks:
        groups[task.namespace, task.phase].append(task.name)
    last = started
    for (namespace, phase), names in groups.items():
        seen = await watches[namespace].reached(names, phase, within=LOAD_TIMEOUT, check=check)
        last = max(last, *seen.values())
    return last - started


async def phases(api: Api, path: str) -> tuple[Counter[str], float]:
    """How many objects of the collection at ``path`` are in each phase ("none" for no phase yet), and their
    mean size as JSON (what the API server sends for one)."""
    items = (await api.call("GET", path))["items"]
    counted = Counter(str((item.get("status") or {}).get("phase") or "none") for item in items)
    return counted, statistics.mean(len(json.dumps(item)) for item in items)


async def bench_live(cluster: localcluster.Cluster, namespace: str) -> None:
    """Needs the Deployment ``web`` in ``namespace`` (``tests.bench.__main__`` creates it)."""
    api = Api(cluster.kubeconfig)
    requester = Api(cluster.user_kubeconfig(REQUESTER))
    _floor, bosun = flavours(cluster, namespace)
    path = bosun.path(namespace)
    log = cluster.log_dir / namespace / "Bosun-live.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    process = Process(bosun, log)
    try:
        grant_requester(cluster, namespace)
        await allowed(requester, [path])
        async with PhaseWatch(api, path, BOSUN_WRONG) as watch:
            [first] = asks([namespace], 1, "live-first")
            await requester.create(path, bosun.doc(first.name, first.request))
            process.start()
            await watch.reached([first.name], first.phase, within=LOAD_TIMEOUT, check=process.check)
            await settled(process.pid)
            idle = localcluster.rss_mib(process.pid)
            tasks = asks([namespace], LIVE, "live")
            took = await load(requester, bosun, {namespace: watch}, tasks, process.check)
            counted, size = await phases(api, path)
            await settled(process.pid)
            loaded = localcluster.rss_mib(process.pid)
            await purge(api, path)
            await settled(process.pid)
            emptied = localcluster.rss_mib(process.pid)
    finally:
        process.stop()
        with contextlib.suppress(RuntimeError, AssertionError):  # cleaning up after a failure: keep it
            await purge(api, path)
        await api.aclose()
        await requester.aclose()
    per_task = (loaded - idle) * 1024 * 1024 / LIVE
    wanted = Counter(t.phase for t in [first, *tasks])
    print(f"  {'tasks created at once (+1 before the start)':<46} {LIVE:8d}   ({_phases(wanted)})")
    present = sum(counted.values())
    print(f"  {'tasks present once all were in their phase':<46} {present:8d}   ({_phases(counted)})")
    print(f"  {'lost':<46} {sum(wanted.values()) - present:8d}")
    print(f"  {'Failed':<46} {counted['Failed']:8d}")
    print(f"  {'create → every one in its phase':<46} {took:8.1f} s   ({LIVE / took:.1f} tasks/s)")
    print(f"  {'RSS idle (started, first task answered)':<46} {idle:8.1f} MiB")
    print(f"  {f'RSS with the {LIVE} present':<46} {loaded:8.1f} MiB")
    print(
        f"  {'RSS per live task':<46} {per_task / 1024:8.1f} KiB   "
        f"({100 * per_task / TARGET_BYTES_PER_TASK:.0f} % of the 50 KB target)"
    )
    print(f"  {'RSS after deleting them (process kept running)':<46} {emptied:8.1f} MiB")
    print(f"  {'one task as JSON (mean)':<46} {size / 1024:8.1f} KiB")
    print(f"  operator log in {log}")


def _phases(counted: Counter[str]) -> str:
    return ", ".join(f"{phase} {n}" for phase, n in sorted(counted.items()))
