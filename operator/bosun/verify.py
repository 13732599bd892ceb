"""Did the executed calls achieve what was asked? Objective checks first, then a short model judgement.

Objective checks read the world through read-only tools as the identity that executed (``ctx.acting``: the
requester, or the namespace's execution ServiceAccount): rollout complete and replicas available after
scale/restart/undo/set-image, Helm release deployed, Jenkins build result, each bounded by a deadline.
Only when they pass is the model asked whether the request is satisfied; a failed check sends the task
back to planning (bounded by maxIterations) and never re-executes anything by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bosun_tools.kube import Identity

from bosun.gateway import ToolGateway
from bosun.models import MESSAGE_CAP, ProposedStep, Verification, VerificationCheck, cap
from bosun.planner import ModelSettings, PlanningContext, Usage, judge_outcome

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
ROLLOUT_TOOLS = frozenset(
    {"k8s_scale", "k8s_set_image", "k8s_rollout_restart", "k8s_rollout_undo", "k8s_patch"}
)
"""Tools whose effect on a Deployment/StatefulSet/DaemonSet shows as a rollout (others kinds: no check)."""
HELM_TOOLS = frozenset({"helm_install", "helm_upgrade", "helm_rollback"})
POLL_SECONDS = 3.0
ROLLOUT_WAIT_CAP = 300
"""The rollout-status tool waits at most this long per call (its own bound)."""


@dataclass(frozen=True)
class Probe:
    """One read-only call that checks one executed step, and how to judge its answer."""

    name: str
    tool: str
    args: dict[str, Any]
    judge: Callable[[dict[str, Any]], tuple[bool, str]]


def _rollout_judge(step: ProposedStep) -> Callable[[dict[str, Any]], tuple[bool, str]]:
    wanted = step.args.get("replicas") if step.tool == "k8s_scale" else None

    def judge(data: dict[str, Any]) -> tuple[bool, str]:
        complete = bool(data.get("complete"))
        available = data.get("available") or 0
        replicas = data.get("replicas")
        facts = f"{available}/{replicas} available"
        if wanted is not None and replicas != wanted:
            return False, f"spec.replicas is {replicas}, expected {wanted}; {facts}"
        if not complete:
            return False, f"rollout not complete: {facts}"
        if wanted is not None and available < wanted:
            return False, f"only {facts}"
        return True, f"rolled out, {facts}"

    return judge


def _helm_judge(data: dict[str, Any]) -> tuple[bool, str]:
    state = data.get("status")
    return state == "deployed", f"release status {state}, revision {data.get('revision')}"


def _build_judge(data: dict[str, Any]) -> tuple[bool, str]:
    if data.get("building"):
        return False, f"build #{data.get('number')} still running"
    result = data.get("result")
    return result == "SUCCESS", f"build #{data.get('number')} result {result}"


def probes_for(step: ProposedStep, output_data: dict[str, Any] | None) -> list[Probe]:
    """The objective checks that apply to an executed step (none for tools without a known check)."""
    args = step.args
    if step.tool in ROLLOUT_TOOLS:
        kind = WORKLOAD_KINDS.get(str(args.get("kind", "deployment")).lower())
        if kind is None or "name" not in args or "namespace" not in args:
            return []
        return [
            Probe(
                f"{kind} {args['namespace']}/{args['name']} rolled out",
                "k8s_rollout_status",
                {"kind": kind, "name": args["name"], "namespace": args["namespace"]},
                _rollout_judge(step),
            )
        ]
    if step.tool in HELM_TOOLS and "release" in args and "namespace" in args:
        return [
            Probe(
                f"helm release {args['namespace']}/{args['release']} deployed",
                "helm_status",
                {"release": args["release"], "namespace": args["namespace"]},
                _helm_judge,
            )
        ]
    if step.tool == "jenkins_trigger_build" and output_data and output_data.get("number") is not None:
        return [
            Probe(
                f"jenkins build {args.get('job')} #{output_data['number']} succeeded",
                "jenkins_get_build",
                {"job": args.get("job"), "number": output_data["number"]},
                _build_judge,
            )
        ]
    return []


async def run_probe(
    probe: Probe, gateway: ToolGateway, identity: Identity, deadline: float
) -> VerificationCheck:
    """Poll one probe until it passes or the deadline passes. The rollout tool waits by itself; other
    probes (a Helm release settling, a build running) are asked again every ``POLL_SECONDS``. A probe
    that errors (not found, forbidden) fails at once: waiting would not change the answer."""
    while True:
        remaining = deadline - time.monotonic()
        args = dict(probe.args)
        if probe.tool == "k8s_rollout_status":
            args["wait_seconds"] = max(0, min(int(remaining), ROLLOUT_WAIT_CAP))
        outcome = await gateway.call(probe.tool, args, identity=identity, timeout=max(remaining, 1) + 15)
        if not outcome.ok:
            text = cap(f"{probe.tool} failed: {outcome.error}", MESSAGE_CAP) or ""
            return VerificationCheck(name=probe.name, passed=False, message=text)
        passed, message = probe.judge(outcome.data or {})
        if passed:
            return VerificationCheck(name=probe.name, passed=True, message=cap(message, MESSAGE_CAP) or "")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            text = cap(f"{message} (still so at the deadline)", MESSAGE_CAP) or ""
            return VerificationCheck(name=probe.name, passed=False, message=text)
        if probe.tool != "k8s_rollout_status":
            await asyncio.sleep(min(POLL_SECONDS, remaining))


@dataclass(frozen=True)
class VerifyResult:
    verification: Verification
    usage: Usage


async def verify(
    executed: list[tuple[ProposedStep, dict[str, Any] | None]],
    *,
    ctx: PlanningContext,
    gateway: ToolGateway,
    model: ModelSettings | None,
    revision: int,
    deadline_seconds: float,
    now: Callable[[], datetime],
) -> VerifyResult:
    """Check every executed step, then (only if all held) ask the judge."""
    deadline = time.monotonic() + deadline_seconds
    checks: list[VerificationCheck] = []
    for step, data in executed:
        for probe in probes_for(step, data):
            checks.append(await run_probe(probe, gateway, ctx.acting, deadline))
    if not all(c.passed for c in checks):
        failed = "; ".join(f"{c.name}: {c.message}" for c in checks if not c.passed)
        return VerifyResult(
            Verification(
                revision=revision,
                passed=False,
                checks=checks,
                judgement=cap(f"objective checks failed: {failed}", MESSAGE_CAP),
                checked_at=now(),
            ),
            Usage(),
        )
    facts = "; ".join(f"{c.name}: {c.message}" for c in checks) or (
        "no objective check applies to the executed tools: "
        + ", ".join(f"{s.tool} succeeded" for s, _ in executed)
    )
    judgement = await judge_outcome(ctx, facts, model)
    return VerifyResult(
        Verification(
            revision=revision,
            passed=judgement.satisfied,
            checks=checks,
            judgement=cap(judgement.reason, MESSAGE_CAP),
            checked_at=now(),
        ),
        judgement.usage,
    )
