"""What the grants approve: the hash that binds an approval to exactly what was shown, the count of
decisions into step states, and the authority the executor consults before every call.

The hash covers the task's uid, the proposal revision and the exact calls (step id, tool, arguments, in
order): what a person approves is what runs, a grant for one task or revision approves nothing elsewhere,
and a replan voids earlier grants. Rationale and previews are left out, they explain the calls but do not
change what runs. Each grant is judged on its own by ``bosun.core.grants``; here the accepted decisions
are counted against the policy's number of distinct approvers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bosun.api.models import (
    APPROVAL_REASON_CAP,
    MAX_APPROVERS,
    AgentTaskStatus,
    ApprovalRecord,
    Proposal,
    ProposedStep,
    StepRecord,
    UserRef,
    canonical_json,
)
from bosun.core.approval_policy import DEFAULT_POLICY, ApprovalPolicy
from bosun.core.grants import GrantVerdict, grant_created, judge_grant, parse_timestamp


def plan_hash(task_uid: str, revision: int, steps: Sequence[ProposedStep]) -> str:
    """What an ApprovalGrant quotes as ``spec.planHash``: sha256 over the task uid, revision and calls."""
    calls = [{"id": s.id, "tool": s.tool, "args": s.args} for s in steps]
    payload = canonical_json({"task": task_uid, "revision": revision, "calls": calls})
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def _who(user: UserRef | None) -> str:
    return user.user if user else "unknown"


@dataclass(frozen=True)
class Tally:
    """Where the current proposal stands: per step, its distinct approvers or who denied it."""

    required: int
    approved: tuple[str, ...]
    denied: Mapping[str, str]
    """step id -> who denied it and with which grant"""
    pending: tuple[str, ...]
    approvers: Mapping[str, tuple[UserRef, ...]]

    @property
    def complete(self) -> bool:
        return not self.pending

    def counted(self) -> tuple[UserRef, ...]:
        """The distinct approvers of the first undecided step (or of the first approved one)."""
        step = (self.pending or self.approved or ("",))[0]
        return tuple(self.approvers.get(step, ()))

    def progress(self) -> str:
        users = [u.user for u in self.counted()]
        named = f" ({', '.join(users)})" if users else ""
        return f"{len(users)} of {self.required} approvals{named}"


def _valid(record: ApprovalRecord, policy: ApprovalPolicy, now: datetime) -> bool:
    """Expiry is checked again at every count: a partial approval can age out while others are awaited."""
    if record.expires_at is not None and record.expires_at <= now:
        return False
    age = policy.max_grant_age_seconds
    return not (age and record.created_at and record.created_at + timedelta(seconds=age) <= now)


def tally(status: AgentTaskStatus, policy: ApprovalPolicy, now: datetime) -> Tally:
    """Count the accepted decisions on the current revision: a Deny (or a subset grant leaving a step
    out) from any allowed approver denies; a step runs once ``required_approvals`` distinct approvers
    approved it."""
    proposal = status.proposal
    ids = [s.id for s in proposal.steps] if proposal else []
    denied: dict[str, str] = {}
    approvers: dict[str, list[UserRef]] = {i: [] for i in ids}
    for record in status.approvals:
        if proposal is None or not record.accepted or record.revision != proposal.revision:
            continue
        chosen = ids if record.decision == "Deny" else (record.steps or ids)
        by = f"{_who(record.approver)} ({record.grant})"
        for i in ids:
            if (record.decision == "Deny" or i not in chosen) and i not in denied:
                denied[i] = by
        if record.decision == "Deny" or record.approver is None or not _valid(record, policy, now):
            continue
        for i in chosen:
            if i in approvers and all(u.user != record.approver.user for u in approvers[i]):
                approvers[i].append(record.approver)
    approved = tuple(i for i in ids if i not in denied and len(approvers[i]) >= policy.required_approvals)
    pending = tuple(i for i in ids if i not in denied and i not in approved)
    return Tally(
        policy.required_approvals, approved, denied, pending, {k: tuple(v) for k, v in approvers.items()}
    )


def settle(status: AgentTaskStatus, outcome: Tally, *, grant_name: str, now: datetime) -> AgentTaskStatus:
    """Once every step is decided, mark the steps Approved (with all their approvers) or Denied."""
    proposal = status.proposal
    if proposal is None or not outcome.complete:
        return status.model_copy(update={"pending_steps": len(outcome.pending)})
    steps: list[StepRecord] = []
    for step in status.steps:
        if step.revision == proposal.revision and step.state == "AwaitingApproval":
            if step.step_id in outcome.approved:
                users = list(outcome.approvers.get(step.step_id, ()))
                step = step.model_copy(
                    update={"state": "Approved", "grant": grant_name, "approved_by": users[:MAX_APPROVERS]}
                )
            elif step.step_id is not None and step.step_id in outcome.denied:
                step = step.model_copy(
                    update={
                        "state": "Denied",
                        "grant": grant_name,
                        "finished_at": now,
                        "error": f"denied by {outcome.denied[step.step_id]}",
                    }
                )
        steps.append(step)
    return status.model_copy(update={"steps": steps, "pending_steps": len(outcome.approved)})


def apply_verdict(
    status: AgentTaskStatus,
    verdict: GrantVerdict,
    *,
    grant_name: str,
    approver: UserRef | None,
    subset: list[str] | None,
    now: datetime,
    policy: ApprovalPolicy = DEFAULT_POLICY,
    created_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> AgentTaskStatus:
    """Record a decision in the task (an ApprovalRecord always), then count: step states change only when
    the decisions so far settle every step."""
    proposal = status.proposal
    accepted = verdict.accepted and proposal is not None
    record = ApprovalRecord(
        grant=grant_name,
        decision=verdict.decision or "Approve",
        accepted=verdict.accepted,
        revision=proposal.revision if proposal and verdict.accepted else None,
        approver=approver,
        steps=subset,
        reason=f"{verdict.reason}: {verdict.message}"[:APPROVAL_REASON_CAP],
        at=now,
        created_at=created_at,
        expires_at=expires_at,
    )
    status = status.model_copy(update={"approvals": [*status.approvals, record]})
    if not accepted:
        return status
    outcome = tally(status, policy, now)
    if not outcome.complete:
        counted = record.model_copy(update={"reason": f"ApprovalCounted: {outcome.progress()}"})
        status = status.model_copy(update={"approvals": [*status.approvals[:-1], counted]})
    return settle(status, outcome, grant_name=grant_name, now=now)


def already_considered(status: AgentTaskStatus, grant_name: str) -> bool:
    return any(a.grant == grant_name for a in status.approvals)


# ----- authority -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantFacts:
    """One ApprovalGrant object with what the operator established about its author: the approver stamped
    at admission (None if unstamped), whether it records an ``approve`` annotation, and RBAC's answer for
    such an annotating user (a grant's own creator passed RBAC when creating it)."""

    grant: Mapping[str, Any]
    approver: UserRef | None
    via_annotation: bool
    may_create_grants: bool = True


def authorize(
    grants: Sequence[GrantFacts],
    *,
    task_name: str,
    task_uid: str,
    namespace: str,
    proposal: Proposal,
    requester: UserRef | None,
    policy: ApprovalPolicy,
    now: datetime,
) -> Tally | str:
    """Which steps of ``proposal`` the grants themselves approve now, or why none may run.

    This is the authority the executor consults before every call, ignoring the approvals recorded in
    status: the proposal's hash is recomputed from its calls, then every grant is judged from scratch, in
    creation order, by the same rules as when it arrived (``judge_grant``: task UID, exact hash, approver
    stamped at admission, four-eyes against ``requester`` as stamped at admission, destructive approver
    groups, distinct approvers, age and expiry checked again *now*). A forged or edited status therefore
    approves nothing, and a grant for another task, revision or hash counts for nothing. A grant whose
    calls already ran (``status.executedAt``) is spent: a status edited back to "Approved" cannot replay
    it.
    """
    if plan_hash(task_uid, proposal.revision, proposal.steps) != proposal.hash:
        return (
            f"proposal revision {proposal.revision} of task {task_name} does not match its hash "
            f"{proposal.hash}: its calls were changed after they were hashed; nothing runs"
        )
    record = AgentTaskStatus(phase="AwaitingApproval", proposal=proposal, requester=requester)
    unspent = [f for f in grants if not (f.grant.get("status") or {}).get("executedAt")]
    for facts in sorted(
        unspent, key=lambda f: (str(grant_created(f.grant) or ""), f.grant["metadata"]["name"])
    ):
        verdict = judge_grant(
            facts.grant,
            task_name=task_name,
            task_uid=task_uid,
            namespace=namespace,
            phase="AwaitingApproval",
            proposal=proposal,
            requester=requester,
            approver=facts.approver,
            via_annotation=facts.via_annotation,
            may_create_grants=facts.may_create_grants,
            policy=policy,
            approvals=record.approvals,
            now=now,
        )
        if not verdict.accepted:
            continue
        spec = facts.grant.get("spec") or {}
        record = apply_verdict(
            record,
            verdict,
            grant_name=facts.grant["metadata"]["name"],
            approver=facts.approver,
            subset=spec.get("steps"),
            now=now,
            policy=policy,
            created_at=grant_created(facts.grant),
            expires_at=parse_timestamp(spec.get("expiresAt")),
        )
    return tally(record, policy, now)
