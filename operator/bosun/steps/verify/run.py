"""Did the executed calls achieve what was asked? Objective checks first, then a short model judgement.

Every executed mutating call is checked objectively (``probes.registry`` says how, tool by tool): the
checks read the world through read-only tools as the identity that executed (``ctx.acting``: the
requester, or the namespace's execution ServiceAccount), each bounded by one deadline for the whole
verification. A check that cannot decide fails and says what to confirm by hand, so a task never ends
Succeeded on the word of a tool or of the model, neither of which is evidence that the change took
effect. Only when every check passed is the model asked whether the request is satisfied; its judgement
can turn a pass into a fail, never the reverse. A failed verification sends the task back to planning
(bounded by maxIterations) and never re-executes anything by itself.

No check asks the API server for access reviews of RBAC changes: RBAC objects are on the scope deny-list
(``bosun.core.scope.DENIED_GROUPS``) and are refused before they are proposed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bosun_tools.identity import Identity

from bosun.api.models import (
    MARKER_ROOM,
    MAX_CHECKS,
    MESSAGE_CAP,
    ProposedStep,
    Verification,
    VerificationCheck,
    cap,
)
from bosun.planner import ModelSettings, PlanningContext, Usage, judge_outcome
from bosun.ports.gateway import ToolCallOutcome, ToolGateway
from bosun.steps.verify.probes.base import Probe, Reader
from bosun.steps.verify.probes.registry import probes_for

POLL_SECONDS = 3.0
"""How often a pending probe is asked again."""
NAME_CAP = 200 - MARKER_ROOM
"""A check's name is at most 200 characters (the CRD's bound), marker included."""
CALL_GRACE_SECONDS = 15
"""A read may overrun the deadline by this much (the tool's own timeout and the MCP round trip)."""


@dataclass(frozen=True)
class ToolReader:
    """Read-only tool calls as the executing identity; every call is bounded by the deadline."""

    gateway: ToolGateway
    identity: Identity
    deadline: float

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def __call__(self, tool: str, args: dict[str, Any]) -> ToolCallOutcome:
        timeout = max(self.remaining(), 1) + CALL_GRACE_SECONDS
        return await self.gateway.read(tool, args, identity=self.identity, timeout=timeout)


def _check(name: str, passed: bool, message: str) -> VerificationCheck:
    """A check as the CRD stores it: name and message cut to its bounds."""
    return VerificationCheck(
        name=cap(name, NAME_CAP) or "", passed=passed, message=cap(message, MESSAGE_CAP) or ""
    )


async def run_probe(probe: Probe, reader: Reader) -> VerificationCheck:
    """Ask one probe until it passes, or fails for good, or the deadline passes (asking again every
    ``POLL_SECONDS`` while it is pending: a Helm release settling, an object finalizing)."""
    while True:
        status, message = await probe.look(reader)
        if status == "passed":
            return _check(probe.name, True, message)
        if status == "unsure":
            return _check(probe.name, False, f"could not be confirmed: {message}; check it by hand")
        if status == "failed":
            return _check(probe.name, False, message)
        remaining = reader.remaining()
        if remaining <= 0:
            return _check(probe.name, False, f"{message} (still so at the deadline)")
        await asyncio.sleep(min(POLL_SECONDS, remaining))


def bounded(checks: list[VerificationCheck]) -> list[VerificationCheck]:
    """At most ``MAX_CHECKS`` checks (the CRD's bound): failures first, the passes beyond the bound
    folded into one summary line."""
    if len(checks) <= MAX_CHECKS:
        return checks
    keep = set(sorted(range(len(checks)), key=lambda i: checks[i].passed)[: MAX_CHECKS - 1])
    rest = [c for i, c in enumerate(checks) if i not in keep]
    summary = _check(
        f"{len(rest)} more checks",
        all(c.passed for c in rest),
        "; ".join(f"{c.name}: {c.message if not c.passed else 'passed'}" for c in rest),
    )
    return [c for i, c in enumerate(checks) if i in keep] + [summary]


@dataclass(frozen=True)
class VerifyResult:
    """The verification to record, and the model usage its judgement cost."""

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
    """Check every executed step (``data``: the small facts its tool returned), then, only if all held,
    ask the judge."""
    reader = ToolReader(gateway, ctx.acting, time.monotonic() + deadline_seconds)
    checks: list[VerificationCheck] = []
    for step, data in executed:
        for probe in probes_for(step.tool, step.args, data):
            checks.append(await run_probe(probe, reader))
    if not checks:
        checks.append(
            _check("executed changes", False, "no change was executed, so nothing confirms the request")
        )
    checks = bounded(checks)
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
    facts = "; ".join(f"{c.name}: {c.message}" for c in checks)
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
