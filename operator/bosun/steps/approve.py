"""Approval: ApprovalGrants (and ``approve=`` annotations, which become grants) are judged against the
proposal awaiting approval, until enough approve it (Executing), one denies it, or nobody decided in time.

Each grant is judged once: its decision and the phase it leads to are one status write, and the grant's
own status and Event follow to tell its author what it decided. A grant for a task that no longer awaits
approval is answered too, so no grant is left without a status.
"""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import datetime, timedelta
from typing import Any

from bosun_tools.client.kube import KubeError

from bosun.api.models import API_VERSION, TERMINAL_PHASES, Proposal
from bosun.core import identity as ids
from bosun.core.approval import Tally, already_considered, apply_verdict, tally
from bosun.core.approval_policy import ApprovalPolicy
from bosun.core.grants import GrantVerdict, approval_hint, grant_status, judge_grant, parse_timestamp
from bosun.core.phases import approvals_pending, is_final
from bosun.core.proposals import (
    annotation_grant,
    annotation_refusal,
    closing_verdict,
    finished_verdict,
    skip_remaining,
)
from bosun.metrics import record_grant_verdict
from bosun.steps.task import Deps, Task


async def take_annotation_approval(task: Task) -> None:
    """``approve=true`` becomes an ApprovalGrant for exactly the hash admission stamped beside it.

    An annotation whose hash is not the current proposal's approves nothing and is reported. Either way
    the annotation and its stamps are removed, but only while they still say what was read, so an
    approval set meanwhile is never lost."""
    approval = ids.annotation_approval(task.body["metadata"])
    if approval is None:
        return
    deps = task.deps
    approver = approval.approver if deps.identity_trusted else None
    awaiting = task.status.proposal if task.status.phase == "AwaitingApproval" else None
    why = annotation_refusal(approval, approver, awaiting)
    if why is None and approver is not None and awaiting is not None:
        grant = annotation_grant(task.name, task.uid, task.namespace, approver, awaiting, approval.value)
        await deps.store.create_grant(task.namespace, grant)
    stamps = (ids.APPROVE_ANNOTATION, *ids.APPROVAL_STAMPS)
    expected = {key: value for key, value in task.annotations.items() if key in stamps}
    task.adopt(await deps.store.remove_task_annotations(task.namespace, task.name, expected))
    if why is not None:
        await task.emit("Warning", "ApprovalIgnored", f"approve annotation ignored: {why}")


async def await_approval(task: Task) -> bool:
    """Apply pending decisions; True when the task moved on (Executing, Denied, Expired)."""
    proposal = task.status.proposal
    assert proposal is not None
    policy = await task.policy()
    await _show_policy(task, policy, proposal)
    for grant in await task.grants():
        name = grant["metadata"]["name"]
        if (grant.get("status") or {}).get("state") or already_considered(task.status, name):
            continue
        if await _decide(task, grant, proposal, policy):
            return True
    deps = task.deps
    waited = deps.now() - proposal.created_at
    if waited > timedelta(seconds=deps.config.approval_timeout_seconds):
        task.status = skip_remaining(task.status, "nobody decided in time", deps.now())
        await task.move(
            "Expired", "Expired", f"no decision within {deps.config.approval_timeout_seconds:g}s", "Warning"
        )
        return True
    return False


async def _show_policy(task: Task, policy: ApprovalPolicy, proposal: Proposal) -> None:
    """``status.approvalPolicy`` says the policy the grants are judged by now: a cluster admin may have
    changed a Namespace's annotations since the proposal was written (an Event says so), and a task
    proposed by an operator that did not write it yet gets it. Written only when it differs."""
    shown = policy.as_status()
    before = task.status.approval_policy
    if shown == before:
        return
    task.status = task.status.model_copy(update={"approval_policy": shown})
    if before is not None:
        task.note(
            "Normal",
            "ApprovalPolicyChanged",
            f"the approval policy for proposal revision {proposal.revision} is now: {shown.summary}",
        )
    await task.write()


async def _decide(task: Task, grant: dict[str, Any], proposal: Proposal, policy: ApprovalPolicy) -> bool:
    """Judge one grant, record the decision, then answer the grant; True when the task moved on."""
    meta, spec = grant["metadata"], grant.get("spec") or {}
    facts = await task.grant_facts(grant)
    approver = facts.approver
    now = task.deps.now()
    verdict = judge_grant(
        grant,
        task_name=task.name,
        task_uid=task.uid,
        namespace=task.namespace,
        phase=task.status.phase,
        proposal=task.status.proposal,
        requester=task.requester_ref,
        approver=approver,
        via_annotation=facts.via_annotation,
        may_create_grants=facts.may_create_grants,
        policy=policy,
        approvals=task.status.approvals,
        now=now,
    )
    task.status = apply_verdict(
        task.status,
        verdict,
        grant_name=meta["name"],
        approver=approver,
        subset=spec.get("steps"),
        now=now,
        policy=policy,
        created_at=parse_timestamp(meta.get("creationTimestamp")),
        expires_at=parse_timestamp(spec.get("expiresAt")),
    )
    outcome = tally(task.status, policy, now)
    who = approver.user if approver else "unknown"
    moved = verdict.accepted and outcome.complete
    verdict = await _record_decision(task, meta["name"], verdict, outcome, policy, proposal, who, now)
    answer = grant_status(
        verdict,
        approver=approver,
        task_uid=task.uid,
        revision=proposal.revision,
        generation=meta.get("generation"),
        now=now,
    )
    record_grant_verdict(verdict, answer.state)
    with contextlib.suppress(KubeError):
        await task.deps.store.write_grant_status(task.namespace, meta["name"], answer)
    grant_event = ("Normal", "GrantAccepted") if verdict.accepted else ("Warning", "GrantRejected")
    await task.deps.store.post_event(
        {"apiVersion": API_VERSION, "kind": "ApprovalGrant", **grant},
        *grant_event,
        f"{who}: {verdict.reason}: {verdict.message} (task {task.name}, revision {proposal.revision})",
    )
    return moved


async def _record_decision(
    task: Task,
    grant_name: str,
    verdict: GrantVerdict,
    outcome: Tally,
    policy: ApprovalPolicy,
    proposal: Proposal,
    who: str,
    now: datetime,
) -> GrantVerdict:
    """Write the decision together with the phase it leads to, so a crash cannot leave a recorded approval
    without its effect; returns the verdict as the grant's status should tell it."""
    if not verdict.accepted:
        task.note(
            "Warning", "GrantRejected", f"grant {grant_name} by {who}: {verdict.reason}: {verdict.message}"
        )
        await task.write()
        return verdict
    if not outcome.complete:
        counted = [u.user for u in outcome.counted()]
        excluded = [who, *counted]
        if policy.four_eyes:
            excluded.append(task.requester.user)
        waiting = (
            f"{outcome.progress()} for revision {proposal.revision}; "
            f"{policy.required_approvals - len(counted)} more needed: "
            + approval_hint(task.namespace, excluded)
        )
        task.status = approvals_pending(
            task.status, outcome.progress(), waiting, generation=task.generation, now=now
        )
        task.note("Normal", "ApprovalCounted", f"{who} approved (grant {grant_name}): {waiting}")
        await task.write()
        return dataclasses.replace(verdict, reason="ApprovalCounted", message=waiting)
    if not outcome.approved:
        task.status = skip_remaining(task.status, f"denied by {who}", now)
        await task.move(
            "Denied", "Denied", f"denied by {who} with grant {grant_name}: {verdict.message}", "Warning"
        )
        return verdict
    approved_by = ", ".join(sorted({u.user for us in outcome.approvers.values() for u in us}))
    await task.move(
        "Executing",
        "Approved",
        f"{verdict.message} by {approved_by} ({outcome.progress()}; last grant {grant_name})",
    )
    return verdict


async def close_grants(task: Task) -> None:
    """Once a task is finished, the grants it never considered are answered, not left without a status, and
    approvals it counted that never took effect say they are superseded (``closing_verdict``)."""
    if not is_final(task.status):
        return
    for grant in await task.grants():
        verdict = closing_verdict(grant, task.name, task.status)
        if verdict is None:
            continue
        with contextlib.suppress(KubeError):
            await _reject_grant(task.deps, grant, verdict, task.uid)


async def task_of_grant(grant: dict[str, Any], deps: Deps) -> tuple[str, str, str] | None:
    """The task (namespace, name, uid) a new grant should wake at once; a grant for a task that does not
    exist or has finished is answered here, and None returned."""
    meta, spec = grant["metadata"], grant.get("spec") or {}
    if (grant.get("status") or {}).get("state"):
        return None
    task_name = (spec.get("taskRef") or {}).get("name")
    if not task_name:
        return None
    task = await deps.store.get_task(meta["namespace"], task_name)
    if task is None:
        verdict = GrantVerdict(
            False, "TaskNotFound", f"AgentTask {task_name} not found in {meta['namespace']}"
        )
        await _reject_grant(deps, grant, verdict, None)
        return None
    phase = (task.get("status") or {}).get("phase")
    if phase in TERMINAL_PHASES:
        await _reject_grant(deps, grant, finished_verdict(task_name, phase), task["metadata"]["uid"])
        return None
    return meta["namespace"], task_name, task["metadata"]["uid"]


async def _reject_grant(
    deps: Deps, grant: dict[str, Any], verdict: GrantVerdict, task_uid: str | None
) -> None:
    """Tell a grant's author that it decided nothing and why (the grant's status is all they watch)."""
    meta = grant["metadata"]
    approver = ids.approver_of(meta, deps.operator_identity) if deps.identity_trusted else None
    answer = grant_status(
        verdict,
        approver=approver,
        task_uid=task_uid,
        revision=None,
        generation=meta.get("generation"),
        now=deps.now(),
    )
    record_grant_verdict(verdict, answer.state)
    await deps.store.write_grant_status(meta["namespace"], meta["name"], answer)
