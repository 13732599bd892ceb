"""Planning end to end: real LiteLLM against the scripted LLM double, the real tool server in-process, and
the real control plane, with tools run as the (impersonated) requester.

What is asserted is what matters to the operator: read-only calls ran and their output reached the model,
mutating calls became a proposal with a dry-run diff and changed nothing, refused calls were fed back and
never ran (and a plan with a change that cannot be previewed fails whole), and the offline planner does the
same without a model. Whole-plan cases with several steps are in test_planner_plans.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from bosun.planner import ModelSettings, PlanningContext, propose_plan
from bosun.planner.bounds import REQUEST_BUDGET, TOOL_RESULT_CAP
from bosun.planner.toolsets import LOAD_TOOLSET
from bosun.ports.gateway import ToolGateway
from bosun_tools.identity import Identity
from bosun_tools.settings import ToolSettings

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.fakes.llm import FakeLLM, call, text, tool_calls
from tests.tools_support import deployment

pytestmark = pytest.mark.cluster

ALICE = Identity("alice", ("sre",))


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
async def gateway(cluster: ClusterAccess) -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings(kubeconfig=str(cluster.kubeconfig)))
    yield gw
    await gw.aclose()


@pytest.fixture
def shop(namespace: str, kubectl: Kubectl, bind_role: BindRole) -> str:
    """A namespace with deployment web (3 replicas) where alice may edit, as an SRE would."""
    bind_role(namespace, "alice", "edit")
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("web", 3))
    return namespace


def model(fake: FakeLLM, **overrides: Any) -> ModelSettings:
    return ModelSettings(**{"model": "openai/fake", "api_base": fake.url, "retry_backoff": 0.01, **overrides})


def ctx(request: str, namespace: str, identity: Identity = ALICE, **extra: Any) -> PlanningContext:
    return PlanningContext(request, namespace, [namespace], identity, **extra)


def replicas(kubectl: Kubectl, namespace: str, name: str = "web") -> int:
    out = kubectl("get", "-n", namespace, f"deployment/{name}", "-o", "jsonpath={.spec.replicas}").stdout
    return int(out)


def tool_replies(request: dict[str, Any]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


async def test_read_only_question_is_answered_from_investigation(
    fake_llm: FakeLLM, gateway: ToolGateway, shop: str
) -> None:
    fake_llm.script(
        tool_calls(
            call("k8s_get", {"kind": "deployment", "name": "web", "namespace": shop}, id="get"),
            call("k8s_get", {"kind": "pods", "namespace": shop, "label_selector": "app=web"}, id="pods"),
        ),
        text("web runs 3 replicas."),
    )
    result = await propose_plan(ctx("how many replicas does web run?", shop), gateway, model(fake_llm))
    assert result.outcome == "answer", result
    assert result.summary == "web runs 3 replicas."
    assert result.steps == []
    assert [(r.tool, r.ok) for r in result.investigation] == [("k8s_get", True), ("k8s_get", True)]
    fed_back = tool_replies(fake_llm.requests[1])
    assert "web" in fed_back["get"]
    assert "3" in fed_back["get"]
    assert result.investigation[0].text == fed_back["get"]
    assert result.usage.calls == 2


async def test_scale_is_proposed_with_a_diff_and_not_executed(
    fake_llm: FakeLLM, gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    scale = {"kind": "deployment", "name": "web", "namespace": shop, "replicas": 5}
    fake_llm.script(
        tool_calls(call(LOAD_TOOLSET, {"toolset": "workloads"})),
        tool_calls(call("k8s_scale", scale, id="scale"), content="web needs 5 replicas as requested."),
        text("I propose scaling web from 3 to 5 replicas."),
    )
    result = await propose_plan(ctx(f"scale deployment web in {shop} to 5", shop), gateway, model(fake_llm))
    assert result.outcome == "proposal", result
    assert result.summary == "I propose scaling web from 3 to 5 replicas."
    [step] = result.steps
    assert (step.id, step.tool, step.args) == ("s1", "k8s_scale", scale)
    assert step.rationale == "web needs 5 replicas as requested."
    assert step.diff is not None
    assert "3" in step.diff
    assert "5" in step.diff
    assert "replicas" in step.diff
    fed_back = tool_replies(fake_llm.requests[2])["scale"]
    assert fed_back.startswith("Proposed as step s1. It has NOT run")
    assert replicas(kubectl, shop) == 3


async def test_diagnose_then_fix(
    fake_llm: FakeLLM, gateway: ToolGateway, namespace: str, kubectl: Kubectl
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("api", 0))
    fake_llm.script(
        tool_calls(
            call("k8s_get", {"kind": "pods", "namespace": namespace}, id="pods"),
            call("k8s_get", {"kind": "deployment", "name": "api", "namespace": namespace}, id="deploy"),
        ),
        tool_calls(call(LOAD_TOOLSET, {"toolset": "workloads"})),
        tool_calls(
            call("k8s_scale", {"kind": "deployment", "name": "api", "namespace": namespace, "replicas": 2}),
            content="api is scaled to 0, so nothing serves; scale it back to 2.",
        ),
        text("api had 0 replicas; I propose scaling it to 2."),
    )
    admin = Identity("admin-user", ("system:masters",))
    result = await propose_plan(ctx("api serves nothing, fix it", namespace, admin), gateway, model(fake_llm))
    assert result.outcome == "proposal", result
    assert [r.tool for r in result.investigation] == ["k8s_get", "k8s_get"]
    assert all(r.ok for r in result.investigation)
    assert [s.tool for s in result.steps] == ["k8s_scale"]
    assert result.steps[0].diff is not None
    assert "2" in result.steps[0].diff
    second = tool_replies(fake_llm.requests[1])
    assert "api" in second["deploy"]
    assert replicas(kubectl, namespace, "api") == 0

    # The next iteration is planned from the status history alone, never from a stored conversation.
    fake_llm.script(text("It is fixed: 2/2 available."))
    history = ["s1 k8s_scale api replicas 2: succeeded", "verification: 2/2 available"]
    again = await propose_plan(
        ctx("api serves nothing, fix it", namespace, admin, iteration=2, history=history),
        gateway,
        model(fake_llm),
    )
    assert again.outcome == "answer"
    messages = fake_llm.requests[-1]["messages"]
    assert len(messages) == 2
    assert all(line in messages[1]["content"] for line in history)


async def test_large_read_output_reaches_the_model_capped(
    fake_llm: FakeLLM, gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {f"key{i}": "v" * 1000 for i in range(500)},
    }
    kubectl("apply", "--server-side", "-n", shop, "-f", "-", input=json.dumps(big))
    get = {"kind": "configmap", "name": "big", "namespace": shop, "output": "yaml"}
    fake_llm.script(
        tool_calls(*[call("k8s_get", get, id=f"get{i}") for i in range(3)]),
        tool_calls(*[call("k8s_get", get, id=f"again{i}") for i in range(3)]),
        text("big holds 500 keys."),
    )
    result = await propose_plan(ctx("what is in configmap big?", shop), gateway, model(fake_llm))
    assert result.outcome == "answer", result
    for request in fake_llm.requests[1:]:
        for reply in tool_replies(request).values():
            assert len(reply.encode()) <= TOOL_RESULT_CAP + 64
            assert "…[truncated " in reply
    assert all(size <= REQUEST_BUDGET for size in fake_llm.request_sizes)


async def test_refused_calls_never_run(
    fake_llm: FakeLLM, gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    fake_llm.script(
        tool_calls(call(LOAD_TOOLSET, {"toolset": "objects"})),
        tool_calls(
            call("k8s_delete_all", {"namespace": shop}, id="unknown"),
            call(
                "k8s_scale",
                {"kind": "deployment", "name": "web", "namespace": shop, "replicas": -1},
                id="neg",
            ),
            call("k8s_delete", {"kind": "deployment", "name": "web", "namespace": "default"}, id="scope"),
            call(
                "k8s_delete", {"kind": "deployment", "name": "web", "namespace": shop, "force": True}, id="x"
            ),
            call("k8s_cordon", {"name": "node-1"}, id="cluster"),
        ),
        text("Nothing valid to propose."),
    )
    result = await propose_plan(ctx("delete web", shop), gateway, model(fake_llm))
    assert (result.outcome, result.failure, result.steps) == ("failed", "planning", [])
    assert result.error is not None
    assert "4 change(s) of the model's plan could not be previewed" in result.error  # k8s_delete_all: none
    assert [r.ok for r in result.investigation] == [False] * 5
    replies = tool_replies(fake_llm.requests[2])
    refused = ("unknown", "neg", "scope", "x", "cluster")
    assert all(replies[k].startswith("refused, nothing ran:") for k in refused)
    assert "cluster-scoped" in replies["cluster"]
    assert replicas(kubectl, shop) == 3  # web still exists, unchanged


async def test_calls_run_as_the_requester(fake_llm: FakeLLM, gateway: ToolGateway, shop: str) -> None:
    scale = {"kind": "deployment", "name": "web", "namespace": shop, "replicas": 5}
    fake_llm.script(
        tool_calls(call("k8s_get", {"kind": "deployment", "name": "web", "namespace": shop}, id="get")),
        tool_calls(call(LOAD_TOOLSET, {"toolset": "workloads"})),
        tool_calls(call("k8s_scale", scale, id="scale")),
        text("carol may not do this."),
    )
    result = await propose_plan(ctx("scale web to 5", shop, Identity("carol")), gateway, model(fake_llm))
    assert (result.outcome, result.failure, result.steps) == ("failed", "planning", [])
    assert result.error is not None
    assert "k8s_scale" in result.error
    assert "Forbidden" in result.error
    assert "Forbidden" in tool_replies(fake_llm.requests[1])["get"]
    scale_reply = tool_replies(fake_llm.requests[3])["scale"]
    assert scale_reply.startswith("dry-run of k8s_scale failed, so it was not proposed: Forbidden")
    assert "carol" in scale_reply


async def test_offline_planner_against_the_cluster(gateway: ToolGateway, shop: str, kubectl: Kubectl) -> None:
    proposal = await propose_plan(ctx(f"scale deployment web in {shop} to 5", shop), gateway, None)
    assert proposal.outcome == "proposal", proposal
    [step] = proposal.steps
    assert step.args == {"kind": "deployment", "name": "web", "namespace": shop, "replicas": 5}
    assert step.diff is not None
    assert "5" in step.diff
    assert replicas(kubectl, shop) == 3

    answer = await propose_plan(ctx(f"get deployment web in {shop}", shop), gateway, None)
    assert answer.outcome == "answer"
    assert "web" in answer.summary
    assert answer.investigation[0].ok

    missing = await propose_plan(ctx("restart deployment nosuch", shop), gateway, None)
    assert missing.outcome == "failed"
    assert missing.error is not None
    assert "nosuch" in missing.error
    assert "NotFound" in missing.error
    assert "its dry-run preview failed, so nothing was proposed" in missing.error


async def test_slow_tool_times_out_without_breaking_the_gateway(
    gateway: ToolGateway, namespace: str, kubectl: Kubectl
) -> None:
    stuck = json.loads(deployment("stuck", 1))
    stuck["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-node": "anywhere"}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(stuck))
    admin = Identity("admin-user", ("system:masters",))
    waiting = {"name": "stuck", "namespace": namespace, "wait_seconds": 60}
    outcome = await gateway.read("k8s_rollout_status", waiting, identity=admin, timeout=1)
    assert not outcome.ok
    assert outcome.error == "k8s_rollout_status did not answer within 1s"
    after = await gateway.read(
        "k8s_get", {"kind": "deployment", "name": "stuck", "namespace": namespace}, identity=admin
    )
    assert after.ok
