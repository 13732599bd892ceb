"""Kubernetes toolset, mutating tools: everything through the API (never the kubectl binary), as the
caller's identity.

A preview needs no branch of its own to change nothing: its client sends every write as a server-side dry
run (``KubeClient.previewing``), so the tools send the same requests either way and return the field-level
changes plus a unified diff of what the API server answered, and an approver sees exactly what will change.
"""

from __future__ import annotations

import asyncio
import copy
import shlex
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field

from bosun_tools.client.exec import exec_in_pod
from bosun_tools.client.kube import KubeError
from bosun_tools.errors import ToolError
from bosun_tools.output import LAST_APPLIED, ToolOutput, field_changes, redact_pair, yaml_diff
from bosun_tools.registry import DnsLabel, Image, K8sName, Kind, Namespace, bosun_tool, current
from bosun_tools.toolsets.kubernetes.common import (
    LOG_CAP,
    REVISION,
    Revision,
    Workload,
    container_images,
    namespace_for,
    object_facts,
    object_phrase,
    revisions,
)
from bosun_tools.workloads import dig, drain_plan, pod_spec_path

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
# kubectl's annotationsToSkip (polymorphichelpers/rollback.go): a rollback keeps the Deployment's own values.
ROLLBACK_KEEPS = (
    LAST_APPLIED,
    REVISION,
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
)

TemplateKind = Literal["deployment", "statefulset", "daemonset", "replicaset", "job", "cronjob", "pod"]
Replicas = Annotated[int, Field(ge=0, le=1000)]
Command = Annotated[list[Annotated[str, Field(max_length=4096)]], Field(min_length=1, max_length=64)]


def _preview(
    before: dict[str, Any] | None, after: dict[str, Any] | None, label: str
) -> tuple[list[str], str]:
    """Field changes and diff between two states of an object, with Secret values redacted first."""
    old, new = redact_pair(before, after)
    return field_changes(old, new), yaml_diff(old, new, label)


def _change_text(verb: str, what: str, changes: list[str], preview: bool) -> str:
    head = f"Would {verb} {what}" if preview else f"Did {verb} {what}"
    if not changes:
        return f"{head}: no change."
    return f"{head}:\n" + "\n".join(f"  {c}" for c in changes)


def _mutation_output(
    *,
    verb: str,
    what: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    label: str,
    data: dict[str, Any],
) -> ToolOutput:
    preview = current().preview
    changes, diff = _preview(before, after, label)
    data = {**data, "dry_run": preview, "changes": changes[:50]}
    return ToolOutput.capped(
        _change_text(verb, what, changes, preview), diff=diff if preview else None, data=data
    )


@bosun_tool(toolset="kubernetes", group="objects", idempotent=True, timeout=60)
async def k8s_apply(
    manifest: Annotated[str, Field(min_length=1, max_length=262144)],
    namespace: Namespace | None = None,
    force: bool = False,
) -> ToolOutput:
    """Server-side apply a YAML manifest in namespace.

    One or more documents; each namespaced one must be in the call's namespace, the only one the
    operator's scope check reads."""
    ctx = current()
    kube = ctx.kube
    try:
        docs = [d for d in yaml.safe_load_all(manifest) if d]
    except yaml.YAMLError as exc:
        raise ToolError(f"manifest is not valid YAML: {exc}") from None
    if not docs or not all(isinstance(d, dict) and d.get("kind") and d.get("apiVersion") for d in docs):
        raise ToolError("every manifest document needs apiVersion, kind and metadata.name")
    results: list[dict[str, Any]] = []
    all_changes: list[str] = []
    diffs: list[str] = []
    for doc in docs:
        info = await kube.resolve(doc["kind"], doc["apiVersion"])
        name = doc.get("metadata", {}).get("name")
        if not name:
            raise ToolError(f"{doc['kind']} document has no metadata.name")
        doc_ns = doc.get("metadata", {}).get("namespace") or namespace
        # Namespaced objects must be in the namespace the call names: the operator's scope check
        # (targetNamespaces) reads only the arguments, never the manifest.
        if info.namespaced and not namespace:
            raise ToolError(f"{doc['kind']} {name} is namespaced: pass namespace (one call per namespace)")
        if info.namespaced and doc_ns != namespace:
            raise ToolError(
                f"{doc['kind']} {name} names namespace {doc_ns} but the call is for namespace {namespace}"
            )
        ns = doc_ns if info.namespaced else None
        if ns:
            doc = {**doc, "metadata": {**doc["metadata"], "namespace": ns}}
        try:
            before: dict[str, Any] | None = await kube.get(info, name, ns)
        except KubeError as exc:
            if exc.status != 404:
                raise
            before = None
        after = await kube.patch(info, name, doc, ns, patch_type="apply", force=force)
        label = f"{info.kind.lower()}/{name}"
        changes, diff = _preview(before, after, label)
        action = "created" if before is None else ("configured" if changes else "unchanged")
        results.append(object_facts(info, name, ns, action=action))
        all_changes.extend(f"{label}: {c}" for c in changes)
        if diff:
            diffs.append(diff)
    verb = "Would apply" if ctx.preview else "Applied"
    text = f"{verb} {len(results)} object(s):\n" + "\n".join(
        f"  {r['kind'].lower()}/{r['name']}{' -n ' + r['namespace'] if r['namespace'] else ''}: {r['action']}"
        for r in results
    )
    if all_changes:
        text += "\nChanges:\n" + "\n".join(f"  {c}" for c in all_changes[:200])
    data = {"objects": results, "dry_run": ctx.preview, "changes": all_changes[:50]}
    return ToolOutput.capped(text, diff="\n".join(diffs) if ctx.preview else None, data=data)


@bosun_tool(toolset="kubernetes", group="objects", idempotent=False, timeout=30)
async def k8s_patch(
    kind: Kind,
    name: K8sName,
    patch: dict[str, Any] | list[dict[str, Any]],
    namespace: Namespace | None = None,
    patch_type: Literal["strategic", "merge", "json"] = "strategic",
) -> ToolOutput:
    """Patch an object: a strategic or merge patch object, or a JSON-patch list."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    ns = namespace_for(info, namespace)
    if (patch_type == "json") != isinstance(patch, list):
        raise ToolError("patch_type json needs a list of operations; strategic and merge need an object")
    before = await ctx.kube.get(info, name, ns)
    try:
        after = await ctx.kube.patch(info, name, patch, ns, patch_type=patch_type)
    except KubeError as exc:
        if exc.status != 415 or patch_type != "strategic":
            raise
        # Custom resources have no strategic-merge schema; a merge patch is what kubectl falls back to.
        patch_type = "merge"
        after = await ctx.kube.patch(info, name, patch, ns, patch_type=patch_type)
    return _mutation_output(
        verb="patch",
        what=object_phrase(info, name, ns),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name}",
        data=object_facts(info, name, ns, patch_type=patch_type),
    )


@bosun_tool(toolset="kubernetes", group="workloads", idempotent=True, timeout=30)
async def k8s_scale(kind: Kind, name: K8sName, namespace: Namespace, replicas: Replicas) -> ToolOutput:
    """Set the replicas of a workload or scalable resource.

    A deployment, statefulset, replicaset, or any resource with a scale subresource."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    if "scale" not in info.subresources:
        raise ToolError(f"{info.qualified} cannot be scaled (no scale subresource)")
    path = info.path(namespace, name, "scale")
    before = await ctx.kube.request("GET", path)
    after = await ctx.kube.patch(info, name, {"spec": {"replicas": replicas}}, namespace, subresource="scale")
    facts = object_facts(
        info, name, namespace, replicas=replicas, previous_replicas=before.get("spec", {}).get("replicas")
    )
    return _mutation_output(
        verb="scale",
        what=object_phrase(info, name, namespace),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name} (scale)",
        data=facts,
    )


@bosun_tool(toolset="kubernetes", group="workloads", idempotent=True, timeout=30)
async def k8s_set_image(
    kind: TemplateKind, name: K8sName, namespace: Namespace, container: DnsLabel, image: Image
) -> ToolOutput:
    """Set the image of a container."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    before = await ctx.kube.get(info, name, namespace)
    path = pod_spec_path(info.kind)
    spec = dig(before, path)
    names = [c["name"] for c in spec.get("containers", [])] + [
        c["name"] for c in spec.get("initContainers", [])
    ]
    if container not in names:
        raise ToolError(
            f"{object_phrase(info, name, namespace)} has no container {container}; "
            f"containers: {', '.join(names)}"
        )
    field = (
        "initContainers" if container not in [c["name"] for c in spec.get("containers", [])] else "containers"
    )
    patch: dict[str, Any] = {field: [{"name": container, "image": image}]}
    for key in reversed(path):
        patch = {key: patch}
    after = await ctx.kube.patch(info, name, patch, namespace, patch_type="strategic")
    facts = object_facts(
        info,
        name,
        namespace,
        container=container,
        image=image,
        previous_image=container_images(before).get(container),
    )
    return _mutation_output(
        verb="set image of",
        what=object_phrase(info, name, namespace),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name}",
        data=facts,
    )


@bosun_tool(toolset="kubernetes", group="workloads", idempotent=False, timeout=30)
async def k8s_rollout_restart(
    name: K8sName, namespace: Namespace, kind: Workload = "deployment"
) -> ToolOutput:
    """Restart a workload's pods, rolling.

    As ``kubectl rollout restart`` does it: a restartedAt annotation on the pod template."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    before = await ctx.kube.get(info, name, namespace)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
    after = await ctx.kube.patch(info, name, patch, namespace, patch_type="strategic")
    return _mutation_output(
        verb="restart",
        what=object_phrase(info, name, namespace),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name}",
        data=object_facts(info, name, namespace, restarted_at=stamp),
    )


def _rollback_annotations(deployment: dict[str, Any], replicaset: dict[str, Any]) -> dict[str, str]:
    """The Deployment's annotations after a rollback, as ``kubectl rollout undo`` computes them.

    The ReplicaSet of a revision carries the Deployment annotations of that revision (a change-cause, for
    instance), so they come back with its template; the ones that describe the live object rather than
    the revision stay as they are."""
    live = deployment["metadata"].get("annotations") or {}
    kept = {key: live[key] for key in ROLLBACK_KEEPS if key in live}
    restored = {
        key: value
        for key, value in (replicaset["metadata"].get("annotations") or {}).items()
        if key not in ROLLBACK_KEEPS
    }
    return {**kept, **restored}


@bosun_tool(toolset="kubernetes", group="rollback", idempotent=False, timeout=30)
async def k8s_rollout_undo(
    name: K8sName, namespace: Namespace, kind: Workload = "deployment", to_revision: Revision = 0
) -> ToolOutput:
    """Roll a workload back to a revision (0: the previous)."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    before = await ctx.kube.get(info, name, namespace)
    history = await revisions(ctx.kube, info, before)
    if len(history) < 2 and not to_revision:
        raise ToolError(f"{object_phrase(info, name, namespace)} has no previous revision to roll back to")
    target = to_revision or history[-2][0]
    match = [h for h in history if h[0] == target]
    if not match:
        known = ", ".join(str(h[0]) for h in history) or "none"
        raise ToolError(
            f"{object_phrase(info, name, namespace)} has no revision {target}; revisions: {known}"
        )
    _, template, source = match[0]
    if info.kind == "Deployment":
        if before["spec"].get("paused"):
            raise ToolError(
                f"{object_phrase(info, name, namespace)} is paused and cannot be rolled back; "
                "resume it first (k8s_patch spec.paused=false), then roll back"
            )
        template = copy.deepcopy(template)
        template.get("metadata", {}).get("labels", {}).pop("pod-template-hash", None)
        if template == before["spec"]["template"]:
            facts = object_facts(
                info,
                name,
                namespace,
                revision=target,
                images=container_images(before),
                dry_run=ctx.preview,
                changes=[],
            )
            return ToolOutput(
                text=f"Skipped rollback: {object_phrase(info, name, namespace)} already runs the template "
                f"of revision {target}.",
                data=facts,
            )
        patch: Any = [
            {"op": "replace", "path": "/spec/template", "value": template},
            {"op": "add", "path": "/metadata/annotations", "value": _rollback_annotations(before, source)},
        ]
        after = await ctx.kube.patch(info, name, patch, namespace, patch_type="json")
    else:
        after = await ctx.kube.patch(info, name, source.get("data", {}), namespace, patch_type="strategic")
    facts = object_facts(info, name, namespace, revision=target, images=container_images(after))
    return _mutation_output(
        verb=f"roll back to revision {target}",
        what=object_phrase(info, name, namespace),
        before=before,
        after=after,
        label=f"{info.kind.lower()}/{name}",
        data=facts,
    )


@bosun_tool(toolset="kubernetes", group="objects", destructive=True, idempotent=True, timeout=60)
async def k8s_delete(
    kind: Kind,
    name: K8sName,
    namespace: Namespace | None = None,
    propagation: Literal["Background", "Foreground", "Orphan"] = "Background",
) -> ToolOutput:
    """Delete one object.

    Its dependents go as ``propagation`` says (Background, as kubectl)."""
    ctx = current()
    info = await ctx.kube.resolve(kind)
    ns = namespace_for(info, namespace)
    before = await ctx.kube.get(info, name, ns)
    await ctx.kube.delete(info, name, ns, propagation_policy=propagation)
    facts = object_facts(info, name, ns, uid=before["metadata"].get("uid"), propagation=propagation)
    what = object_phrase(info, name, ns)
    _, diff = _preview(before, None, f"{info.kind.lower()}/{name}")
    text = f"{'Would delete' if ctx.preview else 'Deleted'} {what} (propagation {propagation})."
    return ToolOutput.capped(
        text,
        diff=diff if ctx.preview else None,
        data={**facts, "dry_run": ctx.preview, "changes": [f"{info.kind.lower()}/{name}: deleted"]},
    )


async def _set_unschedulable(node: str, value: bool) -> ToolOutput:
    ctx = current()
    info = await ctx.kube.resolve("nodes", "v1")
    before = await ctx.kube.get(info, node)
    after = await ctx.kube.patch(info, node, {"spec": {"unschedulable": value or None}})
    verb = "cordon" if value else "uncordon"
    return _mutation_output(
        verb=verb,
        what=f"node {node}",
        before=before,
        after=after,
        label=f"node/{node}",
        data={"kind": "Node", "name": node, "namespace": None, "unschedulable": value},
    )


@bosun_tool(toolset="kubernetes", group="cluster", idempotent=True, timeout=30)
async def k8s_cordon(name: K8sName) -> ToolOutput:
    """Mark a node unschedulable."""
    return await _set_unschedulable(name, True)


@bosun_tool(toolset="kubernetes", group="cluster", idempotent=True, timeout=30)
async def k8s_uncordon(name: K8sName) -> ToolOutput:
    """Mark a node schedulable."""
    return await _set_unschedulable(name, False)


@bosun_tool(toolset="kubernetes", group="cluster", destructive=True, idempotent=True, timeout=330)
async def k8s_drain(
    name: K8sName,
    delete_emptydir_data: bool = False,
    force: bool = False,
    timeout_seconds: Annotated[int, Field(ge=0, le=300)] = 120,
) -> ToolOutput:
    """Cordon a node and evict its pods (DaemonSet pods stay).

    Evictions go through policy/v1 Eviction, so PodDisruptionBudgets hold, as in ``kubectl drain``."""
    ctx = current()
    kube = ctx.kube
    node_info = await kube.resolve("nodes", "v1")
    pods_info = await kube.resolve("pods", "v1")
    node = await kube.get(node_info, name)
    listing = await kube.list(pods_info, field_selector=f"spec.nodeName={name}")
    evict, skipped, problems = drain_plan(
        listing.get("items", []), force=force, delete_emptydir_data=delete_emptydir_data
    )
    if problems:
        raise ToolError(f"cannot drain node {name}: " + "; ".join(problems))
    cordon = await kube.patch(node_info, name, {"spec": {"unschedulable": True}})
    changes = field_changes(node, cordon)
    evicted: list[str] = []
    for pod in evict:
        meta = pod["metadata"]
        body = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        }
        path = pods_info.path(meta["namespace"], meta["name"], "eviction")
        await kube.request("POST", path, json=body)
        evicted.append(f"{meta['namespace']}/{meta['name']}")
    remaining: list[str] = []
    if not ctx.preview and evicted:
        deadline = time.monotonic() + timeout_seconds
        while True:
            now = await kube.list(pods_info, field_selector=f"spec.nodeName={name}")
            remaining = sorted(
                {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in now.get("items", [])}
                & set(evicted)
            )
            if not remaining or time.monotonic() >= deadline:
                break
            await asyncio.sleep(1)
    verb = "Would drain" if ctx.preview else "Drained"
    lines = [
        f"{verb} node {name}:",
        *[f"  {c}" for c in changes],
        *[f"  evict {p}" for p in evicted],
        *[f"  skip {s}" for s in skipped],
    ]
    if remaining:
        lines.append(f"  still terminating after {timeout_seconds}s: {', '.join(remaining)}")
    facts = {
        "kind": "Node",
        "name": name,
        "namespace": None,
        "evicted": evicted,
        "skipped": skipped,
        "remaining": remaining,
        "dry_run": ctx.preview,
        "changes": changes + [f"evict {p}" for p in evicted],
    }
    diff = yaml_diff(node, cordon, f"node/{name}") + "".join(f"\n- pod {p} (evicted)" for p in evicted)
    return ToolOutput.capped("\n".join(lines), diff=diff if ctx.preview else None, data=facts)


@bosun_tool(toolset="kubernetes", group="pods", idempotent=False, timeout=30)
async def k8s_create_job_from_cronjob(
    cronjob: K8sName, namespace: Namespace, job_name: K8sName | None = None
) -> ToolOutput:
    """Start a Job now from a CronJob.

    Like ``kubectl create job --from``: the CronJob's job template, owned by the CronJob."""
    ctx = current()
    cron_info = await ctx.kube.resolve("cronjobs", "batch/v1")
    job_info = await ctx.kube.resolve("jobs", "batch/v1")
    cron = await ctx.kube.get(cron_info, cronjob, namespace)
    name = job_name or f"{cronjob}-manual-{int(time.time()) % 100000}"[:63]
    template = cron["spec"]["jobTemplate"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": template.get("metadata", {}).get("labels", {}),
            "annotations": {
                **template.get("metadata", {}).get("annotations", {}),
                "cronjob.kubernetes.io/instantiate": "manual",
            },
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": cronjob,
                    "uid": cron["metadata"]["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }
    created = await ctx.kube.create(job_info, job, namespace)
    return _mutation_output(
        verb="create",
        what=f"job {name} in namespace {namespace} from cronjob {cronjob}",
        before=None,
        after=created,
        label=f"job/{name}",
        data={"kind": "Job", "name": name, "namespace": namespace, "cronjob": cronjob},
    )


@bosun_tool(toolset="kubernetes", group="pods", idempotent=False, timeout=30)
async def k8s_run_pod(
    name: K8sName,
    namespace: Namespace,
    image: Image,
    command: Command | None = None,
    restart_policy: Literal["Never", "OnFailure", "Always"] = "Never",
) -> ToolOutput:
    """Create a one-off pod (command: argument list)."""
    ctx = current()
    info = await ctx.kube.resolve("pods", "v1")
    container: dict[str, Any] = {"name": name.replace(".", "-")[:63].rstrip("-"), "image": image}
    if command:
        container["command"] = command
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"run": name[:63], "app.kubernetes.io/managed-by": "bosun"},
        },
        "spec": {"restartPolicy": restart_policy, "containers": [container]},
    }
    created = await ctx.kube.create(info, pod, namespace)
    return _mutation_output(
        verb="create",
        what=f"pod {name} in namespace {namespace}",
        before=None,
        after=created,
        label=f"pod/{name}",
        data={"kind": "Pod", "name": name, "namespace": namespace, "image": image},
    )


@bosun_tool(toolset="kubernetes", group="pods", idempotent=False, timeout=130)
async def k8s_exec(
    name: K8sName,
    namespace: Namespace,
    command: Command,
    container: DnsLabel | None = None,
    timeout_seconds: Annotated[int, Field(ge=1, le=120)] = 30,
) -> ToolOutput:
    """Run a command (argument list, no shell) in a pod."""
    ctx = current()
    pods = await ctx.kube.resolve("pods", "v1")
    pod = await ctx.kube.get(pods, name, namespace)
    containers = [c["name"] for c in pod.get("spec", {}).get("containers", [])]
    target = container or (containers[0] if containers else None)
    if target not in containers:
        raise ToolError(
            f"pod {name} in namespace {namespace} has no container {target}; "
            f"containers: {', '.join(containers)}"
        )
    facts = {"kind": "Pod", "name": name, "namespace": namespace, "container": target, "command": command}
    if ctx.preview:
        # The websocket upgrade is a GET that the API server also authorizes as create: both are needed.
        attrs = {"resource": "pods", "subresource": "exec", "namespace": namespace, "name": name}
        answers = [await ctx.kube.access_review({**attrs, "verb": verb}) for verb in ("get", "create")]
        allowed = all(answer.get("allowed") for answer in answers)
        text = f"Would run {command!r} in pod {name} container {target} in namespace {namespace}"
        if not allowed:
            text += " (but the identity may not get and create pods/exec there: it would be Forbidden)"
        return ToolOutput(
            text=text,
            diff=f"exec pod/{name} -c {target} -- {shlex.join(command)}",
            data={**facts, "dry_run": True, "allowed": allowed, "changes": []},
        )
    result = await exec_in_pod(ctx.kube, namespace, name, command, container=target, timeout=timeout_seconds)
    if result.error:
        raise ToolError(f"exec in pod {name} container {target} failed: {result.error}")
    text = result.stdout + (f"\n[stderr]\n{result.stderr}" if result.stderr else "")
    text += f"\n[exit code {result.exit_code}]"
    return ToolOutput.capped(text, cap=LOG_CAP, keep="tail", data={**facts, "exit_code": result.exit_code})
