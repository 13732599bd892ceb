"""What the tool-server tests share: calling a tool the way the operator does, the in-process MCP client
fixture, granting RBAC and waiting for it to take effect, and the Deployment manifest most cluster tests
start from (one copy of each, not one per module).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastmcp import Client, FastMCP

from tests.conftest import BindRole, Kubectl
from tests.waiting import eventually

WEB_IMAGE = "registry.example/web:1.0"


async def call(
    client: Client[Any],
    tool: str,
    args: dict[str, Any],
    *,
    user: str | None = None,
    groups: tuple[str, ...] = (),
    preview: bool = False,
) -> dict[str, Any]:
    """Call a tool as the operator does: identity and mode in ``_meta``. Without ``user`` the call runs as
    the tool server's own identity, the baseline an impersonated requester's refusals are compared with."""
    meta: dict[str, Any] = {"bosun.dev/mode": "preview" if preview else "execute"}
    if user:
        meta["bosun.dev/identity"] = {"user": user, "groups": list(groups)}
    result = await client.call_tool(tool, args, meta=meta)
    assert result.structured_content is not None
    return result.structured_content


@pytest.fixture
async def mcp(server: FastMCP) -> AsyncIterator[Client[Any]]:
    """An in-process client of the module's ``server`` fixture, as ``ToolGateway.in_process`` uses it."""
    async with Client(server) as client:
        yield client


def deployment(name: str, replicas: int = 2, image: str = WEB_IMAGE, **pod: Any) -> str:
    """A Deployment whose one container is named after it; ``pod`` adds or replaces pod spec fields."""
    spec: dict[str, Any] = {"containers": [{"name": name, "image": image}], **pod}
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
            },
        }
    )


def grant(kubectl: Kubectl, bind_role: BindRole, namespace: str, user: str, role: str, check: str) -> None:
    """Bind the ClusterRole ``role`` to ``user`` in ``namespace`` and wait until the authorizer, which
    learns of RBAC changes through an informer, says yes to ``check`` (verb and resource, as kubectl auth
    can-i takes them)."""
    bind_role(namespace, user, role)
    can_i = ["auth", "can-i", *check.split(), "-n", namespace]
    eventually(f"{user} to {check}", lambda: kubectl(*can_i, user=user, check=False).returncode == 0)


def rollout_replicaset(
    owner: dict[str, Any], revision: int, containers: list[dict[str, str]]
) -> dict[str, Any]:
    """A ReplicaSet of one revision of a Rollout, as the Rollouts controller (not running here) leaves it."""
    meta = owner["metadata"]
    labels = {"app": meta["name"], "rollouts-pod-template-hash": f"h{revision}"}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-h{revision}",
            "labels": labels,
            "annotations": {"rollout.argoproj.io/revision": str(revision)},
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Rollout",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}},
        },
    }
