"""Honest outcomes, end to end: a task ends Succeeded (Ready=True) only when an objective check confirmed
its change, and a change that the API server accepted but did not keep fails verification however sure
the model is. The operator is a real process with a scripted model (``tests/fakes/llm.py``); people act
through kubectl."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import (
    Operator,
    apply,
    condition,
    deployment,
    get,
    grant_doc,
    task_doc,
    wait_phase,
    with_model,
)
from tests.fakes.llm import FakeLLM, call, text, tool_calls

pytestmark = pytest.mark.cluster


def approve(kubectl: Any, namespace: str, task: str) -> None:
    plan_hash = wait_phase(kubectl, namespace, task, "AwaitingApproval")["proposal"]["hash"]
    apply(kubectl, namespace, grant_doc(f"{task}-ok", task, plan_hash), user="alice")


def test_an_applied_configmap_is_confirmed_before_the_task_succeeds(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    settings = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"mode": "open"},
    }
    create = call("k8s_apply", {"manifest": json.dumps(settings), "namespace": namespace})
    llm.script(
        tool_calls(create),
        text("Proposed: create configmap settings with mode=open."),
        text('{"satisfied": true, "reason": "settings exists with mode open"}'),
    )
    with_model(operator_factory, llm)
    request = f"create configmap settings in {namespace} with mode=open"
    apply(kubectl, namespace, task_doc("settings", request), user="bob")
    approve(kubectl, namespace, "settings")

    status = wait_phase(kubectl, namespace, "settings", "Succeeded", "Failed", timeout=120)
    assert status["phase"] == "Succeeded", status
    assert condition(status, "Ready")["status"] == "True"
    assert status["verification"]["checks"] == [
        {
            "name": f"configmap {namespace}/settings holds the applied fields",
            "passed": True,
            "message": "all 2 applied fields match the live object",
        }
    ]
    assert get(kubectl, namespace, "configmap", "settings")["data"] == {"mode": "open"}


def test_a_change_the_api_server_dropped_does_not_end_ready(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    """``resource`` (for ``resources``) is no field of a container: a strategic patch with it is accepted
    and the field silently dropped, so nothing was limited; the model believes otherwise."""
    deployment(kubectl, namespace, "web", replicas=1)
    typo = {
        "spec": {
            "template": {
                "spec": {"containers": [{"name": "web", "resource": {"limits": {"memory": "256Mi"}}}]}
            }
        }
    }
    limit = call("k8s_patch", {"kind": "deployment", "name": "web", "namespace": namespace, "patch": typo})
    llm.script(
        tool_calls(limit),
        text("Proposed: limit web's memory to 256Mi."),
        text('{"satisfied": true, "reason": "web is limited to 256Mi"}'),
    )
    with_model(operator_factory, llm)
    request = f"limit the memory of deployment web in {namespace} to 256Mi"
    apply(kubectl, namespace, task_doc("limit-web", request, maxIterations=1), user="bob")
    approve(kubectl, namespace, "limit-web")

    status = wait_phase(kubectl, namespace, "limit-web", "Succeeded", "Failed", timeout=120)
    assert status["phase"] == "Failed", status
    assert condition(status, "Ready")["status"] != "True"
    assert (condition(status, "Verified")["status"], condition(status, "Verified")["reason"]) == (
        "False",
        "VerificationFailed",
    )
    verification = status["verification"]
    assert verification["passed"] is False
    patched = next(c for c in verification["checks"] if c["name"] == f"deployment {namespace}/web patched")
    assert patched == {
        "name": f"deployment {namespace}/web patched",
        "passed": False,
        "message": "spec.template.spec.containers[web].resource: absent in the live object, "
        "though the change sets fields there",
    }
    assert llm.pending == 1, "the model's judgement is never asked after a failed objective check"
    [container] = get(kubectl, namespace, "deployment", "web")["spec"]["template"]["spec"]["containers"]
    assert "resource" not in container
    assert container.get("resources") == {}
