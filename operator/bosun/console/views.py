"""What the console shows, as pure functions of the objects the API server returned to the person.

Nothing here reads a clock, a socket or a file: the moment and the viewer are arguments, so every view is
unit-tested from plain objects, and the templates only lay out what is decided here. The wording follows
``kubectl bosun`` (``bosun.cli.render``), whose helpers are reused: a reviewer reads the same facts in the
terminal and in the browser.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from bosun_tools.output import age

from bosun.api.models import (
    TERMINAL_PHASES,
    AgentTaskStatus,
    ApprovalGrantStatus,
    Proposal,
    UserRef,
    canonical_json,
    one_line,
)
from bosun.cli.render import (
    AWAITING,
    DiffKind,
    arguments,
    diff_kind,
    outcome,
    requester,
    status_of,
    still_needed,
)
from bosun.core.grants import parse_timestamp

Tone = Literal["good", "bad", "wait", "work", "none"]

PHASE_TONES: dict[str, Tone] = {
    "Succeeded": "good",
    "AwaitingApproval": "wait",
    "Planning": "work",
    "Executing": "work",
    "Verifying": "work",
    "Denied": "bad",
    "Failed": "bad",
    "Cancelled": "bad",
    "Expired": "bad",
}
CALL_TONES: dict[str, Tone] = {"Succeeded": "good", "Failed": "bad", "Executing": "work"}
RESULT_CHARACTERS = 160
"""Characters of a call's result in the timeline; the whole record is in the task's YAML."""


def tone(phase: str | None) -> Tone:
    return PHASE_TONES.get(phase or "", "none")


def _user(ref: UserRef | None) -> str:
    return ref.user if ref is not None else "unknown"


# ----- the list ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What the person narrowed the list to: a phase and a requester (namespace is the API's own scope)."""

    phase: str = ""
    requester: str = ""

    def admit(self, row: TaskRow) -> bool:
        return (not self.phase or row.phase == self.phase) and (
            not self.requester or row.requester == self.requester
        )


@dataclass(frozen=True)
class TaskRow:
    """One task in the list. ``waiting_for_me``: it awaits a decision the viewer may give (they did not
    ask for it and have not decided this revision yet), so it is listed first."""

    key: str
    namespace: str
    name: str
    phase: str
    tone: Tone
    message: str
    requester: str
    request: str
    age: str
    created: str
    waiting_for_me: bool


def task_row(body: Mapping[str, Any], viewer: str | None, now: datetime) -> TaskRow:
    meta = body.get("metadata") or {}
    status = status_of(body)
    asker = requester(body)
    phase = status.phase or "Pending"
    return TaskRow(
        key=str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}"),
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        phase=phase,
        tone=tone(phase),
        message=status.message or "",
        requester=_user(asker) if asker else "-",
        request=one_line(str((body.get("spec") or {}).get("request", "")), 120),
        age=age(meta.get("creationTimestamp"), now),
        created=str(meta.get("creationTimestamp") or ""),
        waiting_for_me=waits_for(status, asker, viewer),
    )


def waits_for(status: AgentTaskStatus, asker: UserRef | None, viewer: str | None) -> bool:
    """Whether the task awaits a decision from ``viewer``: a proposal is open, the viewer did not ask for
    it (four-eyes would refuse them) and has no decision counted for this revision yet."""
    if viewer is None or status.phase != AWAITING or status.proposal is None:
        return False
    if asker is not None and asker.user == viewer:
        return False
    revision = status.proposal.revision
    return not any(
        r.accepted and r.revision == revision and r.approver is not None and r.approver.user == viewer
        for r in status.approvals
    )


def task_rows(
    items: Iterable[Mapping[str, Any]], viewer: str | None, now: datetime, filters: Filters
) -> list[TaskRow]:
    """The rows the filters admit: waiting for the viewer first, then newest first."""
    rows = [row for row in (task_row(b, viewer, now) for b in items) if filters.admit(row)]
    rows.sort(key=lambda r: r.created, reverse=True)
    rows.sort(key=lambda r: not r.waiting_for_me)
    return rows


# ----- one task ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: DiffKind
    text: str


def diff_lines(text: str | None) -> list[DiffLine]:
    """A unified diff, line by line, each marked for its colour."""
    return [DiffLine(diff_kind(line), line) for line in (text or "").splitlines()]


@dataclass(frozen=True)
class StepView:
    id: str
    tool: str
    args: str
    rationale: str
    preview: str
    preview_note: str
    diff: list[DiffLine]
    tags: list[str]


def step_views(proposal: Proposal) -> list[StepView]:
    return [
        StepView(
            id=step.id,
            tool=step.tool,
            args="\n".join(arguments(step.args)),
            rationale=step.rationale,
            preview=step.preview or "",
            preview_note=step.preview_note or "",
            diff=diff_lines(step.diff),
            tags=[
                *(["destructive"] if step.destructive else []),
                *(["cluster-scoped"] if step.cluster_scoped else []),
            ],
        )
        for step in proposal.steps
    ]


MomentKind = Literal["asked", "read", "proposed", "approval", "execution", "verification", "ended"]
MOMENT_ORDER: tuple[MomentKind, ...] = (
    "asked",
    "read",
    "proposed",
    "approval",
    "execution",
    "verification",
    "ended",
)
"""The order of moments that happened in the same second."""


@dataclass(frozen=True)
class Moment:
    """One line of the task's timeline: when, what kind of thing happened, and what."""

    at: datetime | None
    kind: MomentKind
    tone: Tone
    text: str
    detail: str = ""


def timeline(body: Mapping[str, Any]) -> list[Moment]:
    """The task's story from its status: the request, planning's reads, each proposal, every decision
    considered, each approved call as it ran, verification and the end, in the order they happened."""
    meta, status = body.get("metadata") or {}, status_of(body)
    asker = requester(body)
    moments = [
        Moment(
            parse_timestamp(meta.get("creationTimestamp")),
            "asked",
            "none",
            f"{_user(asker)} asked" if asker else "asked",
            str((body.get("spec") or {}).get("request", "")),
        )
    ]
    for record in status.steps:
        result = one_line(record.error or record.output or "", RESULT_CHARACTERS)
        call = f"{record.tool} {one_line(canonical_json(record.args), RESULT_CHARACTERS)}"
        if not record.mutating:
            moments.append(
                Moment(record.finished_at or record.started_at, "read", "none", f"read: {call}", result)
            )
            continue
        if record.state in ("AwaitingApproval", "Approved", "Denied") and record.started_at is None:
            continue  # not run (yet): the proposal and the decisions say it
        moments.append(
            Moment(
                record.finished_at or record.started_at,
                "execution",
                CALL_TONES.get(record.state, "none"),
                f"{record.state.lower()}: {call}" + (f" as {record.ran_as.user}" if record.ran_as else ""),
                result,
            )
        )
    if status.proposal is not None:
        steps = len(status.proposal.steps)
        moments.append(
            Moment(
                status.proposal.created_at,
                "proposed",
                "wait",
                f"proposal revision {status.proposal.revision}: {steps} step{'s' if steps != 1 else ''}",
                status.proposal.summary,
            )
        )
    for decided in status.approvals:
        verb = "approved" if decided.decision == "Approve" else "denied"
        counted = "" if decided.accepted else " (not counted)"
        revision = f" revision {decided.revision}" if decided.revision else ""
        decided_tone: Tone = (
            ("good" if decided.decision == "Approve" else "bad") if decided.accepted else "none"
        )
        moments.append(
            Moment(
                decided.at,
                "approval",
                decided_tone,
                f"{_user(decided.approver)} {verb}{revision}{counted}",
                decided.reason,
            )
        )
    if status.verification is not None:
        verdict = status.verification
        checks = "; ".join(f"{'passed' if c.passed else 'failed'}: {c.name}" for c in verdict.checks)
        moments.append(
            Moment(
                verdict.checked_at,
                "verification",
                "good" if verdict.passed else "bad",
                f"verification of revision {verdict.revision} {'passed' if verdict.passed else 'failed'}",
                "; ".join(p for p in (checks, verdict.judgement or "") if p),
            )
        )
    if status.phase in TERMINAL_PHASES:
        moments.append(
            Moment(status.finished_at, "ended", tone(status.phase), f"ended {status.phase}", outcome(status))
        )
    asked = moments[0].at or datetime.min.replace(tzinfo=UTC)
    proposed = status.proposal.created_at if status.proposal else asked
    # A call recorded without a time is placed where it must have happened: a read while planning, after
    # the request; an approved call after its proposal.
    undated = {"read": asked, "execution": proposed}

    def order(moment: Moment) -> tuple[datetime, int]:
        return moment.at or undated.get(moment.kind, asked), MOMENT_ORDER.index(moment.kind)

    return sorted(moments, key=order)


@dataclass(frozen=True)
class Decision:
    """What the viewer may do about the open proposal, and why not when they may not."""

    revision: int
    hash: str
    still_needed: str
    viewer_is_requester: bool
    policy: str
    """The approval policy the operator judges this proposal by (``status.approvalPolicy.summary``)."""
    policy_problem: bool
    """A namespace annotation does not parse: nothing is approved until an admin fixes it."""


@dataclass(frozen=True)
class TaskView:
    namespace: str
    name: str
    phase: str
    tone: Tone
    message: str
    requester: str
    request: str
    targets: list[str]
    model: str
    follow_up_of: str
    created: str
    age: str
    proposal: Proposal | None
    steps: list[StepView]
    decision: Decision | None
    timeline: list[Moment]
    summary: str
    outcome: str
    usage: list[tuple[str, str]]
    finished: bool
    conditions: list[tuple[str, str, str, str]] = field(default_factory=list)


def task_view(body: Mapping[str, Any], viewer: str | None, now: datetime) -> TaskView:
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = status_of(body)
    asker = requester(body)
    phase = status.phase or "Pending"
    open_proposal = status.proposal if phase == AWAITING else None
    decision = (
        Decision(
            revision=open_proposal.revision,
            hash=open_proposal.hash,
            still_needed=still_needed(status),
            viewer_is_requester=asker is not None and viewer is not None and asker.user == viewer,
            policy=status.approval_policy.summary if status.approval_policy else "",
            policy_problem=bool(status.approval_policy and status.approval_policy.problem),
        )
        if open_proposal is not None
        else None
    )
    usage = status.usage
    return TaskView(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        phase=phase,
        tone=tone(phase),
        message=status.message or "",
        requester=_user(asker) if asker else "-",
        request=str(spec.get("request", "")),
        targets=list(spec.get("targetNamespaces") or [meta.get("namespace", "")]),
        model=str(spec.get("model") or ""),
        follow_up_of=str(spec.get("followUpOf") or ""),
        created=str(meta.get("creationTimestamp") or ""),
        age=age(meta.get("creationTimestamp"), now),
        proposal=status.proposal,
        steps=step_views(status.proposal) if status.proposal else [],
        decision=decision,
        timeline=timeline(body),
        summary=status.summary or "",
        outcome=outcome(status) if phase in TERMINAL_PHASES else "",
        usage=[
            ("model calls", str(usage.calls)),
            ("prompt tokens", f"{usage.prompt_tokens:,}"),
            ("completion tokens", f"{usage.completion_tokens:,}"),
            ("cost", f"${usage.cost_usd:.4f}"),
        ],
        finished=phase in TERMINAL_PHASES,
        conditions=[(c.type, c.status, c.reason, c.message) for c in status.conditions],
    )


# ----- decisions and events ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """What became of a decision made in the console: the grant's verdict as the operator wrote it."""

    tone: Tone
    text: str


def grant_notice(grant: Mapping[str, Any] | None, name: str) -> Notice:
    if grant is None:
        return Notice("bad", f"approvalgrant {name} no longer exists")
    status = ApprovalGrantStatus.model_validate(grant.get("status") or {})
    if not status.state:
        return Notice("wait", f"approvalgrant {name} was created; the operator has not judged it yet")
    notice_tone: Tone = "good" if status.state == "Accepted" else "bad"
    return Notice(
        notice_tone, f"approvalgrant {name}: {status.state} ({status.reason}): {status.message or ''}"
    )


def chosen_steps(proposal: Proposal, picked: Sequence[str], everything: bool) -> list[str] | None:
    """The steps a decision names: None (every step) for "approve all" or when every step was picked."""
    ids = [s.id for s in proposal.steps]
    if everything or set(ids) <= set(picked):
        return None
    unknown = [p for p in picked if p not in ids]
    if unknown:
        raise ValueError(
            f"steps {', '.join(unknown)} are not in proposal revision {proposal.revision}, "
            f"whose steps are {', '.join(ids)}"
        )
    if not picked:
        raise ValueError("no step was picked: tick the steps to approve, or use Approve all")
    return [i for i in ids if i in picked]


@dataclass(frozen=True)
class EventLine:
    key: str
    at: str
    type: str
    reason: str
    object: str
    message: str


def event_line(event: Mapping[str, Any]) -> EventLine:
    involved = event.get("involvedObject") or {}
    meta = event.get("metadata") or {}
    stamp = event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp")
    at = parse_timestamp(stamp)
    return EventLine(
        key=str(meta.get("uid") or meta.get("name")),
        at=at.strftime("%H:%M:%S") if at else "--:--:--",
        type=str(event.get("type", "")),
        reason=str(event.get("reason", "")),
        object=f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        message=one_line(str(event.get("message", "")), 400),
    )
