"""``make bench``: speed and memory figures of Bosun on the local control plane. Prints numbers only;
nothing here asserts a target (targets live in people's heads and in the README, not in timed tests).

Figures:
- tool server: latency of read-only calls and of mutation previews (server-side dry-run), in process;
- tool definitions: JSON characters sent to the model per turn, default and with each toolset;
- operator: time from ``kubectl apply`` of an AgentTask to its proposal (AwaitingApproval) and, for
  read-only questions, to Succeeded, with several tasks in flight; the operator's memory afterwards;
- failover: two replicas with leader election and client-go's Lease timings (15/10/2 s), the leader
  SIGKILLed during an approved non-idempotent Jenkins trigger, 20 rounds (the drill of
  tests/e2e/test_failover.py): time from the kill to a ready new leader, calls run twice, tasks unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent / "cluster"))

import localcluster

from tests.tools_support import deployment
from tests.waiting import eventually_async

ROOT = Path(__file__).resolve().parents[1]
FAILOVER_ROUNDS = 20


def describe(label: str, samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"  {label:<46} n={len(ms):<3} p50 {statistics.median(ms):8.1f} ms"
        f"   p95 {p95:8.1f} ms   max {ms[-1]:8.1f} ms"
    )


async def timed(n: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return samples


async def bench_tools(namespace: str) -> None:
    from bosun.planner.toolsets import offered_toolsets, openai_tools
    from bosun.ports.gateway import ToolGateway
    from bosun_tools.identity import Identity
    from bosun_tools.settings import ToolSettings

    admin = Identity("bosun-admin", ("system:masters",))
    gateway = ToolGateway.in_process(ToolSettings.from_env())
    try:
        first = time.perf_counter()
        await gateway.read("k8s_list", {"kind": "pods", "namespace": namespace}, identity=admin)
        print(
            f"  {'first call (server start, discovery)':<46} {1000 * (time.perf_counter() - first):8.1f} ms"
        )
        get = {"kind": "deployment", "name": "web", "namespace": namespace}
        print(
            describe(
                "k8s_get deployment", await timed(30, lambda: gateway.read("k8s_get", get, identity=admin))
            )
        )
        listing = {"kind": "pods", "namespace": namespace}
        print(
            describe(
                "k8s_list pods (5)",
                await timed(30, lambda: gateway.read("k8s_list", listing, identity=admin)),
            )
        )
        scale = {**get, "replicas": 7}
        print(
            describe(
                "k8s_scale preview (dry-run + diff)",
                await timed(20, lambda: gateway.preview("k8s_scale", scale, identity=admin)),
            )
        )
        print("tool definitions sent to the model (json.dumps characters):")
        default = len(json.dumps(await openai_tools(gateway, ["kubernetes"])))
        print(f"  {'default turn (read-only kubernetes + load_toolset)':<52} {default:6d}")
        for toolset in (await offered_toolsets(gateway))[1:]:
            loaded = len(json.dumps(await openai_tools(gateway, ["kubernetes", toolset])))
            print(f"  {'+ ' + toolset:<52} {loaded - default:+6d}")
        everything = len(json.dumps(await openai_tools(gateway, await offered_toolsets(gateway))))
        print(f"  {'everything loaded':<52} {everything:6d}")
    finally:
        await gateway.aclose()


def wait_phase(
    cluster: localcluster.Cluster, namespace: str, names: list[str], phase: str
) -> dict[str, float]:
    """Poll the tasks (a cheap LIST through the API) until each reaches ``phase``; returns when each was
    first seen there, so the figures are within a few milliseconds of the truth."""
    from bosun_tools.client.kube import KubeClient

    async def poll() -> dict[str, float]:
        client = KubeClient.from_kubeconfig(cluster.kubeconfig)
        seen: dict[str, float] = {}

        async def all_there() -> bool:
            for item in (await client.list(info, namespace))["items"]:
                name = item["metadata"]["name"]
                if name in names and name not in seen and item.get("status", {}).get("phase") == phase:
                    seen[name] = time.perf_counter()
            return len(seen) == len(names)

        try:
            info = await client.resolve("agenttasks.bosun.dev")
            await eventually_async(f"tasks {names} to reach {phase}", all_there, within=300, interval=0.005)
            return seen
        finally:
            await client.aclose()

    return asyncio.run(poll())


def bench_operator(cluster: localcluster.Cluster, namespace: str, tasks: int) -> None:
    localcluster.kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    localcluster.kubectl(
        cluster, "wait", "--for=condition=Established", "crd/agenttasks.bosun.dev", "--timeout=60s"
    )
    log = cluster.log_dir / "operator-bench.log"
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "BOSUN_NAMESPACES": namespace}
    started = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bosun"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        warm = {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "AgentTask",
            "metadata": {"name": "warm-up"},
            "spec": {"request": f"list pods in {namespace}"},
        }
        localcluster.kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=json.dumps(warm))
        ready_at = wait_phase(cluster, namespace, ["warm-up"], "Succeeded")["warm-up"]
        print(f"  {'operator start → first task Succeeded':<46} {1000 * (ready_at - started):8.1f} ms")
        print(f"  {'operator RSS after start':<46} {localcluster.rss_mib(proc.pid):8.1f} MiB")

        for label, request, phase in (
            ("read-only question → Succeeded", f"list pods in {namespace}", "Succeeded"),
            (
                "scale request → AwaitingApproval (with preview)",
                f"scale deployment web in {namespace} to 4",
                "AwaitingApproval",
            ),
        ):
            names = [f"b-{uuid.uuid4().hex[:8]}" for _ in range(tasks)]
            docs = "\n---\n".join(
                json.dumps(
                    {
                        "apiVersion": "bosun.dev/v1alpha1",
                        "kind": "AgentTask",
                        "metadata": {"name": n},
                        "spec": {"request": request},
                    }
                )
                for n in names
            )
            start = time.perf_counter()
            localcluster.kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=docs)
            reached = wait_phase(cluster, namespace, names, phase)
            print(describe(f"{label}, {tasks} at once", [t - start for t in reached.values()]))
        after = f"operator RSS after {2 * tasks + 1} tasks"
        print(f"  {after:<46} {localcluster.rss_mib(proc.pid):8.1f} MiB")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def bench_failover(cluster: localcluster.Cluster, rounds: int) -> None:
    from tests.e2e.test_failover import Drill, moments
    from tests.fakes.jenkins import FakeJenkins

    namespace = f"bench-failover-{uuid.uuid4().hex[:6]}"
    localcluster.kubectl(cluster, "create", "namespace", namespace)
    log_dir = cluster.log_dir / namespace
    log_dir.mkdir(parents=True, exist_ok=True)

    def run(*args: str, user: str | None = None, input: str | None = None) -> str:
        return localcluster.kubectl(cluster, *args, stdin=input, user=user)

    env = {
        **os.environ,
        "KUBECONFIG": str(cluster.kubeconfig),
        "PATH": f"{cluster.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "BOSUN_NAMESPACES": namespace,
        "BOSUN_SWEEP_SECONDS": "2",
        "BOSUN_VERIFY_SECONDS": "60",
        "BOSUN_LEADER_ELECTION": "true",
        "BOSUN_LEADER_ELECTION_NAMESPACE": namespace,
        "BOSUN_TOOLS_JENKINS_SECRET": f"{namespace}/jenkins",
        "PYTHONUNBUFFERED": "1",
    }
    outcomes = []
    unfinished = 0
    # The double prints a traceback for each connection a killed leader leaves behind: keep them in a file.
    with (
        (log_dir / "jenkins.log").open("w") as noise,
        contextlib.redirect_stderr(noise),
        FakeJenkins() as jenkins,
    ):
        drill = Drill(run, namespace, env, log_dir, jenkins)
        try:
            drill.prepare()
            drill.start_replica()
            drill.start_replica()
            for index, moment in enumerate(moments(rounds, random.Random(0))):
                try:
                    outcomes.append(drill.round(index, moment))
                except AssertionError as exc:
                    unfinished += 1
                    print(f"  round {index} ({moment}) did not finish: {str(exc)[:300]}")
        finally:
            drill.stop()
            localcluster.kubectl(cluster, "delete", "namespace", namespace, "--wait=false")
    times = sorted(o.failover for o in outcomes)
    doubled = sum(1 for o in outcomes if o.triggers > 1)
    ended = Counter(f"{o.phase}/{o.reason}" for o in outcomes)
    print(f"  {'rounds (leader SIGKILLed once each)':<46} {rounds:8d}")
    print(f"  {'calls run twice':<46} {doubled:8d}")
    print(f"  {'approved tasks left unfinished':<46} {unfinished:8d}")
    print(f"  {'tasks ended':<46} " + ", ".join(f"{k} {v}" for k, v in sorted(ended.items())))
    if times:
        print(
            f"  {'failover: kill → new leader ready':<46} p50 {statistics.median(times):6.1f} s"
            f"   max {times[-1]:6.1f} s   (lease 15 s, retry 2 s)"
        )
    print(f"  logs in {log_dir}")


def main() -> int:
    existing = localcluster.running()
    cluster = existing or localcluster.up(quiet=True)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        print("control plane (RSS):")
        for name, pid in cluster.pids.items():
            print(f"  {name:<46} {localcluster.rss_mib(pid):8.1f} MiB")
        localcluster.kubectl(cluster, "create", "namespace", namespace)
        localcluster.kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=deployment("web", 5))
        localcluster.kubectl(
            cluster, "rollout", "status", "-n", namespace, "deployment/web", "--timeout=120s"
        )
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        print("tool server (in process, as the admin):")
        asyncio.run(bench_tools(namespace))
        print("operator (offline planner, driven with kubectl):")
        bench_operator(cluster, namespace, tasks=10)
        print("failover (two replicas, leader election):")
        bench_failover(cluster, rounds=FAILOVER_ROUNDS)
    finally:
        localcluster.kubectl(cluster, "delete", "namespace", namespace, "--wait=false")
        if existing is None:
            localcluster.down(quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
