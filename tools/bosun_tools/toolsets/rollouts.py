"""Argo Rollouts tools: the ``argoproj.io/v1alpha1`` Rollout objects, changed the way the plugin does.

``kubectl argo rollouts`` is a thin client: promote, abort, retry, pause, restart, set image and undo are
each a small patch of the Rollout (status through the status subresource, spec through the object), and
the controller does the rest. Bosun sends exactly the patches of the plugin (argo-rollouts v1.8,
``pkg/kubectl-argo-rollouts/cmd/*``, computed in ``bosun_tools.argo_rollouts``) through its own
impersonating client, so the requester's RBAC on
``rollouts`` and ``rollouts/status`` decides, and a preview can show the very patch that will be sent,
checked by a server-side dry run, plus the fields it changes. No plugin binary, no shell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from bosun_tools.argo_rollouts import (
    HASH_LABEL,
    ROLLOUTS,
    PlannedPatch,
    canary_steps,
    current_step_index,
    images_of,
    is_canary,
    owned_by,
    phase_of,
    pick_revision,
    promote_patches,
    restart_patch,
    revision_of,
    selector_string,
    set_image_patch,
    set_weight,
    status_lines,
    status_patch,
    strategy_of,
    undo_patch,
)
from bosun_tools.client.kube import KubeClient, KubeError, ResourceInfo
from bosun_tools.errors import ToolError
from bosun_tools.output import ToolOutput, age, field_changes, table
from bosun_tools.registry import Image, K8sName, Namespace, bosun_tool, current

OUTPUT_CAP = 16_000
RolloutView = Literal["status", "history", "experiments", "analysis-runs"]
ContainerName = Annotated[str, Field(pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$", max_length=63)]
"""A container of the rollout's pod template, or ``*`` for every container."""


# --- cluster access ---------------------------------------------------------------------------------------


async def _resource(kube: KubeClient, name: str) -> ResourceInfo:
    try:
        return await kube.resolve(name)
    except KubeError as exc:
        if exc.status == 404:
            raise ToolError(
                f"the cluster does not serve {name}: the Argo Rollouts CRDs are not installed; "
                "install Argo Rollouts first"
            ) from None
        raise


async def _get_rollout(kube: KubeClient, name: str, namespace: str) -> tuple[ResourceInfo, dict[str, Any]]:
    info = await _resource(kube, ROLLOUTS)
    try:
        return info, await kube.get(info, name, namespace)
    except KubeError as exc:
        if exc.status == 404:
            raise ToolError(
                f"NotFound: rollout {name} not found in namespace {namespace}; "
                "list rollouts with rollouts_get without a name"
            ) from None
        raise


async def _owned_replicasets(kube: KubeClient, rollout: dict[str, Any]) -> list[dict[str, Any]]:
    info = await kube.resolve("replicasets.apps")
    meta = rollout.get("metadata") or {}
    selector = selector_string((rollout.get("spec") or {}).get("selector"))
    listed = await kube.list(info, meta.get("namespace"), label_selector=selector or None)
    return [rs for rs in listed.get("items") or [] if owned_by(rs, rollout)]


def _changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    spec = field_changes({"spec": before.get("spec") or {}}, {"spec": after.get("spec") or {}})
    status = [
        f"status.{line}" for line in field_changes(before.get("status") or {}, after.get("status") or {})
    ]
    return spec + status


async def apply_patches(
    action: str,
    info: ResourceInfo,
    rollout: dict[str, Any],
    patches: list[PlannedPatch],
    *,
    target_info: ResourceInfo | None = None,
    target_name: str | None = None,
) -> ToolOutput:
    """Send (or, in preview, dry-run) the planned patches in order; report the patches and field changes."""
    ctx = current()
    meta = rollout.get("metadata") or {}
    name, namespace = str(meta.get("name")), str(meta.get("namespace"))
    info_to_patch = target_info or info
    patch_name = target_name or name
    label = f"{info_to_patch.plural}/{patch_name}"
    if not patches:
        return ToolOutput.capped(
            f"rollout {name} in namespace {namespace}: nothing to {action} (already in that state).",
            cap=OUTPUT_CAP,
            data={"kind": "Rollout", "name": name, "namespace": namespace, "changed": False},
        )
    before: dict[str, Any] = (
        rollout if target_info is None else await ctx.kube.get(info_to_patch, patch_name, namespace)
    )
    merged = json.loads(json.dumps(before))
    for planned in patches:
        result = await ctx.kube.patch(
            info_to_patch,
            patch_name,
            planned.patch,
            namespace,
            patch_type=planned.patch_type,
            subresource=planned.subresource,
        )
        if planned.subresource != "status":
            merged["spec"] = result.get("spec") or {}
        if planned.subresource == "status" or (isinstance(planned.patch, dict) and "status" in planned.patch):
            merged["status"] = result.get("status") or {}
    changes = _changes(before, merged)
    described = [p.describe(label) for p in patches]
    _, data = status_lines(merged if target_info is None else rollout)
    data["changed"] = bool(changes)
    if ctx.preview:
        diff = "\n".join([*(f"# {d}" for d in described), *changes])
        text = (
            f"Would {action} rollout {name} in namespace {namespace} with {len(patches)} patch(es):\n"
            + "\n".join(described)
        )
        if not changes:
            text += "\n(the dry run changes no field)"
        return ToolOutput.capped(text, cap=OUTPUT_CAP, diff=diff, data=data)
    text = f"rollout {name} in namespace {namespace}: {action} done.\n" + "\n".join(
        [*described, *(changes or ["(no field changed)"])]
    )
    return ToolOutput.capped(text, cap=OUTPUT_CAP, data=data)


# --- read-only tools ----------------------------------------------------------------------------------------


@bosun_tool(toolset="rollouts", read_only=True, timeout=30)
async def rollouts_get(
    name: K8sName | None = None, namespace: Namespace | None = None, show: RolloutView = "status"
) -> ToolOutput:
    """List rollouts without name, or show one's status, history, experiments or analysis-runs.

    A list shows strategy, status, step, weight and replicas; a status the phase, canary step, weights,
    images and replicas; a history the revisions (ReplicaSets) with images, newest first."""
    if show in ("experiments", "analysis-runs"):
        if namespace is None:
            raise ToolError(f"show={show} lists one namespace: pass namespace")
        if show == "experiments":
            return await _experiments(namespace, name)
        return await _analysis_runs(namespace, name)
    if name is None:
        if show == "history":
            raise ToolError("show=history needs the rollout's name")
        return await _list(namespace)
    if namespace is None:
        raise ToolError(f"rollout {name}: pass its namespace")
    if show == "history":
        return await _history(name, namespace)
    _, rollout = await _get_rollout(current().kube, name, namespace)
    lines, data = status_lines(rollout)
    return ToolOutput.capped("\n".join(lines), cap=OUTPUT_CAP, data=data)


async def _list(namespace: str | None) -> ToolOutput:
    kube = current().kube
    info = await _resource(kube, ROLLOUTS)
    items = (await kube.list(info, namespace)).get("items") or []
    where = f"namespace {namespace}" if namespace else "any namespace"
    if not items:
        return ToolOutput(text=f"No rollouts in {where}.", data={"rollouts": []})
    rows = []
    for ro in items:
        status = ro.get("status") or {}
        index = current_step_index(ro)
        rows.append(
            [
                ro["metadata"]["name"],
                ro["metadata"].get("namespace", ""),
                strategy_of(ro),
                phase_of(ro)[0],
                f"{index}/{len(canary_steps(ro))}" if index is not None else "-",
                str(set_weight(ro)) if is_canary(ro) else "-",
                str((ro.get("spec") or {}).get("replicas", 1)),
                str(status.get("updatedReplicas", 0)),
                str(status.get("readyReplicas", 0)),
                str(status.get("availableReplicas", 0)),
            ]
        )
    header = ["NAME", "NAMESPACE", "STRATEGY", "STATUS", "STEP", "SET-WEIGHT", "DESIRED", "UP-TO-DATE"]
    text = table([[*header, "READY", "AVAILABLE"], *rows])
    return ToolOutput.capped(text, cap=OUTPUT_CAP, data={"rollouts": [r[0] for r in rows]})


async def _history(name: str, namespace: str) -> ToolOutput:
    kube = current().kube
    _, rollout = await _get_rollout(kube, name, namespace)
    status = rollout.get("status") or {}
    replicasets = await _owned_replicasets(kube, rollout)
    if not replicasets:
        return ToolOutput(
            text=f"rollout {name} has no ReplicaSets yet.", data={"name": name, "revisions": []}
        )
    replicasets.sort(key=lambda rs: revision_of(rs) or 0, reverse=True)
    rows = []
    for rs in replicasets:
        labels = (rs.get("metadata") or {}).get("labels") or {}
        pod_hash = labels.get(HASH_LABEL, "")
        marks = [
            m
            for m, h in (("stable", status.get("stableRS")), ("current", status.get("currentPodHash")))
            if h and h == pod_hash
        ]
        rows.append(
            [
                str(revision_of(rs) or "-"),
                rs["metadata"]["name"],
                ",".join(marks) or "-",
                f"{(rs.get('status') or {}).get('readyReplicas', 0)}/"
                f"{(rs.get('spec') or {}).get('replicas', 0)}",
                ", ".join(images_of((rs.get("spec") or {}).get("template") or {})),
                age(rs["metadata"].get("creationTimestamp")),
            ]
        )
    text = table([["REVISION", "REPLICASET", "ROLE", "READY", "IMAGES", "AGE"], *rows])
    data = {"name": name, "namespace": namespace, "revisions": [int(r[0]) for r in rows if r[0].isdigit()]}
    return ToolOutput.capped(text, cap=OUTPUT_CAP, data=data)


async def _owned_list(kind: str, namespace: str, rollout: str | None) -> list[dict[str, Any]]:
    kube = current().kube
    info = await _resource(kube, kind)
    items = (await kube.list(info, namespace)).get("items") or []
    if rollout is None:
        return list(items)
    return [
        item
        for item in items
        if any(
            ref.get("kind") == "Rollout" and ref.get("name") == rollout
            for ref in (item.get("metadata") or {}).get("ownerReferences") or []
        )
    ]


def _none_found(what: str, namespace: str, rollout: str | None) -> ToolOutput:
    where = f"namespace {namespace}" + (f" for rollout {rollout}" if rollout else "")
    return ToolOutput(text=f"No {what} in {where}.", data={what.replace(" ", "_"): []})


def _owner(item: Mapping[str, Any]) -> str:
    refs = (item.get("metadata") or {}).get("ownerReferences") or []
    return ", ".join(f"{r.get('kind')}/{r.get('name')}" for r in refs) or "-"


async def _experiments(namespace: str, rollout: str | None) -> ToolOutput:
    items = await _owned_list("experiments.argoproj.io", namespace, rollout)
    if not items:
        return _none_found("experiments", namespace, rollout)
    rows = [
        [
            e["metadata"]["name"],
            str((e.get("status") or {}).get("phase") or "-"),
            _owner(e),
            str((e.get("spec") or {}).get("duration") or "-"),
            age(e["metadata"].get("creationTimestamp")),
        ]
        for e in items
    ]
    text = table([["NAME", "PHASE", "OWNER", "DURATION", "AGE"], *rows])
    return ToolOutput.capped(text, cap=OUTPUT_CAP, data={"experiments": [r[0] for r in rows]})


async def _analysis_runs(namespace: str, rollout: str | None) -> ToolOutput:
    """AnalysisRuns with their phase and metric results."""
    items = await _owned_list("analysisruns.argoproj.io", namespace, rollout)
    if not items:
        return _none_found("analysis runs", namespace, rollout)
    rows = []
    for run in items:
        status = run.get("status") or {}
        metrics = ", ".join(f"{m.get('name')}={m.get('phase')}" for m in status.get("metricResults") or [])
        rows.append(
            [
                run["metadata"]["name"],
                str(status.get("phase") or "Pending"),
                _owner(run),
                metrics or "-",
                str(status.get("message") or ""),
            ]
        )
    text = table([["NAME", "PHASE", "OWNER", "METRICS", "MESSAGE"], *rows])
    return ToolOutput.capped(
        text, cap=OUTPUT_CAP, data={"analysis_runs": [{"name": r[0], "phase": r[1]} for r in rows]}
    )


# --- mutating tools -----------------------------------------------------------------------------------------


@bosun_tool(toolset="rollouts", timeout=30)
async def rollouts_promote(name: K8sName, namespace: Namespace, full: bool = False) -> ToolOutput:
    """Promote a paused rollout one step; full=true skips the remaining steps."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    patches = promote_patches(rollout, full=full, status_subresource="status" in info.subresources)
    return await apply_patches("fully promote" if full else "promote", info, rollout, patches)


@bosun_tool(toolset="rollouts", group="rollouts-update", idempotent=True, timeout=30)
async def rollouts_pause(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Pause a rollout."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    return await apply_patches("pause", info, rollout, [PlannedPatch({"spec": {"paused": True}})])


@bosun_tool(toolset="rollouts", group="rollouts-update", idempotent=True, timeout=30)
async def rollouts_resume(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Resume a rollout a person paused (pause steps: promote)."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    return await apply_patches("resume", info, rollout, [PlannedPatch({"spec": {"paused": False}})])


@bosun_tool(toolset="rollouts", destructive=True, idempotent=True, timeout=30)
async def rollouts_abort(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Abort a rollout: traffic and replicas go back to stable."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    patches = status_patch({"status": {"abort": True}}, status_subresource="status" in info.subresources)
    return await apply_patches("abort", info, rollout, patches)


@bosun_tool(toolset="rollouts", idempotent=True, timeout=30)
async def rollouts_retry(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Retry an aborted rollout."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    patches = status_patch({"status": {"abort": False}}, status_subresource="status" in info.subresources)
    return await apply_patches("retry", info, rollout, patches)


@bosun_tool(toolset="rollouts", group="rollouts-update", idempotent=True, timeout=30)
async def rollouts_set_image(
    name: K8sName, namespace: Namespace, container: ContainerName, image: Image
) -> ToolOutput:
    """Set the image of a rollout's container ("*": every container)."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    return await apply_patches(
        "set the image of", info, rollout, [set_image_patch(rollout, container, image)]
    )


@bosun_tool(toolset="rollouts", group="rollouts-update", timeout=30)
async def rollouts_restart(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Restart a rollout's pods."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    return await apply_patches("restart", info, rollout, [restart_patch(datetime.now(UTC))])


@bosun_tool(toolset="rollouts", group="rollouts-update", destructive=True, timeout=30)
async def rollouts_undo(
    name: K8sName,
    namespace: Namespace,
    to_revision: Annotated[int, Field(ge=0, le=1_000_000)] = 0,
) -> ToolOutput:
    """Roll a rollout back to a revision (0: the previous)."""
    kube = current().kube
    info, rollout = await _get_rollout(kube, name, namespace)
    target = pick_revision(await _owned_replicasets(kube, rollout), to_revision, name)
    patch = undo_patch(rollout, target)
    revision = revision_of(target)
    if patch is None:
        return ToolOutput(
            text=f"rollout {name} already runs the template of revision {revision}; nothing to undo.",
            data={
                "kind": "Rollout",
                "name": name,
                "namespace": namespace,
                "changed": False,
                "revision": revision,
            },
        )
    workload = (rollout.get("spec") or {}).get("workloadRef")
    action = f"undo to revision {revision}"
    if workload:
        kind = str(workload.get("kind"))
        if kind not in ("Deployment", "ReplicaSet"):
            raise ToolError(
                f"rollout {name} references a {kind}; undo supports Deployment and ReplicaSet workloads"
            )
        target_info = await kube.resolve(f"{kind.lower()}s.apps")
        return await apply_patches(
            action, info, rollout, [patch], target_info=target_info, target_name=str(workload.get("name"))
        )
    return await apply_patches(action, info, rollout, [patch])
