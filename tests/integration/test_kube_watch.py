"""``KubeClient.watch`` against the real API server: the changes after a list's resourceVersion as they
happen, bookmarks, the end the server sets, a field selector, and 410 Gone for a version too old."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bosun_tools.client.kube import KubeClient, KubeError, ResourceInfo

from tests.conftest import ClusterAccess

pytestmark = pytest.mark.cluster

CONFIG_MAPS = ResourceInfo("", "v1", "ConfigMap", "configmaps", namespaced=True, verbs=())


@pytest.fixture
async def kube(cluster: ClusterAccess) -> AsyncIterator[KubeClient]:
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    yield client
    await client.aclose()


async def _config_map(kube: KubeClient, namespace: str, name: str) -> dict[str, Any]:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}
    return await kube.create(CONFIG_MAPS, body, namespace)


async def test_a_watch_from_a_lists_version_sees_what_happens_next_and_ends_when_the_server_says(
    kube: KubeClient, namespace: str
) -> None:
    await _config_map(kube, namespace, "before")
    listing = await kube.list(CONFIG_MAPS, namespace)
    version = listing["metadata"]["resourceVersion"]
    seen: list[tuple[str, str]] = []

    async def follow() -> None:
        async with contextlib.aclosing(
            kube.watch(
                CONFIG_MAPS,
                namespace,
                resource_version=version,
                field_selector="metadata.name!=kube-root-ca.crt",
                timeout_seconds=3,
            )
        ) as events:
            async for event in events:
                if event["type"] != "BOOKMARK":
                    seen.append((event["type"], event["object"]["metadata"]["name"]))

    watching = asyncio.create_task(follow())
    await _config_map(kube, namespace, "after")
    await kube.delete(CONFIG_MAPS, "after", namespace)
    await asyncio.wait_for(watching, timeout=30)  # the server ends the watch after its 3 seconds
    assert seen == [("ADDED", "after"), ("DELETED", "after")]


async def test_a_version_too_old_is_410_gone(kube: KubeClient, namespace: str) -> None:
    await _config_map(kube, namespace, "one")
    events = kube.watch(CONFIG_MAPS, namespace, resource_version="1")
    with pytest.raises(KubeError) as gone:
        async for _ in events:
            pass
    assert gone.value.status == 410
    assert "too old" in gone.value.message
