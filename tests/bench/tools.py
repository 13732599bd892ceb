"""The tool server in process, as the operator uses it: latencies of read-only calls and of mutation
previews (server-side dry-run + diff), and what one model turn carries besides the conversation: the
JSON characters of the tool definitions (default turn, each toolset loaded, everything) and the system
prompt."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any


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
    from bosun.planner.prompts import SYSTEM
    from bosun.planner.toolsets import offered_toolsets, openai_tools
    from bosun.ports.gateway import ToolGateway
    from bosun_tools.identity import Identity
    from bosun_tools.settings import ToolSettings

    admin = Identity("bosun-admin", ("system:masters",))
    gateway = ToolGateway.in_process(ToolSettings.from_env())
    try:
        first = time.perf_counter()
        await gateway.read("k8s_get", {"kind": "pods", "namespace": namespace}, identity=admin)
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
                "k8s_get pods, listed (5)",
                await timed(30, lambda: gateway.read("k8s_get", listing, identity=admin)),
            )
        )
        scale = {**get, "replicas": 7}
        print(
            describe(
                "k8s_scale preview (dry-run + diff)",
                await timed(20, lambda: gateway.preview("k8s_scale", scale, identity=admin)),
            )
        )
        print("per model turn, besides the conversation (characters; tools as json.dumps):")
        print(f"  {'system prompt (bosun.planner.prompts.SYSTEM)':<52} {len(SYSTEM):6d}")
        toolsets = await offered_toolsets(gateway)
        default = len(json.dumps(await openai_tools(gateway, toolsets[:1])))
        print(f"  {'tools, default turn (' + toolsets[0] + ' + load_toolset)':<52} {default:6d}")
        for toolset in toolsets[1:]:
            loaded = len(json.dumps(await openai_tools(gateway, [toolsets[0], toolset])))
            label = f"tools, {toolset} loaded"
            print(f"  {label:<52} {loaded:6d}   ({loaded - default:+d})")
        everything = len(json.dumps(await openai_tools(gateway, toolsets)))
        print(f"  {'tools, everything loaded':<52} {everything:6d}   ({everything - default:+d})")
    finally:
        await gateway.aclose()
