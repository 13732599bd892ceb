"""Sealing against the real API server: a preview keeps a new secret value in a holding Secret owned by
the task and proposes only its digest; execution writes exactly that value, and nothing else; a holding
Secret that was tampered with, or is gone, refuses the call; the internal cleanup tool removes it.

Calls go through the in-process MCP server the way the operator makes them (identity, mode and task in
``_meta``), as alice, who may edit the namespace (Secrets included).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from bosun_tools.sealing import CLEANUP_TOOL, COMPARE_TOOL, SEALED_FOR, SEALED_TYPE, TASK_META, TaskRef
from bosun_tools.secrets import Placeholder
from bosun_tools.server import build_server
from bosun_tools.settings import ToolSettings
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.tools_support import grant, mcp
from tests.waiting import crds_established

pytestmark = pytest.mark.cluster
__all__ = ["mcp"]  # the shared client fixture, used with this module's server fixture

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "n3w-Rotated-pa55word"
OLD_PASSWORD = "old-password-value"
DIGEST = hashlib.sha256(PASSWORD.encode()).hexdigest()


@pytest.fixture(scope="module")
def server(cluster: ClusterAccess) -> FastMCP:
    return build_server(ToolSettings(kubeconfig=str(cluster.kubeconfig), toolsets=("kubernetes",)))


@pytest.fixture(scope="module")
def agenttask_kind(kubectl: Kubectl) -> None:
    """Bosun's CRDs, so a holding Secret can be owned by a real AgentTask (and the garbage collector
    keeps it while the task exists)."""
    for name in ("bosun.dev_agenttasks.yaml", "bosun.dev_approvalgrants.yaml"):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / name))
    crds_established(kubectl, "agenttasks.bosun.dev", "approvalgrants.bosun.dev")


@pytest.fixture
def task(agenttask_kind: None, kubectl: Kubectl, namespace: str, bind_role: BindRole) -> TaskRef:
    """An AgentTask nobody reconciles (no operator here), and alice allowed to edit the namespace."""
    doc = {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "AgentTask",
        "metadata": {"name": "rotate"},
        "spec": {"request": "rotate the db password"},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(doc))
    uid = kubectl("get", "-n", namespace, "agenttask", "rotate", "-o", "jsonpath={.metadata.uid}").stdout
    grant(kubectl, bind_role, namespace, "alice", "edit", "create secrets")
    return TaskRef(namespace, "rotate", uid)


async def call_for(
    client: Client[Any],
    tool: str,
    args: dict[str, Any],
    task: TaskRef | None,
    *,
    user: str = "alice",
    preview: bool = False,
) -> dict[str, Any]:
    """A call as the operator makes it: as ``user``, in preview or execute mode, for ``task``."""
    meta: dict[str, Any] = {
        "bosun.dev/mode": "preview" if preview else "execute",
        "bosun.dev/identity": {"user": user, "groups": []},
    }
    if task is not None:
        meta[TASK_META] = task.as_meta()
    result = await client.call_tool(tool, args, meta=meta)
    assert result.structured_content is not None
    return result.structured_content


def rotation(namespace: str, value: str = PASSWORD) -> dict[str, Any]:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": namespace},
        "stringData": {"password": value, "user": "app"},
    }
    return {"manifest": yaml.safe_dump(secret), "namespace": namespace}


def secret_data(kubectl: Kubectl, namespace: str, name: str) -> dict[str, bytes]:
    got = json.loads(kubectl("get", "-n", namespace, "secret", name, "-o", "json").stdout)
    return {key: base64.b64decode(value) for key, value in (got.get("data") or {}).items()}


def placeholders(sealed: dict[str, Any]) -> dict[str, Placeholder]:
    doc = yaml.safe_load(sealed["manifest"])
    found = {key: Placeholder.parse(value) for key, value in doc["stringData"].items()}
    return {key: p for key, p in found.items() if p is not None}


async def test_preview_seals_execute_writes_exactly_the_value_and_cleanup_removes_it(
    mcp: Client[Any], kubectl: Kubectl, task: TaskRef
) -> None:
    namespace = task.namespace
    kubectl("create", "secret", "generic", "db", "-n", namespace, f"--from-literal=password={OLD_PASSWORD}")
    preview = await call_for(mcp, "k8s_apply", rotation(namespace), task, preview=True)
    assert PASSWORD not in json.dumps(preview)
    assert OLD_PASSWORD not in json.dumps(preview)

    # The arguments to propose hold placeholders only: every value of a Secret is secret.
    sealed = preview["sealed_args"]
    assert sealed["namespace"] == namespace
    stand_ins = placeholders(sealed)
    assert list(stand_ins) == ["password", "user"]
    placeholder = stand_ins["password"]
    assert placeholder.digest == DIGEST
    assert placeholder.namespace == namespace
    assert stand_ins["user"].secret == placeholder.secret  # one holding Secret per call

    # The diff shows which key changes and a digest of the new value, never a value.
    assert f"data.password: <redacted {len(OLD_PASSWORD)} bytes> -> <redacted {len(PASSWORD)} bytes, " in (
        "\n".join(preview["data"]["changes"])
    )
    assert f"sha256:{DIGEST[:12]}>" in preview["diff"]
    assert secret_data(kubectl, namespace, "db")["password"] == OLD_PASSWORD.encode()  # a preview

    # The holding Secret: the value under its key, immutable, labelled for the task and owned by it.
    holder = json.loads(kubectl("get", "-n", namespace, "secret", placeholder.secret, "-o", "json").stdout)
    assert holder["type"] == SEALED_TYPE
    assert holder["immutable"] is True
    assert holder["metadata"]["labels"][SEALED_FOR] == task.uid
    assert [(o["kind"], o["name"], o["uid"]) for o in holder["metadata"]["ownerReferences"]] == [
        ("AgentTask", "rotate", task.uid)
    ]
    assert secret_data(kubectl, namespace, placeholder.secret) == {
        placeholder.key: PASSWORD.encode(),
        stand_ins["user"].key: b"app",
    }

    # Previewing the sealed call again (a model re-issuing it) seals into the same Secret, same arguments.
    again = await call_for(mcp, "k8s_apply", sealed, task, preview=True)
    assert again["sealed_args"] == sealed

    done = await call_for(mcp, "k8s_apply", sealed, None)
    assert PASSWORD not in json.dumps(done)
    assert secret_data(kubectl, namespace, "db") == {"password": PASSWORD.encode(), "user": b"app"}

    # Verification confirms the value by digest, without reading it back.
    other = hashlib.sha256(b"other").hexdigest()
    wanted = {"password": placeholder.digest, "user": other, "missing": placeholder.digest}
    args = {"namespace": namespace, "name": "db", "digests": wanted}
    compared = await call_for(mcp, COMPARE_TOOL, args, None)
    assert compared["data"]["keys"] == {"password": "same", "user": "different", "missing": "absent"}

    cleaned = await call_for(mcp, CLEANUP_TOOL, {"namespace": namespace, "task_uid": task.uid}, None)
    assert cleaned["data"]["deleted"] == [placeholder.secret]
    gone = kubectl("get", "-n", namespace, "secret", "-l", f"{SEALED_FOR}={task.uid}", "-o", "name")
    assert gone.stdout.strip() == ""
    with pytest.raises(ToolError, match=rf"Secret {namespace}/{placeholder.secret}, which no longer exists"):
        await call_for(mcp, "k8s_apply", sealed, None)


async def test_a_tampered_holding_secret_is_refused_and_nothing_is_written(
    mcp: Client[Any], kubectl: Kubectl, task: TaskRef
) -> None:
    namespace = task.namespace
    sealed = (await call_for(mcp, "k8s_apply", rotation(namespace), task, preview=True))["sealed_args"]
    placeholder = placeholders(sealed)["password"]
    holder = json.loads(kubectl("get", "-n", namespace, "secret", placeholder.secret, "-o", "json").stdout)
    # Immutable, so a tamperer deletes it and creates one of the same name with another value.
    kubectl("delete", "secret", placeholder.secret, "-n", namespace)
    forged = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SEALED_TYPE,
        "metadata": {"name": placeholder.secret, "labels": holder["metadata"]["labels"]},
        "stringData": {placeholder.key: "attacker-chosen"},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(forged))
    with pytest.raises(ToolError) as refused:
        await call_for(mcp, "k8s_apply", sealed, None)
    message = str(refused.value)
    assert "manifest document 1 (Secret db) stringData.password: holding Secret" in message
    assert f"holds a value whose digest does not match sha256:{DIGEST[:12]}" in message
    assert "nothing ran" in message
    assert "attacker-chosen" not in message
    missing = kubectl("get", "secret", "db", "-n", namespace, "--ignore-not-found", "-o", "name")
    assert missing.stdout.strip() == ""

    # A placeholder naming a Secret that is not a holding Secret is refused too.
    kubectl("create", "secret", "generic", "plain", "-n", namespace, f"--from-literal=k={PASSWORD}")
    other = Placeholder(DIGEST, namespace, "plain", "k")
    forged_args = rotation(namespace, str(other))
    with pytest.raises(ToolError, match=r"is not one of Bosun's holding Secrets"):
        await call_for(mcp, "k8s_apply", forged_args, task, preview=True)


async def test_a_patch_of_secret_data_is_sealed_as_base64_and_runs_with_the_decoded_bytes(
    mcp: Client[Any], kubectl: Kubectl, task: TaskRef
) -> None:
    namespace = task.namespace
    kubectl("create", "secret", "generic", "db", "-n", namespace, f"--from-literal=password={OLD_PASSWORD}")
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    args = {"kind": "secret", "name": "db", "namespace": namespace, "patch": {"data": {"password": encoded}}}
    preview = await call_for(mcp, "k8s_patch", {**args, "patch_type": "merge"}, task, preview=True)
    assert PASSWORD not in json.dumps(preview)
    assert encoded not in json.dumps(preview)
    placeholder = Placeholder.parse(preview["sealed_args"]["patch"]["data"]["password"])
    assert placeholder is not None
    assert placeholder.digest == DIGEST  # of the bytes, not of their base64
    await call_for(mcp, "k8s_patch", preview["sealed_args"], None)
    assert secret_data(kubectl, namespace, "db")["password"] == PASSWORD.encode()
