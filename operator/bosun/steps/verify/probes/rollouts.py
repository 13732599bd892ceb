"""Checks of the Argo Rollouts tools, read back with ``rollouts_get`` (a status) or the Rollout itself."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bosun_tools.argo_rollouts import ROLLOUTS, current_step_index

from bosun.ports.gateway import ToolCallOutcome
from bosun.steps.verify.probes.base import (
    Builder,
    Probe,
    Status,
    Verdict,
    decided,
    object_probe,
    read_and_judge,
    show,
    unrecorded,
)


def _rollout_status_probe(
    args: dict[str, Any], what: str, judge: Callable[[Mapping[str, Any]], Verdict]
) -> Probe:
    name, namespace = str(args["name"]), str(args["namespace"])

    def on_outcome(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            return "failed", f"rollouts_get failed: {outcome.error}"
        return judge(outcome.data or {})

    read_args = {"name": name, "namespace": namespace}
    return Probe(f"rollout {namespace}/{name} {what}", read_and_judge("rollouts_get", read_args, on_outcome))


def _flag_probes(what: str, key: str, wanted: bool, field_name: str) -> Builder:
    """A Rollout flag the tool sets (``spec.paused`` or ``status.abort``) has the value it set."""

    def build(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
        def judge(status: Mapping[str, Any]) -> Verdict:
            value = bool(status.get(key))
            verdict: Status = "passed" if value == wanted else "failed"
            return verdict, f"{field_name} is {str(value).lower()} (phase {status.get('phase')})"

        return [_rollout_status_probe(args, what, judge)]

    return build


pause_probes = _flag_probes("paused", "paused", True, "spec.paused")
resume_probes = _flag_probes("resumed", "paused", False, "spec.paused")
abort_probes = _flag_probes("aborted", "aborted", True, "status.abort")
retry_probes = _flag_probes("retried", "aborted", False, "status.abort")


def rollouts_set_image_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    container, image = args["container"], args["image"]

    def judge(status: Mapping[str, Any]) -> Verdict:
        entries = [str(e).split("=", 1) for e in status.get("images") or []]
        chosen = [(n, i) for n, i in (e for e in entries if len(e) == 2) if container in ("*", n)]
        if not chosen:
            return "failed", f"it has no container {container}"
        wrong = [f"{n}={i}" for n, i in chosen if i != image]
        if wrong:
            return "failed", f"{', '.join(wrong)}, expected {image}"
        return "passed", f"{', '.join(n for n, _ in chosen)} run {image}"

    return [_rollout_status_probe(args, "image set", judge)]


def rollouts_undo_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """The template the rollback put in place, as its images; a Rollout with a ``workloadRef`` records
    none, so its template is left to a person."""
    what = f"rollout {args['namespace']}/{args['name']} rolled back"
    if data is not None and data.get("changed") is False:
        revision = data.get("revision")
        return [
            decided(what, ("passed", f"it already ran the template of revision {revision}; nothing changed"))
        ]
    images = (data or {}).get("images")
    if not images:
        return [unrecorded(what, "the restored pod template")]

    def judge(status: Mapping[str, Any]) -> Verdict:
        if status.get("images") != images:
            return "failed", f"runs {show(status.get('images'))}, the rollback set {show(images)}"
        return "passed", f"runs {', '.join(map(str, images))}"

    return [_rollout_status_probe(args, "rolled back", judge)]


def promote_verdict(live: Mapping[str, Any], *, full: bool, promoted_step: int | None) -> Verdict:
    """Judge a Rollout after promote: unpaused and moved on, or (full) set to promote fully.

    ``promoted_step`` is the step index the promote left (from its output data). A controller that
    reaches a later pause step pauses again: paused at a step after it is progress, at it is not."""
    spec, status = live.get("spec") or {}, live.get("status") or {}
    if status.get("abort"):
        return "failed", "it is aborted (status.abort)"
    if full:
        current, stable = status.get("currentPodHash"), status.get("stableRS")
        if status.get("promoteFull"):
            return "passed", "status.promoteFull is set"
        if current and current == stable:
            return "passed", f"fully promoted: the current pods ({current}) are the stable ones"
        return (
            "failed",
            f"status.promoteFull is not set and the current pods ({current}) are not stable ({stable})",
        )
    if spec.get("paused"):
        return "failed", "spec.paused is still true"
    reasons = [str(c.get("reason")) for c in status.get("pauseConditions") or []]
    index = current_step_index(live)
    if not reasons:
        return "passed", f"not paused (step {index})"
    if promoted_step is None:
        return "unsure", (
            f"paused by {', '.join(reasons)} at step {index}; whether it moved past the promoted step is "
            "unknown: the step the promote left was not recorded"
        )
    if index is not None and index > promoted_step:
        return "passed", f"moved on to step {index} (paused there by {', '.join(reasons)})"
    return (
        "failed",
        f"paused by {', '.join(reasons)} at step {index}, the promote left it at step {promoted_step}",
    )


def promote_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    name, namespace, full = str(args["name"]), str(args["namespace"]), bool(args.get("full"))
    step = (data or {}).get("step")

    def judge(live: dict[str, Any]) -> Verdict:
        return promote_verdict(live, full=full, promoted_step=step if isinstance(step, int) else None)

    what = "fully promoted" if full else "promoted"
    return [object_probe(f"rollout {namespace}/{name} {what}", ROLLOUTS, name, namespace, judge)]


def rollouts_restart_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """``spec.restartAt`` is set; the controller restarts the pods from it."""
    name, namespace = str(args["name"]), str(args["namespace"])

    def judge(live: dict[str, Any]) -> Verdict:
        stamp = (live.get("spec") or {}).get("restartAt")
        return ("passed", f"spec.restartAt is {stamp}") if stamp else ("failed", "spec.restartAt is not set")

    return [object_probe(f"rollout {namespace}/{name} restarted", ROLLOUTS, name, namespace, judge)]
