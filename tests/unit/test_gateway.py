"""The operator's gate to the tool server: read-only decisions, scope, argument validation.

The scope rules themselves are tabled in tests/unit/test_scope.py; here is how the gateway feeds them
(the tools' defaults, API discovery, the operator's namespace).

These use the real tool server in-process (listing tools needs no cluster) and real sockets for the
unavailable case; calls that touch Kubernetes are in tests/integration/test_planner*.py.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from bosun.core import scope
from bosun.core.scope import Resource
from bosun.planner.toolsets import openai_tools
from bosun.ports import gateway as gateway_module
from bosun.ports.gateway import KubeDiscovery, ToolGateway, ToolServerUnavailable, operator_namespace
from bosun.ports.mcp_tools import over_http
from bosun_tools.identity import Identity
from bosun_tools.registry import ToolSpec, served
from bosun_tools.settings import ToolSettings


@pytest.fixture
async def gateway() -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings())
    yield gw
    await gw.aclose()


def test_read_only_comes_from_the_operator_registry() -> None:
    gw = over_http("http://127.0.0.1:9/mcp", "unused")
    assert gw.is_read_only("k8s_get")
    assert gw.is_read_only("helm_get")
    assert not gw.is_read_only("k8s_scale")
    assert not gw.is_read_only("k8s_exec")
    assert not gw.is_read_only("no_such_tool")  # unknown = mutating


NODES = Resource("", "v1", "Node", "nodes", namespaced=False)
DEPLOYMENTS = Resource("apps", "v1", "Deployment", "deployments", namespaced=True)


class FakeDiscovery:
    """API discovery as a table (what the API server reports for these kinds), recording what was asked."""

    def __init__(self, *known: tuple[scope.Lookup, Resource]) -> None:
        self.known = dict(known)
        self.asked: list[scope.Lookup] = []

    async def __call__(self, kind: str, api_version: str | None) -> Resource | None:
        self.asked.append((kind, api_version))
        return self.known.get((kind, api_version))


@pytest.mark.parametrize(
    ("tool", "args", "refused"),
    [
        ("k8s_scale", {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}, None),
        ("k8s_scale", {"kind": "deployment", "name": "web", "namespace": "prod", "replicas": 5}, "prod"),
        ("k8s_get", {"kind": "pods", "name": "x", "namespace": "kube-system"}, "kube-system"),
        ("k8s_get", {"kind": "nodes"}, None),
        ("k8s_cordon", {"name": "node-1"}, "Node node-1 is cluster-scoped"),
        ("k8s_rollout_restart", {"name": "web", "namespace": "shop"}, None),  # kind: the tool's default
        ("no_such_tool", {"name": "x"}, "does not know which objects"),
        ("k8s_patch", {"kind": "deployment", "name": "w", "patch": {"metadata": {"namespace": "x"}}}, "x"),
        ("k8s_delete", {"kind": "gizmos", "name": "g", "namespace": "shop"}, "serves no resource type"),
    ],
)
async def test_scope_is_decided_with_discovery(
    tool: str, args: dict[str, object], refused: str | None
) -> None:
    discovery = FakeDiscovery(
        (("deployment", None), DEPLOYMENTS), (("nodes", None), NODES), (("nodes", "v1"), NODES)
    )
    gw = over_http("http://127.0.0.1:9/mcp", "unused", discover=discovery)
    problem = await gw.scope_error(tool, args, ["shop"])
    if refused is None:
        assert problem is None
    else:
        assert problem is not None
        assert problem.startswith(f"{tool} refused: ")
        assert refused in problem


async def test_discovery_is_asked_only_when_the_arguments_do_not_refuse() -> None:
    discovery = FakeDiscovery((("nodes", "v1"), NODES))
    gw = over_http("http://127.0.0.1:9/mcp", "unused", discover=discovery)
    assert await gw.scope_error(
        "k8s_scale", {"kind": "deployment", "name": "w", "namespace": "prod"}, ["shop"]
    )
    assert discovery.asked == []
    assert await gw.scope_error("k8s_rollout_restart", {"name": "w", "namespace": "shop"}, ["shop"])
    assert discovery.asked == [("deployment", None)]  # the default kind, and not served by this table
    assert await gw.scope_error("k8s_cordon", {"name": "node-1"}, ["shop"], cluster_scope=True) is None


async def test_the_operator_namespace_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOSUN_OPERATOR_NAMESPACE", "bosun-system")
    gw = over_http("http://127.0.0.1:9/mcp", "unused", discover=FakeDiscovery())
    problem = await gw.scope_error(
        "k8s_get", {"kind": "secrets", "namespace": "bosun-system"}, ["bosun-system"]
    )
    assert problem is not None
    assert "namespace bosun-system is where the Bosun operator runs" in problem


def test_operator_namespace_sources(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    mounted = tmp_path / "namespace"
    mounted.write_text("from-service-account\n")
    both = {"BOSUN_OPERATOR_NAMESPACE": "configured", "POD_NAMESPACE": "downward"}
    assert operator_namespace(both, missing) == "configured"
    assert operator_namespace({"POD_NAMESPACE": "downward"}, mounted) == "downward"
    assert operator_namespace({}, mounted) == "from-service-account"
    assert operator_namespace({}, missing) is None


async def test_discovery_that_cannot_be_read_decides_nothing(tmp_path: Path) -> None:
    """No credentials, or an API server that does not answer: the check raises ToolServerUnavailable (the
    task retries later) instead of refusing or allowing."""
    call = {"kind": "deployment", "name": "w", "namespace": "shop", "replicas": 1}
    no_credentials = KubeDiscovery(kubeconfig=str(tmp_path / "no-such-kubeconfig"))
    gw = over_http("http://127.0.0.1:9/mcp", "unused", discover=no_credentials)
    with pytest.raises(ToolServerUnavailable, match="cannot load Kubernetes credentials"):
        await gw.scope_error("k8s_scale", call, ["shop"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "c",
                "cluster": {"server": f"https://127.0.0.1:{port}", "insecure-skip-tls-verify": True},
            }
        ],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    unreachable = KubeDiscovery(kubeconfig=str(kubeconfig))
    gw = over_http("http://127.0.0.1:9/mcp", "unused", discover=unreachable)
    try:
        with pytest.raises(
            ToolServerUnavailable, match="cannot read API discovery to decide whether deployment"
        ):
            await gw.scope_error("k8s_scale", call, ["shop"])
    finally:
        await gw.aclose()


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


async def test_in_process_schemas_are_built_when_first_read_and_are_the_served_ones(
    gateway: ToolGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Listing the tools, or asking whether one exists, builds no schema; validating a call builds that
    tool's alone; a schema read is the one the MCP server serves (``registry.input_schema``)."""
    built: list[str] = []
    real = gateway_module.input_schema

    def counted(spec: ToolSpec) -> dict[str, Any]:
        built.append(spec.name)
        return real(spec)

    monkeypatch.setattr(gateway_module, "input_schema", counted)
    schemas = await gateway.input_schemas()
    assert {"k8s_scale", "k8s_get", "helm_rollback"} <= set(schemas)
    assert built == []
    ok = {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}
    assert await gateway.validation_error("k8s_scale", ok) is None
    assert await gateway.validation_error("k8s_scale", {**ok, "force": True}) is not None
    assert built == ["k8s_scale"]
    scale = next(spec for spec in served(ToolSettings()) if spec.name == "k8s_scale")
    assert dict(schemas["k8s_scale"]) == real(scale)
    assert built == ["k8s_scale"]


async def test_unreachable_server_raises_tool_server_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gw = over_http(f"http://127.0.0.1:{port}/mcp", "token")
    with pytest.raises(ToolServerUnavailable, match=f"127.0.0.1:{port}"):
        await openai_tools(gw, ["kubernetes"])
    with pytest.raises(ToolServerUnavailable):
        await gw.read("k8s_get", {"kind": "pods", "name": "x"}, identity=Identity("alice"))
    await gw.aclose()
