"""The tool definitions the model sees: lean schemas, and toolsets offered on demand.

These use the real tool server in-process: listing tools needs no cluster.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from bosun.planner.toolsets import LOAD_TOOLSET, lean_schema, offered_toolsets, openai_tools, toolset_of
from bosun.ports.gateway import ToolGateway
from bosun_tools.settings import ToolSettings

DEFAULT_TURN_BUDGET = 6_000


@pytest.fixture
async def gateway() -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings())
    yield gw
    await gw.aclose()


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
        },
        "required": ["name"],
    }
    assert lean_schema(schema) == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
            "title": {"type": "string", "description": "A property may be called title."},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "required": ["name"],
    }


async def test_default_turn_is_read_only_kubernetes_and_lean(gateway: ToolGateway) -> None:
    tools = await openai_tools(gateway, ["kubernetes"])
    names = [t["function"]["name"] for t in tools]
    assert "k8s_get" in names
    assert "k8s_list" in names
    assert LOAD_TOOLSET in names
    assert all(gateway.is_read_only(n) for n in names if n != LOAD_TOOLSET)
    assert "k8s_scale" not in names
    assert not any(n.startswith("helm_") for n in names)
    encoded = json.dumps(tools)
    assert len(encoded) < DEFAULT_TURN_BUDGET, f"default turn sends {len(encoded)} characters"
    for noise in ('"title"', '"additionalProperties"', '"pattern"', '{"type": "null"}', '"outputSchema"'):
        assert noise not in encoded
    load = next(t for t in tools if t["function"]["name"] == LOAD_TOOLSET)
    offered = load["function"]["parameters"]["properties"]["toolset"]["enum"]
    assert "kubernetes-write" in offered
    assert "helm" in offered
    assert "kubernetes" not in offered


async def test_toolsets_load_on_demand(gateway: ToolGateway) -> None:
    groups = await offered_toolsets(gateway)
    assert groups[0] == "kubernetes"
    everything = await openai_tools(gateway, groups)
    assert LOAD_TOOLSET not in [t["function"]["name"] for t in everything]
    with_write = [
        t["function"]["name"] for t in await openai_tools(gateway, ["kubernetes", "kubernetes-write"])
    ]
    assert "k8s_scale" in with_write
    assert "k8s_get" in with_write
    assert all(toolset_of(n) in ("kubernetes", "kubernetes-write") for n in with_write if n != LOAD_TOOLSET)


async def test_each_toolset_costs_little(gateway: ToolGateway, capsys: pytest.CaptureFixture[str]) -> None:
    """The figures README.md quotes under "Models": JSON characters of the tool definitions per model turn."""
    default = len(json.dumps(await openai_tools(gateway, ["kubernetes"])))
    sizes = {"default turn (read-only kubernetes + load_toolset)": default}
    for group in (await offered_toolsets(gateway))[1:]:
        loaded = len(json.dumps(await openai_tools(gateway, ["kubernetes", group])))
        sizes[f"+ {group}"] = loaded - default
        assert loaded - default < DEFAULT_TURN_BUDGET, f"toolset {group} adds {loaded - default} characters"
    everything = len(json.dumps(await openai_tools(gateway, await offered_toolsets(gateway))))
    sizes["everything loaded"] = everything
    with capsys.disabled():
        print("\ntool definitions per turn (json.dumps characters):")
        for label, size in sizes.items():
            print(f"  {label}: {size}")
    assert everything < 4 * DEFAULT_TURN_BUDGET
