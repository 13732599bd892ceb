"""The operator with a model: LiteLLM calls the scripted OpenAI-compatible server (``tests/fakes/llm.py``,
a test double) over HTTP, so proposals with several steps, replanning and model failures can be driven."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import (
    Operator,
    apply,
    deployment,
    get,
    grant_doc,
    status_of,
    stuck_deployment,
    task_doc,
    wait_phase,
    with_model,
)
from tests.e2e.conftest import scale_call as scale
from tests.fakes.llm import FakeLLM, call, error, text, tool_calls
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


def test_subset_grant_runs_only_the_named_steps(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    deployment(kubectl, namespace, "web")
    deployment(kubectl, namespace, "api")
    llm.script(
        tool_calls(scale(namespace, "web", 4), scale(namespace, "api", 4)),
        text("Proposed: scale web and api to 4."),
        text('{"satisfied": true, "reason": "api runs 4 replicas as approved"}'),
    )
    with_model(operator_factory, llm)
    apply(kubectl, namespace, task_doc("both", f"scale web and api in {namespace} to 4"), user="bob")
    status = wait_phase(kubectl, namespace, "both", "AwaitingApproval")
    assert [s["id"] for s in status["proposal"]["steps"]] == ["s1", "s2"]
    doc = grant_doc("only-api", "both", status["proposal"]["hash"], steps=["s2"], reason="web stays")
    apply(kubectl, namespace, doc, user="alice")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/both", "--timeout=120s")
    status = status_of(kubectl, namespace, "both")
    states = {r["stepId"]: r["state"] for r in status["steps"] if r["mutating"]}
    assert states == {"s1": "Denied", "s2": "Succeeded"}
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 3
    assert get(kubectl, namespace, "deployment", "api")["spec"]["replicas"] == 4
    assert status["usage"]["calls"] == 3
    assert status["usage"]["promptTokens"] > 0


def test_diagnose_then_fix_over_two_iterations(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    """Iteration 1's change does not make web available (its pods cannot be scheduled), verification
    fails, the task replans; the fix is a new proposal with a new hash the first grant cannot approve."""
    stuck_deployment(kubectl, namespace)
    fix = {"spec": {"template": {"spec": {"nodeSelector": None}}}}
    llm.script(
        tool_calls(scale(namespace, "web", 2)),
        text("web has too few replicas; proposing 2."),
        tool_calls(
            call(
                "k8s_patch",
                {
                    "kind": "deployment",
                    "name": "web",
                    "namespace": namespace,
                    "patch": fix,
                    "patch_type": "merge",
                },
            )
        ),
        text("Pods are Pending: nodeSelector disk=ssd matches no node. Proposing to remove it."),
        text('{"satisfied": true, "reason": "web is available"}'),
    )
    with_model(operator_factory, llm, BOSUN_VERIFY_SECONDS="6")
    apply(
        kubectl,
        namespace,
        task_doc("fix-web", f"make web in {namespace} available with 2 replicas"),
        user="bob",
    )
    first = wait_phase(kubectl, namespace, "fix-web", "AwaitingApproval")
    apply(kubectl, namespace, grant_doc("first", "fix-web", first["proposal"]["hash"]), user="alice")
    eventually(
        "the second proposal",
        lambda: (status_of(kubectl, namespace, "fix-web").get("proposal") or {}).get("revision") == 2,
        timeout=120,
    )
    second = wait_phase(kubectl, namespace, "fix-web", "AwaitingApproval")
    assert second["iteration"] == 2
    assert second["proposal"]["hash"] != first["proposal"]["hash"]
    assert second["verification"]["passed"] is False
    assert second["proposal"]["steps"][0]["tool"] == "k8s_patch"
    assert "nodeSelector" in second["proposal"]["steps"][0]["diff"]

    apply(kubectl, namespace, grant_doc("first-again", "fix-web", first["proposal"]["hash"]), user="alice")
    eventually(
        "the re-used hash to be rejected",
        lambda: (
            (get(kubectl, namespace, "approvalgrant", "first-again").get("status") or {}).get("reason")
            == "StaleHash"
        ),
    )
    assert status_of(kubectl, namespace, "fix-web")["phase"] == "AwaitingApproval"
    apply(kubectl, namespace, grant_doc("second", "fix-web", second["proposal"]["hash"]), user="alice")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/fix-web", "--timeout=120s")
    done = status_of(kubectl, namespace, "fix-web")
    assert done["verification"]["passed"]
    assert done["verification"]["revision"] == 2
    assert get(kubectl, namespace, "deployment", "web")["status"].get("availableReplicas") == 2


@pytest.mark.parametrize(
    ("status", "what_to_fix"),
    [(500, "retry later"), (401, "BOSUN_API_KEY")],
)
def test_model_failure_ends_failed_saying_what_to_fix(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    status: int,
    what_to_fix: str,
) -> None:
    with FakeLLM(default=error(status, "upstream says no")) as llm:
        with_model(operator_factory, llm, BOSUN_MODEL_RETRIES="1")
        apply(kubectl, namespace, task_doc("ask", "why is web slow?"), user="bob")
        final = wait_phase(kubectl, namespace, "ask", "Failed", timeout=120)
    ready = next(c for c in final["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ModelFailed"
    assert "openai/gpt-4.1-mini" in ready["message"]
    assert what_to_fix in ready["message"], ready["message"]
    assert "upstream says no" in final["summary"]
    assert "proposal" not in final
    assert json.dumps(final).count("Executing") == 0


def test_model_answer_with_a_refused_unknown_tool_recorded(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    """A question answered by the model after investigating; its call of a tool that does not exist is
    refused, recorded and fed back, never run, and nothing waits for approval."""
    deployment(kubectl, namespace, replicas=2)
    llm.script(
        tool_calls(
            call("k8s_nuke", {"namespace": namespace}),
            call("k8s_get", {"kind": "pods", "namespace": namespace}),
        ),
        text("web runs 2 pods, both Running."),
    )
    with_model(operator_factory, llm)
    apply(kubectl, namespace, task_doc("how", f"how many web pods run in {namespace}?"), user="bob")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", "agenttask/how", "--timeout=90s")
    status = status_of(kubectl, namespace, "how")
    assert status["summary"] == "web runs 2 pods, both Running."
    assert "proposal" not in status
    by_tool = {r["tool"]: r for r in status["steps"]}
    assert by_tool["k8s_nuke"]["state"] == "Failed"
    assert "unknown tool" in by_tool["k8s_nuke"]["error"]
    assert by_tool["k8s_get"]["state"] == "Succeeded"
    assert "web-" in by_tool["k8s_get"]["output"]
    second_turn = json.dumps(llm.requests[1]["messages"])
    assert "unknown tool" in second_turn
