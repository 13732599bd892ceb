"""The safety registry, argument validation, timeouts and the schemas the tool server serves.

Listing tools and validating arguments needs no cluster: FastMCP validates before a tool body runs, so
these use the real server in-process. Calls that reach Kubernetes are in tests/integration.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bosun_tools.client.kube import KubeClient, KubeError
from bosun_tools.errors import ToolError as OwnToolError
from bosun_tools.identity import Identity
from bosun_tools.local import LocalTools
from bosun_tools.output import ToolOutput
from bosun_tools.registry import (
    INTERNAL,
    MUTATING_TAG,
    READ_ONLY_TAG,
    REGISTRY,
    UNKNOWN_TOOL,
    ToolContext,
    ToolRegistry,
    ToolSpec,
    current,
    describe_kube_error,
    input_schema,
    safety_of,
)
from bosun_tools.server import build_server, register
from bosun_tools.settings import ToolSettings
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from kubernetes import client as k8s_client

PREFIXES = {
    "kubernetes": "k8s_",
    "helm": "helm_",
    "rollouts": "rollouts_",
    "jenkins": "jenkins_",
    "internal": "bosun_",
}


@pytest.fixture
async def client() -> AsyncIterator[Client[Any]]:
    async with Client(build_server(ToolSettings(toolsets=("kubernetes",)))) as c:
        yield c


def test_safety_facts_of_known_and_unknown_tools() -> None:
    assert safety_of("k8s_get").read_only
    assert safety_of("k8s_logs").idempotent
    delete = safety_of("k8s_delete")
    assert (delete.read_only, delete.destructive, delete.toolset) == (False, True, "kubernetes")
    exec_ = safety_of("k8s_exec")
    assert (exec_.read_only, exec_.destructive) == (False, False)
    assert safety_of("k8s_rollout_restart").idempotent is False
    assert safety_of("no_such_tool") == UNKNOWN_TOOL
    assert (UNKNOWN_TOOL.read_only, UNKNOWN_TOOL.destructive, UNKNOWN_TOOL.idempotent) == (False, True, False)


def test_every_tool_is_prefixed_by_its_toolset() -> None:
    safety_of("k8s_get")  # loads every toolset module
    for spec in [*REGISTRY.specs(), *REGISTRY.specs(INTERNAL)]:
        assert spec.name.startswith(PREFIXES[spec.safety.toolset]), spec.name
        assert spec.description, spec.name
        assert len(spec.description) < 160, spec.name


async def test_mcp_annotations_and_tags_follow_the_registry(client: Client[Any]) -> None:
    listed = await client.list_tools()
    internal = {spec.name for spec in REGISTRY.specs(INTERNAL)}
    assert {tool.name for tool in listed} >= internal  # served whatever toolsets are configured
    tools = [tool for tool in listed if tool.name not in internal]
    assert len(tools) == len(REGISTRY.specs("kubernetes"))
    for tool in tools:
        safety = safety_of(tool.name)
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is safety.read_only
        assert tool.annotations.destructive_hint is safety.destructive
        tags = set(tool.meta["fastmcp"]["tags"]) if tool.meta else set()
        assert tags == {"kubernetes", READ_ONLY_TAG if safety.read_only else MUTATING_TAG}


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("k8s_delete", {"kind": "pod", "name": "foo --all", "namespace": "shop"}),
        ("k8s_get", {"kind": "pod", "name": "foo", "namespace": "-n kube-system"}),
        ("k8s_get", {"kind": "pod --all", "name": "foo", "namespace": "shop"}),
        ("k8s_scale", {"kind": "deployment", "name": "Web", "namespace": "shop", "replicas": 3}),
        ("k8s_scale", {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 100000}),
        ("k8s_logs", {"name": "web", "namespace": "shop", "tail": 0}),
        (
            "k8s_set_image",
            {"kind": "deployment", "name": "w", "namespace": "s", "container": "c", "image": "-x y"},
        ),
        ("k8s_get", {"kind": "pods", "label_selector": "app=web;rm -rf /"}),
        ("k8s_get", {"kind": "pods", "output": "everything"}),
        ("k8s_exec", {"name": "web", "namespace": "shop", "command": []}),
        (
            "k8s_patch",
            {"kind": "deployment", "name": "web", "namespace": "shop", "patch": "{}", "patch_type": "x"},
        ),
        ("k8s_get", {"kind": "pod", "name": "foo", "namespace": "shop", "unknown": True}),
    ],
)
async def test_invalid_arguments_are_validation_errors(
    client: Client[Any], tool: str, args: dict[str, Any]
) -> None:
    with pytest.raises(ToolError, match="validation error"):
        await client.call_tool(tool, args)
    # The operator's in-process calls refuse the same arguments before the tool runs (a tool reaching
    # the cluster here would fail on the closed port instead, with another message).
    local = LocalTools(ToolSettings(toolsets=("kubernetes",), kubeconfig="/nonexistent"))
    with pytest.raises(OwnToolError, match=f"^invalid arguments for {tool}: "):
        await local.call(tool, args, identity=Identity("alice", ()), preview=False)


async def test_in_process_calls_are_offered_exactly_the_schemas_the_mcp_server_serves() -> None:
    """One source for both ways of calling a tool: every tool a model may be offered has, in the
    operator's process, the schema and description the MCP server lists."""
    local = LocalTools(ToolSettings())
    async with Client(build_server(ToolSettings())) as every:
        listed = {t.name: t for t in await every.list_tools()}
    offered = local.offered()
    assert {spec.name for spec in offered} == {n for n in listed if safety_of(n).toolset != INTERNAL}
    for spec in offered:
        assert input_schema(spec) == listed[spec.name].input_schema, spec.name
        assert spec.description == listed[spec.name].description, spec.name


async def test_served_schemas_declare_that_undeclared_arguments_are_refused() -> None:
    """A model's extra argument must fail validation in every toolset, and the schema must say so."""
    async with Client(build_server(ToolSettings())) as every:
        tools = await every.list_tools()
        served = {s.name for s in [*REGISTRY.specs(), *REGISTRY.specs(INTERNAL)]}
        assert {t.name for t in tools} == served
        for tool in tools:
            assert tool.input_schema["additionalProperties"] is False, tool.name
            assert '"title"' not in json.dumps(tool.input_schema), tool.name
        extras = [
            ("helm_get", {"namespace": "shop", "kube_context": "prod"}),
            ("jenkins_get", {"url": "http://evil.example/"}),
            ("rollouts_get", {"name": "web", "namespace": "shop", "force": True}),
        ]
        for name, args in extras:
            with pytest.raises(ToolError, match=r"validation error(.|\n)*Unexpected keyword argument"):
                await every.call_tool(name, args)


def _offline_context(spec: ToolSpec) -> ToolContext:
    """A context whose client points at a closed port: the tools below never make a request."""
    kube = KubeClient.from_configuration(k8s_client.Configuration(host="http://127.0.0.1:9"))
    return ToolContext(kube, kube, Identity("alice", ("sre",)), False, ToolSettings(), spec.name, kube)


async def test_a_tool_exceeding_its_timeout_is_cancelled_with_a_clear_error() -> None:
    registry = ToolRegistry()
    never = asyncio.Event()

    @registry.tool(toolset="kubernetes", read_only=True, timeout=0.2)
    async def k8s_slow() -> ToolOutput:
        """Waits for an event nobody sets."""
        await never.wait()
        return ToolOutput(text="unreachable")

    @registry.tool(toolset="kubernetes", read_only=True, timeout=5)
    async def k8s_who() -> ToolOutput:
        """Reports the identity of the call."""
        ctx = current()
        return ToolOutput(text=f"{ctx.identity} {ctx.tool}")

    mcp = FastMCP("t")
    register(mcp, registry.specs(), _offline_context)
    async with Client(mcp) as c:
        with pytest.raises(ToolError, match=r"k8s_slow timed out after 0\.2s"):
            await c.call_tool("k8s_slow", {})
        result = await c.call_tool("k8s_who", {})
    assert result.structured_content is not None
    assert result.structured_content["text"] == "Identity(user='alice', groups=('sre',)) k8s_who"


def test_kube_errors_become_messages_naming_object_identity_and_next_step() -> None:
    alice = Identity("alice", ("sre",))
    not_found = KubeError(404, "NotFound", 'deployments.apps "web" not found')
    message = describe_kube_error(not_found, "k8s_scale", {"namespace": "shop"}, alice)
    assert message.startswith('NotFound: deployments.apps "web" not found in namespace shop')
    forbidden = KubeError(403, "Forbidden", 'User "alice" cannot patch resource "deployments/scale"')
    assert "(as alice)" in describe_kube_error(forbidden, "k8s_scale", {}, alice)
    invalid = KubeError(422, "Invalid", "spec.replicas: must be >= 0")
    assert "fix the arguments of k8s_patch" in describe_kube_error(invalid, "k8s_patch", {}, None)


def test_registering_a_second_tool_with_the_same_name_fails() -> None:
    registry = ToolRegistry()

    async def first() -> ToolOutput:
        return ToolOutput(text="1")

    async def second() -> ToolOutput:
        return ToolOutput(text="2")

    registry.tool(toolset="kubernetes", name="k8s_x")(first)
    with pytest.raises(ValueError, match="registered twice"):
        registry.tool(toolset="kubernetes", name="k8s_x")(second)
