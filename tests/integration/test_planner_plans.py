"""Whole plans only, with real server-side dry-runs: real LiteLLM against the scripted LLM double, the real
tool server in-process and the real control plane.

The issue's case: a claim is deleted and re-created along with its pod. When one change of such a plan
cannot be previewed, nothing of it is proposed (never "delete pod, delete claim" without the re-create),
the model is told which call failed and why, and it may issue the whole plan again. A step whose object an
earlier step touches says that its preview could not see that step.

Re-creating the claim with a new size is a plan no dry-run can preview whole: the API server checks the
re-create against the claim that still exists (an unbound claim's size cannot change), not against the
deletion before it. It fails whole, and the model is told why, so that it can explain or split the work.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from bosun.planner import ModelSettings, PlanningContext, propose_plan
from bosun.planner.toolsets import LOAD_TOOLSET
from bosun.ports.gateway import ToolGateway
from bosun_tools.identity import Identity
from bosun_tools.settings import ToolSettings

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.fakes.llm import FakeLLM, Reply, call, text, tool_calls
from tests.tools_support import WEB_IMAGE

pytestmark = pytest.mark.cluster

ALICE = Identity("alice", ("sre",))
POD = "db-0"
CLAIM = "data-db-0"


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
async def gateway(cluster: ClusterAccess) -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings(kubeconfig=str(cluster.kubeconfig)))
    yield gw
    await gw.aclose()


def claim(storage: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": CLAIM},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}},
    }


@pytest.fixture
def shop(namespace: str, kubectl: Kubectl, bind_role: BindRole) -> str:
    """A pod and its claim, in a namespace where alice may edit."""
    bind_role(namespace, "alice", "edit")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {"containers": [{"name": "db", "image": WEB_IMAGE}]},
    }
    for manifest in (pod, claim("1Gi")):
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    return namespace


def model(fake: FakeLLM) -> ModelSettings:
    return ModelSettings("openai/fake", api_base=fake.url, retry_backoff=0.01)


def tool_replies(request: dict[str, Any]) -> dict[str, str]:
    return {m["tool_call_id"]: m["content"] for m in request["messages"] if m["role"] == "tool"}


def delete(kind: str, name: str, namespace: str, id: str) -> Reply:
    return call("k8s_delete", {"kind": kind, "name": name, "namespace": namespace}, id=id)


def recreate(namespace: str, storage: str, id: str) -> Reply:
    return call("k8s_apply", {"manifest": json.dumps(claim(storage)), "namespace": namespace}, id=id)


def exists(kubectl: Kubectl, namespace: str, kind: str, name: str) -> bool:
    return kubectl("get", "-n", namespace, kind, name, check=False).returncode == 0


async def test_a_plan_with_an_unpreviewable_step_proposes_nothing(
    fake_llm: FakeLLM, gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    fake_llm.script(
        tool_calls(call(LOAD_TOOLSET, {"toolset": "objects"})),
        tool_calls(
            delete("pod", POD, shop, "pod"),
            delete("persistentvolumeclaim", CLAIM, shop, "claim"),
            recreate(shop, "2Gi", "recreate"),
            content="Delete the pod and the claim, then create the claim again with 2Gi.",
        ),
        text("The claim cannot be re-created with 2Gi in one plan."),
    )
    ctx = PlanningContext("recreate the claim with 2Gi", shop, [shop], ALICE)
    result = await propose_plan(ctx, gateway, model(fake_llm))

    assert (result.outcome, result.failure, result.steps) == ("failed", "planning", [])
    assert result.error is not None
    failed = "1 change(s) of the model's plan could not be previewed, so nothing of it is proposed: k8s_apply"
    assert failed in result.error
    assert "dry-run failed" in result.error
    unseen = f"its dry-run could not see the plan's earlier k8s_delete on {CLAIM} in {shop}"
    assert unseen in result.error

    replies = tool_replies(fake_llm.requests[2])
    assert replies["recreate"].startswith("dry-run of k8s_apply failed, so it was not proposed:")
    assert unseen in replies["recreate"]
    assert "Nothing of your plan is proposed: 1 of its changes could not be previewed" in replies["recreate"]
    for withdrawn in ("pod", "claim"):
        assert replies[withdrawn].startswith("Previewed, but NOT proposed: another change of this plan")
    assert exists(kubectl, shop, "pod", POD)
    assert exists(kubectl, shop, "persistentvolumeclaim", CLAIM)


async def test_the_model_reissues_the_whole_plan_and_later_steps_are_marked(
    fake_llm: FakeLLM, gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    fake_llm.script(
        tool_calls(call(LOAD_TOOLSET, {"toolset": "objects"})),
        tool_calls(delete("pod", POD, shop, "pod-1"), content="First the pod goes."),
        tool_calls(
            delete("persistentvolumeclaim", CLAIM, shop, "claim-1"),
            recreate(shop, "2Gi", "recreate-1"),  # a new size: its dry-run meets the claim still there
        ),
        tool_calls(
            delete("pod", POD, shop, "pod-2"),
            delete("persistentvolumeclaim", CLAIM, shop, "claim-2"),
            recreate(shop, "1Gi", "recreate-2"),
            content="Delete the pod and the claim, then create the claim again, empty.",
        ),
        text("I propose re-creating the claim."),
    )
    ctx = PlanningContext("recreate the claim", shop, [shop], ALICE)
    result = await propose_plan(ctx, gateway, model(fake_llm))

    withdrawn = tool_replies(fake_llm.requests[3])
    assert "Steps s1 proposed earlier are withdrawn as well." in withdrawn["recreate-1"]
    reissued = tool_replies(fake_llm.requests[4])
    assert [reissued[k].split(".")[0] for k in ("pod-2", "claim-2", "recreate-2")] == [
        "Proposed as step s1",
        "Proposed as step s2",
        "Proposed as step s3",
    ]

    assert result.outcome == "proposal", result
    assert [(s.id, s.tool) for s in result.steps] == [
        ("s1", "k8s_delete"),
        ("s2", "k8s_delete"),
        ("s3", "k8s_apply"),
    ]
    pod_step, claim_step, recreate_step = result.steps
    assert pod_step.preview_note is None
    assert claim_step.preview_note is None  # a different object than the pod
    assert recreate_step.preview_note is not None
    assert recreate_step.preview_note.startswith(
        f"preview made before the plan's earlier step(s) s2 (k8s_delete) on {CLAIM} in {shop} ran"
    )
    assert exists(kubectl, shop, "pod", POD)
    assert exists(kubectl, shop, "persistentvolumeclaim", CLAIM)
