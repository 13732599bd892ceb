"""The planner's bounds: model calls per task and bytes per model request.

Real LiteLLM over HTTP against the scripted LLM double and the real tool server in-process; the calls used
here are answered before any tool touches a cluster (refusals and load_toolset), so no cluster is needed.
What is measured is what the double received: the number of requests and the bytes of each.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from bosun.planner import ModelSettings, PlanningContext, judge_outcome, propose_plan
from bosun.planner.bounds import COMPACTED_CAP, REQUEST_BUDGET, TOOL_ARGUMENTS_CAP, TOOL_RESULT_CAP
from bosun.planner.graph import MAX_REFUSED_TURNS
from bosun.planner.tool_calls import MAX_CALLS_PER_TURN
from bosun.planner.toolsets import LOAD_TOOLSET
from bosun.planner.types import MODEL_CALLS_PER_ITERATION
from bosun.ports.gateway import ToolGateway
from bosun_tools.identity import Identity
from bosun_tools.settings import ToolSettings

from tests.fakes.llm import FakeLLM, call, text, tool_calls

TEN_MB = 10 * 1024 * 1024
MARKER_ROOM = 64
"""Bytes a capped text may exceed its cap by: the ``…[truncated N bytes]`` marker."""
FOREVER = tool_calls(call(LOAD_TOOLSET, {"toolset": "helm"}))
"""A model that never stops calling tools (and is never refused, so only the budget stops it)."""


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings())
    yield gw
    await gw.aclose()


def model(fake: FakeLLM, **overrides: Any) -> ModelSettings:
    return ModelSettings(**{"model": "openai/fake", "api_base": fake.url, "retry_backoff": 0.01, **overrides})


def ctx(**overrides: Any) -> PlanningContext:
    base: dict[str, Any] = {
        "request": "scale web in shop to 5",
        "namespace": "shop",
        "target_namespaces": ["shop"],
        "identity": Identity("alice", ("sre",)),
    }
    return PlanningContext(**{**base, **overrides})


def request_bytes(request: dict[str, Any]) -> int:
    """The planner's measure of one request: the JSON of its messages and tool definitions."""
    return len(json.dumps(request["messages"])) + len(json.dumps(request.get("tools", [])))


def tool_replies(request: dict[str, Any]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


def assert_within_budget(fake: FakeLLM) -> None:
    assert fake.requests, "the model was never asked"
    for number, (request, size) in enumerate(zip(fake.requests, fake.request_sizes, strict=True), 1):
        assert request_bytes(request) <= REQUEST_BUDGET, f"request {number} measured above the budget"
        assert size <= REQUEST_BUDGET, f"request {number} was {size} bytes on the wire"


# ----- model calls ------------------------------------------------------------------------------------------


async def test_a_pass_stops_at_the_tasks_remaining_budget(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.load({"replies": [], "default": FOREVER})
    result = await propose_plan(ctx(model_calls_left=2), gateway, model(fake_llm, max_turns=8))
    assert len(fake_llm.requests) == 2
    assert result.usage.calls == 2
    assert (result.outcome, result.failure) == ("failed", "planning")
    assert result.error is not None
    assert "model-call budget ran out after 2 model call(s)" in result.error
    assert f"maxIterations 3 x {MODEL_CALLS_PER_ITERATION} = 18 model calls" in result.error


async def test_max_turns_still_bounds_one_pass(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.load({"replies": [], "default": FOREVER})
    result = await propose_plan(ctx(model_calls_left=50), gateway, model(fake_llm, max_turns=3))
    assert len(fake_llm.requests) == 3
    assert result.error is not None
    assert "did not finish within 3 turns" in result.error


async def test_a_task_never_makes_more_calls_than_its_budget(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    """The evaluator's case: maxIterations 5 allowed 8 calls per pass. Replanning as the operator does
    (remaining = maxIterations x 6 - calls so far), a model that never finishes gets 30 calls in all."""
    fake_llm.load({"replies": [], "default": FOREVER})
    max_iterations, spent = 5, 0
    for iteration in range(1, max_iterations + 1):
        left = max_iterations * MODEL_CALLS_PER_ITERATION - spent
        result = await propose_plan(
            ctx(iteration=iteration, max_iterations=max_iterations, model_calls_left=left),
            gateway,
            model(fake_llm),
        )
        spent += result.usage.calls
        assert result.outcome == "failed"
    assert spent == len(fake_llm.requests) == max_iterations * MODEL_CALLS_PER_ITERATION
    assert result.error is not None
    assert "maxIterations 5 x 6 = 30 model calls for the whole task" in result.error


async def test_no_model_call_once_the_budget_is_spent(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    result = await propose_plan(ctx(model_calls_left=0), gateway, model(fake_llm))
    assert fake_llm.requests == []
    assert (result.outcome, result.failure, result.usage.calls) == ("failed", "planning", 0)
    assert result.error is not None
    assert "model-call budget is spent" in result.error
    assert "no model call was made" in result.error


async def test_the_judge_makes_no_call_once_the_budget_is_spent(fake_llm: FakeLLM) -> None:
    verdict = await judge_outcome(ctx(model_calls_left=0), "deployment web: 5/5 available", model(fake_llm))
    assert fake_llm.requests == []
    assert verdict.satisfied
    assert verdict.usage.calls == 0
    assert verdict.reason.startswith("objective checks passed: deployment web: 5/5 available")
    assert "no model judgement" in verdict.reason
    assert "maxIterations 3 x 6 = 18" in verdict.reason


# ----- bytes per request ------------------------------------------------------------------------------------


@pytest.mark.parametrize("letter", ["A", "é"], ids=["ascii", "two-byte"])
async def test_a_10_mb_refused_argument_and_tool_result_stay_bounded(
    fake_llm: FakeLLM, gateway: ToolGateway, letter: str
) -> None:
    # Not a valid name, so it is refused (and echoed) before it could run; caps count UTF-8 bytes.
    huge = letter * (TEN_MB // len(letter.encode()))
    fake_llm.script(
        tool_calls(
            # The refusal echoes the 10 MB name, and the model's own message carries it too.
            call("k8s_get", {"kind": "deployment", "name": huge, "namespace": "shop"}, id="get"),
            # A 10 MB tool result: load_toolset's answer names the toolset asked for.
            call(LOAD_TOOLSET, {"toolset": huge}, id="load"),
        ),
        text("Those calls were refused."),
    )
    result = await propose_plan(ctx(), gateway, model(fake_llm))
    assert result.outcome == "answer"
    assert_within_budget(fake_llm)
    second = fake_llm.requests[1]
    replies = tool_replies(second)
    for key in ("get", "load"):
        assert replies[key].startswith("refused, nothing ran:")
        assert len(replies[key].encode()) <= TOOL_RESULT_CAP + MARKER_ROOM
        assert replies[key].endswith(" bytes]")
        assert "…[truncated " in replies[key]
    [assistant] = [m for m in second["messages"] if m["role"] == "assistant"]
    for sent in assistant["tool_calls"]:
        arguments = sent["function"]["arguments"]
        assert len(arguments.encode()) <= 2 * (TOOL_ARGUMENTS_CAP + MARKER_ROOM)
        assert "…[truncated " in json.loads(arguments)["truncated_arguments"]
    assert all(len(r.text.encode()) <= TOOL_RESULT_CAP + MARKER_ROOM for r in result.investigation)


async def test_older_turns_are_compacted_to_stay_within_the_budget(
    fake_llm: FakeLLM, gateway: ToolGateway
) -> None:
    """Each turn carries the most that caps allow (every call's arguments and refusal cut at their cap);
    three such turns exceed the budget, so the oldest are compacted rather than sent."""
    big = "B" * (64 * 1024)

    def turn(number: int) -> dict[str, Any]:
        calls = [
            call("k8s_get", {"kind": "deployment", "name": big, "namespace": "shop"}, id=f"t{number}c{i}")
            for i in range(MAX_CALLS_PER_TURN)
        ]
        return tool_calls(*calls, content="x" * TEN_MB if number == 1 else "still looking")

    fake_llm.script(*[turn(n) for n in range(1, MAX_REFUSED_TURNS + 1)])
    result = await propose_plan(ctx(), gateway, model(fake_llm))
    assert len(fake_llm.requests) == MAX_REFUSED_TURNS
    assert result.outcome == "failed"
    assert_within_budget(fake_llm)
    last = fake_llm.requests[-1]
    first_turn = tool_replies(last)["t1c0"]
    assert len(first_turn.encode()) <= COMPACTED_CAP + MARKER_ROOM
    assert "…[truncated " in first_turn
    latest = tool_replies(last)[f"t2c{MAX_CALLS_PER_TURN - 1}"]
    assert len(latest.encode()) > COMPACTED_CAP + MARKER_ROOM, "the latest turn is kept whole"
    system, request = last["messages"][:2]
    assert (system["role"], request["role"]) == ("system", "user")
    assert "scale web in shop to 5" in request["content"]


async def test_a_request_that_cannot_fit_is_never_sent(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    """A tool name is sent back as the model wrote it (it is the call's identity), so a model that writes
    a huge one leaves nothing to compact: the pass stops rather than send a request above the bound."""
    fake_llm.script(tool_calls(call("x" * REQUEST_BUDGET, {}, id="named")), text("never asked"))
    result = await propose_plan(ctx(), gateway, model(fake_llm))
    assert len(fake_llm.requests) == 1
    assert (result.outcome, result.failure) == ("failed", "planning")
    assert result.error is not None
    assert f"the next model request would exceed {REQUEST_BUDGET} bytes" in result.error


# ----- whole plans (what needs no cluster; the dry-run cases are in tests/integration) ----------------------


async def test_a_refused_change_fails_the_plan_and_the_model_is_told(
    fake_llm: FakeLLM, gateway: ToolGateway
) -> None:
    scale = {"kind": "deployment", "name": "web", "namespace": "prod", "replicas": 5}
    fake_llm.script(
        tool_calls(call("k8s_scale", scale, id="scale")),
        text("I cannot scale web in prod."),
    )
    result = await propose_plan(ctx(), gateway, model(fake_llm))
    assert (result.outcome, result.failure, result.steps) == ("failed", "planning", [])
    assert result.error is not None
    assert (
        "1 change(s) of the model's plan could not be previewed, so nothing of it is proposed" in result.error
    )
    assert (
        'k8s_scale {"kind": "deployment", "name": "web", "namespace": "prod", "replicas": 5}' in result.error
    )
    assert "outside this task's targetNamespaces" in result.error
    assert result.summary.endswith("The model's last answer: I cannot scale web in prod.")
    reply = tool_replies(fake_llm.requests[1])["scale"]
    assert reply.startswith("refused, nothing ran:")
    assert "Nothing of your plan is proposed" in reply
    assert "call EVERY mutating tool of the plan again" in reply
