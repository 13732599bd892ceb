"""The planning loop's gate, against the scripted LLM double and the real tool server in-process.

Everything here is refused, failed or loaded before any tool touches a cluster, so no cluster is needed;
the flows that run tools against Kubernetes (and scope decisions that need API discovery, such as
cluster-scoped kinds) are in tests/integration/test_planner.py.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from bosun.core.scope import Resource
from bosun.planner import ModelSettings, PlanningContext, propose_plan
from bosun.planner.graph import MAX_REFUSED_TURNS
from bosun.planner.tool_calls import MAX_CALLS_PER_TURN
from bosun.planner.toolsets import LOAD_TOOLSET
from bosun.ports.gateway import ToolGateway, ToolServerUnavailable
from bosun.ports.mcp_tools import over_http
from bosun_tools.identity import Identity
from bosun_tools.settings import ToolSettings

from tests.fakes.llm import FakeLLM, call, error, text, tool_calls

SCALE = {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


async def discover(kind: str, api_version: str | None) -> Resource | None:
    """API discovery without a cluster: the one kind these calls reach past their argument checks."""
    return (
        Resource("", "v1", "Node", "nodes", namespaced=False)
        if (kind, api_version) == ("nodes", "v1")
        else None
    )


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings(), discover=discover)
    yield gw
    await gw.aclose()


def model(fake: FakeLLM, **overrides: Any) -> ModelSettings:
    return ModelSettings(**{"model": "openai/fake", "api_base": fake.url, "retry_backoff": 0.01, **overrides})


def ctx(request: str = "scale web in shop to 5", **overrides: Any) -> PlanningContext:
    base: dict[str, Any] = {
        "request": request,
        "namespace": "shop",
        "target_namespaces": ["shop"],
        "identity": Identity("alice", ("sre",)),
    }
    return PlanningContext(**{**base, **overrides})


def tool_names(request: dict[str, Any]) -> set[str]:
    return {t["function"]["name"] for t in request.get("tools", [])}


def tool_replies(request: dict[str, Any]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


async def test_bad_calls_are_fed_back_and_never_proposed(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.script(
        tool_calls(call(LOAD_TOOLSET, {"toolset": "workloads"}, id="load")),
        tool_calls(
            call("kubectl_nuke", {"all": True}, id="unknown"),
            call("k8s_scale", {**SCALE, "name": "web --all"}, id="inject"),
            call("k8s_scale", {**SCALE, "namespace": "prod"}, id="scope"),
            call("k8s_scale", '{"kind": "deployment", "name": ', id="json"),
        ),
        text("I could not propose a valid change."),
    )
    result = await propose_plan(ctx(), gateway, model(fake_llm))
    # Three changes of the plan could not be previewed; the made-up tool is refused but names no change.
    assert (result.outcome, result.failure) == ("failed", "planning")
    assert result.steps == []
    assert result.error is not None
    assert "3 change(s) of the model's plan could not be previewed" in result.error
    assert "kubectl_nuke" not in result.error
    assert result.summary.endswith("The model's last answer: I could not propose a valid change.")
    refused = {r.tool: r.text for r in result.investigation}
    assert not any(r.ok for r in result.investigation)
    assert "unknown tool 'kubectl_nuke'" in refused["kubectl_nuke"]
    first, second, third = fake_llm.requests
    assert "k8s_scale" not in tool_names(first)
    assert "k8s_scale" in tool_names(second)
    assert tool_replies(second)["load"] == "Toolset workloads is available from your next turn."
    replies = tool_replies(third)
    assert replies["unknown"].startswith("refused, nothing ran: unknown tool 'kubectl_nuke'")
    assert "invalid arguments for k8s_scale: name:" in replies["inject"]
    assert "namespace prod is outside this task's targetNamespaces [shop]" in replies["scope"]
    assert "not valid JSON" in replies["json"]
    assert all("Nothing of your plan is proposed" in replies[k] for k in ("inject", "scope", "json"))
    assert result.usage.calls == 3
    assert result.usage.prompt_tokens > 0
    assert result.usage.completion_tokens > 0


async def test_refusals_are_bounded(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.script(*[tool_calls(call("made_up_tool", {"n": i})) for i in range(MAX_REFUSED_TURNS)])
    result = await propose_plan(ctx(), gateway, model(fake_llm))
    assert result.outcome == "failed"
    assert result.error is not None
    assert f"refused in {MAX_REFUSED_TURNS} turns" in result.error
    assert len(fake_llm.requests) == MAX_REFUSED_TURNS
    assert len(result.investigation) == MAX_REFUSED_TURNS


async def test_turns_are_bounded(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.script(*[tool_calls(call(LOAD_TOOLSET, {"toolset": "helm"}))] * 3)
    result = await propose_plan(ctx(), gateway, model(fake_llm, max_turns=3))
    assert result.outcome == "failed"
    assert result.error is not None
    assert "did not finish within 3 turns" in result.error
    assert result.failure == "planning"
    assert len(fake_llm.requests) == 3
    assert "helm_rollback" in tool_names(fake_llm.requests[1])


async def test_unknown_toolset_is_refused(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.script(tool_calls(call(LOAD_TOOLSET, {"toolset": "root-shell"}, id="t")), text("ok"))
    result = await propose_plan(ctx(), gateway, model(fake_llm))
    assert "unknown toolset 'root-shell'" in tool_replies(fake_llm.requests[1])["t"]
    assert result.outcome == "answer"


async def test_model_failures_end_in_failed_with_what_to_fix(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.script(error(500, "overloaded"), error(503, "still overloaded"), error(500, "gave up"))
    result = await propose_plan(ctx(), gateway, model(fake_llm, max_retries=2))
    assert result.outcome == "failed"
    assert result.failure == "model"
    assert len(fake_llm.requests) == 3
    assert result.error is not None
    assert "openai/fake" in result.error
    assert "HTTP 500" in result.error
    assert "after 3 attempts" in result.error
    assert result.summary.startswith("Planning failed:")


async def test_model_recovers_after_retries(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.script(error(500, "blip"), error(429, "slow down", retry_after=0), text("Nothing to change."))
    result = await propose_plan(ctx("is anything wrong?"), gateway, model(fake_llm, max_retries=3))
    assert (result.outcome, result.summary, result.usage.calls) == ("answer", "Nothing to change.", 1)


async def test_context_is_rebuilt_from_history(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    fake_llm.script(text("Done already."))
    history = ["s1 k8s_scale web replicas 5: succeeded", "verification: 5/5 available"]
    await propose_plan(ctx(iteration=2, history=history), gateway, model(fake_llm))
    system, user = fake_llm.requests[0]["messages"]
    assert system["role"] == "system"
    assert "does NOT run now" in system["content"]
    assert "Planning iteration 2 of 3." in user["content"]
    assert all(line in user["content"] for line in history)
    assert "Target namespaces (the only ones you may touch): shop" in user["content"]


async def test_tool_server_unavailable_propagates(fake_llm: FakeLLM) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gw = over_http(f"http://127.0.0.1:{port}/mcp", "token")
    try:
        with pytest.raises(ToolServerUnavailable):
            await propose_plan(ctx(), gw, model(fake_llm))
        with pytest.raises(ToolServerUnavailable):
            await propose_plan(ctx(), gw, None)
    finally:
        await gw.aclose()
    assert fake_llm.requests == []  # nothing is billed while the tools are down


async def test_one_turn_cannot_fan_out_without_bound(fake_llm: FakeLLM, gateway: ToolGateway) -> None:
    many = [call(LOAD_TOOLSET, {"toolset": "helm"}, id=f"c{i}") for i in range(MAX_CALLS_PER_TURN + 2)]
    fake_llm.script(tool_calls(*many), text("done"))
    result = await propose_plan(ctx(), gateway, model(fake_llm))
    assert result.outcome == "answer"
    replies = tool_replies(fake_llm.requests[1])
    assert len(replies) == MAX_CALLS_PER_TURN + 2  # every call gets an answer, as the API requires
    over = [replies[f"c{i}"] for i in (MAX_CALLS_PER_TURN, MAX_CALLS_PER_TURN + 1)]
    assert all(r.startswith(f"refused, nothing ran: more than {MAX_CALLS_PER_TURN} tool calls") for r in over)
