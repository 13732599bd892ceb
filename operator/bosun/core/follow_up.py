"""``spec.followUpOf``: whether an earlier task may be followed up, and what the model is told about it.

A follow-up is the next turn of a conversation: a new task whose model sees the earlier task's request, how
it ended, its answer, the changes it proposed or ran and its verification, and the same of the turns that
one followed up, up to ``MAX_FOLLOW_UP_TURNS`` in all, oldest dropped first. Everything the model is given
of them fits ``FOLLOW_UP_CONTEXT_CAP`` characters, truncation marker included, whatever the earlier tasks
hold.

Pure functions of the objects as the API server returned them and of RBAC's answers: the reading (as the
operator, after asking whether the *requester* may ``get`` each task) is ``bosun.steps.follow_up``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bosun.api.models import (
    FOLLOW_UP_CONTEXT_CAP,
    MAX_FOLLOW_UP_TURNS,
    TERMINAL_PHASES,
    AgentTaskStatus,
    canonical_json,
)
from bosun.core.grants import parse_timestamp

FIELD = "spec.followUpOf"

REQUEST_CAP = 600
"""Characters of one earlier turn's request."""
ANSWER_CAP = 1200
"""Characters of one earlier turn's summary (its answer, or what was done, or why it failed)."""
OUTCOME_CAP = 300
"""Characters of one earlier turn's final condition message and of its verification verdict."""
STEP_LINES = 8
"""Mutating calls shown per earlier turn, the latest ones; the others are counted."""
STEP_LINE_CAP = 200
"""Characters of one call line (tool, arguments, state)."""

HEADER = (
    "This request follows up earlier AgentTasks of this namespace, oldest first (a conversation: read the "
    "request in their light). They are finished; nothing of them runs again unless you propose it."
)


@dataclass(frozen=True)
class Refusal:
    """Why a follow-up cannot be planned: the reason of the task's Failed condition, and the message."""

    reason: str
    message: str


@dataclass(frozen=True)
class FollowUp:
    """The task ``spec.followUpOf`` names, found readable and finished, and what the model is told."""

    name: str
    phase: str
    context: str


@dataclass(frozen=True)
class Turn:
    """One earlier task, as the model is told about it (every text already bounded)."""

    name: str
    request: str
    ended: str
    """Phase and reason, e.g. ``Succeeded (Verified)``, with the final message when it says more."""
    answer: str | None
    calls: tuple[str, ...]
    verification: str | None


# ----- may it be followed up ---------------------------------------------------------------------------


def created(body: Mapping[str, Any]) -> datetime | None:
    """When the object was created, as the API server stamped it."""
    return parse_timestamp((body.get("metadata") or {}).get("creationTimestamp"))


def _finished(body: Mapping[str, Any]) -> bool:
    return (body.get("status") or {}).get("phase") in TERMINAL_PHASES


def _created_after(body: Mapping[str, Any], moment: datetime | None) -> bool:
    """Whether ``body`` was created after ``moment``: then it is not the task the follower was written to
    follow (the one named was deleted and a new one created under its name). Second precision: equal is
    not after."""
    mine = created(body)
    return mine is not None and moment is not None and mine > moment


def previous_refusal(
    name: str,
    namespace: str,
    requester: str,
    *,
    allowed: bool,
    previous: Mapping[str, Any] | None,
    follower_created: datetime | None,
) -> Refusal | None:
    """Why the task named by ``spec.followUpOf`` cannot be followed up, or None when it can.

    ``allowed``: RBAC's answer to whether the requester may ``get`` it. It is asked first, and a refusal
    says nothing about whether the task exists, so a follow-up never tells anyone what they could not
    read by hand. ``previous``: the task as the operator read it (None: not found)."""
    if not allowed:
        return Refusal(
            "FollowUpForbidden",
            f"{FIELD}: {requester} may not get agenttasks.bosun.dev {name} in namespace {namespace}, so "
            "Bosun will not show that task to the model on their behalf. Ask an admin of the namespace for "
            "get on agenttasks.bosun.dev there (the bosun-requester role has it), or create the task "
            f"without {FIELD}",
        )
    if previous is None or _created_after(previous, follower_created):
        return Refusal(
            "FollowUpNotFound",
            f"{FIELD}: AgentTask {name} not found in namespace {namespace}"
            + (" (a task of that name was created after this one)" if previous is not None else "")
            + f"; name a finished task of that namespace (kubectl -n {namespace} get agenttasks), or "
            f"create the task without {FIELD}",
        )
    if not _finished(previous):
        phase = (previous.get("status") or {}).get("phase") or "Pending"
        return Refusal(
            "FollowUpNotFinished",
            f"{FIELD}: AgentTask {name} in namespace {namespace} is {phase}, not finished; a follow-up "
            "continues a task that has ended. Wait until it has (Succeeded, Failed, Denied, Cancelled or "
            f"Expired: kubectl -n {namespace} get agenttask {name} -w), then create the follow-up again",
        )
    return None


def earlier_turn_usable(
    earlier: Mapping[str, Any] | None, later: Mapping[str, Any], seen: set[str], *, allowed: bool
) -> bool:
    """Whether a turn further back in the chain (what ``later`` itself followed up) is shown: the requester
    may get it, it exists, is finished, was not created after ``later`` and was not shown already (a chain
    of names may loop). When not, it and everything before it are left out."""
    if not allowed or earlier is None or not _finished(earlier):
        return False
    uid = str((earlier.get("metadata") or {}).get("uid", ""))
    return uid not in seen and not _created_after(earlier, created(later))


def lost(name: str, refusal: Refusal) -> str:
    """What the model is told when the task followed up can no longer be shown on a later pass (deleted,
    say by its TTL, or no longer readable by the requester): this task's own history carries on."""
    return (
        f"This request follows up AgentTask {name}, which can no longer be shown ({refusal.reason}); "
        "what this task did so far is below."
    )


# ----- what the model is told ------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, ending in a truncation marker when it was cut."""
    if len(text) <= limit:
        return text
    room = limit - len(f"…[truncated {len(text)} characters]")
    keep = max(0, room)
    return text[:keep] + f"…[truncated {len(text) - keep} characters]"


def _flat(text: str) -> str:
    return " ".join(text.split())


def turn_of(body: Mapping[str, Any]) -> Turn:
    """What the model is told about one finished task."""
    spec = body.get("spec") or {}
    status = AgentTaskStatus.model_validate(body.get("status") or {})
    ready = next((c for c in status.conditions if c.type == "Ready"), None)
    ended: str = status.phase or "Pending"
    if ready is not None:
        ended += f" ({ready.reason}): {_cut(_flat(ready.message), OUTCOME_CAP)}"
    mutating = [r for r in status.steps if r.mutating]
    calls = [
        _cut(f"{r.tool} {canonical_json(r.args)} -> {r.state}", STEP_LINE_CAP) for r in mutating[-STEP_LINES:]
    ]
    if len(mutating) > STEP_LINES:
        calls.insert(0, f"({len(mutating) - STEP_LINES} earlier change(s) left out)")
    reads = len(status.steps) - len(mutating)
    if reads:
        calls.append(f"({reads} read-only call(s))")
    verification = None
    if status.verification is not None:
        verdict = "passed" if status.verification.passed else "failed"
        judgement = _flat(status.verification.judgement or "")
        verification = _cut(
            f"revision {status.verification.revision} {verdict}" + (f": {judgement}" if judgement else ""),
            OUTCOME_CAP,
        )
    return Turn(
        name=str((body.get("metadata") or {}).get("name", "")),
        request=_cut(str(spec.get("request", "")).strip(), REQUEST_CAP),
        ended=ended,
        answer=_cut(status.summary.strip(), ANSWER_CAP) if status.summary else None,
        calls=tuple(calls),
        verification=verification,
    )


def _block(turn: Turn) -> str:
    lines = [f"--- AgentTask {turn.name}", f"Request: {turn.request}", f"Ended: {turn.ended}"]
    if turn.answer:
        lines.append(f"Answer: {turn.answer}")
    if turn.calls:
        lines.append("Changes proposed or run:")
        lines.extend(f"- {call}" for call in turn.calls)
    if turn.verification:
        lines.append(f"Verification: {turn.verification}")
    return "\n".join(lines)


def context(turns: Sequence[Turn], *, more: bool = False, cap: int = FOLLOW_UP_CONTEXT_CAP) -> str:
    """The earlier turns for the model, oldest first, in at most ``cap`` characters.

    ``turns`` are oldest first; ``more``: turns before the first were left out (the bound on turns, or
    ones the requester may not read). Only the newest ``MAX_FOLLOW_UP_TURNS`` are kept, and while they do
    not fit, the oldest is dropped (and counted); the newest alone is cut with a marker."""
    kept = list(turns[-MAX_FOLLOW_UP_TURNS:])
    dropped = len(turns) - len(kept)
    while True:
        note = None
        if more:
            note = "(earlier turns left out)"
        elif dropped:
            note = f"({dropped} earlier turn(s) left out)"
        parts = [HEADER, *([note] if note else []), *(_block(t) for t in kept)]
        text = "\n".join(parts)
        if len(text) <= cap or len(kept) <= 1:
            return _cut(text, cap)
        kept.pop(0)
        dropped += 1
