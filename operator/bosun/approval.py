"""Binding approvals to exactly what was shown: plan hashes and grant evaluation, as pure functions.

The hash covers the task's uid, the proposal revision and the exact calls (step id, tool, arguments, in
order): what a person approves is what runs, a grant for one task or revision approves nothing elsewhere,
and a replan voids earlier grants. Rationale and previews are left out, they explain the calls but do not
change what runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from bosun.models import (
    AgentTaskStatus,
    ApprovalGrantSpec,
    ApprovalGrantStatus,
    ApprovalRecord,
    Condition,
    Decision,
    GrantState,
    Proposal,
    ProposedStep,
    StepRecord,
    UserRef,
    canonical_json,
)


def plan_hash(task_uid: str, revision: int, steps: Sequence[ProposedStep]) -> str:
    calls = [{"id": s.id, "tool": s.tool, "args": s.args} for s in steps]
    payload = canonical_json({"task": task_uid, "revision": revision, "calls": calls})
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class GrantVerdict:
    """Whether a grant decides the current proposal, and which steps it approves or denies."""

    accepted: bool
    reason: str
    message: str
    decision: Decision | None = None
    approved: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()


def _reject(reason: str, message: str, decision: Decision | None = None) -> GrantVerdict:
    return GrantVerdict(False, reason, message, decision)


def grant_matches_proposal(
    grant: Mapping[str, Any],
    *,
    task_name: str,
    task_uid: str,
    phase: str | None,
    proposal: Proposal | None,
    approver: UserRef | None,
    now: datetime,
) -> GrantVerdict:
    """Evaluate one ApprovalGrant object against a task; rejections say why and what to do next."""
    name = grant.get("metadata", {}).get("name", "?")
    try:
        spec = ApprovalGrantSpec.model_validate(grant.get("spec") or {})
    except ValidationError as exc:
        return _reject("InvalidSpec", f"ApprovalGrant {name}: invalid spec: {exc.errors()[0]['msg']}")
    decision = spec.decision
    if spec.task_ref.name != task_name:
        return _reject("TaskMismatch", f"grant names task {spec.task_ref.name}, not {task_name}", decision)
    if spec.task_ref.uid and spec.task_ref.uid != task_uid:
        return _reject(
            "TaskUIDMismatch",
            f"grant is for uid {spec.task_ref.uid} but task {task_name} has uid {task_uid} (it was "
            "re-created); create a new grant for the current task",
            decision,
        )
    if approver is None:
        return _reject(
            "ApproverUnknown",
            "the grant carries no admission-stamped approver (is the bosun-identity "
            "MutatingAdmissionPolicy installed? kubectl apply -f crds/); nothing was approved",
            decision,
        )
    if spec.expires_at is not None and spec.expires_at <= now:
        return _reject(
            "Expired",
            f"grant expired at {spec.expires_at.isoformat()}; create a new grant to decide",
            decision,
        )
    if proposal is None or phase != "AwaitingApproval":
        return _reject(
            "NotAwaitingApproval",
            f"task {task_name} is {phase or 'Pending'}, not waiting for an approval; nothing was approved",
            decision,
        )
    if spec.plan_hash != proposal.hash:
        return _reject(
            "StaleHash",
            f"planHash {spec.plan_hash} does not match the current proposal (revision {proposal.revision}, "
            f"hash {proposal.hash}); review the current proposal with `kubectl describe agenttask "
            f"{task_name}` and grant its hash",
            decision,
        )
    ids = [s.id for s in proposal.steps]
    if decision == "Deny":
        return GrantVerdict(True, "Denied", spec.reason or "denied", decision, (), tuple(ids))
    wanted = spec.steps or ids
    unknown = [s for s in wanted if s not in ids]
    if unknown:
        return _reject(
            "UnknownSteps",
            f"steps {', '.join(unknown)} are not in proposal revision {proposal.revision} "
            f"(its steps: {', '.join(ids)}); nothing was approved",
            decision,
        )
    approved = tuple(i for i in ids if i in wanted)
    denied = tuple(i for i in ids if i not in wanted)
    message = f"approved steps {', '.join(approved)}" + (f"; denied {', '.join(denied)}" if denied else "")
    return GrantVerdict(True, "Approved", message, decision, approved, denied)


def apply_verdict(
    status: AgentTaskStatus,
    verdict: GrantVerdict,
    *,
    grant_name: str,
    approver: UserRef | None,
    subset: list[str] | None,
    now: datetime,
) -> AgentTaskStatus:
    """Record a decision in the task: an ApprovalRecord always, step states only when it was accepted."""
    proposal = status.proposal
    record = ApprovalRecord(
        grant=grant_name,
        decision=verdict.decision or "Approve",
        accepted=verdict.accepted,
        revision=proposal.revision if proposal and verdict.accepted else None,
        approver=approver,
        steps=subset,
        reason=f"{verdict.reason}: {verdict.message}"[:1024],
        at=now,
    )
    approvals = [*status.approvals, record]
    if not verdict.accepted or proposal is None:
        return status.model_copy(update={"approvals": approvals})
    steps: list[StepRecord] = []
    for step in status.steps:
        if step.revision == proposal.revision and step.state == "AwaitingApproval":
            if step.step_id in verdict.approved:
                step = step.model_copy(
                    update={
                        "state": "Approved",
                        "grant": grant_name,
                        "approved_by": [approver] if approver else None,
                    }
                )
            elif step.step_id in verdict.denied:
                step = step.model_copy(
                    update={
                        "state": "Denied",
                        "grant": grant_name,
                        "finished_at": now,
                        "error": f"denied by {approver.user if approver else 'unknown'} ({grant_name})",
                    }
                )
        steps.append(step)
    return status.model_copy(
        update={"approvals": approvals, "steps": steps, "pending_steps": len(verdict.approved)}
    )


def already_considered(status: AgentTaskStatus, grant_name: str) -> bool:
    return any(a.grant == grant_name for a in status.approvals)


def grant_status(
    verdict: GrantVerdict,
    *,
    approver: UserRef | None,
    task_uid: str | None,
    revision: int | None,
    generation: int | None,
    now: datetime,
) -> ApprovalGrantStatus:
    """The grant's own status: Accepted or Rejected, with the reason an approver can act on."""
    state: GrantState = "Accepted" if verdict.accepted else "Rejected"
    return ApprovalGrantStatus(
        state=state,
        reason=verdict.reason,
        message=verdict.message,
        approver=approver,
        task_uid=task_uid,
        revision=revision if verdict.accepted else None,
        decided_at=now,
        observed_generation=generation,
        conditions=[
            Condition(
                type="Accepted",
                status="True" if verdict.accepted else "False",
                reason=verdict.reason,
                message=verdict.message,
                last_transition_time=now,
                observed_generation=generation,
            )
        ],
    )
