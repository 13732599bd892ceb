"""The offline planner's phrasing, checked against the tool server's real names and schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from bosun.planner import NEEDS_MODEL, PlanningContext, propose_plan
from bosun.planner.offline import parse
from bosun.ports.gateway import ToolGateway
from bosun_tools.identity import Identity
from bosun_tools.registry import safety_of
from bosun_tools.settings import ToolSettings

SCALE_WEB_5 = {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5}

UNDERSTOOD: list[tuple[str, str, dict[str, Any]]] = [
    ("scale deployment web in shop to 5", "k8s_scale", SCALE_WEB_5),
    ("Scale web to 5 replicas in namespace shop.", "k8s_scale", SCALE_WEB_5),
    ("please scale the web deployment in the shop namespace to 5", "k8s_scale", SCALE_WEB_5),
    ("scale web replicas to 5 -n shop", "k8s_scale", SCALE_WEB_5),
    ("set replicas of deployment web to 5 in shop", "k8s_scale", SCALE_WEB_5),
    ("scale web to 5", "k8s_scale", SCALE_WEB_5),  # the task's own namespace
    (
        "scale statefulset db in data to 0",
        "k8s_scale",
        {"kind": "statefulset", "name": "db", "namespace": "data", "replicas": 0},
    ),
    (
        "restart deployment api in shop",
        "k8s_rollout_restart",
        {"kind": "deployment", "name": "api", "namespace": "shop"},
    ),
    (
        "rollout restart api",
        "k8s_rollout_restart",
        {"kind": "deployment", "name": "api", "namespace": "shop"},
    ),
    (
        "restart the db statefulset in data",
        "k8s_rollout_restart",
        {"kind": "statefulset", "name": "db", "namespace": "data"},
    ),
    (
        "roll back deployment web in shop",
        "k8s_rollout_undo",
        {"kind": "deployment", "name": "web", "namespace": "shop"},
    ),
    (
        "undo deployment web in shop to revision 2",
        "k8s_rollout_undo",
        {"kind": "deployment", "name": "web", "namespace": "shop", "to_revision": 2},
    ),
    (
        "rollback web to rev 3 in namespace shop",
        "k8s_rollout_undo",
        {"kind": "deployment", "name": "web", "namespace": "shop", "to_revision": 3},
    ),
    ("list pods in shop", "k8s_get", {"kind": "pods", "namespace": "shop"}),
    ("show me all deployments in namespace shop", "k8s_get", {"kind": "deployments", "namespace": "shop"}),
    ("get deployment web in shop", "k8s_get", {"kind": "deployment", "name": "web", "namespace": "shop"}),
    (
        "describe deploy web in shop",
        "k8s_get",
        {"kind": "deployment", "name": "web", "namespace": "shop", "output": "describe"},
    ),
    (
        "describe pod web-1 in shop",
        "k8s_get",
        {"kind": "pod", "name": "web-1", "namespace": "shop", "output": "describe"},
    ),
    ("show logs of pod web-1 in shop", "k8s_logs", {"name": "web-1", "namespace": "shop"}),
    ("logs for web-1 container app", "k8s_logs", {"name": "web-1", "namespace": "shop", "container": "app"}),
    (
        "show the last 50 lines of logs of web-1 in shop",
        "k8s_logs",
        {"name": "web-1", "namespace": "shop", "tail": 50},
    ),
    ("promote rollout canary in shop", "rollouts_promote", {"name": "canary", "namespace": "shop"}),
    (
        "promote rollout canary fully",
        "rollouts_promote",
        {"name": "canary", "namespace": "shop", "full": True},
    ),
    ("abort rollout canary in shop", "rollouts_abort", {"name": "canary", "namespace": "shop"}),
    (
        "trigger jenkins job a/b with FOO=bar",
        "jenkins_trigger_build",
        {"job": ["a", "b"], "parameters": {"FOO": "bar"}},
    ),
    (
        'run jenkins job team/deploy with ENV=prod, TAG="v1 2"',
        "jenkins_trigger_build",
        {"job": ["team", "deploy"], "parameters": {"ENV": "prod", "TAG": "v1 2"}},
    ),
    ("trigger the nightly job", "jenkins_trigger_build", {"job": ["nightly"]}),
    # Cluster-scoped: proposed only with cluster-scope consent (the gateway's scope check decides).
    (
        "create namespace limits-test",
        "k8s_apply",
        {"manifest": '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "limits-test"}}'},
    ),
    (
        "please create a new namespace called team-b",
        "k8s_apply",
        {"manifest": '{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}}'},
    ),
    ("cordon node kwok-node-0", "k8s_cordon", {"name": "kwok-node-0"}),
    ("uncordon kwok-node-0", "k8s_uncordon", {"name": "kwok-node-0"}),
]

NOT_UNDERSTOOD = [
    "why is web crashing?",
    "make the shop faster",
    "scale web to many",
    "delete everything in shop",
    "run pod busybox",
    "trigger jenkins job a/b with nonsense",
    "",
]


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings())
    yield gw
    await gw.aclose()


@pytest.mark.parametrize(("request_text", "tool", "args"), UNDERSTOOD)
async def test_understood(request_text: str, tool: str, args: dict[str, Any], gateway: ToolGateway) -> None:
    intent = parse(request_text, "shop")
    assert intent is not None, f"offline planner should understand {request_text!r}"
    assert (intent.tool, intent.args) == (tool, args)
    assert safety_of(tool).toolset != "unknown", f"{tool} is not a tool the server registers"
    schemas = await gateway.input_schemas()
    if tool in schemas:  # a toolset may be switched off; its names are still checked against the registry
        assert await gateway.validation_error(tool, args) is None


@pytest.mark.parametrize("request_text", NOT_UNDERSTOOD)
def test_not_understood(request_text: str) -> None:
    assert parse(request_text, "shop") is None


def test_read_only_and_mutating_intents() -> None:
    read = parse("list pods in shop", "shop")
    write = parse("scale web to 2", "shop")
    assert read is not None
    assert safety_of(read.tool).read_only
    assert write is not None
    assert not safety_of(write.tool).read_only


async def test_unsupported_request_says_how_to_configure_a_model(gateway: ToolGateway) -> None:
    ctx = PlanningContext("why is web slow?", "shop", ["shop"], Identity("alice"))
    result = await propose_plan(ctx, gateway, None)
    assert result.outcome == "unsupported"
    assert result.summary == NEEDS_MODEL
    assert "BOSUN_MODEL" in result.summary
    assert "openai/gpt-4.1" in result.summary
    assert "BOSUN_API_BASE" in result.summary
    assert result.usage.calls == 0
    assert not result.steps


async def test_offline_refuses_out_of_scope_before_anything_runs(gateway: ToolGateway) -> None:
    ctx = PlanningContext("scale web in prod to 5", "shop", ["shop"], Identity("alice"))
    result = await propose_plan(ctx, gateway, None)
    assert result.outcome == "failed"
    assert result.error is not None
    assert "prod" in result.error
    assert "targetNamespaces" in result.error
    assert not result.steps


async def test_offline_reports_invalid_arguments(gateway: ToolGateway) -> None:
    ctx = PlanningContext("scale web to 5000", "shop", ["shop"], Identity("alice"))
    result = await propose_plan(ctx, gateway, None)
    assert result.outcome == "failed"
    assert result.error is not None
    assert "replicas" in result.error
