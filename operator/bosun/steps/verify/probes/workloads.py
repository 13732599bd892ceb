"""Checks of the workload tools: scale, set image, rollout restart and undo, cordon, uncordon, drain."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

# The tools' own rules (kubectl drain's pod classes, where a kind keeps its pod template): one copy of each.
from bosun_tools.workloads import dig, drain_plan, pod_spec_path

from bosun.steps.verify.probes.base import (
    LISTED,
    Probe,
    Reader,
    Status,
    Verdict,
    k8s_get_args,
    live_object,
    object_probe,
    show,
    unrecorded,
)

ROLLOUT_WAIT_CAP = 300
"""The rollout-status tool waits at most this long per call (its own bound)."""
DRAIN_POD_READS = 50
"""Pods left on a drained node that are read one by one; with more, a person checks."""
WORKLOAD_KINDS = {
    "deployment": "deployment",
    "deployments": "deployment",
    "deploy": "deployment",
    "statefulset": "statefulset",
    "statefulsets": "statefulset",
    "sts": "statefulset",
    "daemonset": "daemonset",
    "daemonsets": "daemonset",
    "ds": "daemonset",
}


def workload_kind(kind: str) -> str | None:
    """``deployment``/``statefulset``/``daemonset`` for any spelling of those kinds (``deploy``,
    ``Deployment.apps``, ``sts``), None for other kinds."""
    name, _, group = kind.lower().partition(".")
    return WORKLOAD_KINDS.get(name) if group in ("", "apps") else None


def rollout_verdict(
    data: Mapping[str, Any], *, replicas: int | None = None, images: Mapping[str, Any] | None = None
) -> Verdict:
    """Judge ``k8s_rollout_status`` facts: the spec says what was asked, the rollout is complete and the
    replicas are available."""
    available = data.get("available") or 0
    total = data.get("replicas")
    facts = f"{available}/{total} available"
    if replicas is not None and total != replicas:
        return "failed", f"spec.replicas is {total}, expected {replicas}; {facts}"
    if images is not None and data.get("images") != dict(images):
        return "failed", f"runs images {show(data.get('images'))}, expected {show(dict(images))}"
    if not data.get("complete"):
        return "pending", f"rollout not complete: {facts}"
    if replicas is not None and available < replicas:
        return "pending", f"only {facts}"
    return "passed", f"rolled out, {facts}"


def rollout_probe(
    kind: str,
    name: str,
    namespace: str,
    *,
    replicas: int | None = None,
    images: Mapping[str, Any] | None = None,
) -> Probe:
    """The rollout tool waits by itself: it is given the time left before the deadline."""

    async def look(read: Reader) -> Verdict:
        wait = max(0, min(int(read.remaining()), ROLLOUT_WAIT_CAP))
        args = {"kind": kind, "name": name, "namespace": namespace, "wait_seconds": wait}
        outcome = await read("k8s_rollout_status", args)
        if not outcome.ok:
            return "failed", f"k8s_rollout_status failed: {outcome.error}"
        return rollout_verdict(outcome.data or {}, replicas=replicas, images=images)

    return Probe(f"{kind} {namespace}/{name} rolled out", look)


def scale_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Workloads roll out to the replica count; other scalable kinds show it in ``spec.replicas``."""
    kind, name, namespace, replicas = (
        str(args["kind"]),
        str(args["name"]),
        str(args["namespace"]),
        args["replicas"],
    )
    workload = workload_kind(kind)
    if workload:
        return [rollout_probe(workload, name, namespace, replicas=replicas)]

    def judge(live: dict[str, Any]) -> Verdict:
        spec = live.get("spec") or {}
        if "replicas" not in spec:
            return (
                "unsure",
                f"it has no spec.replicas (its scale subresource maps elsewhere); expected {replicas}",
            )
        if spec["replicas"] != replicas:
            return "failed", f"spec.replicas is {spec['replicas']}, expected {replicas}"
        return "passed", f"spec.replicas is {replicas}"

    return [object_probe(f"{kind.lower()} {namespace}/{name} scaled", kind, name, namespace, judge)]


def set_image_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """The container runs the image in the object's pod template; a workload also rolls out."""
    kind, name, namespace = str(args["kind"]), str(args["name"]), str(args["namespace"])
    container, image = args["container"], args["image"]

    def judge(live: dict[str, Any]) -> Verdict:
        spec = dig(live, pod_spec_path(str(live.get("kind", ""))))
        found = [
            c
            for c in [*spec.get("containers", []), *spec.get("initContainers", [])]
            if c.get("name") == container
        ]
        if not found:
            return "failed", f"it has no container {container}"
        if found[0].get("image") != image:
            return "failed", f"container {container} has image {found[0].get('image')}, expected {image}"
        return "passed", f"container {container} has image {image}"

    probes = [object_probe(f"{kind.lower()} {namespace}/{name} image set", kind, name, namespace, judge)]
    workload = workload_kind(kind)
    if workload:
        probes.append(rollout_probe(workload, name, namespace))
    return probes


def restart_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    return [rollout_probe(str(args["kind"]), str(args["name"]), str(args["namespace"]))]


def undo_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Rolled out, running the images the rollback restored (as the tool recorded them)."""
    kind, name, namespace = str(args["kind"]), str(args["name"]), str(args["namespace"])
    images = (data or {}).get("images")
    if not isinstance(images, dict):
        return [
            rollout_probe(kind, name, namespace),
            unrecorded(f"{kind} {namespace}/{name} rolled back", "the images the rollback restored"),
        ]
    return [rollout_probe(kind, name, namespace, images=images)]


def _cordon_probe(node: str, unschedulable: bool) -> Probe:
    def judge(live: dict[str, Any]) -> Verdict:
        state = bool((live.get("spec") or {}).get("unschedulable"))
        verdict: Status = "passed" if state == unschedulable else "failed"
        return verdict, f"spec.unschedulable is {str(state).lower()}"

    verb = "cordoned" if unschedulable else "uncordoned"
    return object_probe(f"node {node} {verb}", "nodes", node, None, judge)


def cordon_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    return [_cordon_probe(str(args["name"]), True)]


def uncordon_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    return [_cordon_probe(str(args["name"]), False)]


def table_names(text: str) -> list[tuple[str, str]] | None:
    """(namespace, name) of each row of a ``k8s_get`` listing over all namespaces; None if it is not
    one."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].startswith("No resources found"):
        return []
    if lines[0].split()[:2] != ["NAMESPACE", "NAME"]:
        return None
    return [(cells[0], cells[1]) for cells in (line.split() for line in lines[1:]) if len(cells) >= 2]


def _left_on_node(node: str) -> Callable[[Reader], Awaitable[Verdict]]:
    """Pods still on the node that drain evicts (kubectl drain's rules, as the drain tool applies them:
    mirror and DaemonSet pods stay)."""

    async def look(read: Reader) -> Verdict:
        args = {"kind": "pods", "field_selector": f"spec.nodeName={node}", "limit": 500}
        listed = await read("k8s_get", args)
        if not listed.ok:
            return "unsure", f"listing its pods failed: {listed.error}"
        rows = table_names(listed.text)
        if rows is None or listed.truncated or (listed.data or {}).get("more") or len(rows) > DRAIN_POD_READS:
            return (
                "unsure",
                f"its pods could not all be read (more than {DRAIN_POD_READS}, or an unexpected listing)",
            )
        left: list[str] = []
        for namespace, pod in rows:
            live = live_object(await read("k8s_get", k8s_get_args("pods", pod, namespace)))
            if isinstance(live, tuple):
                if live[0] == "failed":
                    continue  # gone since it was listed
                return "unsure", f"pod {namespace}/{pod}: {live[1]}"
            evict, _, _ = drain_plan([live], force=True, delete_emptydir_data=True)
            if evict:
                left.append(f"{namespace}/{pod}")
        if left:
            return "pending", f"{len(left)} evictable pod(s) still on it: {', '.join(left[:LISTED])}"
        return "passed", f"no evictable pods left ({len(rows)} DaemonSet or mirror pod(s) stay)"

    return look


def drain_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    node = str(args["name"])
    return [_cordon_probe(node, True), Probe(f"node {node} drained", _left_on_node(node))]
