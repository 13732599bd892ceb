"""Each phase of ``bosun.steps`` driven on its own against the real API server, without an operator process.

The task is created by bob through kubectl (admission stamps him as requester), the grants by alice; the
steps run with the admin's credentials as the operator does and reach the tools through the in-process
gateway. What each test asserts is what the API server stored: the status a step wrote, the grant's own
status, the Events posted and the Deployment the approved call changed. The offline planner turns the
request into one ``k8s_scale`` step, so no model is involved.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from bosun.api.models import AgentTaskSpec, AgentTaskStatus
from bosun.config import OperatorConfig
from bosun.ports.gateway import ToolGateway
from bosun.ports.store import Store
from bosun.steps.approve import await_approval, take_annotation_approval
from bosun.steps.execute import execute
from bosun.steps.plan import plan, start
from bosun.steps.task import Deps, Task
from bosun_tools.client.kube import KubeClient
from bosun_tools.settings import ToolSettings

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.e2e.conftest import (  # noqa: F401  (bosun_installed and users are fixtures used below)
    apply,
    bosun_installed,
    condition,
    deployment,
    events,
    get,
    grant_doc,
    status_of,
    task_doc,
    users,
)

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("bosun_installed", "users")]


@pytest.fixture
async def deps(cluster: ClusterAccess) -> AsyncIterator[Deps]:
    """What the operator builds at start: its own credentials (the admin's here) and the tools in process."""
    kube = KubeClient.from_kubeconfig(cluster.kubeconfig)
    store = Store(kube)
    gateway = ToolGateway.in_process(ToolSettings(kubeconfig=str(cluster.kubeconfig)))
    yield Deps(
        store=store,
        gateway=gateway,
        config=OperatorConfig.from_env({}),
        operator_identity=await store.whoami(),
        identity_trusted=True,
    )
    await gateway.aclose()
    await kube.aclose()


async def read(deps: Deps, namespace: str, name: str) -> Task:
    """The task as a reconcile starts from it: a fresh read."""
    body = await deps.store.get_task(namespace, name)
    assert body is not None
    status = AgentTaskStatus.model_validate(body.get("status") or {})
    return Task(body, AgentTaskSpec.model_validate(body["spec"]), status, deps)


def reasons(kubectl: Kubectl, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(kubectl, namespace, name)]


async def proposed(deps: Deps, kubectl: Kubectl, namespace: str, replicas: int = 4) -> Task:
    """bob's task to scale web, started and planned: awaiting approval of one ``k8s_scale`` step."""
    deployment(kubectl, namespace)
    request = f"scale deployment web in {namespace} to {replicas}"
    apply(kubectl, namespace, task_doc("scale-web", request), user="bob")
    task = await read(deps, namespace, "scale-web")
    assert await start(task)
    await plan(task)
    return await read(deps, namespace, "scale-web")


async def approved(deps: Deps, kubectl: Kubectl, namespace: str) -> Task:
    task = await proposed(deps, kubectl, namespace)
    assert task.status.proposal is not None
    apply(kubectl, namespace, grant_doc("ok", "scale-web", task.status.proposal.hash), user="alice")
    assert await await_approval(task)
    return await read(deps, namespace, "scale-web")


async def test_plan_starts_the_task_and_shows_a_hashed_proposal(
    deps: Deps, kubectl: Kubectl, namespace: str
) -> None:
    task = await proposed(deps, kubectl, namespace)

    status = status_of(kubectl, namespace, "scale-web")
    assert status["phase"] == "AwaitingApproval"
    assert status["requester"]["user"] == "bob"
    proposal = status["proposal"]
    assert proposal["revision"] == 1
    assert proposal["hash"].startswith("sha256:")
    [step] = proposal["steps"]
    assert (step["tool"], step["args"]["replicas"], step["mutating"]) == ("k8s_scale", 4, True)
    [record] = [r for r in status["steps"] if r["mutating"]]
    assert (record["id"], record["state"]) == ("r1-s1", "AwaitingApproval")
    assert condition(status, "ToolServerAvailable")["status"] == "True"
    # The offline planner answers at once: one status write and one Event, Planning is never shown alone.
    assert reasons(kubectl, namespace, "scale-web") == ["ApprovalRequired"]
    assert task.status.pending_steps == 1
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 3, "planning changes nothing"


async def test_the_proposal_says_the_approval_policy_of_its_namespace(
    deps: Deps, kubectl: Kubectl, namespace: str
) -> None:
    """``status.approvalPolicy`` is written with the proposal, from the Namespace's annotations, so that
    whoever reads the task learns what approving it takes without reading the Namespace."""
    kubectl("annotate", "namespace", namespace, "bosun.dev/required-approvals=2")
    task = await proposed(deps, kubectl, namespace)

    policy = status_of(kubectl, namespace, "scale-web")["approvalPolicy"]
    assert (policy["requiredApprovals"], policy["fourEyes"]) == (2, True)
    assert policy["destructiveApproverGroups"] == []
    assert (policy["annotationApprovals"], policy["maxGrantAgeSeconds"]) == (True, 86400)
    assert policy["summary"] == (
        "four-eyes on, 2 distinct approvers, destructive steps need no particular group, annotation "
        "approvals accepted, grants valid 24h"
    )
    assert task.status.approval_policy == (await task.policy()).as_status()


async def test_a_task_targeting_a_stricter_namespace_shows_the_stricter_policy(
    deps: Deps, kubectl: Kubectl, namespace: str, bind_role: BindRole
) -> None:
    """A task placed in a lax namespace answers to the strict namespace it changes, and says so."""
    kubectl(
        "annotate", "namespace", namespace, "bosun.dev/four-eyes=false", "bosun.dev/max-grant-age-seconds=0"
    )
    strict = f"{namespace[:50]}-prod"
    kubectl("create", "namespace", strict)
    try:
        kubectl(
            "annotate",
            "namespace",
            strict,
            "bosun.dev/required-approvals=3",
            "bosun.dev/destructive-approver-groups=sre,platform",
            "bosun.dev/max-grant-age-seconds=3600",
        )
        bind_role(strict, "bob", "edit")
        deployment(kubectl, strict)
        doc = task_doc("scale-prod", f"scale deployment web in {strict} to 4", targetNamespaces=[strict])
        apply(kubectl, namespace, doc, user="bob")
        task = await read(deps, namespace, "scale-prod")
        assert await start(task)
        await plan(task)

        status = status_of(kubectl, namespace, "scale-prod")
        assert status["phase"] == "AwaitingApproval"
        policy = status["approvalPolicy"]
        assert (policy["fourEyes"], policy["requiredApprovals"], policy["maxGrantAgeSeconds"]) == (
            True,
            3,
            3600,
        )
        assert policy["destructiveApproverGroups"] == [
            {"groups": ["sre", "platform"], "source": f"namespace {strict}"}
        ]
        assert policy["summary"] == (
            "four-eyes on, 3 distinct approvers, destructive steps need an approver in sre or platform "
            f"(namespace {strict}), annotation approvals accepted, grants valid 1h"
        )
    finally:
        kubectl("delete", "namespace", strict, "--wait=false", "--ignore-not-found", check=False)


async def test_the_policy_shown_follows_the_namespace_while_the_proposal_awaits_approval(
    deps: Deps, kubectl: Kubectl, namespace: str
) -> None:
    """A cluster admin changes the Namespace's policy after the proposal was written: the next look at the
    task (a grant, the sweep) shows the policy grants are now judged by, and an Event says it changed."""
    task = await proposed(deps, kubectl, namespace)
    assert status_of(kubectl, namespace, "scale-web")["approvalPolicy"]["requiredApprovals"] == 1
    kubectl("annotate", "namespace", namespace, "bosun.dev/required-approvals=2", "bosun.dev/four-eyes=off")

    assert not await await_approval(task)
    policy = status_of(kubectl, namespace, "scale-web")["approvalPolicy"]
    assert (policy["requiredApprovals"], policy["fourEyes"]) == (2, False)
    assert sorted(reasons(kubectl, namespace, "scale-web")) == ["ApprovalPolicyChanged", "ApprovalRequired"]
    [changed] = [e for e in events(kubectl, namespace, "scale-web") if e["reason"] == "ApprovalPolicyChanged"]
    assert changed["message"] == f"the approval policy for proposal revision 1 is now: {policy['summary']}"

    # Judged by what it says: bob may now approve his own task, and one approval of two is counted.
    assert task.status.proposal is not None
    apply(kubectl, namespace, grant_doc("own", "scale-web", task.status.proposal.hash), user="bob")
    version = get(kubectl, namespace, "agenttask", "scale-web")["metadata"]["resourceVersion"]
    assert not await await_approval(await read(deps, namespace, "scale-web"))
    assert get(kubectl, namespace, "approvalgrant", "own")["status"]["reason"] == "ApprovalCounted"
    after = get(kubectl, namespace, "agenttask", "scale-web")
    assert after["metadata"]["resourceVersion"] != version
    assert after["status"]["approvalPolicy"] == policy
    assert reasons(kubectl, namespace, "scale-web").count("ApprovalPolicyChanged") == 1


async def test_a_plan_for_a_task_without_a_stamped_requester_fails_the_task(
    deps: Deps, kubectl: Kubectl, namespace: str
) -> None:
    """Stamps are trusted only while the identity policies are installed: without them nobody is acted for."""
    apply(kubectl, namespace, task_doc("unknown", "list pods"), user="bob")
    deps.identity_trusted = False
    task = await read(deps, namespace, "unknown")

    assert not await start(task)
    status = status_of(kubectl, namespace, "unknown")
    assert (status["phase"], condition(status, "Ready")["reason"]) == ("Failed", "RequesterUnknown")
    assert reasons(kubectl, namespace, "unknown") == ["RequesterUnknown"]


async def test_approve_accepts_a_grant_and_moves_the_task_to_executing(
    deps: Deps, kubectl: Kubectl, namespace: str
) -> None:
    await approved(deps, kubectl, namespace)

    status = status_of(kubectl, namespace, "scale-web")
    assert status["phase"] == "Executing"
    [approval] = status["approvals"]
    assert (approval["grant"], approval["accepted"], approval["approver"]["user"]) == ("ok", True, "alice")
    [record] = [r for r in status["steps"] if r["mutating"]]
    assert record["state"] == "Approved"
    grant = get(kubectl, namespace, "approvalgrant", "ok")["status"]
    assert (grant["state"], grant["revision"], grant["approver"]["user"]) == ("Accepted", 1, "alice")
    assert reasons(kubectl, namespace, "ok") == ["GrantAccepted"]
    assert reasons(kubectl, namespace, "scale-web")[-1] == "Approved"


async def test_approve_rejects_the_requesters_own_grant(deps: Deps, kubectl: Kubectl, namespace: str) -> None:
    """Four eyes: bob may create grants, but not approve his own task; the grant says why, the task waits."""
    task = await proposed(deps, kubectl, namespace)
    assert task.status.proposal is not None
    apply(kubectl, namespace, grant_doc("mine", "scale-web", task.status.proposal.hash), user="bob")

    assert not await await_approval(task)
    assert status_of(kubectl, namespace, "scale-web")["phase"] == "AwaitingApproval"
    grant = get(kubectl, namespace, "approvalgrant", "mine")["status"]
    assert grant["state"] == "Rejected"
    assert reasons(kubectl, namespace, "mine") == ["GrantRejected"]
    assert reasons(kubectl, namespace, "scale-web")[-1] == "GrantRejected"


async def test_an_approve_annotation_becomes_a_grant_for_the_hash_it_was_set_on(
    deps: Deps, kubectl: Kubectl, namespace: str
) -> None:
    task = await proposed(deps, kubectl, namespace)
    assert task.status.proposal is not None
    kubectl("-n", namespace, "annotate", "agenttask", "scale-web", "approve=true", user="alice")
    task = await read(deps, namespace, "scale-web")

    await take_annotation_approval(task)
    annotations = get(kubectl, namespace, "agenttask", "scale-web")["metadata"].get("annotations") or {}
    assert "approve" not in annotations
    assert "bosun.dev/approved-hash" not in annotations
    [grant] = await deps.store.list_grants(namespace)
    assert grant["metadata"]["name"].startswith("scale-web-approve-")
    assert grant["spec"]["planHash"] == task.status.proposal.hash
    assert await await_approval(task)
    assert status_of(kubectl, namespace, "scale-web")["phase"] == "Executing"


async def test_execute_runs_the_approved_call_as_the_requester_and_spends_the_grant(
    deps: Deps, kubectl: Kubectl, namespace: str
) -> None:
    task = await approved(deps, kubectl, namespace)

    await execute(task)
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 4
    status = status_of(kubectl, namespace, "scale-web")
    assert status["phase"] == "Verifying"
    [record] = [r for r in status["steps"] if r["mutating"]]
    assert (record["state"], record["attempts"], record["ranAs"]["user"]) == ("Succeeded", 1, "bob")
    assert get(kubectl, namespace, "approvalgrant", "ok")["status"]["executedAt"]
    assert reasons(kubectl, namespace, "scale-web")[-3:] == ["ToolStarted", "ToolSucceeded", "Executed"]


async def test_execute_runs_nothing_that_no_grant_approves(
    deps: Deps, kubectl: Kubectl, namespace: str
) -> None:
    """A status that says Executing is not an approval: with no accepted grant the step does not run."""
    task = await proposed(deps, kubectl, namespace)
    await task.move("Executing", "Approved", "moved on without a grant")

    await execute(task)
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 3
    status: dict[str, Any] = status_of(kubectl, namespace, "scale-web")
    assert status["phase"] == "Failed"
    executed = condition(status, "Executed")
    assert (executed["status"], executed["reason"]) == ("False", "NotApproved")
    [record] = [r for r in status["steps"] if r["mutating"]]
    assert record["state"] == "Skipped"
    assert "ToolStarted" not in reasons(kubectl, namespace, "scale-web")
