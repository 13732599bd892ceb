"""``python -m tests.bench [--only PART]... [--failover] [--repeats N] [--no-model]``: see
``tests/bench/__init__.py``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import localcluster

from tests.bench import __doc__ as overview
from tests.bench.compare import ARRIVAL_GAP, compare
from tests.bench.failover import bench_failover
from tests.bench.kube import Api, ListAfterWrite, list_after_write
from tests.bench.live import LIVE, bench_live
from tests.bench.shards import bench_shards
from tests.bench.tools import bench_tools
from tests.tools_support import deployment

FAILOVER_ROUNDS = 20
PARTS = ("tools", "compare", "live", "shards")
"""What ``make bench`` runs, in this order; the failover drill comes last, when asked for."""
CRDS = Path(__file__).resolve().parents[2] / "crds"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=overview,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--failover",
        action="store_true",
        default=os.environ.get("BOSUN_BENCH_FAILOVER", "").lower() in ("1", "true", "yes"),
        help="also run the failover drill (about 9 minutes); default from BOSUN_BENCH_FAILOVER=1",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="run only this part (repeatable; default: all of them)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs of each operator (default 5)")
    parser.add_argument("--no-model", action="store_true", help="skip the run with the scripted model")
    args = parser.parse_args(argv)

    existing = localcluster.running()
    cluster = existing or localcluster.up(quiet=True)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    try:
        print("control plane (RSS):")
        for name, pid in cluster.pids.items():
            print(f"  {name:<46} {localcluster.rss_mib(pid):8.1f} MiB")
        localcluster.kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
        localcluster.kubectl(cluster, "create", "namespace", namespace)
        localcluster.kubectl(cluster, "apply", "-n", namespace, "-f", "-", stdin=deployment("web", 5))
        localcluster.kubectl(
            cluster, "rollout", "status", "-n", namespace, "deployment/web", "--timeout=120s"
        )
        listed = asyncio.run(_list_after_write(cluster.kubeconfig, namespace))
        print(
            f"  {'pods LIST right after a write: consistent':<46} {1000 * listed.back_to_back:8.1f} ms p50"
            f" back to back   (spaced {1000 * ARRIVAL_GAP:.0f} ms: {1000 * listed.spaced:.1f} ms;"
            f" from the watch cache: {1000 * listed.cached:.1f} ms; see tests/bench/kube.py list_after_write)"
        )
        os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
        parts = args.only or PARTS
        if "tools" in parts:
            print("tool server (in process, as the admin):")
            asyncio.run(bench_tools(namespace))
        if "compare" in parts:
            print("operators (Bosun and the floor, alternately):")
            asyncio.run(compare(cluster, namespace, args.repeats, model=not args.no_model))
        if "live" in parts:
            print(f"{LIVE} live tasks (one Bosun process, memory per task present):")
            asyncio.run(bench_live(cluster, namespace))
        if "shards" in parts:
            print("sharding by namespace (two Bosun processes against one):")
            asyncio.run(bench_shards(cluster, namespace))
        if args.failover:
            print("failover (two replicas, leader election):")
            bench_failover(cluster, rounds=FAILOVER_ROUNDS)
        else:
            print("failover drill skipped (BOSUN_BENCH_FAILOVER=1 or --failover runs it, about 9 min)")
    finally:
        localcluster.kubectl(cluster, "delete", "namespace", namespace, "--wait=false")
        if existing is None:
            localcluster.down(quiet=True)
    return 0


async def _list_after_write(kubeconfig: Path, namespace: str) -> ListAfterWrite:
    api = Api(kubeconfig)
    try:
        return await list_after_write(api, namespace, ARRIVAL_GAP)
    finally:
        await api.aclose()


if __name__ == "__main__":
    sys.exit(main())
