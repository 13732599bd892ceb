"""What kubectl knows about workload objects, shared by the tools that change them and the operator's probes
that check the change took: where a kind keeps its pod spec, and which pods a drain evicts."""

from __future__ import annotations

from typing import Any


def pod_spec_path(kind: str) -> tuple[str, ...]:
    """Where a workload of ``kind`` keeps its pod template's spec."""
    if kind == "Pod":
        return ("spec",)
    if kind == "CronJob":
        return ("spec", "jobTemplate", "spec", "template", "spec")
    return ("spec", "template", "spec")


def dig(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The mapping at ``path`` in ``obj`` ({} where the path is missing or not a mapping)."""
    node: Any = obj
    for key in path:
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def drain_plan(
    pods: list[dict[str, Any]], *, force: bool, delete_emptydir_data: bool
) -> tuple[list[dict[str, Any]], list[str], list[str]]:
    """(pods to evict, skipped lines, blocking problems) with kubectl drain's rules."""
    evict, skipped, problems = [], [], []
    for pod in pods:
        meta = pod["metadata"]
        label = f"{meta['namespace']}/{meta['name']}"
        owners = meta.get("ownerReferences", [])
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            evict.append(pod)
            continue
        if "kubernetes.io/config.mirror" in meta.get("annotations", {}):
            skipped.append(f"{label} (mirror pod)")
            continue
        if any(o.get("kind") == "DaemonSet" and o.get("controller") for o in owners):
            skipped.append(f"{label} (DaemonSet-managed)")
            continue
        if not any(o.get("controller") for o in owners) and not force:
            problems.append(f"{label} is not managed by a controller (pass force=true to delete it anyway)")
            continue
        if any("emptyDir" in v for v in pod.get("spec", {}).get("volumes", [])) and not delete_emptydir_data:
            problems.append(f"{label} uses emptyDir data (pass delete_emptydir_data=true to lose it)")
            continue
        evict.append(pod)
    return evict, skipped, problems
