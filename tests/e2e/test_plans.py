"""Plans that can be trusted: a failed step replans and needs a new approval, a task whose changes were all
refused does not look successful, and cluster-scoped work happens only with explicit consent.

The model is the scripted OpenAI-compatible double (``tests/fakes/llm.py``); the operator is a real process;
users act through kubectl. The cluster-scope tests run as a "cluster admin" — a ServiceAccount bound to the
cluster-admin ClusterRole, so that RBAC would allow everything and only Bosun's own rules are tested.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import (
    USER_ROLE,
    Operator,
    apply,
    condition,
    deployment,
    get,
    grant_doc,
    status_of,
    task_doc,
    wait_phase,
    with_model,
)
from tests.e2e.conftest import scale_call as scale
from tests.fakes.llm import FakeLLM, call, text, tool_calls
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


def satisfied(yes: bool, reason: str) -> dict[str, Any]:
    return text(json.dumps({"satisfied": yes, "reason": reason}))


def test_a_failed_step_stops_the_rest_and_the_replan_needs_a_new_approval(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    deployment(kubectl, namespace, "web")
    deployment(kubectl, namespace, "api")
    llm.script(
        tool_calls(scale(namespace, "api", 2), scale(namespace, "web", 4)),
        text("Scale api to 2 and web to 4."),
        tool_calls(scale(namespace, "web", 4)),
        text("api is gone; scaling web alone."),
        satisfied(True, "web runs 4 replicas"),
    )
    with_model(operator_factory, llm)
    apply(kubectl, namespace, task_doc("both", f"scale api to 2 and web to 4 in {namespace}"), user="bob")
    first = wait_phase(kubectl, namespace, "both", "AwaitingApproval")
    kubectl("-n", namespace, "delete", "deployment", "api", "--wait=true")  # s1 will fail: NotFound
    apply(kubectl, namespace, grant_doc("first", "both", first["proposal"]["hash"]), user="alice")
    eventually(
        "revision 2 to be proposed",
        lambda: (status_of(kubectl, namespace, "both").get("proposal") or {}).get("revision") == 2,
        timeout=120,
    )
    second = wait_phase(kubectl, namespace, "both", "AwaitingApproval")
    records = {(r["revision"], r.get("stepId")): r for r in second["steps"] if r["mutating"]}
    assert records[(1, "s1")]["state"] == "Failed"
    assert records[(1, "s2")]["state"] == "Skipped"
    assert "not run" in records[(1, "s2")]["error"]
    assert records[(2, "s1")]["state"] == "AwaitingApproval"
    assert second["iteration"] == 2
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 3  # nothing ran unapproved
    apply(kubectl, namespace, grant_doc("second", "both", second["proposal"]["hash"]), user="alice")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/both", "--timeout=120s")
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 4


def test_a_task_whose_every_change_was_refused_is_not_a_success(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    """The model tries a change outside the task's namespaces, is refused, and claims success anyway."""
    deployment(kubectl, namespace, "web")
    llm.script(
        tool_calls(scale("kube-system", "coredns", 5)),
        text("Done: coredns scaled to 5."),
    )
    with_model(operator_factory, llm)
    apply(kubectl, namespace, task_doc("elsewhere", "scale coredns to 5"), user="bob")
    status = wait_phase(kubectl, namespace, "elsewhere", "Failed", "Succeeded")
    assert status["phase"] == "Failed"
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ChangesRefused")
    assert "kube-system" in ready["message"]


@pytest.fixture
def cluster_admin(kubectl: Any, namespace: str) -> Iterator[list[str]]:
    """kubectl flags acting as a ServiceAccount bound to cluster-admin (RBAC allows it everything)."""
    kubectl("-n", namespace, "create", "serviceaccount", "ops")
    binding = f"bosun-e2e-ops-{uuid.uuid4().hex[:8]}"
    kubectl(
        "create",
        "clusterrolebinding",
        binding,
        "--clusterrole=cluster-admin",
        f"--serviceaccount={namespace}:ops",
    )
    yield [f"--as=system:serviceaccount:{namespace}:ops"]
    kubectl("delete", "clusterrolebinding", binding, "--ignore-not-found")


def namespace_manifest(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


def pod_manifest(namespace: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe", "namespace": namespace},
            "spec": {"containers": [{"name": "probe", "image": "registry.example/probe:1"}]},
        }
    )


def test_a_namespace_and_a_pod_in_it_need_cluster_scope_consent(
    kubectl: Any,
    namespace: str,
    users: None,
    bind_role: Any,
    cluster_admin: list[str],
    operator_factory: Callable[..., Operator],
    llm: FakeLLM,
) -> None:
    """With consent (spec and operator): the Namespace step is marked cluster-scoped and destructive-grade,
    runs after approval, and the pod follows in the next revision. Without the task's consent the same
    plan is refused before anything is proposed; without the operator's, the task says so at once."""
    bind_role(namespace, "alice", USER_ROLE)
    created = f"{namespace}-new"
    llm.script(
        tool_calls(call("k8s_apply", {"manifest": namespace_manifest(created)})),
        text("First the namespace; the pod can only be created once it exists."),
        satisfied(False, "the namespace exists but the pod does not yet"),
        tool_calls(call("k8s_apply", {"manifest": pod_manifest(created), "namespace": created})),
        text("Now the pod."),
        satisfied(True, "namespace and pod exist"),
    )
    with_model(operator_factory, llm, BOSUN_ALLOW_CLUSTER_SCOPE="true", BOSUN_VERIFY_SECONDS="20")
    request = f"create namespace {created} and a pod named probe in it"
    doc = task_doc("ns-and-pod", request, targetNamespaces=[namespace, created], clusterScope=True)
    try:
        kubectl("-n", namespace, "apply", "-f", "-", *cluster_admin, input=json.dumps(doc))
        first = wait_phase(kubectl, namespace, "ns-and-pod", "AwaitingApproval")
        [step] = first["proposal"]["steps"]
        assert (step["clusterScoped"], step["destructive"]) == (True, True)
        apply(kubectl, namespace, grant_doc("ns", "ns-and-pod", first["proposal"]["hash"]), user="alice")
        eventually(
            "revision 2 (the pod) to be proposed",
            lambda: (status_of(kubectl, namespace, "ns-and-pod").get("proposal") or {}).get("revision") == 2,
            timeout=120,
        )
        second = wait_phase(kubectl, namespace, "ns-and-pod", "AwaitingApproval")
        [pod_step] = second["proposal"]["steps"]
        assert pod_step["clusterScoped"] is False
        apply(kubectl, namespace, grant_doc("pod", "ns-and-pod", second["proposal"]["hash"]), user="alice")
        kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/ns-and-pod", "--timeout=120s")
        assert get(kubectl, created, "pod", "probe")["metadata"]["name"] == "probe"
    finally:
        kubectl("delete", "namespace", created, "--ignore-not-found", "--wait=false")

    # The same plan without the task's consent: refused before it is proposed.
    llm.script(
        tool_calls(call("k8s_apply", {"manifest": namespace_manifest(f"{created}-2")})),
        text("Created the namespace."),
    )
    doc = task_doc(
        "no-consent", f"create namespace {created}-2", targetNamespaces=[namespace, f"{created}-2"]
    )
    kubectl("-n", namespace, "apply", "-f", "-", *cluster_admin, input=json.dumps(doc))
    refused = wait_phase(kubectl, namespace, "no-consent", "Failed", "Succeeded", "AwaitingApproval")
    assert refused["phase"] == "Failed"
    assert "cluster-scope consent" in condition(refused, "Ready")["message"]
    assert kubectl("get", "namespace", f"{created}-2", check=False).returncode != 0


def test_cluster_scope_asked_of_an_operator_that_does_not_allow_it(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    doc = task_doc("wants-cluster", "cordon node kwok-node-0", clusterScope=True)
    apply(kubectl, namespace, doc, user="bob")
    status = wait_phase(kubectl, namespace, "wants-cluster", "Failed")
    ready = condition(status, "Ready")
    assert ready["reason"] == "ClusterScopeNotAllowed"
    assert "BOSUN_ALLOW_CLUSTER_SCOPE" in ready["message"]
