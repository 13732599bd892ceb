"""Who asked and who approved, under the approval policy: real users alice, bob (group sre) and carol on the
real API server, the operator as its own process, policy set per test namespace by annotating the Namespace
as a cluster admin does."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.conftest import (
    USER_ROLE,
    Operator,
    apply,
    decided,
    deployment,
    events,
    get,
    grant_doc,
    status_of,
    task_doc,
    wait_phase,
)
from tests.fakes.llm import FakeLLM, call, text, tool_calls
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


@pytest.fixture
def alice_requests(namespace: str, users: None, bind_role: Any) -> None:
    """alice may change workloads too, so she can be the requester; bob (sre) approves."""
    bind_role(namespace, "alice", "edit")


def set_policy(kubectl: Any, namespace: str, **policy: str) -> None:
    """Annotate the Namespace (admin only), e.g. ``required_approvals="2"``."""
    pairs = [f"bosun.dev/{key.replace('_', '-')}={value}" for key, value in policy.items()]
    kubectl("annotate", "namespace", namespace, "--overwrite", *pairs)


def annotation_grants(kubectl: Any, namespace: str) -> list[dict[str, Any]]:
    listing = kubectl(
        "-n", namespace, "get", "approvalgrants", "-l", "bosun.dev/via=annotation", "-o", "json"
    )
    items: list[dict[str, Any]] = json.loads(listing.stdout)["items"]
    return items


def decided_annotation_grants(kubectl: Any, namespace: str, count: int) -> list[dict[str, Any]]:
    """The operator's records of annotation approvals, once ``count`` of them are decided (oldest first)."""
    found: list[dict[str, Any]] = []

    def check() -> bool:
        found[:] = [g for g in annotation_grants(kubectl, namespace) if (g.get("status") or {}).get("state")]
        return len(found) >= count

    eventually(f"{count} annotation approval(s) to be decided", check)
    return sorted(found, key=lambda g: g["status"]["decidedAt"])


def reasons(kubectl: Any, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(kubectl, namespace, name)]


def messages(kubectl: Any, namespace: str, name: str, reason: str) -> list[str]:
    return [e["message"] for e in events(kubectl, namespace, name) if e["reason"] == reason]


def replicas(kubectl: Any, namespace: str) -> int:
    spec_replicas: int = get(kubectl, namespace, "deployment", "web")["spec"]["replicas"]
    return spec_replicas


def test_four_eyes_alice_cannot_approve_her_own_task_whatever_her_yaml_claims(
    kubectl: Any, namespace: str, alice_requests: None, operator: Operator
) -> None:
    deployment(kubectl, namespace)
    doc = task_doc("scale-web", f"scale deployment web in {namespace} to 5")
    doc["metadata"]["annotations"] = {"bosun.dev/requester": "bob", "bosun.dev/requester-groups": "sre"}
    apply(kubectl, namespace, doc, user="alice")
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    assert status["requester"] == {"user": "alice", "groups": ["system:authenticated"]}
    plan_hash = status["proposal"]["hash"]

    apply(kubectl, namespace, grant_doc("mine", "scale-web", plan_hash), user="alice")
    refused = decided(kubectl, namespace, "mine")
    assert (refused["state"], refused["reason"]) == ("Rejected", "FourEyes")
    assert refused["approver"]["user"] == "alice"
    assert refused["message"].startswith(
        "alice requested this task; with four-eyes on, another approver (not alice) with create rights on "
        f"approvalgrants in namespace {namespace} must approve"
    )
    assert any("FourEyes" in m for m in messages(kubectl, namespace, "mine", "GrantRejected"))
    assert any(
        "grant mine by alice: FourEyes" in m
        for m in messages(kubectl, namespace, "scale-web", "GrantRejected")
    )

    kubectl("-n", namespace, "annotate", "agenttask", "scale-web", "approve=true", user="alice")
    [by_annotation] = decided_annotation_grants(kubectl, namespace, 1)
    assert by_annotation["status"]["reason"] == "FourEyes"
    assert by_annotation["status"]["approver"]["user"] == "alice"
    status = status_of(kubectl, namespace, "scale-web")
    assert status["phase"] == "AwaitingApproval"
    assert [a["accepted"] for a in status["approvals"]] == [False, False]
    assert "approve" not in get(kubectl, namespace, "agenttask", "scale-web")["metadata"]["annotations"]
    assert replicas(kubectl, namespace) == 3

    apply(kubectl, namespace, grant_doc("bobs", "scale-web", plan_hash), user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "Succeeded", timeout=120)
    [step] = [r for r in status["steps"] if r["mutating"]]
    assert [u["user"] for u in step["approvedBy"]] == ["bob"]
    assert replicas(kubectl, namespace) == 5


def test_two_distinct_approvers_are_needed_and_the_same_one_counts_once(
    kubectl: Any, namespace: str, users: None, bind_role: Any, operator: Operator
) -> None:
    set_policy(kubectl, namespace, required_approvals="2")
    bind_role(namespace, "carol", USER_ROLE)
    deployment(kubectl, namespace)
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 5"), user="bob")
    awaiting = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    plan_hash = awaiting["proposal"]["hash"]
    policy = awaiting["approvalPolicy"]  # what it takes, told to those who may not read the Namespace
    assert (policy["requiredApprovals"], policy["fourEyes"]) == (2, True)
    assert policy["summary"].startswith("four-eyes on, 2 distinct approvers, ")

    apply(kubectl, namespace, grant_doc("alice-1", "scale-web", plan_hash), user="alice")
    first = decided(kubectl, namespace, "alice-1")
    assert (first["state"], first["reason"]) == ("Accepted", "ApprovalCounted")
    assert first["message"].startswith("1 of 2 approvals (alice) for revision 1; 1 more needed")
    assert "(not alice, bob)" in first["message"]
    status = status_of(kubectl, namespace, "scale-web")
    assert status["phase"] == "AwaitingApproval"
    approved = next(c for c in status["conditions"] if c["type"] == "Approved")
    assert (approved["status"], approved["reason"]) == ("False", "ApprovalsPending")
    assert "1 of 2 approvals (alice)" in approved["message"]
    assert any("1 of 2 approvals" in m for m in messages(kubectl, namespace, "scale-web", "ApprovalCounted"))

    kubectl("-n", namespace, "annotate", "agenttask", "scale-web", "approve=true", user="alice")
    [again] = decided_annotation_grants(kubectl, namespace, 1)
    assert again["status"]["reason"] == "DuplicateApprover"
    apply(kubectl, namespace, grant_doc("own", "scale-web", plan_hash), user="bob")
    assert decided(kubectl, namespace, "own")["reason"] == "FourEyes"
    assert status_of(kubectl, namespace, "scale-web")["phase"] == "AwaitingApproval"
    assert replicas(kubectl, namespace) == 3

    apply(kubectl, namespace, grant_doc("carol", "scale-web", plan_hash), user="carol")
    status = wait_phase(kubectl, namespace, "scale-web", "Succeeded", timeout=120)
    assert decided(kubectl, namespace, "carol")["reason"] == "Approved"
    [step] = [r for r in status["steps"] if r["mutating"]]
    assert [u["user"] for u in step["approvedBy"]] == ["alice", "carol"]
    assert replicas(kubectl, namespace) == 5


def test_a_task_in_a_lax_namespace_answers_to_its_strict_target_namespace(
    kubectl: Any, namespace: str, users: None, bind_role: Any, operator: Operator
) -> None:
    """Placing the task elsewhere does not escape the policy of the namespace it changes."""
    strict = f"{namespace[:50]}-prod"
    kubectl("create", "namespace", strict)
    try:
        set_policy(kubectl, strict, required_approvals="2")
        bind_role(strict, "bob", "edit")
        deployment(kubectl, strict)
        doc = task_doc("scale-prod", f"scale deployment web in {strict} to 4", targetNamespaces=[strict])
        apply(kubectl, namespace, doc, user="bob")
        awaiting = wait_phase(kubectl, namespace, "scale-prod", "AwaitingApproval")
        plan_hash = awaiting["proposal"]["hash"]
        assert (awaiting["approvalPolicy"]["requiredApprovals"], awaiting["approvalPolicy"]["fourEyes"]) == (
            2,
            True,
        )
        apply(kubectl, namespace, grant_doc("alice", "scale-prod", plan_hash), user="alice")
        counted = decided(kubectl, namespace, "alice")
        assert (counted["reason"], counted["message"][:16]) == ("ApprovalCounted", "1 of 2 approvals")
        assert status_of(kubectl, namespace, "scale-prod")["phase"] == "AwaitingApproval"
        assert get(kubectl, strict, "deployment", "web")["spec"]["replicas"] == 3
    finally:
        kubectl("delete", "namespace", strict, "--wait=false", "--ignore-not-found", check=False)


def test_a_destructive_step_needs_an_approver_from_the_configured_group(
    kubectl: Any,
    namespace: str,
    users: None,
    bind_role: Any,
    operator_factory: Callable[..., Operator],
) -> None:
    set_policy(kubectl, namespace, destructive_approver_groups="sre")
    bind_role(namespace, "carol", USER_ROLE)
    bind_role(namespace, "carol", "edit")
    kubectl("-n", namespace, "create", "configmap", "old-settings", "--from-literal=a=b")
    remove = call("k8s_delete", {"kind": "configmap", "name": "old-settings", "namespace": namespace})
    with FakeLLM() as llm:
        llm.script(
            tool_calls(remove),
            text("Proposed: delete configmap old-settings."),
            text('{"satisfied": true, "reason": "old-settings is gone"}'),
        )
        operator_factory(BOSUN_MODEL="openai/gpt-4.1-mini", BOSUN_API_BASE=llm.url, BOSUN_API_KEY="test")
        apply(kubectl, namespace, task_doc("cleanup", "delete the old-settings configmap"), user="carol")
        status = wait_phase(kubectl, namespace, "cleanup", "AwaitingApproval")
        [step] = status["proposal"]["steps"]
        assert (step["tool"], step["destructive"]) == ("k8s_delete", True)

        apply(kubectl, namespace, grant_doc("by-alice", "cleanup", status["proposal"]["hash"]), user="alice")
        refused = decided(kubectl, namespace, "by-alice")
        assert (refused["state"], refused["reason"]) == ("Rejected", "NotInApproverGroup")
        assert (
            f"step s1 (k8s_delete) is destructive and namespace {namespace} requires its approver to be in "
            "group sre; alice is in system:authenticated"
        ) in refused["message"]
        kubectl("-n", namespace, "get", "configmap", "old-settings")

        apply(kubectl, namespace, grant_doc("by-bob", "cleanup", status["proposal"]["hash"]), user="bob")
        wait_phase(kubectl, namespace, "cleanup", "Succeeded", timeout=120)
    gone = kubectl("-n", namespace, "get", "configmap", "old-settings", check=False)
    assert "NotFound" in gone.stderr


def test_annotation_approvals_can_be_switched_off_for_a_namespace(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    set_policy(kubectl, namespace, annotation_approvals="false")
    deployment(kubectl, namespace)
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 5"), user="bob")
    plan_hash = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")["proposal"]["hash"]

    kubectl("-n", namespace, "annotate", "agenttask", "scale-web", "approve=true", user="alice")
    [record] = decided_annotation_grants(kubectl, namespace, 1)
    assert (record["status"]["state"], record["status"]["reason"]) == ("Rejected", "AnnotationApprovalsOff")
    assert record["status"]["approver"]["user"] == "alice"
    assert f"create an ApprovalGrant with planHash {plan_hash} instead" in record["status"]["message"]
    name = record["metadata"]["name"]
    assert "GrantRejected" in reasons(kubectl, namespace, name)
    assert any(
        f"grant {name} by alice: AnnotationApprovalsOff" in m
        for m in messages(kubectl, namespace, "scale-web", "GrantRejected")
    )
    assert status_of(kubectl, namespace, "scale-web")["phase"] == "AwaitingApproval"
    assert replicas(kubectl, namespace) == 3

    apply(kubectl, namespace, grant_doc("ok", "scale-web", plan_hash), user="alice")
    wait_phase(kubectl, namespace, "scale-web", "Succeeded", timeout=120)


def test_an_annotation_approves_only_for_someone_who_may_create_grants(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    """carol may edit tasks but not create grants: her ``approve=true`` is refused after RBAC is asked."""
    rules = [{"apiGroups": ["bosun.dev"], "resources": ["agenttasks"], "verbs": ["get", "list", "patch"]}]
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "task-editor"}}
    apply(kubectl, namespace, {**role, "rules": rules})
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "carol-task-editor"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "task-editor"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}],
    }
    apply(kubectl, namespace, binding)
    deployment(kubectl, namespace)
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 5"), user="bob")
    wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    kubectl("-n", namespace, "annotate", "agenttask", "scale-web", "approve=true", user="carol")
    [record] = decided_annotation_grants(kubectl, namespace, 1)
    assert (record["status"]["reason"], record["status"]["approver"]["user"]) == ("NotAnApprover", "carol")
    assert f"may not create approvalgrants in namespace {namespace}" in record["status"]["message"]
    assert status_of(kubectl, namespace, "scale-web")["phase"] == "AwaitingApproval"
    assert replicas(kubectl, namespace) == 3


def test_grants_for_another_task_edited_or_expired_approve_nothing(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    deployment(kubectl, namespace)
    for name, to in (("web-a", 5), ("web-b", 6)):
        apply(kubectl, namespace, task_doc(name, f"scale deployment web in {namespace} to {to}"), user="bob")
    a = wait_phase(kubectl, namespace, "web-a", "AwaitingApproval")
    wait_phase(kubectl, namespace, "web-b", "AwaitingApproval")
    a_hash = a["proposal"]["hash"]
    b_uid = get(kubectl, namespace, "agenttask", "web-b")["metadata"]["uid"]

    apply(kubectl, namespace, grant_doc("other-task", "web-b", a_hash), user="alice")
    assert decided(kubectl, namespace, "other-task")["reason"] == "StaleHash"
    other_uid = grant_doc("other-uid", "web-a", a_hash)
    other_uid["spec"]["taskRef"]["uid"] = b_uid
    apply(kubectl, namespace, other_uid, user="alice")
    assert decided(kubectl, namespace, "other-uid")["reason"] == "TaskUIDMismatch"
    past = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    apply(kubectl, namespace, grant_doc("expired", "web-a", a_hash, expiresAt=past), user="alice")
    expired = decided(kubectl, namespace, "expired")
    assert (expired["state"], expired["reason"]) == ("Rejected", "Expired")
    assert "create a new grant" in expired["message"]

    retarget = '{"spec":{"taskRef":{"name":"web-a"}}}'
    edited = kubectl(
        "-n",
        namespace,
        "patch",
        "approvalgrant",
        "other-task",
        "--type=merge",
        "-p",
        retarget,
        user="alice",
        check=False,
    )
    assert edited.returncode != 0
    assert "an ApprovalGrant is immutable" in edited.stderr
    kubectl(
        "-n",
        namespace,
        "annotate",
        "approvalgrant",
        "expired",
        "--overwrite",
        "bosun.dev/approver=bob",
        user="alice",
    )
    assert get(kubectl, namespace, "approvalgrant", "expired")["metadata"]["annotations"][
        "bosun.dev/approver"
    ] == ("alice")
    for name in ("web-a", "web-b"):
        status = status_of(kubectl, namespace, name)
        assert status["phase"] == "AwaitingApproval"
        assert not any(r["accepted"] for r in status.get("approvals", []))
    assert replicas(kubectl, namespace) == 3


def test_carol_without_rights_cannot_create_a_grant(
    kubectl: Any, namespace: str, bosun_installed: None
) -> None:
    result = kubectl(
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=json.dumps(grant_doc("carols", "anything", "sha256:" + "a" * 64)),
        user="carol",
        check=False,
    )
    assert result.returncode != 0
    assert "Forbidden" in result.stderr
    assert 'User "carol" cannot' in result.stderr


def test_group_names_with_commas_stay_whole_from_admission_to_execution(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    """dave's only right to scale comes through group "ops,team": split at the comma into "ops" and "team",
    the scale would be Forbidden."""
    for role in (USER_ROLE, "edit"):
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"ops-team-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ops,team"}],
        }
        apply(kubectl, namespace, binding)
    deployment(kubectl, namespace)
    doc = task_doc("scale-web", f"scale deployment web in {namespace} to 4")
    kubectl(
        "--as=dave",
        "--as-group=ops,team",
        "--as-group=c\\d",
        "-n",
        namespace,
        "apply",
        "-f",
        "-",
        input=json.dumps(doc),
    )
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    assert status["requester"] == {"user": "dave", "groups": ["ops,team", "c\\d", "system:authenticated"]}
    stamped = get(kubectl, namespace, "agenttask", "scale-web")["metadata"]["annotations"]
    assert stamped["bosun.dev/requester-groups"] == "ops\\,team,c\\\\d,system:authenticated"
    apply(kubectl, namespace, grant_doc("ok", "scale-web", status["proposal"]["hash"]), user="bob")
    wait_phase(kubectl, namespace, "scale-web", "Succeeded", timeout=120)
    assert replicas(kubectl, namespace) == 4


def test_a_namespace_execution_service_account_runs_what_carol_may_not_do_herself(
    kubectl: Any, namespace: str, users: None, bind_role: Any, operator: Operator
) -> None:
    """The admin delegates execution in this namespace to ServiceAccount deployer (edit): carol, who may
    only create tasks, gets a scale approved by bob and run as deployer. Without the annotation the same
    request by carol is refused as carol, see
    test_lifecycle.py::test_requester_without_rights_gets_forbidden_not_the_operators_rights."""
    bind_role(namespace, "carol", USER_ROLE)
    kubectl("-n", namespace, "create", "serviceaccount", "deployer")
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "deployer-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}],
    }
    apply(kubectl, namespace, binding)
    set_policy(kubectl, namespace, execution_service_account="deployer")
    deployment(kubectl, namespace)
    can_i = kubectl("-n", namespace, "auth", "can-i", "patch", "deployments/scale", user="carol", check=False)
    assert can_i.stdout.strip() == "no"

    apply(
        kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 5"), user="carol"
    )
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    account = f"system:serviceaccount:{namespace}:deployer"
    assert status["requester"]["user"] == "carol"
    approval = next(c for c in status["conditions"] if c["type"] == "Approved")
    assert approval["message"].endswith(f"; approved calls run as {account}")

    apply(kubectl, namespace, grant_doc("bobs", "scale-web", status["proposal"]["hash"]), user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "Succeeded", timeout=120)
    [step] = [r for r in status["steps"] if r["mutating"]]
    assert step["ranAs"] == {
        "user": account,
        "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
    }
    assert [u["user"] for u in step["approvedBy"]] == ["bob"]
    [started] = messages(kubectl, namespace, "scale-web", "ToolStarted")
    assert started.endswith(f"as {account} on behalf of carol")
    assert status["verification"]["passed"] is True
    assert replicas(kubectl, namespace) == 5
