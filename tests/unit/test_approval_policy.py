"""The approval policy as plain functions: configuration, four-eyes, N distinct approvers, approver groups
for destructive steps, annotation approvals, grant age, and group names that survive the round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bosun.api.identity_policies import admission_policies
from bosun.api.models import (
    MARKER_ROOM,
    MAX_POLICY_RULES,
    MAX_RULE_GROUPS,
    MAX_TARGET_NAMESPACES,
    POLICY_SUMMARY_CAP,
    AgentTaskStatus,
    DestructiveApprovers,
    UserRef,
)
from bosun.config import OperatorConfig
from bosun.core.approval import apply_verdict, tally
from bosun.core.approval_policy import (
    ANNOTATION_APPROVALS,
    DESTRUCTIVE_APPROVER_GROUPS,
    FOUR_EYES,
    MAX_GRANT_AGE,
    REQUIRED_APPROVALS,
    ApprovalPolicy,
    GroupRule,
    strictest,
)
from bosun.core.grants import GrantVerdict, judge_grant
from bosun.core.identity import (
    APPROVER,
    APPROVER_GROUPS,
    ON_BEHALF_OF,
    ON_BEHALF_OF_GROUPS,
    decode_groups,
    encode_groups,
    grant_origin,
    requester_of,
)
from bosun.core.proposals import proposal_records
from bosun.core.words import is_true, parse_bool
from bosun.planner import PlannedCall
from bosun.steps.plan import build_proposal
from bosun_tools.identity import Identity

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
UID = "0b7c6a0e-1111-4222-8333-444455556666"
ALICE = UserRef(user="alice", groups=["system:authenticated"])
BOB = UserRef(user="bob", groups=["sre", "system:authenticated"])
DAVE = UserRef(user="dave", groups=["sre"])
SCALE = PlannedCall(
    "", "k8s_scale", {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}, ""
)
DELETE = PlannedCall("", "k8s_delete", {"kind": "pod", "name": "web-1", "namespace": "shop"}, "")


def awaiting(*calls: PlannedCall) -> AgentTaskStatus:
    proposal, problem = build_proposal(list(calls or [SCALE]), task_uid=UID, revision=1, summary="", now=T0)
    assert proposal is not None, problem
    return AgentTaskStatus(
        phase="AwaitingApproval", proposal=proposal, steps=proposal_records(proposal), requester=ALICE
    )


def grant(status: AgentTaskStatus, name: str = "g1", created: datetime = T0, **spec: Any) -> dict[str, Any]:
    assert status.proposal is not None
    body = {"taskRef": {"name": "scale-web"}, "planHash": status.proposal.hash, "decision": "Approve", **spec}
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"metadata": {"name": name, "creationTimestamp": stamp}, "spec": body}


def judge(
    g: dict[str, Any],
    status: AgentTaskStatus,
    approver: UserRef,
    policy: ApprovalPolicy,
    *,
    via_annotation: bool = False,
    may_create_grants: bool = True,
    now: datetime = T0 + timedelta(minutes=1),
) -> GrantVerdict:
    return judge_grant(
        g,
        task_name="scale-web",
        task_uid=UID,
        namespace="shop",
        phase=status.phase,
        proposal=status.proposal,
        requester=status.requester,
        approver=approver,
        via_annotation=via_annotation,
        may_create_grants=may_create_grants,
        policy=policy,
        approvals=status.approvals,
        now=now,
    )


def decide(
    status: AgentTaskStatus,
    approver: UserRef,
    policy: ApprovalPolicy,
    name: str,
    now: datetime = T0 + timedelta(minutes=1),
    created: datetime = T0,
    **spec: Any,
) -> tuple[GrantVerdict, AgentTaskStatus]:
    g = grant(status, name, created, **spec)
    verdict = judge(g, status, approver, policy, now=now)
    after = apply_verdict(
        status,
        verdict,
        grant_name=name,
        approver=approver,
        subset=spec.get("steps"),
        now=now,
        policy=policy,
        created_at=created,
    )
    return verdict, after


# ----- configuration ---------------------------------------------------------------------------------------


def test_defaults_are_four_eyes_one_approver_annotations_on_and_a_day_of_grant_life() -> None:
    policy = OperatorConfig.from_env({}).approval
    assert policy == ApprovalPolicy(
        four_eyes=True,
        required_approvals=1,
        destructive_groups=(),
        annotation_approvals=True,
        max_grant_age_seconds=86400.0,
    )
    assert "four-eyes on" in policy.describe()


def test_environment_sets_the_operator_wide_policy() -> None:
    env = {
        "BOSUN_FOUR_EYES": "false",
        "BOSUN_REQUIRED_APPROVALS": "2",
        "BOSUN_DESTRUCTIVE_APPROVER_GROUPS": "sre, platform",
        "BOSUN_ANNOTATION_APPROVALS": "no",
        "BOSUN_MAX_GRANT_AGE_SECONDS": "0",
    }
    policy = ApprovalPolicy.from_env(env)
    assert not policy.four_eyes
    assert policy.required_approvals == 2
    assert policy.destructive_groups == (GroupRule(("sre", "platform"), "BOSUN_DESTRUCTIVE_APPROVER_GROUPS"),)
    assert not policy.annotation_approvals
    assert policy.max_grant_age_seconds == 0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BOSUN_FOUR_EYES", "maybe"),
        ("BOSUN_REQUIRED_APPROVALS", "0"),
        ("BOSUN_REQUIRED_APPROVALS", "two"),
        ("BOSUN_REQUIRED_APPROVALS", "9"),
        ("BOSUN_MAX_GRANT_AGE_SECONDS", "-5"),
    ],
)
def test_a_bad_environment_value_stops_the_operator_naming_it(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        OperatorConfig.from_env({variable: value})


@pytest.mark.parametrize("word", ["true", "Yes", " on ", "1"])
def test_every_switch_reads_yes_the_same_way(word: str) -> None:
    assert is_true(word)
    assert OperatorConfig.from_env({"BOSUN_ALLOW_CLUSTER_SCOPE": word}).allow_cluster_scope
    assert ApprovalPolicy(four_eyes=False).for_namespace("shop", {FOUR_EYES: word}).four_eyes


@pytest.mark.parametrize("word", ["approved", "enabled", "y", ""])
def test_a_word_that_is_not_yes_never_switches_anything_on(word: str) -> None:
    assert not is_true(word)
    with pytest.raises(ValueError, match="is not a boolean; set it to true or false"):
        parse_bool(word, "BOSUN_FOUR_EYES")


def test_namespace_annotations_override_the_defaults() -> None:
    base = ApprovalPolicy()
    policy = base.for_namespace(
        "prod",
        {
            FOUR_EYES: "false",
            REQUIRED_APPROVALS: "3",
            DESTRUCTIVE_APPROVER_GROUPS: "sre",
            ANNOTATION_APPROVALS: "false",
            MAX_GRANT_AGE: "600",
            "unrelated": "x",
        },
    )
    assert (policy.four_eyes, policy.required_approvals, policy.annotation_approvals) == (False, 3, False)
    assert policy.destructive_groups == (GroupRule(("sre",), "namespace prod"),)
    assert policy.max_grant_age_seconds == 600
    assert base.for_namespace("dev", {}) == base
    strict = ApprovalPolicy.from_env({"BOSUN_DESTRUCTIVE_APPROVER_GROUPS": "sre"})
    assert strict.for_namespace("dev", {DESTRUCTIVE_APPROVER_GROUPS: ""}).destructive_groups == ()


def test_an_unparsable_namespace_annotation_approves_nothing_and_names_the_fix() -> None:
    policy = ApprovalPolicy().for_namespace("shop", {REQUIRED_APPROVALS: "lots", FOUR_EYES: "false"})
    assert not policy.four_eyes
    [problem] = policy.problems
    assert "namespace shop bosun.dev/required-approvals='lots'" in problem
    status = awaiting()
    verdict = judge(grant(status), status, BOB, policy)
    assert (verdict.accepted, verdict.reason) == (False, "PolicyInvalid")
    assert "cluster admin" in verdict.message


def test_a_task_answers_to_the_strictest_namespace_it_touches() -> None:
    lax = ApprovalPolicy(four_eyes=False, annotation_approvals=True, max_grant_age_seconds=0)
    strict = ApprovalPolicy(
        four_eyes=True,
        required_approvals=2,
        destructive_groups=(GroupRule(("sre",), "namespace prod"),),
        annotation_approvals=False,
        max_grant_age_seconds=300,
    )
    combined = strictest(
        [lax, strict, ApprovalPolicy(destructive_groups=(GroupRule(("dba",), "namespace db"),))]
    )
    assert combined.four_eyes
    assert combined.required_approvals == 2
    assert not combined.annotation_approvals
    assert combined.max_grant_age_seconds == 300
    assert [r.groups for r in combined.destructive_groups] == [("sre",), ("dba",)]
    assert strictest([lax]).max_grant_age_seconds == 0


# ----- what status.approvalPolicy says ---------------------------------------------------------------------


def test_the_policy_in_status_says_all_of_it_on_one_line_too() -> None:
    default = ApprovalPolicy().as_status()
    assert default.wire() == {
        "fourEyes": True,
        "requiredApprovals": 1,
        "destructiveApproverGroups": [],
        "annotationApprovals": True,
        "maxGrantAgeSeconds": 86400.0,
        "summary": "four-eyes on, 1 approver, destructive steps need no particular group, annotation "
        "approvals accepted, grants valid 24h",
    }
    combined = strictest(
        [
            ApprovalPolicy().for_namespace(
                "shop", {REQUIRED_APPROVALS: "2", DESTRUCTIVE_APPROVER_GROUPS: "sre"}
            ),
            ApprovalPolicy().for_namespace(
                "db",
                {
                    DESTRUCTIVE_APPROVER_GROUPS: "dba, sre",
                    ANNOTATION_APPROVALS: "false",
                    MAX_GRANT_AGE: "5400",
                },
            ),
        ]
    )
    shown = combined.as_status()
    assert shown.wire() == {
        "fourEyes": True,
        "requiredApprovals": 2,
        "destructiveApproverGroups": [
            {"groups": ["sre"], "source": "namespace shop"},
            {"groups": ["dba", "sre"], "source": "namespace db"},
        ],
        "annotationApprovals": False,
        "maxGrantAgeSeconds": 5400.0,
        "summary": "four-eyes on, 2 distinct approvers, destructive steps need an approver in sre (namespace "
        "shop) and in dba or sre (namespace db), annotation approvals refused, grants valid 90m",
    }
    assert shown.summary == combined.describe()
    unlimited = ApprovalPolicy(four_eyes=False, max_grant_age_seconds=45).as_status().summary
    assert unlimited.startswith("four-eyes off, ")
    assert unlimited.endswith(", grants valid 45s")
    assert (
        ApprovalPolicy(max_grant_age_seconds=0)
        .describe()
        .endswith(", grants valid until their own expiresAt")
    )


def test_the_policy_in_status_is_what_the_judge_enforces() -> None:
    """Each requirement of destructiveApproverGroups must be met on its own: an approver in sre alone meets
    shop's, not db's, exactly as the status says."""
    combined = strictest(
        [
            ApprovalPolicy().for_namespace("shop", {DESTRUCTIVE_APPROVER_GROUPS: "sre"}),
            ApprovalPolicy().for_namespace("db", {DESTRUCTIVE_APPROVER_GROUPS: "dba"}),
        ]
    )
    assert [r.groups for r in combined.as_status().destructive_approver_groups] == [["sre"], ["dba"]]
    status = awaiting(DELETE)
    refused = judge(grant(status), status, DAVE, combined)
    assert (refused.reason, "namespace db requires" in refused.message) == ("NotInApproverGroup", True)
    both = UserRef(user="erin", groups=["sre", "dba"])
    assert judge(grant(status), status, both, combined).accepted


def test_a_policy_that_approves_nothing_says_so_in_status() -> None:
    policy = ApprovalPolicy().for_namespace("shop", {REQUIRED_APPROVALS: "lots"})
    shown = policy.as_status()
    assert shown.problem == (
        "namespace shop bosun.dev/required-approvals='lots' is not a whole number from 1 to 8; use e.g. 2"
    )
    assert shown.summary.endswith(
        "; nothing is approved until a cluster admin fixes: namespace shop "
        "bosun.dev/required-approvals='lots' is not a whole number from 1 to 8; use e.g. 2"
    )


def test_the_policy_in_status_stays_within_its_bounds_whatever_the_annotations_say() -> None:
    """Many namespaces with many (and long) groups: listed up to the schema's bounds, the rest counted, so
    the status write is never refused; the texts are capped."""
    many = ",".join(f"team-{n}" for n in range(12))
    long = "g" * 300
    policies = [
        ApprovalPolicy().for_namespace(f"ns-{n}", {DESTRUCTIVE_APPROVER_GROUPS: f"{long},{many},ns-{n}"})
        for n in range(MAX_TARGET_NAMESPACES + 1)
    ]
    shown = strictest(policies).as_status()
    assert len(shown.destructive_approver_groups) == MAX_POLICY_RULES
    first = shown.destructive_approver_groups[0]
    assert first.groups == [f"team-{n}" for n in range(MAX_RULE_GROUPS)]
    assert first.unlisted_groups == 1 + 12 - MAX_RULE_GROUPS + 1  # the long name, 4 teams, ns-0
    assert first.wire()["unlistedGroups"] == first.unlisted_groups
    assert len(shown.summary.encode()) <= POLICY_SUMMARY_CAP + MARKER_ROOM
    assert shown.summary.endswith("bytes]")
    # What the API server would refuse, pydantic refuses too: the status validates against the model.
    again = AgentTaskStatus.model_validate({"approvalPolicy": shown.wire()})
    assert again.approval_policy == shown
    with pytest.raises(ValueError, match="at most 8 items"):
        DestructiveApprovers(groups=[f"g{n}" for n in range(9)], source="namespace shop")


# ----- four-eyes -------------------------------------------------------------------------------------------


def test_four_eyes_refuses_the_requesters_own_approval_and_says_who_must_approve() -> None:
    status = awaiting()
    verdict, after = decide(status, ALICE, ApprovalPolicy(), "mine")
    assert (verdict.accepted, verdict.reason) == (False, "FourEyes")
    assert verdict.message.startswith(
        "alice requested this task; with four-eyes on, another approver (not alice) with create rights on "
        "approvalgrants in namespace shop must approve"
    )
    assert [r.state for r in after.steps] == ["AwaitingApproval"]
    assert not after.approvals[0].accepted
    verdict, after = decide(after, BOB, ApprovalPolicy(), "bobs")
    assert verdict.accepted
    assert [(r.state, r.approved_by) for r in after.steps] == [("Approved", [BOB])]


def test_without_four_eyes_the_requester_may_approve_and_may_always_deny() -> None:
    status = awaiting()
    assert judge(grant(status), status, ALICE, ApprovalPolicy(four_eyes=False)).accepted
    verdict = judge(grant(status, decision="Deny"), status, ALICE, ApprovalPolicy())
    assert (verdict.accepted, verdict.decision) == (True, "Deny")


# ----- N distinct approvers --------------------------------------------------------------------------------


def test_two_distinct_approvers_are_needed_and_the_same_one_counts_once() -> None:
    policy = ApprovalPolicy(required_approvals=2)
    status = awaiting()
    verdict, status = decide(status, BOB, policy, "bob-1")
    assert verdict.accepted
    outcome = tally(status, policy, T0 + timedelta(minutes=1))
    assert not outcome.complete
    assert outcome.progress() == "1 of 2 approvals (bob)"
    assert status.approvals[-1].reason == "ApprovalCounted: 1 of 2 approvals (bob)"
    assert [r.state for r in status.steps] == ["AwaitingApproval"]

    verdict, status = decide(status, BOB, policy, "bob-2")
    assert (verdict.accepted, verdict.reason) == (False, "DuplicateApprover")
    assert "bob already approved revision 1 with grant bob-1" in verdict.message
    assert "(not alice, bob)" in verdict.message
    assert not tally(status, policy, T0).complete

    verdict, status = decide(status, DAVE, policy, "dave")
    assert verdict.accepted
    outcome = tally(status, policy, T0 + timedelta(minutes=1))
    assert outcome.complete
    assert outcome.progress() == "2 of 2 approvals (bob, dave)"
    [step] = status.steps
    assert (step.state, step.grant, step.approved_by) == ("Approved", "dave", [BOB, DAVE])
    assert status.pending_steps == 1


def test_a_deny_from_any_allowed_approver_denies_even_after_approvals() -> None:
    policy = ApprovalPolicy(required_approvals=2)
    _, status = decide(awaiting(SCALE, DELETE), BOB, policy, "bob")
    verdict, status = decide(status, DAVE, policy, "dave-no", decision="Deny")
    assert verdict.accepted
    outcome = tally(status, policy, T0)
    assert outcome.complete
    assert outcome.approved == ()
    assert [r.state for r in status.steps] == ["Denied", "Denied"]
    assert status.steps[0].error == "denied by dave (dave-no)"


def test_a_subset_denies_the_rest_and_the_others_still_need_their_approvals() -> None:
    policy = ApprovalPolicy(required_approvals=2)
    _, status = decide(awaiting(SCALE, DELETE), BOB, policy, "bob", steps=["s1"])
    outcome = tally(status, policy, T0)
    assert (outcome.pending, dict(outcome.denied)) == (("s1",), {"s2": "bob (bob)"})
    _, status = decide(status, DAVE, policy, "dave")
    assert [r.state for r in status.steps] == ["Approved", "Denied"]


def test_a_partial_approval_ages_out_while_the_second_is_awaited() -> None:
    policy = ApprovalPolicy(required_approvals=2, max_grant_age_seconds=3600)
    _, status = decide(awaiting(), BOB, policy, "bob")
    later = T0 + timedelta(hours=2)
    assert tally(status, policy, later).progress() == "0 of 2 approvals"
    verdict, status = decide(status, DAVE, policy, "dave", now=later, created=later)
    assert verdict.accepted
    assert [r.state for r in status.steps] == ["AwaitingApproval"]
    assert tally(status, policy, later).progress() == "1 of 2 approvals (dave)"


# ----- destructive steps, annotations, age ---------------------------------------------------------------


def test_destructive_steps_need_an_approver_from_the_configured_groups() -> None:
    policy = ApprovalPolicy(destructive_groups=(GroupRule(("sre",), "namespace shop"),))
    carol = UserRef(user="carol", groups=["system:authenticated"])
    status = awaiting(SCALE, DELETE)
    verdict = judge(grant(status), status, carol, policy)
    assert (verdict.accepted, verdict.reason) == (False, "NotInApproverGroup")
    assert (
        "step s2 (k8s_delete) is destructive and namespace shop requires its approver to be in group sre"
        in (verdict.message)
    )
    assert "carol is in system:authenticated" in verdict.message
    assert judge(grant(status, steps=["s1"]), status, carol, policy).accepted
    assert judge(grant(status), status, BOB, policy).accepted
    assert judge(grant(awaiting()), awaiting(), carol, policy).accepted


def test_annotation_approvals_obey_the_same_rules_plus_the_switch_and_rbac() -> None:
    status = awaiting()
    off = ApprovalPolicy(annotation_approvals=False)
    verdict = judge(grant(status), status, BOB, off, via_annotation=True)
    assert (verdict.accepted, verdict.reason) == (False, "AnnotationApprovalsOff")
    assert "create an ApprovalGrant with planHash sha256:" in verdict.message
    assert judge(grant(status), status, BOB, off).accepted
    verdict = judge(
        grant(status), status, BOB, ApprovalPolicy(), via_annotation=True, may_create_grants=False
    )
    assert (verdict.accepted, verdict.reason) == (False, "NotAnApprover")
    verdict = judge(grant(status), status, ALICE, ApprovalPolicy(), via_annotation=True)
    assert (verdict.accepted, verdict.reason) == (False, "FourEyes")


def test_a_grant_older_than_the_maximum_age_approves_nothing() -> None:
    status = awaiting()
    old = grant(status, created=T0 - timedelta(hours=2))
    verdict = judge(old, status, BOB, ApprovalPolicy(max_grant_age_seconds=3600))
    assert (verdict.accepted, verdict.reason) == (False, "GrantTooOld")
    assert judge(old, status, BOB, ApprovalPolicy(max_grant_age_seconds=0)).accepted


# ----- identities ------------------------------------------------------------------------------------------

TRICKY = ["a,b", "c\\d", "e\\,f", "\\", ",", "trailing\\", "sre", "system:authenticated"]


def test_group_names_round_trip_whatever_they_contain() -> None:
    encoded = encode_groups(TRICKY)
    assert decode_groups(encoded) == TRICKY
    assert encoded.startswith("a\\,b,c\\\\d,")
    assert decode_groups("") == []
    meta = {"annotations": {"bosun.dev/requester": "dave", "bosun.dev/requester-groups": encoded}}
    assert requester_of(meta) == UserRef(user="dave", groups=TRICKY)


def test_the_admission_policy_escapes_before_joining() -> None:
    expressions = [
        m["jsonPatch"]["expression"]
        for doc in admission_policies()
        if doc["kind"] == "MutatingAdmissionPolicy"
        for m in doc["spec"]["mutations"]
    ]
    stamping = [e for e in expressions if "request.userInfo.groups" in e]
    assert len(stamping) == 3
    for expression in stamping:
        assert (
            "request.userInfo.groups.map(g, g.replace('\\\\', '\\\\\\\\').replace(',', '\\\\,'))"
            in expression
        )


def test_only_the_operators_own_records_are_annotation_approvals() -> None:
    operator = Identity("system:serviceaccount:bosun:bosun")
    recorded = {
        "annotations": {
            APPROVER: operator.user,
            APPROVER_GROUPS: "system:serviceaccounts",
            ON_BEHALF_OF: "bob",
            ON_BEHALF_OF_GROUPS: encode_groups(["sre", "a,b"]),
        }
    }
    assert grant_origin(recorded, operator) == (UserRef(user="bob", groups=["sre", "a,b"]), True)
    forged = {"annotations": {APPROVER: "mallory", ON_BEHALF_OF: "bob"}}
    assert grant_origin(forged, operator) == (UserRef(user="mallory", groups=[]), False)
    own = {"annotations": {APPROVER: operator.user}}
    assert grant_origin(own, operator) == (UserRef(user=operator.user, groups=[]), False)
