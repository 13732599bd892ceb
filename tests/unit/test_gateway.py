"""The operator's gate to the tool server: lean schemas, read-only decisions, scope, argument validation.

These use the real tool server in-process (listing tools needs no cluster) and real sockets for the
unavailable case; calls that touch Kubernetes are in tests/integration/test_planner*.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator

import pytest
from bosun.gateway import LOAD_TOOLSET, ToolGateway, ToolServerUnavailable, lean_schema, toolset_of
from bosun_tools.kube import Identity
from bosun_tools.server import ToolSettings

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
    tools = await gateway.openai_tools(["kubernetes"])
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
    groups = await gateway.toolsets()
    assert groups[0] == "kubernetes"
    everything = await gateway.openai_tools(groups)
    assert LOAD_TOOLSET not in [t["function"]["name"] for t in everything]
    with_write = [
        t["function"]["name"] for t in await gateway.openai_tools(["kubernetes", "kubernetes-write"])
    ]
    assert "k8s_scale" in with_write
    assert "k8s_get" in with_write
    assert all(toolset_of(n) in ("kubernetes", "kubernetes-write") for n in with_write if n != LOAD_TOOLSET)


async def test_each_toolset_costs_little(gateway: ToolGateway, capsys: pytest.CaptureFixture[str]) -> None:
    """The figures reported for issue 4: JSON characters of the tool definitions sent per model turn."""
    default = len(json.dumps(await gateway.openai_tools(["kubernetes"])))
    sizes = {"default turn (read-only kubernetes + load_toolset)": default}
    for group in (await gateway.toolsets())[1:]:
        loaded = len(json.dumps(await gateway.openai_tools(["kubernetes", group])))
        sizes[f"+ {group}"] = loaded - default
        assert loaded - default < DEFAULT_TURN_BUDGET, f"toolset {group} adds {loaded - default} characters"
    everything = len(json.dumps(await gateway.openai_tools(await gateway.toolsets())))
    sizes["everything loaded"] = everything
    with capsys.disabled():
        print("\ntool definitions per turn (json.dumps characters):")
        for label, size in sizes.items():
            print(f"  {label}: {size}")
    assert everything < 4 * DEFAULT_TURN_BUDGET


def test_read_only_comes_from_the_operator_registry() -> None:
    gw = ToolGateway.over_http("http://127.0.0.1:9/mcp", "unused")
    assert gw.is_read_only("k8s_get")
    assert gw.is_read_only("helm_list")
    assert not gw.is_read_only("k8s_scale")
    assert not gw.is_read_only("k8s_exec")
    assert not gw.is_read_only("no_such_tool")  # unknown = mutating


@pytest.mark.parametrize(
    ("tool", "args", "refused"),
    [
        ("k8s_scale", {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}, None),
        ("k8s_scale", {"kind": "deployment", "name": "web", "namespace": "prod", "replicas": 5}, "prod"),
        ("k8s_get", {"kind": "pods", "name": "x", "namespace": "kube-system"}, "kube-system"),
        ("k8s_list", {"kind": "nodes"}, None),
        ("k8s_cordon", {"name": "node-1"}, "cluster-scoped"),
        ("no_such_tool", {"name": "x"}, "cluster-scoped"),
        ("k8s_apply", {"manifest": "kind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\n"}, None),
        (
            "k8s_apply",
            {
                "manifest": "kind: ConfigMap\nmetadata: {name: a, namespace: shop}\n---\nkind: ConfigMap\n"
                "metadata: {name: b, namespace: other}\n",
                "namespace": "shop",
            },
            "other",
        ),
        ("k8s_apply", {"manifest": "kind: ClusterRole\nmetadata:\n  name: admin2\n"}, "cluster-scoped"),
        ("k8s_patch", {"kind": "deployment", "name": "w", "patch": {"metadata": {"namespace": "x"}}}, "x"),
    ],
)
def test_scope(tool: str, args: dict[str, object], refused: str | None) -> None:
    gw = ToolGateway.over_http("http://127.0.0.1:9/mcp", "unused")
    problem = gw.scope_error(tool, args, ["shop"])
    if refused is None:
        assert problem is None
    else:
        assert problem is not None
        assert refused in problem
        assert "targetNamespaces" in problem


async def test_validation_errors_are_actionable(gateway: ToolGateway) -> None:
    ok = {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}
    assert await gateway.validation_error("k8s_scale", ok) is None
    unknown = await gateway.validation_error("kubectl_nuke", {})
    assert unknown is not None
    assert "unknown tool 'kubectl_nuke'" in unknown
    assert "k8s_scale" in unknown
    injected = await gateway.validation_error("k8s_scale", {**ok, "name": "web --all"})
    assert injected is not None
    assert injected.startswith("invalid arguments for k8s_scale: name:")
    missing = await gateway.validation_error("k8s_scale", {"kind": "deployment", "name": "web"})
    assert missing is not None
    assert "'namespace' is a required property" in missing
    extra = await gateway.validation_error("k8s_scale", {**ok, "force": True})
    assert extra is not None
    assert "force" in extra
    too_many = await gateway.validation_error("k8s_scale", {**ok, "replicas": 100000})
    assert too_many is not None
    assert "replicas" in too_many
    not_object = await gateway.validation_error("k8s_scale", ["web"])
    assert not_object is not None
    assert "JSON object" in not_object


async def test_unreachable_server_raises_tool_server_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gw = ToolGateway.over_http(f"http://127.0.0.1:{port}/mcp", "token")
    with pytest.raises(ToolServerUnavailable, match=f"127.0.0.1:{port}"):
        await gw.openai_tools(["kubernetes"])
    with pytest.raises(ToolServerUnavailable):
        await gw.call("k8s_get", {"kind": "pods", "name": "x"}, identity=Identity("alice"))
    await gw.aclose()
