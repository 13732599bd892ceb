"""Verification against the real API server: the change is made with the real tool (as alice, through the
in-process gateway, exactly as the executor does), then ``verify()`` checks it through read-only tools.

What must hold: an applied manifest that took effect passes; an applied value the API server changed (a
MutatingAdmissionPolicy here, scoped to the test's namespace) fails, and so does a field a patch set that
the API server dropped; a patch reverted before verification fails; a delete is verified only once the
object is really gone (finalizers); Secret values are never confirmed by size alone and never shown.

Server-side apply itself refuses unknown fields ("field not declared in schema", for built-in kinds and
CRDs alike), so an apply carrying one never executes: the dropped-field case is a patch's.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from bosun.api.models import ProposedStep, Verification
from bosun.core.proposals import small_data
from bosun.planner import PlanningContext
from bosun.ports.gateway import ToolCallOutcome, ToolGateway
from bosun.steps.verify.run import verify
from bosun_tools.identity import Identity
from bosun_tools.settings import ToolSettings

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.tools_support import deployment, grant
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.cluster

ALICE = Identity("alice", ())
HOLD = "bosun.test/hold"


class RecordingGateway(ToolGateway):
    """The in-process gateway, remembering which tools were called (to know a check has looked)."""

    called: list[str]

    async def read(self, tool: str, args: dict[str, Any], **kwargs: Any) -> ToolCallOutcome:
        self.called.append(tool)
        return await super().read(tool, args, **kwargs)


@pytest.fixture
async def gateway(cluster: ClusterAccess) -> AsyncIterator[RecordingGateway]:
    gw = RecordingGateway.in_process(ToolSettings(kubeconfig=str(cluster.kubeconfig)))
    gw.called = []
    yield gw
    await gw.aclose()


@pytest.fixture
def shop(namespace: str, kubectl: Kubectl, bind_role: BindRole) -> str:
    grant(kubectl, bind_role, namespace, "alice", "edit", "create configmaps")
    return namespace


async def execute(gateway: ToolGateway, tool: str, **args: Any) -> tuple[ProposedStep, dict[str, Any] | None]:
    """Run one approved call as alice and keep what the executor records of it."""
    outcome = await gateway.execute(tool, args, identity=ALICE)
    assert outcome.ok, outcome.error
    return ProposedStep(id="s1", tool=tool, args=args, rationale=""), small_data(outcome.data)


async def verified(
    gateway: ToolGateway,
    namespace: str,
    executed: list[tuple[ProposedStep, dict[str, Any] | None]],
    deadline: float = 60,
) -> Verification:
    ctx = PlanningContext("make the change", namespace, [namespace], ALICE)
    result = await verify(
        executed,
        ctx=ctx,
        gateway=gateway,
        model=None,
        revision=1,
        deadline_seconds=deadline,
        now=lambda: datetime.now(UTC),
    )
    return result.verification


def configmap(name: str, **data: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})


async def test_an_applied_manifest_that_took_effect_passes(
    gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    web = json.loads(deployment("web", 2))
    web["spec"]["template"]["spec"]["containers"][0]["resources"] = {
        "requests": {"cpu": "0.5", "memory": "1024Mi"}
    }
    manifest = f"{configmap('settings', mode='open')}\n---\n{json.dumps(web)}"
    step = await execute(gateway, "k8s_apply", manifest=manifest, namespace=shop)

    result = await verified(gateway, shop, [step])
    assert result.passed, result
    assert [(c.name, c.passed) for c in result.checks] == [
        (f"configmap {shop}/settings holds the applied fields", True),
        (f"deployment {shop}/web holds the applied fields", True),
        (f"deployment {shop}/web rolled out", True),
    ]
    assert result.checks[1].message == "all 8 applied fields match the live object"
    requests = "jsonpath={.spec.template.spec.containers[0].resources.requests}"
    stored = json.loads(kubectl("get", "deployment", "web", "-n", shop, "-o", requests).stdout)
    assert stored == {"cpu": "500m", "memory": "1Gi"}, "the API server normalised what the check compared"


@pytest.fixture
def locked_mode(shop: str, kubectl: Kubectl) -> Iterator[str]:
    """A MutatingAdmissionPolicy, bound to the test's namespace only, that forces ConfigMaps' data.mode to
    "locked" whatever a client writes: an apply the API server accepts but does not keep."""
    name = f"{shop}-lock"[:63]
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "reinvocationPolicy": "Never",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["configmaps"],
                    }
                ]
            },
            "matchConditions": [
                {"name": "has-mode", "expression": "has(object.data) && 'mode' in object.data"}
            ],
            "mutations": [
                {
                    "patchType": "JSONPatch",
                    "jsonPatch": {
                        "expression": '[JSONPatch{op: "replace", path: "/data/mode", value: "locked"}]'
                    },
                }
            ],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": shop}}},
        },
    }
    kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [policy, binding]})
    )
    try:
        dry_run = ["-n", shop, "create", "configmap", "probe", "--from-literal=mode=open", "--dry-run=server"]
        eventually(
            "the policy to take effect",
            lambda: kubectl(*dry_run, "-o", "jsonpath={.data.mode}").stdout == "locked",
        )
        yield shop
    finally:
        kubectl("delete", "mutatingadmissionpolicybinding", name, "--ignore-not-found", check=False)
        kubectl("delete", "mutatingadmissionpolicy", name, "--ignore-not-found", check=False)


async def test_an_applied_value_the_api_server_changed_fails(gateway: ToolGateway, locked_mode: str) -> None:
    step = await execute(
        gateway, "k8s_apply", manifest=configmap("settings", mode="open"), namespace=locked_mode
    )

    result = await verified(gateway, locked_mode, [step])
    assert not result.passed
    [check] = result.checks
    assert (check.name, check.passed) == (f"configmap {locked_mode}/settings holds the applied fields", False)
    assert check.message == 'data.mode: "locked", expected "open"'
    assert result.judgement == f"objective checks failed: {check.name}: {check.message}"


async def test_a_field_a_patch_set_but_the_api_server_dropped_fails(
    gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    kubectl("apply", "-n", shop, "-f", "-", input=deployment("web", 1))
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2", "unknownField": 1}]}}}
    }
    step = await execute(gateway, "k8s_patch", kind="deployment", name="web", namespace=shop, patch=patch)

    result = await verified(gateway, shop, [step])
    assert not result.passed
    patched, rolled = result.checks
    assert (patched.name, patched.passed) == (f"deployment {shop}/web patched", False)
    assert patched.message == (
        "spec.template.spec.containers[web].unknownField: set to 1 by the change, but the live object has no "
        "such field (the API server dropped it, or it was removed since)"
    )
    assert (rolled.name, rolled.passed) == (f"deployment {shop}/web rolled out", True)


async def test_a_patch_reverted_before_verification_fails(
    gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    kubectl(
        "create", "configmap", "settings", "-n", shop, "--from-literal=mode=open", "--from-literal=tier=db"
    )
    patch = {"data": {"mode": "closed", "tier": None}}
    step = await execute(
        gateway, "k8s_patch", kind="cm", name="settings", namespace=shop, patch=patch, patch_type="merge"
    )
    assert (await verified(gateway, shop, [step])).passed

    kubectl(
        "patch",
        "configmap",
        "settings",
        "-n",
        shop,
        "--type=merge",
        "-p",
        '{"data": {"mode": "open", "tier": "db"}}',
    )
    [check] = (await verified(gateway, shop, [step])).checks
    assert (check.name, check.passed) == (f"cm {shop}/settings patched", False)
    assert (
        check.message == 'data.mode: "open", expected "closed"; data.tier: still "db"; the change removes it'
    )


async def test_a_delete_is_verified_once_the_object_is_gone(
    gateway: RecordingGateway, shop: str, kubectl: Kubectl
) -> None:
    held = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old", "finalizers": [HOLD]}}
    kubectl("apply", "-n", shop, "-f", "-", input=json.dumps(held))
    release = [
        "patch",
        "configmap",
        "old",
        "-n",
        shop,
        "--type=json",
        "-p",
        '[{"op": "remove", "path": "/metadata/finalizers"}]',
    ]
    try:
        step = await execute(gateway, "k8s_delete", kind="configmap", name="old", namespace=shop)
        assert (step[1] or {}).get("uid"), "the delete records the uid the check compares"

        short = await verified(gateway, shop, [step], deadline=1)
        [check] = short.checks
        assert (check.passed, check.message) == (
            False,
            f"it is being deleted (finalizers: {HOLD}) (still so at the deadline)",
        )

        async def looked() -> bool:
            return "k8s_get" in gateway.called

        gateway.called.clear()
        waiting = asyncio.create_task(verified(gateway, shop, [step]))
        await eventually_async("the check to have looked", looked)
        assert not waiting.done()
        kubectl(*release)
        result = await waiting
        assert result.passed, result
        assert [(c.name, c.message) for c in result.checks] == [(f"configmap {shop}/old deleted", "gone")]
    finally:
        kubectl(*release, check=False)


async def test_secret_values_are_not_confirmed_by_size_and_never_shown(
    gateway: ToolGateway, shop: str, kubectl: Kubectl
) -> None:
    value = "s3cret-value"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "type": "Opaque",
        "stringData": {"password": value},
    }
    step = await execute(gateway, "k8s_apply", manifest=json.dumps(secret), namespace=shop)
    [check] = (await verified(gateway, shop, [step])).checks
    assert not check.passed
    assert check.message == (
        "could not be confirmed: data.password (the read tools redact Secret values: the live value has the "
        "expected size, but no digest to compare); check it by hand"
    )

    other = base64.b64encode(b"another, longer value").decode()
    kubectl(
        "patch", "secret", "db", "-n", shop, "--type=merge", "-p", json.dumps({"data": {"password": other}})
    )
    [check] = (await verified(gateway, shop, [step])).checks
    assert check.message == "data.password: differs from the value the change set (values are never shown)"
    for leaked in (value, base64.b64encode(value.encode()).decode(), other):
        assert leaked not in check.message
