"""Pure decisions about a task's proposals and step records, taken from the status alone.

Everything here is a function of its arguments (no API server, no tool server, no model), so a restart
decides exactly what the process before it decided, and each rule can be tested without a cluster. The
phases in ``bosun.steps`` do the reading and writing around these decisions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from bosun.api.models import (
    API_VERSION,
    GROUP,
    STEP_ERROR_CAP,
    AgentTaskStatus,
    Proposal,
    ProposedStep,
    StepRecord,
    UserRef,
    canonical_json,
    cap,
)
from bosun.api.models import Usage as UsageModel
from bosun.core import identity as ids
from bosun.core.approval import already_considered, plan_hash
from bosun.core.grants import GrantVerdict
from bosun.core.words import is_true

DATA_CAP = 1024
"""Structured results of a call larger than this (serialized) are not kept for verification."""


# ----- usage and model context ----------------------------------------------------------------------------


class UsageFigures(Protocol):
    """What one planning or verification pass spent on the model (``bosun.planner.Usage``)."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


def add_usage(status: AgentTaskStatus, usage: UsageFigures, model: str | None = None) -> AgentTaskStatus:
    """``usage`` added to the task's; ``model`` (the LiteLLM model name the calls were made with, None
    when no model is configured) is recorded with it, so readers can tell cost and tokens per model."""
    total = UsageModel(
        calls=status.usage.calls + usage.calls,
        prompt_tokens=status.usage.prompt_tokens + usage.prompt_tokens,
        completion_tokens=status.usage.completion_tokens + usage.completion_tokens,
        costUSD=round(status.usage.cost_usd + usage.cost_usd, 6),
        model=model or status.usage.model,
    )
    return status.model_copy(update={"usage": total})


def history_lines(status: AgentTaskStatus) -> list[str]:
    """Compact model context rebuilt from status (no LangGraph checkpoint is kept anywhere)."""
    lines = []
    for record in status.steps:
        result = record.output or record.error or ""
        lines.append(
            f"[{record.id}] {record.tool} {canonical_json(record.args)[:300]} -> {record.state}: "
            f"{result[:400]}"
        )
    if status.verification is not None:
        outcome = "passed" if status.verification.passed else "FAILED"
        lines.append(
            f"verification of revision {status.verification.revision} {outcome}: "
            f"{status.verification.judgement}"
        )
    return lines


# ----- step records ----------------------------------------------------------------------------------------


def step_record_id(revision: int, step_id: str) -> str:
    """The record of step ``step_id`` of proposal ``revision`` in ``status.steps``."""
    return f"r{revision}-{step_id}"


def read_record_id(iteration: int, n: int) -> str:
    """The record of the ``n``-th read-only call of planning pass ``iteration`` in ``status.steps``."""
    return f"p{iteration}-i{n}"


def record_of(status: AgentTaskStatus, revision: int, step_id: str) -> StepRecord | None:
    wanted = step_record_id(revision, step_id)
    return next((r for r in status.steps if r.id == wanted), None)


def proposal_records(proposal: Proposal) -> list[StepRecord]:
    """One record per proposed step, awaiting approval: the write-ahead log the executor works through."""
    return [
        StepRecord(
            id=step_record_id(proposal.revision, step.id),
            revision=proposal.revision,
            step_id=step.id,
            tool=step.tool,
            args=step.args,
            mutating=True,
            idempotent=step.idempotent,
            state="AwaitingApproval",
        )
        for step in proposal.steps
    ]


def with_record(status: AgentTaskStatus, record: StepRecord) -> AgentTaskStatus:
    """``status`` with ``record`` replacing the record of the same id, and ``pendingSteps`` recounted."""
    steps = [record if r.id == record.id else r for r in status.steps]
    pending = sum(
        1
        for r in steps
        if status.proposal and r.revision == status.proposal.revision and r.state in ("Approved", "Executing")
    )
    return status.model_copy(update={"steps": steps, "pending_steps": pending})


def skip_remaining(status: AgentTaskStatus, why: str, now: datetime) -> AgentTaskStatus:
    """Mark approved steps that will not run as Skipped (the task is stopping)."""
    proposal = status.proposal
    if proposal is None:
        return status
    for record in status.steps:
        if record.revision == proposal.revision and record.state in ("Approved", "AwaitingApproval"):
            status = with_record(
                status,
                record.model_copy(
                    update={"state": "Skipped", "finished_at": now, "error": cap(why, STEP_ERROR_CAP)}
                ),
            )
    return status


def close_interrupted(status: AgentTaskStatus, step: ProposedStep, why: str, at: datetime) -> AgentTaskStatus:
    """A step that will never be re-run must not stay ``Executing`` in a finished task."""
    assert status.proposal is not None
    record = record_of(status, status.proposal.revision, step.id)
    if record is None or record.state != "Executing":
        return status
    closed = record.model_copy(
        update={"state": "Failed", "finished_at": at, "error": cap(why, STEP_ERROR_CAP)}
    )
    return with_record(status, closed)


def small_data(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """Structured facts kept for verification (e.g. a build number), only when they are small."""
    if not data or len(canonical_json(data)) > DATA_CAP:
        return None
    return data


# ----- what runs next --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    kind: Literal["run", "done", "stop"]
    step: ProposedStep | None = None
    reason: str = ""
    message: str = ""


def next_action(status: AgentTaskStatus, task_uid: str, is_idempotent: Callable[[str], bool]) -> Action:
    """What the executor must do next, decided from status alone (so a restart decides the same)."""
    proposal = status.proposal
    if proposal is None:
        return Action("stop", reason="NoProposal", message="there is no proposal to execute")
    if plan_hash(task_uid, proposal.revision, proposal.steps) != proposal.hash:
        return Action(
            "stop",
            reason="ProposalTampered",
            message=f"stored proposal revision {proposal.revision} no longer matches its hash; nothing ran",
        )
    accepted = {
        a.grant
        for a in status.approvals
        if a.accepted and a.revision == proposal.revision and a.decision == "Approve"
    }
    for step in proposal.steps:
        record = record_of(status, proposal.revision, step.id)
        if record is None:
            return Action(
                "stop",
                step=step,
                reason="HistoryLost",
                message=f"step {step.id} has no record in status.steps; nothing more runs",
            )
        if record.state in ("Succeeded", "Denied", "Skipped"):
            continue
        if record.state == "Failed":
            return Action(
                "stop",
                step=step,
                reason="ToolFailed",
                message=f"step {step.id} ({step.tool}) failed: {record.error}",
            )
        if record.tool != step.tool or record.args != step.args:
            return Action(
                "stop",
                step=step,
                reason="ProposalTampered",
                message=f"the record of step {step.id} differs from the approved call; nothing more runs",
            )
        if record.grant not in accepted:
            return Action(
                "stop",
                step=step,
                reason="NotApproved",
                message=f"step {step.id} has no accepted grant for revision {proposal.revision}; "
                "it does not run",
            )
        if record.state == "Approved":
            return Action("run", step=step)
        if record.state == "Executing":
            if is_idempotent(step.tool):
                return Action(
                    "run", step=step, reason="Resumed", message=f"re-running idempotent {step.tool}"
                )
            return Action(
                "stop",
                step=step,
                reason="InterruptedNonIdempotent",
                message=f"the operator stopped while step {step.id} ({step.tool} {step.args}) was running; "
                f"{step.tool} is not idempotent, so it is not run again. Check by hand whether it took "
                "effect, then create a new task if needed",
            )
        return Action(
            "stop",
            step=step,
            reason="NotApproved",
            message=f"step {step.id} is {record.state}; it does not run",
        )
    return Action("done")


# ----- approvals by annotation -----------------------------------------------------------------------------


def annotation_refusal(
    approval: ids.AnnotationApproval, approver: UserRef | None, awaiting: Proposal | None
) -> str | None:
    """Why an ``approve=`` annotation approves nothing, or None when it approves ``awaiting``.

    The hash admission stamped beside the annotation is the proposal its author could see when they set it
    ('' when none was awaiting approval, or when the annotation came in the task's own YAML, which admission
    strips): an approval approves only what its author saw."""
    if approver is None:
        return "the annotating user was not stamped at admission (install crds/identity-policy.yaml)"
    if not is_true(approval.value):
        return f"approve={approval.value} is not true"
    if not approval.plan_hash:
        return (
            f"{approver.user} set it while no proposal was awaiting approval (or it came with the task's "
            "YAML), so it approves nothing; review the proposal once shown and set approve=true again"
        )
    if awaiting is None or approval.plan_hash != awaiting.hash:
        now_shown = (
            f"the proposal awaiting approval is revision {awaiting.revision} ({awaiting.hash})"
            if awaiting
            else "no proposal is awaiting approval"
        )
        return (
            f"{approver.user} approved {approval.plan_hash}, but {now_shown}; an approval approves only the "
            "proposal its author saw: review the current one and approve it"
        )
    return None


def annotation_grant_name(task_name: str, task_uid: str, hash_: str, approver: UserRef) -> str:
    """One name per task, hash and approver: a crash between creating the grant and removing the
    annotation finds the same grant again, and two people approving by annotation get two grants. The
    task's name is cut so that the result is a valid name whatever the task is called."""
    prefix = task_name[:200].rstrip(".-")
    digest = hashlib.sha256(f"{task_uid}|{hash_}|{approver.user}".encode()).hexdigest()[:16]
    return f"{prefix}-approve-{digest}"


def annotation_grant(
    task_name: str, task_uid: str, namespace: str, approver: UserRef, proposal: Proposal, value: str
) -> dict[str, Any]:
    """The ApprovalGrant an ``approve=`` annotation becomes, owned by the task and naming its approver."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ApprovalGrant",
        "metadata": {
            "name": annotation_grant_name(task_name, task_uid, proposal.hash, approver),
            "namespace": namespace,
            "labels": {f"{GROUP}/via": "annotation"},
            "annotations": {
                ids.ON_BEHALF_OF: approver.user,
                ids.ON_BEHALF_OF_GROUPS: ids.encode_groups(approver.groups),
            },
            "ownerReferences": [
                {"apiVersion": API_VERSION, "kind": "AgentTask", "name": task_name, "uid": task_uid}
            ],
        },
        "spec": {
            "taskRef": {"name": task_name, "uid": task_uid},
            "planHash": proposal.hash,
            "decision": "Approve",
            "reason": f"kubectl annotate agenttask {task_name} approve={value} "
            f"(revision {proposal.revision})",
        },
    }


def finished_verdict(task_name: str, phase: str | None) -> GrantVerdict:
    """The answer to a grant whose task no longer awaits approval: superseded, since the task ended first."""
    return GrantVerdict(
        False,
        "TaskFinished",
        f"AgentTask {task_name} is {phase}: it awaits no approval any more, so this grant approved nothing; "
        "create a new task for new work",
        superseded=True,
    )


def closing_verdict(grant: Mapping[str, Any], task_name: str, status: AgentTaskStatus) -> GrantVerdict | None:
    """What a finished task tells one of its grants, or None when the grant's status already holds: a grant
    never judged is superseded by the end of the task, and so is an accepted approval whose revision never
    started to run (the task was denied, expired or cancelled while more approvals were awaited), so no
    grant keeps saying it approves a proposal that will never run."""
    name = grant["metadata"]["name"]
    decided = grant.get("status") or {}
    if not decided.get("state"):
        return None if already_considered(status, name) else finished_verdict(task_name, status.phase)
    if decided["state"] != "Accepted" or decided.get("executedAt"):
        return None
    if (grant.get("spec") or {}).get("decision") != "Approve":
        return None
    revision = decided.get("revision")
    if any(r.revision == revision and r.started_at is not None for r in status.steps):
        return None
    return GrantVerdict(
        False,
        "ProposalClosed",
        f"AgentTask {task_name} ended {status.phase} before the approval this grant counted for revision "
        f"{revision} took effect; nothing of that revision ran",
        "Approve",
        superseded=True,
    )


def grants_for(grants: list[dict[str, Any]], task_name: str) -> list[dict[str, Any]]:
    """The grants among ``grants`` that name the task ``task_name``."""
    return [g for g in grants if ((g.get("spec") or {}).get("taskRef") or {}).get("name") == task_name]


def replayable(source: Mapping[str, Any]) -> list[StepRecord]:
    """The mutations another task actually ran, in order, exactly as recorded (compacted arguments are
    not the call that ran, so they are left out)."""
    status = AgentTaskStatus.model_validate(source.get("status") or {})
    return [
        record
        for record in status.steps
        if record.mutating and record.state == "Succeeded" and "compacted" not in record.args
    ]
