"""A rotated password through the real operator: proposed sealed, approved, run exactly, shown nowhere.

A scripted model (the LLM double) proposes to apply a Secret with a new ``stringData`` value; bob requests,
alice approves. The proposal carries a placeholder with the value's digest, the value itself waits in a
holding Secret owned by the task, and after execution the Secret really holds the new value while the value
appears in no task, Event, grant, operator log line or later model request.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from bosun_tools.sealing import SEALED_FOR, SEALED_TYPE
from bosun_tools.secrets import PLACEHOLDER_PREFIX, Placeholder

from tests.e2e.conftest import Operator, apply, get, grant_doc, task_doc, wait_phase
from tests.fakes.llm import FakeLLM, call, text, tool_calls
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

NEW_PASSWORD = "rotated-Pa55word-2041"
OLD_PASSWORD = "old-password-value"
FORMS = (NEW_PASSWORD, base64.b64encode(NEW_PASSWORD.encode()).decode())
"""The value as written and as the API server stores it: neither may show up anywhere."""


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    with FakeLLM(default=text('{"satisfied": true, "reason": "Secret db holds the new password"}')) as fake:
        yield fake


def new_password_secret(namespace: str) -> str:
    """Secret db with the new password, as the model applies it."""
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": namespace},
        "stringData": {"password": NEW_PASSWORD},
    }
    return yaml.safe_dump(secret)


def script_rotation(llm: FakeLLM, namespace: str) -> None:
    """The model proposes the new password for Secret db, and repeats it in its own words."""
    llm.script(
        tool_calls(
            call("k8s_apply", {"manifest": new_password_secret(namespace), "namespace": namespace}),
            content=f"I will set the password of Secret db to {NEW_PASSWORD}.",
        ),
        text(f"Proposed: rotate the password of Secret db (new value {NEW_PASSWORD})."),
    )


def secret_data(kubectl: Any, namespace: str, name: str) -> dict[str, bytes]:
    data = get(kubectl, namespace, "secret", name).get("data") or {}
    return {key: base64.b64decode(value) for key, value in data.items()}


def everything_recorded(kubectl: Any, namespace: str, operator: Operator) -> dict[str, str]:
    """Where a value could leak to: the task, the Events and grants of the namespace, the operator's log."""

    def listed(kind: str) -> str:
        return kubectl("-n", namespace, "get", kind, "-o", "json").stdout

    return {
        "agenttask": kubectl("-n", namespace, "get", "agenttask", "rotate", "-o", "json").stdout,
        "events": listed("events"),
        "approvalgrants": listed("approvalgrants"),
        "operator log": operator.log.read_text(),
    }


def test_a_rotated_password_is_proposed_sealed_runs_exactly_and_is_shown_nowhere(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    kubectl("-n", namespace, "create", "secret", "generic", "db", f"--from-literal=password={OLD_PASSWORD}")
    script_rotation(llm, namespace)
    operator = operator_factory(
        BOSUN_MODEL="openai/gpt-4.1-mini", BOSUN_API_BASE=llm.url, BOSUN_API_KEY="test"
    )
    apply(
        kubectl, namespace, task_doc("rotate", f"rotate the password of Secret db in {namespace}"), user="bob"
    )

    status = wait_phase(kubectl, namespace, "rotate", "AwaitingApproval")
    uid = get(kubectl, namespace, "agenttask", "rotate")["metadata"]["uid"]
    step = status["proposal"]["steps"][0]
    placeholder = Placeholder.parse(yaml.safe_load(step["args"]["manifest"])["stringData"]["password"])
    assert placeholder is not None, step["args"]
    digest = hashlib.sha256(NEW_PASSWORD.encode()).hexdigest()
    assert placeholder.digest == digest  # the hash approved below covers the digest
    assert f"sha256:{digest[:12]}" in step["diff"]  # the approver sees which key changes, and a digest

    holder = get(kubectl, namespace, "secret", placeholder.secret)
    assert holder["type"] == SEALED_TYPE
    assert holder["metadata"]["labels"][SEALED_FOR] == uid
    owners = [(o["kind"], o["name"], o["uid"]) for o in holder["metadata"]["ownerReferences"]]
    assert owners == [("AgentTask", "rotate", uid)]
    assert secret_data(kubectl, namespace, "db") == {"password": OLD_PASSWORD.encode()}  # nothing ran yet

    grant = grant_doc("rotate-ok", "rotate", status["proposal"]["hash"], reason="rotation reviewed")
    apply(kubectl, namespace, grant, user="alice")
    final = wait_phase(kubectl, namespace, "rotate", "Succeeded", "Failed", timeout=120)
    assert final["phase"] == "Succeeded", json.dumps(final)[:3000]
    assert final["verification"]["passed"] is True
    assert secret_data(kubectl, namespace, "db") == {"password": NEW_PASSWORD.encode()}

    for where, recorded in everything_recorded(kubectl, namespace, operator).items():
        for form in FORMS:
            assert form not in recorded, f"the new password ({form}) shows up in the {where}"
    for number, request in enumerate(llm.requests[1:], start=2):
        assert NEW_PASSWORD not in json.dumps(request), f"model request {number} carries the password back"
    # The operator deletes the holding Secrets once the task has finished (after its last status write).
    eventually(
        "the holding Secrets to be deleted",
        lambda: (
            not json.loads(
                kubectl("-n", namespace, "get", "secrets", "-l", f"{SEALED_FOR}={uid}", "-o", "json").stdout
            )["items"]
        ),
    )


def test_values_sealed_for_a_plan_that_was_withdrawn_are_released_when_the_task_fails(
    kubectl: Any, namespace: str, users: None, operator_factory: Callable[..., Operator], llm: FakeLLM
) -> None:
    """The password change previews (its value sealed in a holding Secret), but the same turn's other
    change cannot be previewed, so the whole plan is withdrawn; the model then stops. Nothing was proposed,
    yet a holding Secret was written: the finished task must not leave it behind."""
    llm.script(
        tool_calls(
            call("k8s_apply", {"manifest": new_password_secret(namespace), "namespace": namespace}),
            call("k8s_scale", {"kind": "Deployment", "name": "ghost", "namespace": namespace, "replicas": 2}),
        ),
        text("Done."),
    )
    operator_factory(BOSUN_MODEL="openai/gpt-4.1-mini", BOSUN_API_BASE=llm.url, BOSUN_API_KEY="test")
    apply(kubectl, namespace, task_doc("withdrawn", f"rotate the db password in {namespace}"), user="bob")

    final = wait_phase(kubectl, namespace, "withdrawn", "Failed")
    assert final.get("proposal") is None, "a withdrawn plan is never proposed"
    assert PLACEHOLDER_PREFIX in json.dumps(llm.requests[1]), "the password change was previewed and sealed"
    uid = get(kubectl, namespace, "agenttask", "withdrawn")["metadata"]["uid"]
    eventually(
        "the holding Secret of the withdrawn plan to be deleted",
        lambda: (
            not json.loads(
                kubectl("-n", namespace, "get", "secrets", "-l", f"{SEALED_FOR}={uid}", "-o", "json").stdout
            )["items"]
        ),
    )
