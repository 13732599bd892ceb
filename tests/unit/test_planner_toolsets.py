"""The tool definitions the model sees: lean schemas, toolsets offered on demand, and what a turn costs.

These use the real tool server in-process: listing tools needs no cluster. What a turn costs is measured
on the requests the planner actually sends (to the scripted LLM double), so the budget cannot drift from
what a model receives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from bosun.planner import ModelSettings, PlanningContext, propose_plan
from bosun.planner.toolsets import (
    LOAD_TOOLSET,
    TOOLSET_BLURBS,
    TURN_BUDGET,
    lean_schema,
    offered_toolsets,
    openai_tools,
)
from bosun.ports.gateway import ToolGateway
from bosun_tools.identity import Identity
from bosun_tools.registry import group_of
from bosun_tools.settings import ToolSettings

from tests.fakes.llm import FakeLLM, call, text, tool_calls

SYSTEM_PROMPT_BUDGET = 3_000
"""Characters of the system prompt, which every model turn carries too."""


@pytest.fixture
async def gateway() -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings())
    yield gw
    await gw.aclose()


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def test_lean_schema_drops_noise_and_collapses_optional() -> None:
    schema = {
        "type": "object",
        "title": "Args",
        "additionalProperties": False,
        "$defs": {"Mode": {"title": "Mode", "type": "string", "enum": ["a", "b"]}},
        "properties": {
            "name": {"title": "Name", "type": "string", "pattern": "^[a-z]+$", "maxLength": 63},
            "namespace": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Ns"},
            "mode": {"$ref": "#/$defs/Mode", "default": "a"},
            "title": {"type": "string", "description": "A property may be called title. Second sentence."},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "tail": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 200},
            "job": {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "e.g. [a]"},
        },
        "required": ["name"],
    }
    assert lean_schema(schema) == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "title": {"type": "string", "description": "A property may be called title."},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "tail": {"type": "integer"},
            "job": {"type": "array", "items": {"type": "string"}, "description": "e.g. [a]"},
        },
        "required": ["name"],
    }


async def test_default_turn_is_read_only_kubernetes_and_lean(gateway: ToolGateway) -> None:
    tools = await openai_tools(gateway, ["kubernetes"])
    names = [t["function"]["name"] for t in tools]
    assert {"k8s_get", "k8s_logs", LOAD_TOOLSET} <= set(names)
    assert all(gateway.is_read_only(n) for n in names if n != LOAD_TOOLSET)
    assert "k8s_scale" not in names
    assert not any(n.startswith("helm_") for n in names)
    encoded = json.dumps(tools)
    for noise in ('"title"', '"additionalProperties"', '"pattern"', '{"type": "null"}', '"default"'):
        assert noise not in encoded
    load = next(t for t in tools if t["function"]["name"] == LOAD_TOOLSET)
    menu = load["function"]["description"]
    for toolset in (await offered_toolsets(gateway))[1:]:
        assert f"{toolset} ({TOOLSET_BLURBS[toolset]})" in menu
    assert "kubernetes (" not in menu


async def test_toolsets_load_on_demand(gateway: ToolGateway) -> None:
    toolsets = await offered_toolsets(gateway)
    assert toolsets[0] == "kubernetes"
    everything = await openai_tools(gateway, toolsets)
    assert LOAD_TOOLSET not in [t["function"]["name"] for t in everything]
    with_workloads = [t["function"]["name"] for t in await openai_tools(gateway, ["kubernetes", "workloads"])]
    assert {"k8s_get", "k8s_scale", "k8s_set_image", "k8s_rollout_restart"} <= set(with_workloads)
    assert all(group_of(n) in ("kubernetes", "workloads") for n in with_workloads if n != LOAD_TOOLSET)


async def test_every_toolset_is_described_to_the_model(gateway: ToolGateway) -> None:
    """A toolset without a blurb would be offered by name alone; a blurb without a toolset is stale."""
    assert set(TOOLSET_BLURBS) == set((await offered_toolsets(gateway))[1:])


def context() -> PlanningContext:
    return PlanningContext("restart web in shop", "shop", ["shop"], Identity("alice", ("sre",)))


def model(fake: FakeLLM) -> ModelSettings:
    return ModelSettings(model="openai/fake", api_base=fake.url, retry_backoff=0.01)


def tool_definitions(request: dict[str, Any]) -> int:
    return len(json.dumps(request["tools"]))


async def test_every_turn_stays_within_the_budget(
    gateway: ToolGateway, fake_llm: FakeLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the model is sent besides the conversation, in the default turn and with each toolset loaded
    alone, measured on the planner's own requests (JSON characters, as ``make bench`` prints them)."""
    toolsets = (await offered_toolsets(gateway))[1:]
    for toolset in toolsets:
        fake_llm.script(tool_calls(call(LOAD_TOOLSET, {"toolset": toolset})), text("done"))
        assert (await propose_plan(context(), gateway, model(fake_llm))).outcome == "answer"
    default, system = fake_llm.requests[0], fake_llm.requests[0]["messages"][0]
    sizes = {"system prompt": len(system["content"]), "tools, default turn": tool_definitions(default)}
    for index, toolset in enumerate(toolsets):
        loaded = fake_llm.requests[2 * index + 1]
        assert {t["function"]["name"] for t in loaded["tools"]} >= {
            t["function"]["name"] for t in await openai_tools(gateway, ["kubernetes", toolset])
        }
        sizes[f"tools, {toolset} loaded"] = tool_definitions(loaded)
    with capsys.disabled():
        print("\nper model turn, besides the conversation (JSON characters):")
        for label, size in sizes.items():
            print(f"  {label}: {size}")
    assert system["role"] == "system"
    assert sizes.pop("system prompt") <= SYSTEM_PROMPT_BUDGET
    over = {label: size for label, size in sizes.items() if size > TURN_BUDGET}
    assert not over, f"over the {TURN_BUDGET}-character budget: {over}"
