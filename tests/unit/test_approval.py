"""Plan hashes and grant evaluation: a grant approves exactly the proposal it quotes, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bosun.api.models import AgentTaskStatus, ApprovalGrantStatus, ProposedStep, UserRef
from bosun.core.approval import already_considered, apply_verdict, plan_hash
from bosun.core.grants import grant_matches_proposal, grant_status
from bosun.core.identity import APPROVER, ON_BEHALF_OF, approver_of
from bosun.core.proposals import closing_verdict, finished_verdict, proposal_records
from bosun.planner import PlannedCall
from bosun.steps.plan import build_proposal
from bosun_tools.identity import Identity

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
UID = "0b7c6a0e-1111-4222-8333-444455556666"
BOB = UserRef(user="bob", groups=["sre"])
CALLS = [
    PlannedCall(
        "", "k8s_scale", {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}, "why"
    ),
    PlannedCall("", "k8s_rollout_restart", {"kind": "deployment", "name": "api", "namespace": "shop"}, "why"),
]


def awaiting(revision: int = 1) -> AgentTaskStatus:
    proposal, problem = build_proposal(CALLS, task_uid=UID, revision=revision, summary="two steps", now=T0)
    assert proposal is not None, problem
    return AgentTaskStatus(phase="AwaitingApproval", proposal=proposal, steps=proposal_records(proposal))


def grant(**spec: Any) -> dict[str, Any]:
    base = {"taskRef": {"name": "scale-web"}, "decision": "Approve"}
    return {"metadata": {"name": "g1"}, "spec": {**base, **spec}}


def evaluate(g: dict[str, Any], status: AgentTaskStatus, approver: UserRef | None = BOB) -> Any:
    return grant_matches_proposal(
        g,
        task_name="scale-web",
        task_uid=UID,
        phase=status.phase,
        proposal=status.proposal,
        approver=approver,
        now=T0 + timedelta(minutes=1),
    )


def test_hash_covers_exact_calls_task_and_revision_but_not_explanations() -> None:
    steps = [ProposedStep(id="s1", tool="k8s_scale", args={"replicas": 5, "name": "web"}, rationale="a")]
    same = [
        ProposedStep(
            id="s1",
            tool="k8s_scale",
            args={"name": "web", "replicas": 5},
            rationale="b",
            preview="p",
            diff="d",
        )
    ]
    assert plan_hash(UID, 1, steps) == plan_hash(UID, 1, same)
    assert plan_hash(UID, 1, steps).startswith("sha256:")
    assert len(plan_hash(UID, 1, steps)) == 71
    other_args = [steps[0].model_copy(update={"args": {"name": "web", "replicas": 6}})]
    assert plan_hash(UID, 1, other_args) != plan_hash(UID, 1, steps)
    assert plan_hash(UID, 2, steps) != plan_hash(UID, 1, steps)
    assert plan_hash("another-uid", 1, steps) != plan_hash(UID, 1, steps)
    two = [steps[0], steps[0].model_copy(update={"id": "s2", "tool": "k8s_rollout_restart"})]
    assert plan_hash(UID, 1, two) != plan_hash(UID, 1, list(reversed(two)))


def test_matching_grant_approves_every_step() -> None:
    status = awaiting()
    assert status.proposal is not None
    verdict = evaluate(grant(planHash=status.proposal.hash), status)
    assert (verdict.accepted, verdict.reason, verdict.approved, verdict.denied) == (
        True,
        "Approved",
        ("s1", "s2"),
        (),
    )
    after = apply_verdict(status, verdict, grant_name="g1", approver=BOB, subset=None, now=T0)
    assert [r.state for r in after.steps] == ["Approved", "Approved"]
    assert after.steps[0].approved_by == [BOB]
    assert after.approvals[0].accepted
    assert after.approvals[0].revision == 1
    assert already_considered(after, "g1")


def test_subset_runs_only_named_steps_and_records_the_rest_denied() -> None:
    status = awaiting()
    assert status.proposal is not None
    verdict = evaluate(grant(planHash=status.proposal.hash, steps=["s2"]), status)
    assert verdict.approved == ("s2",)
    assert verdict.denied == ("s1",)
    after = apply_verdict(status, verdict, grant_name="g1", approver=BOB, subset=["s2"], now=T0)
    assert [r.state for r in after.steps] == ["Denied", "Approved"]
    assert after.steps[0].error is not None
    assert "bob" in after.steps[0].error
    assert after.pending_steps == 1


def test_deny_denies_everything() -> None:
    status = awaiting()
    assert status.proposal is not None
    verdict = evaluate(grant(planHash=status.proposal.hash, decision="Deny", reason="not now"), status)
    assert verdict.accepted
    assert verdict.decision == "Deny"
    assert verdict.denied == ("s1", "s2")
    after = apply_verdict(status, verdict, grant_name="g1", approver=BOB, subset=None, now=T0)
    assert [r.state for r in after.steps] == ["Denied", "Denied"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"planHash": "sha256:" + "f" * 64}, "StaleHash"),
        ({"taskRef": {"name": "other-task"}}, "TaskMismatch"),
        ({"taskRef": {"name": "scale-web", "uid": "deadbeef-0000"}}, "TaskUIDMismatch"),
        ({"expiresAt": "2026-11-24T08:00:00Z"}, "Expired"),
        ({"steps": ["s9"]}, "UnknownSteps"),
        ({"planHash": "not-a-hash"}, "InvalidSpec"),
    ],
)
def test_grants_that_do_not_match_approve_nothing(change: dict[str, Any], reason: str) -> None:
    status = awaiting()
    assert status.proposal is not None
    g = grant(planHash=status.proposal.hash)
    g["spec"].update(change)
    verdict = evaluate(g, status)
    assert (verdict.accepted, verdict.reason) == (False, reason)
    after = apply_verdict(status, verdict, grant_name="g1", approver=BOB, subset=None, now=T0)
    assert [r.state for r in after.steps] == ["AwaitingApproval", "AwaitingApproval"]
    assert after.approvals[0].accepted is False
    assert reason in after.approvals[0].reason
    written = grant_status(verdict, approver=BOB, task_uid=UID, revision=1, generation=1, now=T0)
    assert (written.state, written.reason, written.revision) == ("Rejected", reason, None)
    assert held(written) == {"Accepted": ("False", reason), "Stalled": ("True", reason)}


def test_a_replan_voids_the_grant_for_the_earlier_revision() -> None:
    first = awaiting(revision=1)
    second = awaiting(revision=2)
    assert first.proposal is not None
    verdict = evaluate(grant(planHash=first.proposal.hash), second)
    assert (verdict.accepted, verdict.reason) == (False, "StaleHash")


def test_no_stamped_approver_approves_nothing() -> None:
    status = awaiting()
    assert status.proposal is not None
    verdict = evaluate(grant(planHash=status.proposal.hash), status, approver=None)
    assert (verdict.accepted, verdict.reason) == (False, "ApproverUnknown")


def test_grant_while_not_awaiting_approval_approves_nothing() -> None:
    status = awaiting().model_copy(update={"phase": "Executing"})
    assert status.proposal is not None
    verdict = evaluate(grant(planHash=status.proposal.hash), status)
    assert (verdict.accepted, verdict.reason) == (False, "NotAwaitingApproval")
    written = grant_status(verdict, approver=BOB, task_uid=UID, revision=1, generation=1, now=T0)
    assert written.state == "Superseded"
    assert held(written) == {
        "Accepted": ("False", "NotAwaitingApproval"),
        "Superseded": ("True", "NotAwaitingApproval"),
    }


def held(status: ApprovalGrantStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_an_accepted_deny_says_it_denied() -> None:
    status = awaiting()
    assert status.proposal is not None
    verdict = evaluate(
        grant(planHash=status.proposal.hash, decision="Deny", reason="wrong namespace"), status
    )
    written = grant_status(verdict, approver=BOB, task_uid=UID, revision=1, generation=1, now=T0)
    assert (written.state, written.reason) == ("Accepted", "Denied")
    assert held(written) == {"Accepted": ("True", "Denied")}
    assert written.message == (
        "Deny accepted: proposal revision 1 is denied, none of its steps run (wrong namespace)"
    )
    assert written.conditions[0].message == written.message


def test_a_finished_task_supersedes_the_approvals_that_never_took_effect() -> None:
    status = awaiting()
    assert status.proposal is not None
    counted = grant(planHash=status.proposal.hash)
    counted["status"] = {"state": "Accepted", "reason": "ApprovalCounted", "revision": 1}
    expired = status.model_copy(update={"phase": "Expired"})
    verdict = closing_verdict(counted, "scale-web", expired)
    assert verdict is not None
    assert (verdict.accepted, verdict.superseded, verdict.reason) == (False, True, "ProposalClosed")
    assert "ended Expired before the approval this grant counted for revision 1" in verdict.message
    never_judged = grant(planHash=status.proposal.hash)
    assert closing_verdict(never_judged, "scale-web", expired) == finished_verdict("scale-web", "Expired")
    ran = expired.model_copy(
        update={"steps": [r.model_copy(update={"started_at": T0}) for r in expired.steps]}
    )
    assert closing_verdict(counted, "scale-web", ran) is None
    spent = {**counted, "status": {**counted["status"], "executedAt": "2026-11-24T09:01:00Z"}}
    assert closing_verdict(spent, "scale-web", expired) is None
    deny = grant(planHash=status.proposal.hash, decision="Deny")
    deny["status"] = {"state": "Accepted", "reason": "Denied", "revision": 1}
    assert closing_verdict(deny, "scale-web", expired.model_copy(update={"phase": "Denied"})) is None


def test_on_behalf_of_is_believed_only_from_the_operators_own_grants() -> None:
    operator = Identity("system:serviceaccount:bosun:bosun")
    forged = {"annotations": {APPROVER: "mallory", ON_BEHALF_OF: "alice"}}
    assert approver_of(forged, operator) == UserRef(user="mallory", groups=[])
    recorded = {"annotations": {APPROVER: operator.user, ON_BEHALF_OF: "alice"}}
    assert approver_of(recorded, operator) == UserRef(user="alice", groups=[])
