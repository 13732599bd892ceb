"""The console's overview: what the tasks a person may list say about the agent's work, computed from the
tasks themselves (their status is the audit trail), as a pure function.

- tasks per phase;
- approval latency: from a proposal's creation to the operator's counting of the approval that let it run
  (the last accepted Approve of that revision), per revision that was approved;
- model calls, tokens and cost per day (the day a task was created, UTC) and per model
  (``status.usage.model``: what the operator really used, else ``spec.model``, else the operator's default);
- approvals vs denials, counted and not counted (a grant for another revision, a self-approval refused by
  four-eyes, ...).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bosun.api.models import TaskPhase
from bosun.cli.render import status_of
from bosun.core.grants import parse_timestamp

PHASE_ORDER: tuple[TaskPhase, ...] = (
    "AwaitingApproval",
    "Pending",
    "Planning",
    "Executing",
    "Verifying",
    "Succeeded",
    "Failed",
    "Denied",
    "Cancelled",
    "Expired",
)
DEFAULT_MODEL = "(operator default)"


@dataclass
class Spend:
    tasks: int = 0
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Latency:
    """Seconds from proposal to counted approval, over ``count`` approved revisions."""

    count: int
    median: float | None
    worst: float | None


@dataclass(frozen=True)
class Decisions:
    approvals: int
    denials: int
    not_counted: int


@dataclass
class Overview:
    total: int
    phases: list[tuple[str, int]]
    latency: Latency
    decisions: Decisions
    per_day: list[tuple[str, Spend]] = field(default_factory=list)
    per_model: list[tuple[str, Spend]] = field(default_factory=list)

    @property
    def busiest(self) -> int:
        """The largest phase count (the scale of the phase bars)."""
        return max((n for _, n in self.phases), default=0)


def _model_of(body: Mapping[str, Any]) -> str:
    usage = ((body.get("status") or {}).get("usage") or {}).get("model")
    return str(usage or (body.get("spec") or {}).get("model") or DEFAULT_MODEL)


def approval_latencies(bodies: Iterable[Mapping[str, Any]]) -> list[float]:
    """Seconds from each proposal revision to its last counted approval (the one that let it run)."""
    seconds = []
    for body in bodies:
        status = status_of(body)
        proposal = status.proposal
        if proposal is None:
            continue
        counted = [
            r.at
            for r in status.approvals
            if r.accepted and r.decision == "Approve" and r.revision == proposal.revision
        ]
        if counted and status.phase != "AwaitingApproval":
            seconds.append(max(0.0, (max(counted) - proposal.created_at).total_seconds()))
    return seconds


def overview(bodies: Iterable[Mapping[str, Any]]) -> Overview:
    tasks = list(bodies)
    phases = Counter(status_of(b).phase or "Pending" for b in tasks)
    days: dict[str, Spend] = {}
    models: dict[str, Spend] = {}
    approvals = denials = not_counted = 0
    for body in tasks:
        status = status_of(body)
        created = parse_timestamp((body.get("metadata") or {}).get("creationTimestamp"))
        day = created.strftime("%Y-%m-%d") if created else "unknown"
        usage = status.usage
        for bucket in (days.setdefault(day, Spend()), models.setdefault(_model_of(body), Spend())):
            bucket.tasks += 1
            bucket.calls += usage.calls
            bucket.tokens += usage.prompt_tokens + usage.completion_tokens
            bucket.cost_usd += usage.cost_usd
        for record in status.approvals:
            if not record.accepted:
                not_counted += 1
            elif record.decision == "Approve":
                approvals += 1
            else:
                denials += 1
    latencies = approval_latencies(tasks)
    return Overview(
        total=len(tasks),
        phases=[(p, phases[p]) for p in PHASE_ORDER if phases[p]],
        latency=Latency(
            count=len(latencies),
            median=statistics.median(latencies) if latencies else None,
            worst=max(latencies) if latencies else None,
        ),
        decisions=Decisions(approvals, denials, not_counted),
        per_day=sorted(days.items(), reverse=True),
        per_model=sorted(models.items(), key=lambda kv: (-kv[1].cost_usd, -kv[1].tokens, kv[0])),
    )


def seconds_text(value: float | None) -> str:
    """A duration as people read it: ``42 s``, ``3 min 5 s``, ``2 h 10 min``; ``-`` for none."""
    if value is None:
        return "-"
    whole = round(value)
    if whole < 60:
        return f"{value:.1f} s" if value < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
