"""What a notification says, taken from a task as a status write stored it: pure, no I/O.

A notice is built from an allow-list of fields, never from the whole status, because a message leaves the
cluster for places (chat channels, ticket systems) with a wider audience than the task's namespace:

- for a proposal awaiting approval: who asked, the revision and its hash, each step's tool, short
  arguments, dry-run preview and diff, the planner's summary of the proposal, and how to approve exactly
  that hash. Proposed arguments and previews carry sealed placeholders for secret values
  (``sealed:sha256:<digest>@…``), never the values, and are what any approver sees in the task anyway;
- for a finished task: the reason and message it ended with (what its Event says), and which proposal
  ran.

Never included: the outputs of calls (``status.steps[].output``) and ``status.summary`` of a finished task
(built from those outputs), since a read's output is the one place a value could pass through.

The approval policy (how many approvers, four-eyes, approver groups) is not stated: Namespace annotations
decide it per task and may change while the proposal waits, so a message could only guess; the grant's
status says what is still needed, and ``kubectl describe`` shows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bosun.api.models import (
    API_VERSION,
    EVENT_MESSAGE_CAP,
    AgentTaskStatus,
    Condition,
    ProposedStep,
    UserRef,
    canonical_json,
    cap,
)

AWAITING_APPROVAL = "AwaitingApproval"
NOTIFIABLE = (AWAITING_APPROVAL, "Succeeded", "Failed", "Denied", "Expired", "Cancelled")
"""The phases a notification can be about: a proposal to decide, and every way a task ends."""

TITLES = {
    AWAITING_APPROVAL: "Approval needed",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
    "Denied": "Denied",
    "Expired": "Expired without a decision",
    "Cancelled": "Cancelled",
}

ARGS_CAP = 1024
"""UTF-8 bytes of one step's arguments (canonical JSON) in a notice: enough to recognise the call; the
exact arguments are in the task."""
PREVIEW_CAP = 512
SUMMARY_CAP = 2048
DELIVERY_ID_HEX = 32


@dataclass(frozen=True)
class StepNotice:
    id: str
    tool: str
    args: str
    """Canonical JSON, capped at ``ARGS_CAP`` with the visible truncation marker."""
    destructive: bool
    cluster_scoped: bool
    preview: str | None
    diff: str | None
    """As stored in the proposal (already capped at ``DIFF_CAP``); each format cuts it to its own room."""

    @classmethod
    def of(cls, step: ProposedStep) -> StepNotice:
        return cls(
            id=step.id,
            tool=step.tool,
            args=cap(canonical_json(step.args), ARGS_CAP) or "",
            destructive=step.destructive,
            cluster_scoped=step.cluster_scoped,
            preview=cap(step.preview, PREVIEW_CAP),
            diff=step.diff,
        )


@dataclass(frozen=True)
class HowToApprove:
    """Ways to approve exactly the proposal notified about, each quoting or showing its hash."""

    review: str
    """The command showing the whole proposal (exact calls, diffs, history)."""
    annotate: str | None
    """``kubectl annotate ... approve=true``; None when the operator accepts no annotation approvals. It
    approves the proposal shown at that moment, which is this one unless the task replanned since."""
    grant: str
    """A command creating an ApprovalGrant bound to the hash (``generateName``, so that each of several
    required approvers can run it as it is)."""


@dataclass(frozen=True)
class Notice:
    """One notification about one task, whatever sink it goes to."""

    event: str
    """The phase the task entered (one of ``NOTIFIABLE``)."""
    namespace: str
    name: str
    uid: str
    at: datetime
    requester: UserRef | None
    """Who asked, as the operator recorded it from admission's stamp when the task started (None when it
    could not be trusted: such a task fails ``RequesterUnknown``)."""
    reason: str
    message: str
    """Why the task ended, as its Event says (capped like one); empty for a proposal, whose steps say it."""
    revision: int | None
    plan_hash: str | None
    summary: str | None
    """The planner's description of the proposal (a proposal only)."""
    steps: tuple[StepNotice, ...]
    """The proposed calls (a proposal only)."""
    approve: HowToApprove | None

    @property
    def title(self) -> str:
        return f"{TITLES[self.event]}: AgentTask {self.namespace}/{self.name}"

    @property
    def delivery_id(self) -> str:
        """The same for every attempt and every sink, and different for every change: a task ends once,
        and each proposal has its own hash."""
        key = f"{self.uid}/{self.event}/{self.plan_hash or ''}"
        return hashlib.sha256(key.encode()).hexdigest()[:DELIVERY_ID_HEX]


def _ready(status: AgentTaskStatus) -> Condition | None:
    return next((c for c in status.conditions if c.type == "Ready"), None)


def _how_to_approve(namespace: str, name: str, plan_hash: str, annotations: bool) -> HowToApprove:
    grant = "\n".join(
        [
            "kubectl create -f - <<'EOF'",
            f"apiVersion: {API_VERSION}",
            "kind: ApprovalGrant",
            "metadata:",
            f"  generateName: {name}-",
            f"  namespace: {namespace}",
            "spec:",
            f"  taskRef: {{name: {name}}}",
            f"  planHash: {plan_hash}",
            "  decision: Approve   # or Deny",
            "EOF",
        ]
    )
    return HowToApprove(
        review=f"kubectl -n {namespace} describe agenttask {name}",
        annotate=f"kubectl -n {namespace} annotate agenttask {name} approve=true" if annotations else None,
        grant=grant,
    )


def notice_of(
    body: Mapping[str, Any], status: AgentTaskStatus, *, annotation_approvals: bool
) -> Notice | None:
    """The notice for a task that just entered ``status.phase`` (as stored in ``body``); None when that
    phase is not one to notify about. ``annotation_approvals``: the operator's setting, so that a message
    never suggests a way of approving the operator refuses (a Namespace may still turn it off)."""
    phase = status.phase
    if phase not in NOTIFIABLE:
        return None
    meta = body["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    proposal, ready = status.proposal, _ready(status)
    offered = proposal if phase == AWAITING_APPROVAL else None
    at = (offered.created_at if offered else status.finished_at) or (
        ready.last_transition_time if ready else None
    )
    if at is None:
        raise ValueError(f"agenttask {namespace}/{name} is {phase} but its status records no time of it")
    return Notice(
        event=phase,
        namespace=namespace,
        name=name,
        uid=str(meta["uid"]),
        at=at,
        requester=status.requester,
        reason=ready.reason if ready else phase,
        message="" if offered or ready is None else cap(ready.message, EVENT_MESSAGE_CAP) or "",
        revision=proposal.revision if proposal else None,
        plan_hash=proposal.hash if proposal else None,
        summary=cap(offered.summary, SUMMARY_CAP) if offered else None,
        steps=tuple(StepNotice.of(s) for s in offered.steps) if offered else (),
        approve=_how_to_approve(namespace, name, offered.hash, annotation_approvals) if offered else None,
    )
