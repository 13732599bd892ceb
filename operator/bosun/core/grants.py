"""Judging one ApprovalGrant against a task: the binding to exactly what was shown, then the policy.

A grant decides only the proposal whose hash it quotes (``plan_hash`` in ``bosun.core.approval``), of the
task whose name and uid it names, while that task awaits approval, and only when admission stamped its
approver. Then the approval policy (``bosun.core.approval_policy``) decides whether that approver may
approve these steps. Every rejection says why and what to do next: it is written to the grant's status and
posted as Events, where the approver reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from bosun.api.models import (
    ApprovalGrantSpec,
    ApprovalGrantStatus,
    ApprovalRecord,
    Condition,
    Decision,
    GrantState,
    Proposal,
    UserRef,
)
from bosun.core.approval_policy import ANNOTATION_APPROVALS, ApprovalPolicy


@dataclass(frozen=True)
class GrantVerdict:
    """Whether a grant decides the current proposal, and which steps it approves or denies."""

    accepted: bool
    reason: str
    message: str
    decision: Decision | None = None
    approved: tuple[str, ...] = ()
    denied: tuple[str, ...] = ()
    superseded: bool = False
    """Not accepted because the decision was already taken (or the task ended) without it: nothing for its
    author to fix, unlike a rejection."""


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
        return GrantVerdict(
            False,
            "NotAwaitingApproval",
            f"task {task_name} is {phase or 'Pending'}, not waiting for an approval; nothing was approved",
            decision,
            superseded=True,
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


def parse_timestamp(raw: object) -> datetime | None:
    """A Kubernetes RFC 3339 timestamp from an object as stored (None if absent or malformed)."""
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def grant_created(grant: Mapping[str, Any]) -> datetime | None:
    """When the grant object was created, as the API server stamped it: what the maximum grant age counts
    from, and the order in which grants are judged."""
    return parse_timestamp((grant.get("metadata") or {}).get("creationTimestamp"))


def approval_hint(namespace: str, excluded: Iterable[str]) -> str:
    names = sorted(set(excluded))
    other = f" (not {', '.join(names)})" if names else ""
    return (
        f"another approver{other} with create rights on approvalgrants in namespace {namespace} must approve"
    )


def judge_grant(
    grant: Mapping[str, Any],
    *,
    task_name: str,
    task_uid: str,
    namespace: str,
    phase: str | None,
    proposal: Proposal | None,
    requester: UserRef | None,
    approver: UserRef | None,
    via_annotation: bool,
    may_create_grants: bool,
    policy: ApprovalPolicy,
    approvals: Sequence[ApprovalRecord],
    now: datetime,
) -> GrantVerdict:
    """The binding checks of ``grant_matches_proposal``, then the approval policy. ``may_create_grants``
    is the RBAC answer for annotation approvals (a grant a user created passed RBAC at creation), so both
    paths need the same right."""
    verdict = grant_matches_proposal(
        grant,
        task_name=task_name,
        task_uid=task_uid,
        phase=phase,
        proposal=proposal,
        approver=approver,
        now=now,
    )
    if not verdict.accepted or proposal is None or approver is None:
        return verdict
    who, decision = approver.user, verdict.decision

    def refuse(reason: str, message: str) -> GrantVerdict:
        return _reject(reason, f"{message}; grant approves nothing", decision)

    if policy.problems:
        return refuse(
            "PolicyInvalid",
            f"{'; '.join(policy.problems)}; a cluster admin must fix the namespace annotation "
            "(kubectl annotate namespace ... --overwrite)",
        )
    if via_annotation and not policy.annotation_approvals:
        return refuse(
            "AnnotationApprovalsOff",
            f"{who} approved by annotation, but annotation approvals are off for this task "
            f"({ANNOTATION_APPROVALS}=false); create an ApprovalGrant with planHash {proposal.hash} instead",
        )
    if via_annotation and not may_create_grants:
        return refuse(
            "NotAnApprover",
            f"{who} set the approve annotation but may not create approvalgrants in namespace {namespace}, "
            f"and only those who may can approve; {approval_hint(namespace, [who])}",
        )
    created = grant_created(grant)
    age = policy.max_grant_age_seconds
    if age and created is not None and created + timedelta(seconds=age) <= now:
        return refuse(
            "GrantTooOld",
            f"the grant was created at {created.isoformat()}, more than the maximum grant age of {age:g}s "
            "ago; create a new grant",
        )
    if decision == "Deny":
        return verdict
    requester_name = requester.user if requester else None
    if policy.four_eyes and (requester_name is None or requester_name == who):
        return refuse(
            "FourEyes",
            f"{requester_name or 'an unknown user'} requested this task; with four-eyes on, "
            f"{approval_hint(namespace, [who])}",
        )
    for step in proposal.steps:
        if not (step.destructive and step.id in verdict.approved):
            continue
        for rule in policy.destructive_groups:
            if not set(rule.groups) & set(approver.groups):
                return refuse(
                    "NotInApproverGroup",
                    f"step {step.id} ({step.tool}) is destructive and {rule.source} requires its approver "
                    f"to be in group {' or '.join(rule.groups)}; {who} is in "
                    f"{', '.join(approver.groups) or 'no groups'}; a member must approve, or approve only "
                    "the other steps with spec.steps",
                )
    earlier = next(
        (
            a
            for a in approvals
            if a.accepted
            and a.decision == "Approve"
            and a.revision == proposal.revision
            and a.approver is not None
            and a.approver.user == who
        ),
        None,
    )
    if earlier is not None:
        excluded = [who, *([requester_name] if policy.four_eyes and requester_name else [])]
        return refuse(
            "DuplicateApprover",
            f"{who} already approved revision {proposal.revision} with grant {earlier.grant} and counts "
            f"once; {approval_hint(namespace, excluded)}",
        )
    return verdict


def grant_status(
    verdict: GrantVerdict,
    *,
    approver: UserRef | None,
    task_uid: str | None,
    revision: int | None,
    generation: int | None,
    now: datetime,
) -> ApprovalGrantStatus:
    """The grant's own status: Accepted, Rejected or Superseded, with the reason an approver can act on.

    The conditions are what tools read (docs/observability.md): ``Accepted`` for ``kubectl wait``, and
    ``Stalled`` only on a rejection, so kstatus reads a rejected grant as Failed (its author must act) and an
    accepted or superseded one as Current. An accepted Deny says in its message that it denied."""
    state: GrantState = "Accepted" if verdict.accepted else "Superseded" if verdict.superseded else "Rejected"
    message = verdict.message
    if verdict.accepted and verdict.decision == "Deny":
        message = f"Deny accepted: proposal revision {revision} is denied, none of its steps run ({message})"

    def condition(type_: str, status: Literal["True", "False"]) -> Condition:
        return Condition(
            type=type_,
            status=status,
            reason=verdict.reason,
            message=message,
            last_transition_time=now,
            observed_generation=generation,
        )

    conditions = [condition("Accepted", "True" if verdict.accepted else "False")]
    if state == "Rejected":
        conditions.append(condition("Stalled", "True"))
    if state == "Superseded":
        conditions.append(condition("Superseded", "True"))
    return ApprovalGrantStatus(
        state=state,
        reason=verdict.reason,
        message=message,
        approver=approver,
        task_uid=task_uid,
        revision=revision if verdict.accepted else None,
        decided_at=now,
        observed_generation=generation,
        conditions=conditions,
    )
