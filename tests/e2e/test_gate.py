"""The gate holds: an approval approves exactly the proposal its approver saw, and nothing else.

Each test is a path an adversary (or an unlucky user) takes against the real API server, the admission
policies from ``crds/`` and a real operator process: an approval carried over to the next revision, a
requester approving herself through her own YAML, an approval set before any proposal existed, a forged
status, and a stale write racing a finished task. bob requests, alice approves; the LLM is the scripted
double of ``tests/fakes/llm.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from bosun.api.models import AgentTaskSpec, AgentTaskStatus, ProposedStep
from bosun.config import OperatorConfig
from bosun.core.approval import plan_hash
from bosun.ports.store import Store, TaskConflict
from bosun.steps.task import Deps, Task
from bosun_tools.client.kube import KubeClient

from tests.e2e.conftest import (
    Operator,
    apply,
    condition,
    decided,
    deployment,
    events,
    get,
    grant_doc,
    replace_status,
    status_of,
    stuck_deployment,
    task_doc,
    wait_phase,
    with_model,
)
from tests.fakes.llm import FakeLLM, call, text, tool_calls
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

STATUS_WRITER_ROLE = "bosun-e2e-status-writer"


def scale(namespace: str, replicas: int) -> dict[str, Any]:
    return call(
        "k8s_scale", {"kind": "deployment", "name": "web", "namespace": namespace, "replicas": replicas}
    )


def replicas(kubectl: Any, namespace: str) -> int:
    value: int = get(kubectl, namespace, "deployment", "web")["spec"]["replicas"]
    return value


def reasons(kubectl: Any, namespace: str, name: str) -> list[str]:
    return [e["reason"] for e in events(kubectl, namespace, name)]


def test_an_annotation_approval_does_not_carry_over_to_the_next_revision(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    """approve=true on revision 1 runs revision 1; verification fails, the model replans, and revision 2
    waits for a new approval — it is not run "as approved by alice"."""
    stuck_deployment(kubectl, namespace)
    llm.script(
        tool_calls(scale(namespace, 2)),
        text("web has too few replicas; proposing 2."),
        tool_calls(scale(namespace, 3)),
        text("Still not available; proposing 3."),
    )
    with_model(operator_factory, llm, BOSUN_VERIFY_SECONDS="4")
    apply(kubectl, namespace, task_doc("fix-web", f"make web in {namespace} available"), user="bob")
    first = wait_phase(kubectl, namespace, "fix-web", "AwaitingApproval")
    kubectl("-n", namespace, "annotate", "agenttask", "fix-web", "approve=true", user="alice")
    eventually(
        "revision 2 to be proposed",
        lambda: (status_of(kubectl, namespace, "fix-web").get("proposal") or {}).get("revision") == 2,
        timeout=120,
    )
    second = wait_phase(kubectl, namespace, "fix-web", "AwaitingApproval")
    assert replicas(kubectl, namespace) == 2
    # A grant for the old hash, decided after revision 2 exists, proves the operator looked again.
    apply(kubectl, namespace, grant_doc("old", "fix-web", first["proposal"]["hash"]), user="alice")
    assert decided(kubectl, namespace, "old")["reason"] == "StaleHash"
    now = status_of(kubectl, namespace, "fix-web")
    assert now["phase"] == "AwaitingApproval"
    assert now["proposal"]["hash"] == second["proposal"]["hash"]
    assert replicas(kubectl, namespace) == 2
    revision_two = [r for r in now["steps"] if r.get("revision") == 2 and r["mutating"]]
    assert [r["state"] for r in revision_two] == ["AwaitingApproval"]
    accepted = [a for a in now["approvals"] if a["accepted"]]
    assert [(a["revision"], a["approver"]["user"]) for a in accepted] == [(1, "alice")]
    annotations = get(kubectl, namespace, "agenttask", "fix-web")["metadata"].get("annotations") or {}
    assert "approve" not in annotations
    assert "bosun.dev/approved-hash" not in annotations


def test_approval_annotations_in_the_requesters_yaml_approve_nothing(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    """bob writes approve=true and approved-by=alice into his own task: admission strips them at CREATE;
    re-applying the same YAML later is bob approving his own proposal, which four-eyes refuses."""
    deployment(kubectl, namespace)
    doc = task_doc("sneaky", f"scale deployment web in {namespace} to 7")
    doc["metadata"]["annotations"] = {
        "approve": "true",
        "bosun.dev/approved-by": "alice",
        "bosun.dev/approved-by-groups": "sre",
        "bosun.dev/approved-hash": "sha256:" + "0" * 64,
    }
    apply(kubectl, namespace, doc, user="bob")
    created = get(kubectl, namespace, "agenttask", "sneaky")["metadata"]["annotations"]
    assert created["bosun.dev/requester"] == "bob"
    assert not {"approve", "bosun.dev/approved-by", "bosun.dev/approved-hash"} & set(created)
    shown = wait_phase(kubectl, namespace, "sneaky", "AwaitingApproval")

    # GitOps re-sync of the same YAML: now an UPDATE by bob, stamped as bob approving what he could see.
    apply(kubectl, namespace, doc, user="bob")
    eventually(
        "bob's own approval to be refused",
        lambda: any(
            a["approver"]["user"] == "bob" and "FourEyes" in a["reason"]
            for a in status_of(kubectl, namespace, "sneaky").get("approvals", [])
        ),
    )
    status = status_of(kubectl, namespace, "sneaky")
    assert status["phase"] == "AwaitingApproval"
    assert status["proposal"]["hash"] == shown["proposal"]["hash"]
    assert replicas(kubectl, namespace) == 3


def test_an_annotation_set_while_planning_approves_nothing(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    """alice annotates while the model is still thinking: the proposal that appears later is not hers."""
    deployment(kubectl, namespace)
    llm.script(tool_calls(scale(namespace, 6), delay=4.0), text("Proposing 6 replicas."))
    with_model(operator_factory, llm)
    apply(kubectl, namespace, task_doc("early", f"scale web in {namespace} to 6"), user="bob")
    wait_phase(kubectl, namespace, "early", "Planning")
    kubectl("-n", namespace, "annotate", "agenttask", "early", "approve=true", user="alice")
    # The operator is still planning (the model answers after 4 s): admission bound it to no proposal.
    stamped = get(kubectl, namespace, "agenttask", "early")["metadata"]["annotations"]
    assert (stamped["approve"], stamped["bosun.dev/approved-by"]) == ("true", "alice")
    assert stamped["bosun.dev/approved-hash"] == ""
    eventually(
        "the ignored approval to be reported",
        lambda: "ApprovalIgnored" in reasons(kubectl, namespace, "early"),
    )
    message = next(
        e["message"] for e in events(kubectl, namespace, "early") if e["reason"] == "ApprovalIgnored"
    )
    assert "no proposal was awaiting approval" in message
    status = wait_phase(kubectl, namespace, "early", "AwaitingApproval")
    assert not [a for a in status["approvals"] if a["accepted"]]
    assert replicas(kubectl, namespace) == 3


@pytest.fixture
def status_writer(kubectl: Any, namespace: str, bind_role: Any) -> str:
    """carol may write agenttasks/status (as a careless RBAC setup allows), nothing else of Bosun's."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": STATUS_WRITER_ROLE},
        "rules": [
            {
                "apiGroups": ["bosun.dev"],
                "resources": ["agenttasks", "agenttasks/status"],
                "verbs": ["get", "list", "watch", "patch", "update"],
            }
        ],
    }
    kubectl("apply", "-f", "-", input=json.dumps(role))
    bind_role(namespace, "carol", STATUS_WRITER_ROLE)
    return "carol"


def test_a_forged_status_runs_nothing(
    kubectl: Any, namespace: str, users: None, status_writer: str, operator: Operator
) -> None:
    """carol rewrites the proposal (7 replicas, hash recomputed), records an approval by alice, marks the
    step Approved and the task Executing. No ApprovalGrant names that hash: nothing runs, and the task
    says why."""
    deployment(kubectl, namespace)
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 5"), user="bob")
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    uid = get(kubectl, namespace, "agenttask", "scale-web")["metadata"]["uid"]
    proposal = status["proposal"]
    proposal["steps"][0]["args"]["replicas"] = 7
    steps = [ProposedStep.model_validate(s) for s in proposal["steps"]]
    proposal["hash"] = plan_hash(uid, proposal["revision"], steps)
    now = "2026-12-01T09:00:00Z"
    status["approvals"] = [
        {
            "grant": "forged",
            "decision": "Approve",
            "accepted": True,
            "revision": proposal["revision"],
            "approver": {"user": "alice", "groups": []},
            "reason": "Approved",
            "at": now,
        }
    ]
    for record in status["steps"]:
        if record["mutating"]:
            record.update(state="Approved", grant="forged", args=proposal["steps"][0]["args"])
    status["phase"] = "Executing"
    replace_status(kubectl, namespace, "scale-web", status, status_writer)
    failed = wait_phase(kubectl, namespace, "scale-web", "Failed")
    executed = condition(failed, "Executed")
    assert (executed["status"], executed["reason"]) == ("False", "NotApproved")
    assert "only grants approve" in executed["message"]
    assert replicas(kubectl, namespace) == 3
    assert "ToolStarted" not in reasons(kubectl, namespace, "scale-web")


async def test_a_stale_write_never_reverts_a_finished_task(
    cluster: Any, kubectl: Any, namespace: str, bosun_installed: None
) -> None:
    """Two reconciles read the same version; one finishes the task Failed. The other's Succeeded is
    refused by the API server, and a fresh reader may not reopen the finished task either."""
    apply(kubectl, namespace, task_doc("raced", "list pods"))
    kube = KubeClient.from_kubeconfig(cluster.kubeconfig)
    deps = Deps(
        store=Store(kube),
        gateway=None,  # type: ignore[arg-type]  # writing status needs no tools
        config=OperatorConfig.from_env(),
        operator_identity=None,
        identity_trusted=False,
    )

    async def read() -> Task:
        body = await deps.store.get_task(namespace, "raced")
        assert body is not None
        status = AgentTaskStatus.model_validate(body.get("status") or {})
        return Task(body, AgentTaskSpec.model_validate(body["spec"]), status, deps)

    try:
        await (await read()).move("Planning", "Planning", "planning")
        first, second = await read(), await read()
        await first.move("Failed", "ModelFailed", "the model is unreachable", "Warning")
        with pytest.raises(TaskConflict):
            await second.move("Succeeded", "Answered", "a stale answer")
        fresh = await read()
        assert fresh.status.phase == "Failed"
        fresh.status = fresh.status.model_copy(update={"phase": "Planning"})
        with pytest.raises(TaskConflict, match="never reopened"):
            await fresh.write()
        assert status_of(kubectl, namespace, "raced")["phase"] == "Failed"
    finally:
        await kube.aclose()


def test_a_grant_for_a_finished_task_is_answered(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    apply(kubectl, namespace, task_doc("asked", f"list pods in {namespace}"), user="bob")
    wait_phase(kubectl, namespace, "asked", "Succeeded")
    apply(kubectl, namespace, grant_doc("late", "asked", "sha256:" + "a" * 64), user="alice")
    assert decided(kubectl, namespace, "late", "Superseded")["reason"] == "TaskFinished"


def test_a_long_task_name_can_be_approved_by_annotation(
    kubectl: Any, namespace: str, users: None, operator: Operator
) -> None:
    """A valid name with '.' at position 199 once produced an invalid grant name: never approvable."""
    deployment(kubectl, namespace)
    name = "a" * 199 + ".b" + "c" * 40
    apply(kubectl, namespace, task_doc(name, f"scale deployment web in {namespace} to 4"), user="bob")
    wait_phase(kubectl, namespace, name, "AwaitingApproval")
    kubectl("-n", namespace, "annotate", "agenttask", name, "approve=true", user="alice")
    kubectl("-n", namespace, "wait", "--for=condition=Ready", f"agenttask/{name}", "--timeout=120s")
    assert replicas(kubectl, namespace) == 4


async def test_an_event_recorded_with_a_status_write_survives_a_crash_and_is_posted_once(
    cluster: Any, kubectl: Any, namespace: str, bosun_installed: None
) -> None:
    """The process dies right after the status write, before posting its Events: the next reconcile posts
    them from the status, and posting again (another restart) creates no duplicate."""
    apply(kubectl, namespace, task_doc("audited", "list pods"))
    kube = KubeClient.from_kubeconfig(cluster.kubeconfig)

    class DiesBeforePosting(Store):
        async def post_event(
            self, obj: dict[str, Any], type_: str, reason: str, message: str, **_: Any
        ) -> None:
            raise SystemExit("killed between the status write and the Event")

    def deps(store: Store) -> Deps:
        return Deps(
            store=store,
            gateway=None,  # type: ignore[arg-type]  # writing status needs no tools
            config=OperatorConfig.from_env(),
            operator_identity=None,
            identity_trusted=False,
        )

    async def read(store: Store) -> Task:
        body = await store.get_task(namespace, "audited")
        assert body is not None
        status = AgentTaskStatus.model_validate(body.get("status") or {})
        return Task(body, AgentTaskSpec.model_validate(body["spec"]), status, deps(store))

    def posted() -> list[str]:
        return [e["reason"] for e in events(kubectl, namespace, "audited") if e["reason"] == "Planning"]

    try:
        with pytest.raises(SystemExit):
            await (await read(DiesBeforePosting(kube))).move("Planning", "Planning", "planning the request")
        assert status_of(kubectl, namespace, "audited")["pendingEvents"][0]["reason"] == "Planning"
        assert posted() == []
        for _ in range(2):  # two restarts, each posting what the status still records
            await (await read(Store(kube))).post_pending()
        assert posted() == ["Planning"]
    finally:
        await kube.aclose()


def test_a_status_edited_back_to_approved_cannot_replay_an_executed_proposal(
    kubectl: Any, namespace: str, users: None, status_writer: str, operator: Operator
) -> None:
    """alice approved a scale; it ran. carol, with rights on agenttasks/status, resets the finished task to
    Executing with the step Approved again, hoping alice's still-valid grant runs it once more."""
    deployment(kubectl, namespace)
    apply(kubectl, namespace, task_doc("scale-web", f"scale deployment web in {namespace} to 5"), user="bob")
    shown = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    apply(kubectl, namespace, grant_doc("ok", "scale-web", shown["proposal"]["hash"]), user="alice")
    done = wait_phase(kubectl, namespace, "scale-web", "Succeeded", timeout=120)
    assert get(kubectl, namespace, "approvalgrant", "ok")["status"]["executedAt"]
    kubectl("-n", namespace, "scale", "deployment", "web", "--replicas=3")
    for record in done["steps"]:
        if record["mutating"]:
            record.update(state="Approved", attempts=0)
            for key in ("startedAt", "finishedAt", "output", "data"):
                record.pop(key, None)
    done["phase"] = "Executing"
    replace_status(kubectl, namespace, "scale-web", done, status_writer)
    failed = wait_phase(kubectl, namespace, "scale-web", "Failed")
    executed = condition(failed, "Executed")
    assert executed["reason"] == "NotApproved"
    assert replicas(kubectl, namespace) == 3
    assert reasons(kubectl, namespace, "scale-web").count("ToolStarted") == 1
