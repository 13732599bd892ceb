"""Argo Rollouts tools: the ``argoproj.io/v1alpha1`` Rollout objects, changed the way the plugin does.

``kubectl argo rollouts`` is a thin client: promote, abort, retry, pause, restart, set image and undo are
each a small patch of the Rollout (status through the status subresource, spec through the object), and
the controller does the rest. Bosun sends exactly the patches of the plugin (argo-rollouts v1.8,
``pkg/kubectl-argo-rollouts/cmd/*``) through its own impersonating client, so the requester's RBAC on
``rollouts`` and ``rollouts/status`` decides, and a preview can show the very patch that will be sent,
checked by a server-side dry run, plus the fields it changes. No plugin binary, no shell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastmcp.exceptions import ToolError
from pydantic import Field

from bosun_tools.client.kube import KubeClient, KubeError, ResourceInfo
from bosun_tools.output import ToolOutput, age, field_changes, table
from bosun_tools.registry import Image, K8sName, Namespace, bosun_tool, current

ROLLOUTS = "rollouts.argoproj.io"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
HASH_LABEL = "rollouts-pod-template-hash"
OUTPUT_CAP = 16_000
ContainerName = Annotated[
    str,
    Field(
        pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$",
        max_length=63,
        description='Container, or "*" for all',
    ),
]


@dataclass(frozen=True)
class PlannedPatch:
    """One request the plugin would send: a patch, its type, and whether it goes to ``/status``."""

    patch: dict[str, Any] | list[Any]
    patch_type: Literal["merge", "json"] = "merge"
    subresource: str | None = None

    def describe(self, target: str) -> str:
        where = f"{target}/{self.subresource}" if self.subresource else target
        return f"{self.patch_type} patch of {where}: {json.dumps(self.patch, separators=(',', ':'))}"


# --- pure logic: what the plugin computes from a Rollout ---------------------------------------------------


def canary_steps(rollout: Mapping[str, Any]) -> list[dict[str, Any]]:
    canary = ((rollout.get("spec") or {}).get("strategy") or {}).get("canary")
    return list((canary or {}).get("steps") or [])


def is_canary(rollout: Mapping[str, Any]) -> bool:
    return ((rollout.get("spec") or {}).get("strategy") or {}).get("canary") is not None


def current_step_index(rollout: Mapping[str, Any]) -> int | None:
    """replicasetutil.GetCurrentCanaryStep: ``None`` without canary steps, else the index (default 0)."""
    if not canary_steps(rollout):
        return None
    index = (rollout.get("status") or {}).get("currentStepIndex")
    return int(index) if index is not None else 0


def set_weight(rollout: Mapping[str, Any]) -> int:
    """replicasetutil.GetCurrentSetWeight (100 when done or without steps, 0 when aborted)."""
    status = rollout.get("status") or {}
    if status.get("abort"):
        return 0
    steps = canary_steps(rollout)
    index = current_step_index(rollout)
    if index is None or index >= len(steps):
        return 100
    for step in reversed(steps[: index + 1]):
        if step.get("setWeight") is not None:
            return int(step["setWeight"])
    return 0


def promote_patches(
    rollout: Mapping[str, Any], *, full: bool, status_subresource: bool
) -> list[PlannedPatch]:
    """The plugin's ``promote`` (getPatches): unpause and clear pause conditions, or step forward, or
    ``promoteFull``. With a status subresource, spec and status go in separate requests."""
    spec = rollout.get("spec") or {}
    status = rollout.get("status") or {}
    steps = canary_steps(rollout)
    spec_patch: dict[str, Any] | None = None
    status_patch: dict[str, Any] | None = None
    unified: dict[str, Any] | None = None
    if full:
        if status.get("currentPodHash") != status.get("stableRS"):
            status_patch = {"status": {"promoteFull": True}}
    else:
        unified = {"spec": {"paused": False}, "status": {"pauseConditions": None}}
        if spec.get("paused"):
            spec_patch = {"spec": {"paused": False}}
        index = current_step_index(rollout)
        inconclusive = (
            is_canary(rollout)
            and ((status.get("canary") or {}).get("currentStepAnalysisRunStatus") or {}).get("status")
            == "Inconclusive"
        )
        if inconclusive and status.get("pauseConditions") and status.get("controllerPause"):
            if index is not None:
                step = index + 1 if index < len(steps) else index
                status_patch = {
                    "status": {"pauseConditions": None, "controllerPause": False, "currentStepIndex": step}
                }
        elif status.get("pauseConditions"):
            status_patch = {"status": {"pauseConditions": None}}
        elif is_canary(rollout) and index is not None:
            step = index + 1 if index < len(steps) else index
            status_patch = {"status": {"pauseConditions": None, "currentStepIndex": step}}
            unified = {
                "spec": {"paused": False},
                "status": {"pauseConditions": None, "currentStepIndex": step},
            }
    planned: list[PlannedPatch] = []
    if status_patch is not None:
        if status_subresource:
            planned.append(PlannedPatch(status_patch, subresource="status"))
        else:
            spec_patch = unified if unified is not None else status_patch
    if spec_patch is not None:
        planned.append(PlannedPatch(spec_patch))
    return planned


def status_patch(body: dict[str, Any], *, status_subresource: bool) -> list[PlannedPatch]:
    return [PlannedPatch(body, subresource="status" if status_subresource else None)]


def set_image_patch(rollout: Mapping[str, Any], container: str, image: str) -> PlannedPatch:
    """The plugin's ``set image`` as a JSON patch; each ``test`` op pins the container name at that index
    so a concurrent reorder fails the patch instead of changing the wrong container."""
    pod_spec = (((rollout.get("spec") or {}).get("template") or {}).get("spec")) or {}
    ops: list[dict[str, Any]] = []
    names: list[str] = []
    for field_name in ("initContainers", "containers", "ephemeralContainers"):
        for i, ctr in enumerate(pod_spec.get(field_name) or []):
            names.append(str(ctr.get("name")))
            if container in ("*", ctr.get("name")):
                base = f"/spec/template/spec/{field_name}/{i}"
                ops.append({"op": "test", "path": f"{base}/name", "value": ctr.get("name")})
                ops.append({"op": "replace", "path": f"{base}/image", "value": image})
    if not ops:
        name = (rollout.get("metadata") or {}).get("name")
        raise ToolError(
            f'rollout {name} has no container named "{container}"; '
            f"its containers are {', '.join(names) or 'none'}"
        )
    return PlannedPatch(ops, patch_type="json")


def restart_patch(now: datetime) -> PlannedPatch:
    return PlannedPatch({"spec": {"restartAt": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}})


def revision_of(obj: Mapping[str, Any]) -> int | None:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = (owner.get("metadata") or {}).get("uid")
    return any(
        ref.get("controller") and ref.get("uid") == uid
        for ref in (obj.get("metadata") or {}).get("ownerReferences") or []
    )


def selector_string(selector: Mapping[str, Any] | None) -> str:
    """metav1.LabelSelectorAsSelector rendered as a label-selector query string."""
    parts = [f"{k}={v}" for k, v in sorted(((selector or {}).get("matchLabels") or {}).items())]
    for expr in (selector or {}).get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


def pick_revision(replicasets: list[dict[str, Any]], to_revision: int, name: str) -> dict[str, Any]:
    """The plugin's rolloutRevision: a given revision, or (0) the second newest."""
    numbered = [(revision_of(rs) or 0, rs) for rs in replicasets]
    if to_revision > 0:
        for rev, rs in numbered:
            if rev == to_revision:
                return rs
        known = ", ".join(str(r) for r, _ in sorted(numbered, key=lambda p: p[0])) or "none"
        raise ToolError(f"rollout {name} has no revision {to_revision} in its history (revisions: {known})")
    ordered = sorted(numbered, key=lambda p: p[0], reverse=True)
    if len(ordered) < 2:
        raise ToolError(f"rollout {name} has no earlier revision to go back to; see rollouts_history")
    return ordered[1][1]


def _derivative(a: Any, b: Any) -> bool:
    """apimachinery's Semantic.DeepDerivative: every field set in ``a`` equals ``b`` (defaults in ``b``
    that ``a`` leaves unset do not count)."""
    if a is None or a == {} or a == []:
        return True
    if isinstance(a, dict):
        return isinstance(b, dict) and all(_derivative(v, b.get(k)) for k, v in a.items())
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(_derivative(x, y) for x, y in zip(a, b, strict=True))
        )
    return bool(a == b)


def _without_hash(template: Mapping[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(template))
    labels = (out.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
    return dict(out)


def undo_patch(rollout: Mapping[str, Any], target_rs: Mapping[str, Any]) -> PlannedPatch | None:
    """``None`` when the rollout already runs that template (the plugin then skips the rollback)."""
    ro_template = _without_hash((rollout.get("spec") or {}).get("template") or {})
    rs_template = _without_hash((target_rs.get("spec") or {}).get("template") or {})
    if ro_template and _derivative(ro_template, rs_template):
        return None
    return PlannedPatch(
        [{"op": "replace", "path": "/spec/template", "value": rs_template}], patch_type="json"
    )


def phase_of(rollout: Mapping[str, Any]) -> tuple[str, str]:
    """rolloututil.GetRolloutPhase: the controller's phase once it observed the spec, else why not."""
    meta = rollout.get("metadata") or {}
    status = rollout.get("status") or {}
    observed = str(status.get("observedGeneration", ""))
    if observed.isdigit() and int(observed) < int(meta.get("generation") or 0):
        return "Progressing", "waiting for rollout spec update to be observed"
    if status.get("controllerPause") and not status.get("pauseConditions"):
        return "Progressing", "waiting for rollout to unpause"
    if status.get("phase"):
        return str(status["phase"]), str(status.get("message") or "")
    if status.get("abort"):
        return "Degraded", "RolloutAborted (no controller has reported a phase yet)"
    if (rollout.get("spec") or {}).get("paused") or status.get("pauseConditions"):
        return "Paused", "(no controller has reported a phase yet)"
    return "Unknown", "no controller has reported a phase yet"


def images_of(template: Mapping[str, Any]) -> list[str]:
    pod = (template.get("spec") or {}) if isinstance(template, Mapping) else {}
    return [
        f"{c.get('name')}={c.get('image')}"
        for c in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    ]


def strategy_of(rollout: Mapping[str, Any]) -> str:
    strategy = (rollout.get("spec") or {}).get("strategy") or {}
    return "BlueGreen" if "blueGreen" in strategy else "Canary" if "canary" in strategy else "-"


def status_lines(rollout: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
    meta = rollout.get("metadata") or {}
    spec = rollout.get("spec") or {}
    status = rollout.get("status") or {}
    phase, message = phase_of(rollout)
    steps = canary_steps(rollout)
    index = current_step_index(rollout)
    weights = (status.get("canary") or {}).get("weights") or {}
    actual = (weights.get("canary") or {}).get("weight")
    lines = [
        f"Rollout: {meta.get('name')}  namespace: {meta.get('namespace')}  strategy: {strategy_of(rollout)}",
        f"Status: {phase}" + (f" — {message}" if message else ""),
    ]
    if is_canary(rollout):
        step_text = f"{index}/{len(steps)}" if index is not None else "-"
        lines.append(
            f"Step: {step_text}  set weight: {set_weight(rollout)}"
            + (f"  actual weight: {actual}" if actual is not None else "")
        )
        if index is not None and index < len(steps):
            lines.append(f"Current step: {json.dumps(steps[index], separators=(',', ':'))}")
    lines.append(f"Images: {', '.join(images_of(spec.get('template') or {})) or '-'}")
    lines.append(
        f"Replicas: desired {spec.get('replicas', 1)}  current {status.get('replicas', 0)}  updated "
        f"{status.get('updatedReplicas', 0)}  ready {status.get('readyReplicas', 0)}  available "
        f"{status.get('availableReplicas', 0)}"
    )
    flags = []
    if spec.get("paused"):
        flags.append("spec.paused=true")
    if status.get("abort"):
        flags.append("aborted")
    if status.get("promoteFull"):
        flags.append("promoteFull")
    for cond in status.get("pauseConditions") or []:
        flags.append(f"paused by {cond.get('reason')}")
    if flags:
        lines.append(f"Flags: {', '.join(flags)}")
    if status.get("stableRS") or status.get("currentPodHash"):
        lines.append(
            f"Stable hash: {status.get('stableRS', '-')}  current hash: {status.get('currentPodHash', '-')}"
        )
    for cond in status.get("conditions") or []:
        lines.append(
            f"Condition {cond.get('type')}={cond.get('status')}: "
            f"{cond.get('reason', '')} {cond.get('message', '')}".rstrip()
        )
    data = {
        "kind": "Rollout",
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "phase": phase,
        "step": index,
        "steps": len(steps),
        "set_weight": set_weight(rollout) if is_canary(rollout) else None,
        "paused": bool(spec.get("paused")),
        "aborted": bool(status.get("abort")),
        "images": images_of(spec.get("template") or {}),
    }
    return lines, data


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
                "list rollouts with rollouts_list"
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
            dry_run=ctx.preview,
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
async def rollouts_list(namespace: Namespace | None = None) -> ToolOutput:
    """List Argo Rollouts with strategy, status, step, weight and replicas."""
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


@bosun_tool(toolset="rollouts", read_only=True, timeout=30)
async def rollouts_status(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Show a rollout's phase, canary step, weights, images and replicas."""
    _, rollout = await _get_rollout(current().kube, name, namespace)
    lines, data = status_lines(rollout)
    return ToolOutput.capped("\n".join(lines), cap=OUTPUT_CAP, data=data)


@bosun_tool(toolset="rollouts", read_only=True, timeout=30)
async def rollouts_history(name: K8sName, namespace: Namespace) -> ToolOutput:
    """List a rollout's revisions (its ReplicaSets) with images, newest first."""
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


@bosun_tool(toolset="rollouts", read_only=True, timeout=30)
async def rollouts_experiments(namespace: Namespace, rollout: K8sName | None = None) -> ToolOutput:
    """List Argo Rollouts Experiments in a namespace, optionally only those owned by one rollout."""
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


@bosun_tool(toolset="rollouts", read_only=True, timeout=30)
async def rollouts_analysis_runs(namespace: Namespace, rollout: K8sName | None = None) -> ToolOutput:
    """List AnalysisRuns with phase and metric results, optionally only those of one rollout."""
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
    """Promote a paused rollout to its next step, or with full=true skip all remaining steps and analysis."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    patches = promote_patches(rollout, full=full, status_subresource="status" in info.subresources)
    return await apply_patches("fully promote" if full else "promote", info, rollout, patches)


@bosun_tool(toolset="rollouts", idempotent=True, timeout=30)
async def rollouts_pause(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Pause a rollout (spec.paused=true)."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    return await apply_patches("pause", info, rollout, [PlannedPatch({"spec": {"paused": True}})])


@bosun_tool(toolset="rollouts", idempotent=True, timeout=30)
async def rollouts_resume(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Resume a rollout paused by a person (spec.paused=false); use rollouts_promote for pause steps."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    return await apply_patches("resume", info, rollout, [PlannedPatch({"spec": {"paused": False}})])


@bosun_tool(toolset="rollouts", destructive=True, idempotent=True, timeout=30)
async def rollouts_abort(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Abort a rollout: traffic and replicas go back to the stable version."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    patches = status_patch({"status": {"abort": True}}, status_subresource="status" in info.subresources)
    return await apply_patches("abort", info, rollout, patches)


@bosun_tool(toolset="rollouts", idempotent=True, timeout=30)
async def rollouts_retry(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Retry an aborted rollout (clears status.abort)."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    patches = status_patch({"status": {"abort": False}}, status_subresource="status" in info.subresources)
    return await apply_patches("retry", info, rollout, patches)


@bosun_tool(toolset="rollouts", idempotent=True, timeout=30)
async def rollouts_set_image(
    name: K8sName, namespace: Namespace, container: ContainerName, image: Image
) -> ToolOutput:
    """Set the image of one container (or "*" for all) in a rollout's pod template."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    return await apply_patches(
        "set the image of", info, rollout, [set_image_patch(rollout, container, image)]
    )


@bosun_tool(toolset="rollouts", timeout=30)
async def rollouts_restart(name: K8sName, namespace: Namespace) -> ToolOutput:
    """Restart a rollout's pods (spec.restartAt=now)."""
    info, rollout = await _get_rollout(current().kube, name, namespace)
    return await apply_patches("restart", info, rollout, [restart_patch(datetime.now(UTC))])


@bosun_tool(toolset="rollouts", destructive=True, timeout=30)
async def rollouts_undo(
    name: K8sName,
    namespace: Namespace,
    to_revision: Annotated[int, Field(ge=0, le=1_000_000, description="0 = the previous revision")] = 0,
) -> ToolOutput:
    """Roll a rollout's pod template back to an earlier revision (default: the previous one)."""
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
