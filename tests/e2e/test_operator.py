"""The operator as users meet it: kubectl apply / annotate / wait against a real control plane, the
operator running as its own process (offline planner, in-process tools)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    Operator,
    apply,
    creates_and_reads_only,
    deployment,
    events,
    get,
    grant_doc,
    status_of,
    task_doc,
    wait_phase,
)
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


def replicas(kubectl: Any, namespace: str, name: str = "web") -> tuple[int, int]:
    dep = get(kubectl, namespace, "deployment", name)
    return dep["spec"]["replicas"], dep.get("status", {}).get("availableReplicas", 0)


def propose_scale(kubectl: Any, namespace: str, name: str = "scale-web", to: int = 5) -> dict[str, Any]:
    apply(kubectl, namespace, task_doc(name, f"scale deployment web in {namespace} to {to}"), user="bob")
    return wait_phase(kubectl, namespace, name, "AwaitingApproval")


def test_scale_with_a_grant(kubectl: Any, namespace: str, users: None, operator: Operator) -> None:
    deployment(kubectl, namespace)
    status = propose_scale(kubectl, namespace)
    proposal = status["proposal"]
    assert status["requester"]["user"] == "bob"
    assert "sre" in status["requester"]["groups"]
    [step] = proposal["steps"]
    assert step["tool"] == "k8s_scale"
    assert step["args"]["replicas"] == 5
    assert step["mutating"]
    assert "-  replicas: 3" in step["diff"]
    assert "+  replicas: 5" in step["diff"]
    assert replicas(kubectl, namespace) == (3, 3)
    table = kubectl("-n", namespace, "get", "agenttasks").stdout
    assert "AwaitingApproval" in table
    assert "bob" in table
    assert "awaiting approval of revision 1 (1 step)" in table
    wide = kubectl("-n", namespace, "get", "agenttasks", "-o", "wide").stdout
    assert "PENDING" in wide
    assert proposal["shortHash"] in wide
    assert proposal["hash"] not in wide

    apply(kubectl, namespace, grant_doc("ok", "scale-web", proposal["hash"]), user="alice")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/scale-web", "--timeout=120s")

    status = status_of(kubectl, namespace, "scale-web")
    assert status["phase"] == "Succeeded"
    assert replicas(kubectl, namespace) == (5, 5)
    [record] = [r for r in status["steps"] if r["mutating"]]
    assert record["state"] == "Succeeded"
    assert record["attempts"] == 1
    assert record["approvedBy"][0]["user"] == "alice"
    assert record["grant"] == "ok"
    assert status["verification"]["passed"]
    assert "5/5 available" in status["verification"]["checks"][0]["message"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["observedGeneration"] == 1
    assert conditions["Verified"]["reason"] == "Verified"
    grant = get(kubectl, namespace, "approvalgrant", "ok")
    assert grant["status"]["state"] == "Accepted"
    assert "GrantAccepted" in [e["reason"] for e in events(kubectl, namespace, "ok")]
    assert grant["status"]["approver"]["user"] == "alice"
    reasons = [e["reason"] for e in events(kubectl, namespace, "scale-web")]
    for reason in (
        "ApprovalRequired",
        "Approved",
        "ToolStarted",
        "ToolSucceeded",
        "Executed",
        "Verified",
    ):
        assert reason in reasons, reasons
    described = kubectl("-n", namespace, "describe", "agenttask", "scale-web").stdout
    assert "replicas: 3 -> 5" in described
    assert "ToolSucceeded" in described


def test_scale_approved_by_annotation(kubectl: Any, namespace: str, users: None, operator: Operator) -> None:
    deployment(kubectl, namespace)
    propose_scale(kubectl, namespace)
    kubectl("-n", namespace, "annotate", "agenttask", "scale-web", "approve=true", user="alice")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/scale-web", "--timeout=120s")
    status = status_of(kubectl, namespace, "scale-web")
    assert replicas(kubectl, namespace) == (5, 5)
    [approval] = status["approvals"]
    assert approval["accepted"]
    assert approval["approver"]["user"] == "alice"
    grants = json.loads(kubectl("-n", namespace, "get", "approvalgrants", "-o", "json").stdout)["items"]
    [grant] = grants
    assert grant["metadata"]["labels"]["bosun.dev/via"] == "annotation"
    assert grant["status"]["approver"]["user"] == "alice"
    task = get(kubectl, namespace, "agenttask", "scale-web")
    assert "approve" not in task["metadata"].get("annotations", {})


def test_read_only_question_needs_no_approval(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    deployment(kubectl, namespace, replicas=2)
    apply(kubectl, namespace, task_doc("pods", f"list pods in {namespace}"), user="bob")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/pods", "--timeout=90s")
    status = status_of(kubectl, namespace, "pods")
    assert status["phase"] == "Succeeded"
    assert "proposal" not in status
    assert status.get("approvals", []) == []
    assert "web-" in status["summary"]
    assert [r["tool"] for r in status["steps"]] == ["k8s_get"]
    assert not status["steps"][0]["mutating"]


def test_deny_ends_the_task_with_nothing_run(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    deployment(kubectl, namespace)
    status = propose_scale(kubectl, namespace)
    doc = grant_doc("no", "scale-web", status["proposal"]["hash"], "Deny", reason="not during the sale")
    apply(kubectl, namespace, doc, user="alice")
    status = wait_phase(kubectl, namespace, "scale-web", "Denied")
    assert [r["state"] for r in status["steps"]] == ["Denied"]
    assert replicas(kubectl, namespace) == (3, 3)
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Denied")


def test_stale_hash_approves_nothing(kubectl: Any, namespace: str, users: None, operator: Operator) -> None:
    deployment(kubectl, namespace)
    status = propose_scale(kubectl, namespace)
    apply(kubectl, namespace, grant_doc("stale", "scale-web", "sha256:" + "0" * 64), user="alice")
    eventually(
        "the stale grant to be rejected",
        lambda: (
            (get(kubectl, namespace, "approvalgrant", "stale").get("status") or {}).get("state") == "Rejected"
        ),
    )
    grant = get(kubectl, namespace, "approvalgrant", "stale")
    assert grant["status"]["reason"] == "StaleHash"
    assert "GrantRejected" in [e["reason"] for e in events(kubectl, namespace, "stale")]
    assert status["proposal"]["hash"] in grant["status"]["message"]
    after = status_of(kubectl, namespace, "scale-web")
    assert after["phase"] == "AwaitingApproval"
    assert after["steps"][0]["state"] == "AwaitingApproval"
    assert replicas(kubectl, namespace) == (3, 3)


def test_replay_proposes_the_recorded_mutations_again(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    deployment(kubectl, namespace)
    first = propose_scale(kubectl, namespace)
    apply(kubectl, namespace, grant_doc("ok", "scale-web", first["proposal"]["hash"]), user="alice")
    wait_phase(kubectl, namespace, "scale-web", "Succeeded")
    kubectl("-n", namespace, "scale", "deployment/web", "--replicas=2")

    apply(kubectl, namespace, task_doc("again", "redo what scale-web did", replayOf="scale-web"), user="bob")
    status = wait_phase(kubectl, namespace, "again", "AwaitingApproval")
    [step] = status["proposal"]["steps"]
    assert (step["tool"], step["args"]) == ("k8s_scale", first["proposal"]["steps"][0]["args"])
    assert status["proposal"]["hash"] != first["proposal"]["hash"]
    assert "replicas: 2 -> 5" in step["preview"]
    kubectl("-n", namespace, "annotate", "agenttask", "again", "approve=true", user="alice")
    wait_phase(kubectl, namespace, "again", "Succeeded")
    assert replicas(kubectl, namespace) == (5, 5)


def test_a_task_the_requester_may_not_read_is_not_replayed_for_them(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    """carol may create tasks but read only her own: replaying bob's would show her its calls and
    arguments, so it is refused before the operator reads it, and nothing of it appears in her task."""
    creates_and_reads_only(kubectl, namespace, "carol", "mine")
    deployment(kubectl, namespace)
    first = propose_scale(kubectl, namespace)
    apply(kubectl, namespace, grant_doc("ok", "scale-web", first["proposal"]["hash"]), user="alice")
    wait_phase(kubectl, namespace, "scale-web", "Succeeded")

    apply(kubectl, namespace, task_doc("mine", "do it again", replayOf="scale-web"), user="carol")
    refused = wait_phase(kubectl, namespace, "mine", "Failed")
    ready = next(c for c in refused["conditions"] if c["type"] == "Ready")
    assert ready["message"].startswith(
        f"spec.replayOf: carol may not get agenttasks.bosun.dev scale-web in namespace {namespace}, so Bosun "
        "will not propose its calls on their behalf."
    )
    assert "proposal" not in refused
    assert "k8s_scale" not in json.dumps(refused)


def test_invalid_specs_are_refused_naming_the_field(
    kubectl: Any, namespace: str, users: None, bosun_installed: None
) -> None:
    cases = [
        (task_doc("t1", ""), "spec.request"),
        (task_doc("t2", "x", maxIterations=0), "spec.maxIterations"),
        # A type error is the schema's to report, naming the field, not an identity policy's denial.
        (task_doc("t2b", "x", maxIterations="three"), "spec.maxIterations"),
        (task_doc("t3", "x", targetNamespaces=["Bad_NS"]), "spec.targetNamespaces[0]"),
        (grant_doc("g1", "t", "abc"), "spec.planHash"),
        (grant_doc("g2", "t", "sha256:" + "a" * 64, "Maybe"), "spec.decision"),
    ]
    for doc, field in cases:
        result = kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc), user="bob", check=False)
        assert result.returncode != 0, field
        assert field in result.stderr, (field, result.stderr)
    explained = kubectl("explain", "approvalgrant.spec.planHash").stdout
    assert "status.proposal.hash of the task" in explained
    assert "plain language" in kubectl("explain", "agenttask.spec.request").stdout
    apply(kubectl, namespace, task_doc("fixed", "list pods"), user="bob")
    changed = kubectl(
        "-n",
        namespace,
        "patch",
        "agenttask",
        "fixed",
        "--type=merge",
        "-p",
        '{"spec":{"request":"delete all"}}',
        user="bob",
        check=False,
    )
    assert changed.returncode != 0
    assert "spec is immutable" in changed.stderr
    apply(kubectl, namespace, grant_doc("g3", "fixed", "sha256:" + "a" * 64), user="alice")
    edited = kubectl(
        "-n",
        namespace,
        "patch",
        "approvalgrant",
        "g3",
        "--type=merge",
        "-p",
        '{"spec":{"decision":"Deny"}}',
        user="alice",
        check=False,
    )
    assert edited.returncode != 0
    assert "immutable" in edited.stderr


def test_requester_comes_from_admission_not_yaml(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    doc = task_doc("claim", f"list pods in {namespace}")
    doc["metadata"]["annotations"] = {
        "bosun.dev/requester": "the-ceo",
        "bosun.dev/requester-groups": "system:masters",
    }
    apply(kubectl, namespace, doc, user="bob")
    status = wait_phase(kubectl, namespace, "claim", "Succeeded")
    assert status["requester"] == {"user": "bob", "groups": ["sre", "system:authenticated"]}


def test_gitops_service_account_becomes_the_requester(
    kubectl: Any,
    cluster: Any,
    namespace: str,
    users: None,
    bind_role: Any,
    operator: Operator,
    tmp_path: Path,
) -> None:
    """A GitOps controller applying a task is the requester: its ServiceAccount, as the API server says."""
    kubectl("-n", namespace, "create", "serviceaccount", "gitops")
    bind_role(namespace, f"system:serviceaccount:{namespace}:gitops", "bosun-e2e-user")
    token = kubectl("-n", namespace, "create", "token", "gitops").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        **admin,
        "users": [{"name": "gitops", "user": {"token": token}}],
        "contexts": [
            {"name": "gitops", "context": {"cluster": admin["clusters"][0]["name"], "user": "gitops"}}
        ],
        "current-context": "gitops",
    }
    path = tmp_path / "gitops.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    doc = task_doc("from-git", f"list pods in {namespace}")
    kubectl("--kubeconfig", str(path), "-n", namespace, "apply", "-f", "-", input=json.dumps(doc))
    status = wait_phase(kubectl, namespace, "from-git", "Succeeded", "Failed")
    assert status["requester"]["user"] == f"system:serviceaccount:{namespace}:gitops"
    assert f"system:serviceaccounts:{namespace}" in status["requester"]["groups"]


def test_tasks_carry_no_finalizer_so_they_can_be_deleted_while_the_operator_is_down(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    """Nothing of the operator's must be in the way of ``kubectl delete`` (or of uninstalling the CRDs)
    when the operator is not running: no finalizer on a waiting task, nor on a finished one. Nor does kopf
    keep state on them (no annotation of its own: no extra write per task)."""
    deployment(kubectl, namespace)
    waiting = propose_scale(kubectl, namespace)
    assert waiting["phase"] == "AwaitingApproval"
    apply(kubectl, namespace, task_doc("question", f"list pods in {namespace}"), user="bob")
    wait_phase(kubectl, namespace, "question", "Succeeded")
    for name in ("scale-web", "question"):
        meta = get(kubectl, namespace, "agenttask", name)["metadata"]
        assert not meta.get("finalizers")
        assert not [key for key in meta.get("annotations") or {} if key.startswith("kopf.")], meta
    operator.stop()
    kubectl("-n", namespace, "delete", "agenttask", "scale-web", "question", "--timeout=30s")
