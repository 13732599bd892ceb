"""A task naming a namespace its requester cannot read is refused at ``kubectl create``, saying which entry,
which namespace and what to do; everything else is admitted as before. Only admission is exercised, so no
operator runs: users alice and carol on the real API server, with ``crds/`` (identity policies and the
target-namespace policy) installed."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from bosun.api.admission import READ_CHECK, TARGETS_POLICY_NAME

from tests.e2e.conftest import USER_ROLE, task_doc
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


def create(
    kubectl: Any, namespace: str, doc: dict[str, Any], user: str, *, dry_run: bool = False
) -> subprocess.CompletedProcess[str]:
    """``kubectl create`` (never apply: the policy judges CREATE only, and a retried apply would update)."""
    args = ["-n", namespace, "create", "-f", "-"]
    if dry_run:
        args.append("--dry-run=server")
    result: subprocess.CompletedProcess[str] = kubectl(*args, input=json.dumps(doc), user=user, check=False)
    return result


def refused(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode != 0 and TARGETS_POLICY_NAME in result.stderr


@pytest.fixture
def policy_active(kubectl: Any, namespace: str, bosun_installed: None, bind_role: Any) -> None:
    """carol may create tasks here (and read nothing); wait until the API server enforces the freshly
    applied policy (its admission plugin learns of new policies asynchronously), probing as carol with
    server-side dry-runs so that nothing is created meanwhile."""
    bind_role(namespace, "carol", USER_ROLE)
    probe = task_doc("probe", "list pods", targetNamespaces=["kube-system"])
    eventually(
        f"the {TARGETS_POLICY_NAME} policy to be enforced",
        lambda: refused(create(kubectl, namespace, probe, "carol", dry_run=True)),
        timeout=60,
    )


@pytest.fixture
def readable(kubectl: Any, namespace: str, bind_role: Any) -> Iterator[str]:
    """A second namespace alice may read (the built-in view role) and create tasks about."""
    other = f"{namespace[:50]}-other"
    kubectl("create", "namespace", other)
    try:
        bind_role(other, "alice", "view")
        bind_role(namespace, "alice", USER_ROLE)
        yield other
    finally:
        kubectl("delete", "namespace", other, "--wait=false", "--ignore-not-found", check=False)


def denial(index: int, user: str, target: str) -> str:
    """The start of the policy's message for one refused entry."""
    _group, resource, verb = READ_CHECK
    return f"spec.targetNamespaces[{index}]: {user} may not {verb} {resource} in namespace {target}"


def exists(kubectl: Any, namespace: str, name: str) -> bool:
    found = kubectl("-n", namespace, "get", "agenttask", name, "--ignore-not-found", "-o", "name")
    return bool(found.stdout.strip())


def test_a_target_namespace_the_requester_cannot_read_is_refused_naming_field_and_namespace(
    kubectl: Any, namespace: str, policy_active: None
) -> None:
    doc = task_doc("peek", "list pods in kube-system", targetNamespaces=["kube-system"])
    result = create(kubectl, namespace, doc, "carol")
    assert result.returncode != 0
    message = result.stderr
    assert "Forbidden" in message, message
    assert denial(0, "carol", "kube-system") in message
    assert "RoleBinding to the view ClusterRole there), or remove kube-system from" in message
    assert not exists(kubectl, namespace, "peek")

    # The entry is named by its position, after ones that pass (the task's own namespace is never checked).
    doc = task_doc("peek2", "list pods", targetNamespaces=[namespace, "kube-system"])
    message = create(kubectl, namespace, doc, "carol").stderr
    assert denial(1, "carol", "kube-system") in message, message


def test_a_requester_who_can_read_every_target_is_admitted(
    kubectl: Any, namespace: str, policy_active: None, readable: str
) -> None:
    doc = task_doc("read-other", f"list pods in {readable}", targetNamespaces=[namespace, readable])
    result = create(kubectl, namespace, doc, "alice")
    assert result.returncode == 0, result.stderr
    assert exists(kubectl, namespace, "read-other")

    # The full list the schema allows: every position is checked and the checks stay within the API
    # server's CEL cost budget (a budget overrun would refuse the task with a cost error instead).
    doc = task_doc("read-max", "list pods", targetNamespaces=[readable] * 20)
    result = create(kubectl, namespace, doc, "alice")
    assert result.returncode == 0, result.stderr

    doc = task_doc("read-more", "list pods", targetNamespaces=[readable, "kube-system"])
    message = create(kubectl, namespace, doc, "alice").stderr
    assert denial(1, "alice", "kube-system") in message, message


def test_a_task_about_its_own_namespace_is_admitted_for_anyone_who_may_create_tasks(
    kubectl: Any, namespace: str, policy_active: None
) -> None:
    """carol may create tasks here but not even list pods: her task is still admitted, as it always was;
    whether she may do what she asks is for her RBAC to decide call by call."""
    allowed = kubectl("auth", "can-i", "list", "pods", "-n", namespace, user="carol", check=False)
    assert allowed.stdout.strip() == "no"
    result = create(kubectl, namespace, task_doc("own", "list pods"), "carol")
    assert result.returncode == 0, result.stderr
    doc = task_doc("own-named", "list pods", targetNamespaces=[namespace])
    result = create(kubectl, namespace, doc, "carol")
    assert result.returncode == 0, result.stderr
