"""Secret values in writes, without a cluster: finding them by type, structure and shape; placeholders
and redaction markers that are never taken for values; resolving a holding Secret's value only when its
digest matches; scrubbing outputs; and the planner keeping values out of what it records and echoes.

Sealing into a real holding Secret and running with the resolved value are in
tests/integration/test_sealing.py; the whole story through the operator in tests/e2e/test_secrets.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import yaml
from bosun.planner import ModelSettings, PlanningContext, propose_plan
from bosun.planner.toolsets import offered_toolsets, openai_tools
from bosun.ports.gateway import ToolGateway
from bosun_tools.client.kube import KubeClient
from bosun_tools.errors import ToolError
from bosun_tools.identity import Identity
from bosun_tools.sealing import (
    CLEANUP_TOOL,
    SEALED_FOR,
    SEALED_TYPE,
    CallSecrets,
    TaskRef,
    holder_name,
    unseal,
)
from bosun_tools.secrets import Found, Leaf, Placeholder, leaves, scrub, values_of, with_values
from bosun_tools.settings import ToolSettings
from kubernetes import client as k8s_client

from tests.fakes.llm import FakeLLM, call, text, tool_calls

PASSWORD = "n3w-Rotated-pa55word"
DIGEST = hashlib.sha256(PASSWORD.encode()).hexdigest()
TASK = TaskRef("shop", "rotate", "0b6c6a0e-1111-4222-8333-944455556666")


def manifest(*docs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def secret_doc(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, **fields}


def found(args: dict[str, Any]) -> dict[str, str]:
    """Where each secret value is, and the value as written."""
    return {leaf.where: leaf.value for leaf in Found.of(args).leaves}


# ----- finding ---------------------------------------------------------------------------------------------


def test_secret_data_and_string_data_in_every_document_of_a_manifest() -> None:
    encoded = base64.b64encode(b"api-token-1").decode()
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"mode": "fast"}}
    args = {
        "manifest": manifest(config, secret_doc(stringData={"password": PASSWORD}, data={"token": encoded})),
        "namespace": "shop",
    }
    assert found(args) == {
        "manifest document 2 (Secret db) stringData.password": PASSWORD,
        "manifest document 2 (Secret db) data.token": encoded,
    }
    binary = {leaf.where: leaf.binary for leaf in Found.of(args).leaves}
    assert binary == {
        "manifest document 2 (Secret db) stringData.password": False,
        "manifest document 2 (Secret db) data.token": True,
    }


def test_patches_of_a_secret_in_each_flavour() -> None:
    merge = {"kind": "secret", "name": "db", "patch": {"stringData": {"password": PASSWORD}}}
    assert found(merge) == {"patch.stringData.password": PASSWORD}
    json_patch = {
        "kind": "Secret",
        "name": "db",
        "patch_type": "json",
        "patch": [
            {"op": "replace", "path": "/data/password", "value": "aGVsbG8="},
            {"op": "add", "path": "/stringData", "value": {"token": PASSWORD}},
            {"op": "replace", "path": "/metadata/labels/tier", "value": "db"},
        ],
    }
    assert found(json_patch) == {
        "patch[0] (replace /data/password)": "aGVsbG8=",
        "patch[1] (add /stringData) stringData.token": PASSWORD,
    }
    assert [leaf.binary for leaf in Found.of(json_patch).leaves] == [True, False]
    # The same fields of another kind hold no secret.
    assert found({"kind": "configmap", "name": "x", "patch": {"data": {"password": "plain"}}}) == {}


def test_env_values_whose_name_says_secret_wherever_a_pod_template_is() -> None:
    env = [
        {"name": "DB_PASSWORD", "value": PASSWORD},
        {"name": "API_KEY", "value": "k-123456"},
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "TOKEN_FROM_REF", "valueFrom": {"secretKeyRef": {"name": "db", "key": "token"}}},
    ]
    template = {"spec": {"template": {"spec": {"containers": [{"name": "web", "env": env}]}}}}
    assert found({"kind": "deployment", "name": "web", "patch": template}) == {
        "patch.spec.template.spec.containers[0].env[0].value": PASSWORD,
        "patch.spec.template.spec.containers[0].env[1].value": "k-123456",
    }
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, **template}
    assert list(found({"manifest": manifest(deployment)}).values()) == [PASSWORD, "k-123456"]
    appended = [{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": env[0]}]
    assert list(found({"kind": "deployment", "patch": appended}).values()) == [PASSWORD]


def test_helm_values_by_name_shape_and_entropy_but_not_references_or_tags() -> None:
    values = {
        "auth": {"password": "p", "existingSecret": "db-creds", "apiKey": "k", "tokenFile": "/run/t"},
        "db": {"url": "postgres://app:hunter22@db:5432/app"},
        "tls": {"key": "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n"},
        "session": "Zq3xV9pL2mN8rT4wY6bK1cH5",
        "image": {"tag": "sha-3f2a9bc1d2e3f4a5b6c7d8e9", "digest": "sha256:" + "ab" * 32},
        "monkey": "banana",
        "replicas": 2,
    }
    assert set(found({"values": values})) == {
        "values.auth.password",
        "values.auth.apiKey",
        "values.db.url",
        "values.tls.key",
        "values.session",
    }


def test_jenkins_parameters_by_name_and_shapes_in_any_argument() -> None:
    assert found({"job": ["deploy"], "parameters": {"DB_PASS": "x-1234", "ENV": "prod"}}) == {
        "parameters.DB_PASS": "x-1234"
    }
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib3N1biJ9.c2lnbmF0dXJlLXZhbHVl"
    assert found({"command": ["curl", "-H", f"Authorization: Bearer {jwt}"]}) == {
        "command[2]": f"Authorization: Bearer {jwt}"
    }
    assert found({"image": "registry.example/web:1.0", "name": "web"}) == {}


def test_redacted_arguments_keep_everything_but_the_values() -> None:
    args = {"manifest": manifest(secret_doc(stringData={"password": PASSWORD})), "namespace": "shop"}
    redacted = Found.of(args).redacted(args)
    assert PASSWORD not in json.dumps(redacted)
    doc = yaml.safe_load(redacted["manifest"])
    assert doc["stringData"] == {"password": f"<redacted sha256:{DIGEST[:12]}>"}
    assert redacted["namespace"] == "shop"
    assert Found.of(redacted).leaves == ()  # a marker is no value: nothing left to find


# ----- placeholders and markers ----------------------------------------------------------------------------


def test_a_placeholder_names_holding_secret_key_and_digest_and_round_trips() -> None:
    placeholder = Placeholder(DIGEST, "shop", "bosun-sealed-abc", DIGEST[:20])
    text = str(placeholder)
    assert text == f"sealed:sha256:{DIGEST}@shop/bosun-sealed-abc/{DIGEST[:20]}"
    assert Placeholder.parse(text) == placeholder
    for bad in (text + " ", "x" + text, text.replace(DIGEST, DIGEST[:63]), f"sealed:sha256:{DIGEST}@shop"):
        assert Placeholder.parse(bad) is None
    # In a Secret's base64 data, a placeholder is not even base64: the API server refuses it as a literal.
    with pytest.raises(ValueError, match="not valid base64"):
        Leaf(("patch",), "patch.data.password", text, True, True).raw()


def test_the_holding_secret_name_follows_task_and_values() -> None:
    assert holder_name(TASK, [DIGEST]) == holder_name(TASK, [DIGEST, DIGEST])
    assert holder_name(TASK, [DIGEST]) != holder_name(TaskRef("shop", "rotate", "other-uid"), [DIGEST])
    assert holder_name(TASK, [DIGEST]) != holder_name(TASK, ["0" * 64])


def unreachable_kube() -> KubeClient:
    """A client for a closed port: the refusals below happen before any request."""
    return KubeClient.from_configuration(k8s_client.Configuration(host="http://127.0.0.1:9"))


@pytest.mark.parametrize(
    "value",
    [
        f"sealed:sha256:{DIGEST[:40]}@shop/holder/key",  # malformed
        f"prefix-sealed:sha256:{DIGEST}@shop/holder/key",  # embedded in a longer value
        "<redacted>",  # copied from release values (helm_get)
        "<redacted 20 bytes, sha256:0123456789ab>",  # copied from a preview
        f"<redacted sha256:{DIGEST[:12]}>",  # copied from a recorded argument
    ],
)
async def test_a_stand_in_is_never_accepted_as_a_value(value: str) -> None:
    args = {"kind": "secret", "name": "db", "patch": {"stringData": {"password": value}}}
    with pytest.raises(ToolError, match=r"patch\.stringData\.password"):
        await CallSecrets().resolve(args, unreachable_kube(), "alice", None)


async def test_a_call_for_a_task_resolves_only_sealed_values_of_the_tasks_namespace() -> None:
    elsewhere = str(Placeholder(DIGEST, "other", "bosun-sealed-abc", DIGEST[:20]))
    args = {"kind": "secret", "name": "db", "patch": {"stringData": {"password": elsewhere}}}
    refusal = r"held in namespace other; the sealed values of task rotate are held in its namespace shop"
    with pytest.raises(ToolError, match=refusal):
        await CallSecrets().resolve(args, unreachable_kube(), "alice", TASK)


async def test_a_preview_with_secret_values_but_no_task_seals_nothing_and_says_why() -> None:
    secrets = CallSecrets()
    args = {"kind": "secret", "name": "db", "patch": {"stringData": {"password": PASSWORD}}}
    assert await secrets.resolve(args, unreachable_kube(), "alice", None) == args
    with pytest.raises(
        ToolError, match=r"k8s_patch would write secret values \(patch\.stringData\.password\)"
    ):
        await secrets.seal("k8s_patch", unreachable_kube(), None, "alice")
    assert await CallSecrets().seal("k8s_patch", unreachable_kube(), None, "alice") is None


def holder(data: dict[str, bytes]) -> dict[str, Any]:
    return {
        "type": SEALED_TYPE,
        "metadata": {"labels": {SEALED_FOR: TASK.uid}},
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def test_resolving_gives_the_value_back_encoded_as_the_field_wants_it() -> None:
    placeholder = Placeholder(DIGEST, "shop", "holder", "k1")
    text_leaf = Leaf(
        ("patch", "stringData", "password"), "patch.stringData.password", str(placeholder), True, False
    )
    data_leaf = Leaf(("patch", "data", "password"), "patch.data.password", str(placeholder), True, True)
    stored = holder({"k1": PASSWORD.encode()})
    assert unseal(stored, text_leaf, placeholder) == PASSWORD
    assert unseal(stored, data_leaf, placeholder) == base64.b64encode(PASSWORD.encode()).decode()


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        ({"k1": b"a different value"}, "holds a value whose digest does not match"),
        ({"k2": PASSWORD.encode()}, "has no such value"),
    ],
)
def test_a_value_that_does_not_match_its_digest_is_refused(stored: dict[str, bytes], why: str) -> None:
    placeholder = Placeholder(DIGEST, "shop", "holder", "k1")
    leaf = Leaf(("patch",), "patch.stringData.password", str(placeholder), True, False)
    with pytest.raises(ToolError) as refused:
        unseal(holder(stored), leaf, placeholder)
    message = str(refused.value)
    assert message.startswith(f"patch.stringData.password: holding Secret shop/holder key k1 {why}")
    assert f"sha256:{DIGEST[:12]}" in message
    assert "nothing ran" in message
    assert "a different value" not in message


def test_with_values_replaces_inside_manifests_and_keeps_document_positions() -> None:
    args = {"manifest": "---\n---\n" + manifest(secret_doc(stringData={"password": PASSWORD}))}
    leaf = next(leaf for leaf in leaves(args) if leaf.secret)
    assert leaf.path == ("manifest", 1, "stringData", "password")
    replaced = with_values(args, {leaf.path: "sealed-value"})
    reread = list(yaml.safe_load_all(replaced["manifest"]))
    assert reread[0] is None
    assert reread[1]["stringData"] == {"password": "sealed-value"}
    assert next(leaf for leaf in leaves(replaced) if leaf.secret).path == leaf.path


# ----- scrubbing -------------------------------------------------------------------------------------------


def test_scrub_removes_every_form_of_a_value_even_one_cut_by_a_cap() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAzq1Yx8b9\n-----END RSA PRIVATE KEY-----"
    args = {"values": {"password": PASSWORD, "tls": {"key": pem}}}
    values = values_of(Found.of(args).leaves)
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    text = f"a {PASSWORD} b {encoded} c\n    MIIEowIBAAKCAQEAzq1Yx8b9\n"
    cleaned = scrub(text, values)
    assert PASSWORD not in cleaned
    assert encoded not in cleaned
    assert "MIIEowIBAAKCAQEAzq1Yx8b9" not in cleaned
    assert f"<redacted sha256:{DIGEST[:12]}>" in cleaned
    cut = scrub(f"head {PASSWORD[:9]}\n…[truncated 120 bytes]", values)
    assert PASSWORD[:9] not in cut
    assert cut.endswith("\n…[truncated 120 bytes]")
    tail = scrub(f"…[truncated 120 bytes]\n{PASSWORD[-9:]} tail", values)
    assert PASSWORD[-9:] not in tail


# ----- the operator's side ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[ToolGateway]:
    gw = ToolGateway.in_process(ToolSettings())
    yield gw
    await gw.aclose()


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def model(fake: FakeLLM) -> ModelSettings:
    return ModelSettings(model="openai/fake", api_base=fake.url, retry_backoff=0.01)


def context(request: str) -> PlanningContext:
    return PlanningContext(
        request, "shop", ["shop"], Identity("alice", ("sre",)), task_name=TASK.name, task_uid=TASK.uid
    )


async def test_the_cleanup_tool_is_served_but_never_offered_to_a_model(
    gateway: ToolGateway, fake_llm: FakeLLM
) -> None:
    everything = await openai_tools(gateway, await offered_toolsets(gateway))
    assert CLEANUP_TOOL not in json.dumps(everything)
    assert "internal" not in await offered_toolsets(gateway)
    problem = await gateway.validation_error(CLEANUP_TOOL, {"namespace": "shop", "task_uid": TASK.uid})
    assert problem is not None
    assert problem.startswith(f"unknown tool {CLEANUP_TOOL!r}")
    fake_llm.script(
        tool_calls(call(CLEANUP_TOOL, {"namespace": "shop", "task_uid": TASK.uid}, id="clean")),
        text("I could not clean up."),
    )
    result = await propose_plan(context("delete the sealed values of task rotate"), gateway, model(fake_llm))
    assert result.outcome == "answer"
    assert [(r.tool, r.ok) for r in result.investigation] == [(CLEANUP_TOOL, False)]
    assert "refused, nothing ran: unknown tool" in result.investigation[0].text


async def test_a_refused_secret_write_is_recorded_and_echoed_without_its_value(
    gateway: ToolGateway, fake_llm: FakeLLM
) -> None:
    """Refused before anything runs (the namespace is outside the task), so no cluster is needed; the model
    even repeats the value in its own words."""
    secret = secret_doc(metadata={"name": "db", "namespace": "elsewhere"}, stringData={"password": PASSWORD})
    args = {"manifest": manifest(secret), "namespace": "elsewhere"}
    fake_llm.script(
        tool_calls(call("k8s_apply", args, id="apply"), content=f"Setting the password to {PASSWORD}."),
        text(f"Could not set {PASSWORD}: the namespace is outside the task."),
    )
    result = await propose_plan(context("rotate the db password"), gateway, model(fake_llm))
    assert result.outcome == "failed"
    recorded = json.dumps(
        [result.summary, result.error, [(r.tool, r.args, r.text) for r in result.investigation]]
    )
    assert PASSWORD not in recorded
    assert f"<redacted sha256:{DIGEST[:12]}>" in recorded
    second = fake_llm.requests[1]["messages"]
    echoed = next(m for m in second if m["role"] == "assistant" and m.get("tool_calls"))
    assert PASSWORD not in echoed["tool_calls"][0]["function"]["arguments"]
    assert "<redacted sha256:" in echoed["tool_calls"][0]["function"]["arguments"]
