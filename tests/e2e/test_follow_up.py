"""``spec.followUpOf``: a follow-up gives the model the earlier task (and its own chain) as context, and is
refused before any model call when the requester could not read that task, when it does not exist, or
when it has not finished. The operator runs with the scripted model (``tests/fakes/llm.py``), whose
recorded requests show exactly what the model was told; ``status.usage.model`` names the model used."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from bosun.api.models import FOLLOW_UP_CONTEXT_CAP, FOLLOW_UP_EXCLUSIVE

from tests.e2e.conftest import (
    USER_ROLE,
    Operator,
    apply,
    condition,
    creates_and_reads_only,
    deployment,
    events,
    status_of,
    task_doc,
    wait_phase,
    with_model,
)
from tests.e2e.conftest import scale_call as scale
from tests.fakes.llm import FakeLLM, call, text, tool_calls
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

MODEL = "openai/gpt-4.1-mini"


def user_turn(request: dict[str, Any]) -> str:
    """The user message of one request the model received (the request and its context)."""
    [message] = [m for m in request["messages"] if m["role"] == "user"]
    content: str = message["content"]
    return content


def test_a_follow_up_gives_the_model_the_earlier_turns_and_usage_names_the_model(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    deployment(kubectl, namespace, replicas=2)
    with_model(operator_factory, llm)
    llm.script(
        tool_calls(call("k8s_get", {"kind": "pods", "namespace": namespace})),
        text("web runs 2 pods, both Running."),
    )
    first_request = f"how many web pods run in {namespace}?"
    apply(kubectl, namespace, task_doc("first", first_request), user="bob")
    first = wait_phase(kubectl, namespace, "first", "Succeeded")
    assert first["usage"]["model"] == MODEL
    assert first["usage"]["calls"] == 2

    llm.script(text("Both web pods are ready."))
    apply(kubectl, namespace, task_doc("second", "and are they ready?", followUpOf="first"), user="bob")
    second = wait_phase(kubectl, namespace, "second", "Succeeded")
    assert second["summary"] == "Both web pods are ready."
    told = user_turn(llm.requests[2])
    assert f"Request: {first_request}" in told
    assert "Answer: web runs 2 pods, both Running." in told
    assert "Ended: Succeeded (Answered)" in told
    assert "(1 read-only call(s))" in told
    assert told.index("--- AgentTask first") < told.index("Request: and are they ready?")
    planning = [e["message"] for e in events(kubectl, namespace, "second") if e["reason"] == "Planning"]
    assert planning == ["planning the request of bob, a follow-up of AgentTask first (Succeeded)"]
    wide = kubectl("-n", namespace, "get", "agenttask", "second", "-o", "wide").stdout.splitlines()
    assert "FOLLOW-UP-OF" in wide[0].split()
    assert "first" in wide[1].split()

    # A follow-up of a follow-up sees both earlier turns, oldest first; spec.model names its own model.
    llm.script(text("All 2 web pods are Running and ready."))
    doc = task_doc("third", "sum it up", followUpOf="second", model="openai/another-model")
    apply(kubectl, namespace, doc, user="bob")
    third = wait_phase(kubectl, namespace, "third", "Succeeded")
    assert third["usage"]["model"] == "openai/another-model"
    assert llm.requests[3]["model"] == "another-model"
    told = user_turn(llm.requests[3])
    assert told.index(first_request) < told.index("and are they ready?") < told.index("Request: sum it up")
    assert "Answer: Both web pods are ready." in told
    assert len(told.split("\n\nRequest: sum it up")[0]) <= FOLLOW_UP_CONTEXT_CAP


def test_a_follow_up_is_refused_before_any_model_call_unless_readable_existing_and_finished(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    llm: FakeLLM,
) -> None:
    """carol may create tasks and read only her own; bob's earlier task is never shown to her model. A
    missing task and one still awaiting approval are refused too, each saying what to do."""
    creates_and_reads_only(kubectl, namespace, "carol", "carol-next")
    deployment(kubectl, namespace, replicas=2)
    with_model(operator_factory, llm)
    llm.script(text("The secret of web: it runs 2 pods."))
    apply(kubectl, namespace, task_doc("bobs", "what is special about web?"), user="bob")
    wait_phase(kubectl, namespace, "bobs", "Succeeded")
    llm.script(
        tool_calls(scale(namespace, "web", 3)),
        text("Proposed: scale web to 3."),
    )
    apply(kubectl, namespace, task_doc("waiting", f"scale web in {namespace} to 3"), user="bob")
    wait_phase(kubectl, namespace, "waiting", "AwaitingApproval")
    asked = len(llm.requests)

    apply(kubectl, namespace, task_doc("carol-next", "tell me more", followUpOf="bobs"), user="carol")
    forbidden = wait_phase(kubectl, namespace, "carol-next", "Failed")
    ready = condition(forbidden, "Ready")
    assert ready["reason"] == "FollowUpForbidden"
    assert ready["message"].startswith(
        f"spec.followUpOf: carol may not get agenttasks.bosun.dev bobs in namespace {namespace}, so Bosun "
        "will not show that task to the model on their behalf."
    )
    assert "bosun-requester" in ready["message"]
    assert "secret" not in json.dumps(forbidden)

    apply(kubectl, namespace, task_doc("ghost-next", "and then?", followUpOf="ghost"), user="bob")
    missing = condition(wait_phase(kubectl, namespace, "ghost-next", "Failed"), "Ready")
    assert missing["reason"] == "FollowUpNotFound"
    assert missing["message"].startswith(
        f"spec.followUpOf: AgentTask ghost not found in namespace {namespace};"
    )

    apply(kubectl, namespace, task_doc("too-soon", "and then?", followUpOf="waiting"), user="bob")
    unfinished = condition(wait_phase(kubectl, namespace, "too-soon", "Failed"), "Ready")
    assert unfinished["reason"] == "FollowUpNotFinished"
    assert unfinished["message"].startswith(
        f"spec.followUpOf: AgentTask waiting in namespace {namespace} is AwaitingApproval, not finished;"
    )
    assert len(llm.requests) == asked, "no model call for a refused follow-up"
    for name in ("carol-next", "ghost-next", "too-soon"):
        assert "model" not in status_of(kubectl, namespace, name)["usage"]
    assert status_of(kubectl, namespace, "waiting")["phase"] == "AwaitingApproval"


def test_replay_and_follow_up_are_refused_together_at_admission(
    kubectl: Any, namespace: str, bosun_installed: None, bind_role: Any
) -> None:
    bind_role(namespace, "bob", USER_ROLE)
    doc = task_doc("both", "again", replayOf="a", followUpOf="b")
    result: dict[str, Any] = {}

    def refused() -> bool:
        """A server-side dry run: judged like a create, and nothing is stored while the CRD settles."""
        proc = kubectl(
            "-n",
            namespace,
            "create",
            "--dry-run=server",
            "-f",
            "-",
            input=json.dumps(doc),
            user="bob",
            check=False,
        )
        result["stderr"] = proc.stderr
        return proc.returncode != 0

    eventually("the CRD's rule to be enforced", refused, timeout=30)
    assert FOLLOW_UP_EXCLUSIVE in result["stderr"], result["stderr"]
    assert "spec: Invalid value" in result["stderr"], result["stderr"]
