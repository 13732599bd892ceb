"""The failover drill (optional: ``BOSUN_BENCH_FAILOVER=1`` or ``--failover``; about 9 minutes): two
replicas with leader election and client-go's Lease timings (15/10/2 s), the leader SIGKILLed during an
approved non-idempotent Jenkins trigger, ``rounds`` rounds (the drill of tests/e2e/test_failover.py):
time from the kill to a ready new leader, calls run twice, tasks unfinished."""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import uuid
from collections import Counter

import localcluster


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
