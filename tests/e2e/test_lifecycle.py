"""The example YAMLs as a user applies them, cancelling a task, and TTL after finishing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    ROOT,
    USER_ROLE,
    Operator,
    apply,
    deployment,
    get,
    grant_doc,
    task_doc,
    wait_phase,
)
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


def example(name: str, namespace: str) -> dict[str, Any]:
    """An example YAML moved from namespace shop into the test's namespace."""
    text = (ROOT / "examples" / name).read_text().replace("shop", namespace)
    doc: dict[str, Any] = yaml.safe_load(text)
    return doc


def test_examples_scale_approve_and_read(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    deployment(kubectl, namespace)
    apply(kubectl, namespace, example("scale-task.yaml", namespace), user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    grant = example("grant.yaml", namespace)
    grant["spec"]["planHash"] = status["proposal"]["hash"]
    apply(kubectl, namespace, grant, user="alice")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/scale-web", "--timeout=120s")
    assert get(kubectl, namespace, "deployment", "web")["status"]["availableReplicas"] == 5

    apply(kubectl, namespace, example("readonly-task.yaml", namespace), user="bob")
    kubectl(
        "-n",
        namespace,
        "wait",
        "--for=condition=Ready",
        "agenttask/pods-in-shop".replace("shop", namespace),
        "--timeout=90s",
    )


def test_cancel_while_awaiting_approval(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    deployment(kubectl, namespace)
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 5"), user="bob")
    wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    kubectl("-n", namespace, "annotate", "agenttask", "scale-web", "cancel=true", user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "Cancelled")
    assert [r["state"] for r in status["steps"]] == ["Skipped"]
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 3


def test_finished_task_is_deleted_after_its_ttl(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    apply(
        kubectl,
        namespace,
        task_doc("short", f"list pods in {namespace}", ttlSecondsAfterFinished=3),
        user="bob",
    )
    wait_phase(kubectl, namespace, "short", "Succeeded")

    def gone() -> bool:
        listing = json.loads(kubectl("-n", namespace, "get", "agenttasks", "-o", "json").stdout)
        return not listing["items"]

    eventually("the task to be deleted after its TTL", gone, timeout=60)


def test_undecided_proposal_expires(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator]
) -> None:
    deployment(kubectl, namespace)
    operator_factory(BOSUN_APPROVAL_TIMEOUT_SECONDS="3")
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 5"), user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "Expired", timeout=60)
    assert [r["state"] for r in status["steps"]] == ["Skipped"]
    approved = next(c for c in status["conditions"] if c["type"] == "Approved")
    assert approved["reason"] == "Expired"
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 3


def test_grant_for_a_missing_task_says_so(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    apply(kubectl, namespace, grant_doc("orphan", "no-such-task", "sha256:" + "1" * 64), user="alice")
    eventually(
        "the grant to be rejected",
        lambda: (
            (get(kubectl, namespace, "approvalgrant", "orphan").get("status") or {}).get("state")
            == "Rejected"
        ),
    )
    status = get(kubectl, namespace, "approvalgrant", "orphan")["status"]
    assert status["reason"] == "TaskNotFound"
    assert status["approver"]["user"] == "alice"


def test_requester_without_rights_gets_forbidden_not_the_operators_rights(
    kubectl: Any, namespace: str, users: None, bind_role: Any, operator: Operator
) -> None:
    """carol may create tasks but not touch deployments: the scale is refused as carol at dry-run."""
    deployment(kubectl, namespace)
    bind_role(namespace, "carol", USER_ROLE)
    apply(
        kubectl, namespace, task_doc("carol-scale", f"scale deployment web in {namespace} to 9"), user="carol"
    )
    status = wait_phase(kubectl, namespace, "carol-scale", "Failed")
    assert "Forbidden" in status["summary"]
    assert "carol" in status["summary"]
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 3
