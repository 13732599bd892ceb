"""What ``kubectl argo rollouts`` computes from a Rollout, without a cluster: the patch each of its commands
sends (argo-rollouts v1.8, ``pkg/kubectl-argo-rollouts/cmd/*``) and the status it shows.

Pure functions of Rollout and ReplicaSet objects, so the tools (``bosun_tools.toolsets.rollouts``) and the
operator's verification probes read a Rollout the same way, and both are tested without an API server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from bosun_tools.errors import ToolError

ROLLOUTS = "rollouts.argoproj.io"
REVISION_ANNOTATION = "rollout.argoproj.io/revision"
HASH_LABEL = "rollouts-pod-template-hash"


@dataclass(frozen=True)
class PlannedPatch:
    """One request the plugin would send: a patch, its type, and whether it goes to ``/status``."""

    patch: dict[str, Any] | list[Any]
    patch_type: Literal["merge", "json"] = "merge"
    subresource: str | None = None

    def describe(self, target: str) -> str:
        where = f"{target}/{self.subresource}" if self.subresource else target
        return f"{self.patch_type} patch of {where}: {json.dumps(self.patch, separators=(',', ':'))}"


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
        raise ToolError(
            f"rollout {name} has no earlier revision to go back to; see rollouts_get show=history"
        )
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
