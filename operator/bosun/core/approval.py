"""Binding approvals to exactly what was shown, and the approval policy, as pure functions.

The hash covers the task's uid, the proposal revision and the exact calls (step id, tool, arguments, in
order): what a person approves is what runs, a grant for one task or revision approves nothing elsewhere,
and a replan voids earlier grants. Rationale and previews are left out, they explain the calls but do not
change what runs.

The policy (four-eyes, N distinct approvers, approver groups for destructive steps, annotation approvals,
maximum grant age) is operator configuration, overridable per namespace by annotations on the Namespace
object: only cluster admins edit namespaces, so whoever may edit tasks and grants in a namespace cannot
weaken it. A task is judged by the strictest policy of its own namespace and every target namespace, so a
task placed in a lax namespace cannot reach into a strict one. A namespace annotation that does not parse
approves nothing (fail closed) and says which annotation to fix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from bosun.api.models import (
    GROUP,
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

# ----- policy ----------------------------------------------------------------------------------------------

FOUR_EYES = f"{GROUP}/four-eyes"
REQUIRED_APPROVALS = f"{GROUP}/required-approvals"
DESTRUCTIVE_APPROVER_GROUPS = f"{GROUP}/destructive-approver-groups"
ANNOTATION_APPROVALS = f"{GROUP}/annotation-approvals"
MAX_GRANT_AGE = f"{GROUP}/max-grant-age-seconds"
NAMESPACE_ANNOTATIONS = (
    FOUR_EYES,
    REQUIRED_APPROVALS,
    DESTRUCTIVE_APPROVER_GROUPS,
    ANNOTATION_APPROVALS,
    MAX_GRANT_AGE,
)
"""Annotations on a Namespace object that override the operator's defaults for tasks touching it."""

MAX_REQUIRED_APPROVALS = 8
"""As many approvers as a step record can name (``approvedBy``)."""
DEFAULT_MAX_GRANT_AGE = 24 * 3600.0

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _bool(raw: str, where: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ValueError(f"{where}={raw!r} is not a boolean; use true or false")


def _count(raw: str, where: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_REQUIRED_APPROVALS:
        raise ValueError(
            f"{where}={raw!r} is not a whole number from 1 to {MAX_REQUIRED_APPROVALS}; use e.g. 2"
        )
    return value


def _seconds(raw: str, where: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{where}={raw!r} is not a number of seconds (0 = no limit); use e.g. 3600")
    return value


def _groups(raw: str) -> tuple[str, ...]:
    return tuple(g.strip() for g in raw.split(",") if g.strip())


@dataclass(frozen=True)
class GroupRule:
    """Destructive steps need an approver in one of ``groups``; ``source`` says who demands it."""

    groups: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who may approve what. Defaults: four-eyes on, one approver, any approver for destructive steps,
    annotation approvals accepted, grants valid for a day after creation."""

    four_eyes: bool = True
    required_approvals: int = 1
    destructive_groups: tuple[GroupRule, ...] = ()
    annotation_approvals: bool = True
    max_grant_age_seconds: float = DEFAULT_MAX_GRANT_AGE
    """0: no limit beyond a grant's own ``expiresAt``."""
    problems: tuple[str, ...] = field(default=())
    """Namespace annotations that did not parse: while any is present, nothing is approved."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ApprovalPolicy:
        """Operator-wide defaults; a bad value stops the operator at start (it is the admin's typo)."""
        policy = cls()
        for variable, (attr, parse) in _ENV.items():
            if raw := env.get(variable, "").strip():
                policy = replace(policy, **{attr: parse(raw, variable)})
        if groups := _groups(env.get("BOSUN_DESTRUCTIVE_APPROVER_GROUPS", "")):
            rule = GroupRule(groups, "BOSUN_DESTRUCTIVE_APPROVER_GROUPS")
            policy = replace(policy, destructive_groups=(rule,))
        return policy

    def for_namespace(self, namespace: str, annotations: Mapping[str, str]) -> ApprovalPolicy:
        """This policy overridden by the Namespace object's ``bosun.dev/...`` annotations."""
        policy, problems = self, list(self.problems)
        for key, (attr, parse) in _ANNOTATIONS.items():
            if key in annotations:
                try:
                    policy = replace(
                        policy, **{attr: parse(annotations[key], f"namespace {namespace} {key}")}
                    )
                except ValueError as exc:
                    problems.append(str(exc))
        if DESTRUCTIVE_APPROVER_GROUPS in annotations:
            groups = _groups(annotations[DESTRUCTIVE_APPROVER_GROUPS])
            rules = (GroupRule(groups, f"namespace {namespace}"),) if groups else ()
            policy = replace(policy, destructive_groups=rules)
        return replace(policy, problems=tuple(problems))

    def describe(self) -> str:
        groups = "; ".join(f"{' or '.join(r.groups)} ({r.source})" for r in self.destructive_groups)
        age = f"{self.max_grant_age_seconds:g}s" if self.max_grant_age_seconds else "no limit"
        return (
            f"four-eyes {'on' if self.four_eyes else 'off'}, {self.required_approvals} distinct approver(s), "
            f"destructive steps approved by {groups or 'any approver'}, annotation approvals "
            f"{'accepted' if self.annotation_approvals else 'refused'}, grant age {age}"
        )


_Parser = tuple[str, Callable[[str, str], Any]]
_ENV: dict[str, _Parser] = {
    "BOSUN_FOUR_EYES": ("four_eyes", _bool),
    "BOSUN_REQUIRED_APPROVALS": ("required_approvals", _count),
    "BOSUN_ANNOTATION_APPROVALS": ("annotation_approvals", _bool),
    "BOSUN_MAX_GRANT_AGE_SECONDS": ("max_grant_age_seconds", _seconds),
}
_ANNOTATIONS: dict[str, _Parser] = {
    FOUR_EYES: ("four_eyes", _bool),
    REQUIRED_APPROVALS: ("required_approvals", _count),
    ANNOTATION_APPROVALS: ("annotation_approvals", _bool),
    MAX_GRANT_AGE: ("max_grant_age_seconds", _seconds),
}


def strictest(policies: Iterable[ApprovalPolicy]) -> ApprovalPolicy:
    """One policy meeting every given one: a task answers to each namespace it touches."""
    found = list(policies)
    if not found:
        return ApprovalPolicy()
    ages = [p.max_grant_age_seconds for p in found if p.max_grant_age_seconds]
    rules: list[GroupRule] = []
    problems: list[str] = []
    for policy in found:
        rules += [r for r in policy.destructive_groups if r not in rules]
        problems += [p for p in policy.problems if p not in problems]
    return ApprovalPolicy(
        four_eyes=any(p.four_eyes for p in found),
        required_approvals=max(p.required_approvals for p in found),
        destructive_groups=tuple(rules),
        annotation_approvals=all(p.annotation_approvals for p in found),
        max_grant_age_seconds=min(ages) if ages else 0.0,
        problems=tuple(problems),
    )


DEFAULT_POLICY = ApprovalPolicy()


# ----- binding ---------------------------------------------------------------------------------------------


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


def parse_timestamp(raw: object) -> datetime | None:
    """A Kubernetes RFC 3339 timestamp from an object as stored (None if absent or malformed)."""
    if not raw:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def _created(grant: Mapping[str, Any]) -> datetime | None:
    return parse_timestamp((grant.get("metadata") or {}).get("creationTimestamp"))


def _who(user: UserRef | None) -> str:
    return user.user if user else "unknown"


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
    created = _created(grant)
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
                    update={"state": "Approved", "grant": grant_name, "approved_by": users[:8]}
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
        reason=f"{verdict.reason}: {verdict.message}"[:1024],
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
    for facts in sorted(unspent, key=lambda f: (str(_created(f.grant) or ""), f.grant["metadata"]["name"])):
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
            created_at=_created(facts.grant),
            expires_at=parse_timestamp(spec.get("expiresAt")),
        )
    return tally(record, policy, now)
