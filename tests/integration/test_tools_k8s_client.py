"""``bosun_tools.client.kube`` against the real API server: impersonation, discovery, verbs,
dry-run, error mapping and timeouts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bosun_tools.client.kube import KubeClient, KubeError
from bosun_tools.identity import Identity
from kubernetes import client as k8s_client

from tests.conftest import ClusterAccess, Kubectl
from tests.tools_support import WEB_IMAGE, deployment

pytestmark = pytest.mark.cluster


@pytest.fixture
async def kube(cluster: ClusterAccess) -> AsyncIterator[KubeClient]:
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    yield client
    await client.aclose()


async def test_impersonation_sends_the_user_and_every_group(kube: KubeClient) -> None:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    path = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
    bob = kube.impersonating(Identity("bob", ("sre", "oncall")))
    info = (await bob.request("POST", path, json=review))["status"]["userInfo"]
    assert info["username"] == "bob"
    assert {"sre", "oncall", "system:authenticated"} <= set(info["groups"])
    own = (await kube.request("POST", path, json=review))["status"]["userInfo"]
    assert own["username"] != "bob"
    assert kube.impersonating(None).identity is None


async def test_discovery_resolves_what_people_type(kube: KubeClient) -> None:
    for spelling in (
        "deploy",
        "deployment",
        "Deployment",
        "deployments",
        "deployments.apps",
        "Deployment.apps",
    ):
        info = await kube.resolve(spelling)
        assert (info.group, info.version, info.kind, info.plural) == (
            "apps",
            "v1",
            "Deployment",
            "deployments",
        )
    assert (await kube.resolve("deployments", "apps/v1")).api_version == "apps/v1"
    pods = await kube.resolve("po")
    assert (pods.api_version, pods.namespaced) == ("v1", True)
    assert "log" in pods.subresources
    assert "exec" in pods.subresources
    assert not (await kube.resolve("nodes")).namespaced
    assert (await kube.resolve("events", "v1")).group == ""
    with pytest.raises(KubeError) as missing:
        await kube.resolve("gizmo")
    assert (missing.value.status, missing.value.reason) == (404, "NotFound")


async def test_verbs_dry_run_and_error_mapping(kube: KubeClient, kubectl: Kubectl, namespace: str) -> None:
    cm = await kube.resolve("configmaps")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
    await kube.previewing().create(cm, body, namespace)
    assert kubectl("get", "configmap", "c", "-n", namespace, check=False).returncode != 0
    created = await kube.create(cm, body, namespace)
    assert created["metadata"]["managedFields"][0]["manager"] == "bosun"
    with pytest.raises(KubeError) as exists:
        await kube.create(cm, body, namespace)
    assert (exists.value.status, exists.value.reason) == (409, "AlreadyExists")

    patched = await kube.previewing().patch(cm, "c", {"data": {"a": "2"}}, namespace)
    assert patched["data"] == {"a": "2"}
    assert (await kube.get(cm, "c", namespace))["data"] == {"a": "1"}
    applied = await kube.patch(
        cm, "c", {**body, "data": {"b": "3"}}, namespace, patch_type="apply", force=True
    )
    assert applied["data"]["b"] == "3"
    listed = await kube.list(cm, namespace, field_selector="metadata.name=c", limit=5)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["c"]

    await kube.previewing().delete(cm, "c", namespace)
    assert (await kube.get(cm, "c", namespace))["metadata"]["name"] == "c"
    await kube.delete(cm, "c", namespace)
    with pytest.raises(KubeError) as gone:
        await kube.get(cm, "c", namespace)
    assert (gone.value.status, gone.value.reason) == (404, "NotFound")
    assert 'configmaps "c" not found' in gone.value.message

    deploy = await kube.resolve("deployments")
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bad"}, "spec": {}}
    with pytest.raises(KubeError) as invalid:
        await kube.create(deploy, bad, namespace)
    assert (invalid.value.status, invalid.value.reason) == (422, "Invalid")
    with pytest.raises(KubeError) as forbidden:
        await kube.impersonating(Identity("carol")).list(cm, namespace)
    assert (forbidden.value.status, forbidden.value.reason) == (403, "Forbidden")
    assert 'User "carol" cannot list resource "configmaps"' in forbidden.value.message


async def test_a_listing_comes_a_page_at_a_time(kube: KubeClient, namespace: str) -> None:
    """``limit`` cuts a listing into pages; ``continue_from`` the page before's token gets the next one, of
    the same snapshot: an object created meanwhile is not in it."""
    cm = await kube.resolve("configmaps")

    def named(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}

    for name in ("a", "b", "c"):
        await kube.create(cm, named(name), namespace)
    first = await kube.list(cm, namespace, limit=2)
    token = first["metadata"]["continue"]
    await kube.create(cm, named("d"), namespace)
    second = await kube.list(cm, namespace, limit=2, continue_from=token)
    names = [i["metadata"]["name"] for page in (first, second) for i in page["items"]]
    assert [n for n in names if n != "kube-root-ca.crt"] == ["a", "b", "c"]
    assert not second["metadata"].get("continue")


async def test_a_previewing_client_sends_every_write_as_a_dry_run(kube: KubeClient, namespace: str) -> None:
    """Every write verb (POST, PUT, PATCH, server-side apply, DELETE) and the subresources tools write
    (scale, eviction) reach the API server, which validates them and answers, yet store nothing: the
    objects keep their resourceVersion (or, where a controller writes status, their generation)."""
    preview = kube.previewing().impersonating(None)  # a view of a previewing client keeps previewing
    assert (preview.dry_run, kube.dry_run) == (True, False)
    cm = await kube.resolve("configmaps")
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kept"}, "data": {"a": "1"}}
    live = await kube.create(cm, body, namespace)
    version = live["metadata"]["resourceVersion"]

    fresh = await preview.create(cm, {**body, "metadata": {"name": "fresh"}}, namespace)
    assert fresh["metadata"]["name"] == "fresh"
    with pytest.raises(KubeError) as never_created:
        await kube.get(cm, "fresh", namespace)
    assert never_created.value.status == 404
    replaced = await preview.request("PUT", cm.path(namespace, "kept"), json={**live, "data": {"a": "9"}})
    assert replaced["data"] == {"a": "9"}
    assert (await preview.patch(cm, "kept", {"data": {"a": "2"}}, namespace))["data"] == {"a": "2"}
    applied = await preview.patch(
        cm, "kept", {**body, "data": {"b": "3"}}, namespace, patch_type="apply", force=True
    )
    assert applied["data"]["b"] == "3"
    await preview.delete(cm, "kept", namespace)
    after = await kube.get(cm, "kept", namespace)
    assert (after["metadata"]["resourceVersion"], after["data"]) == (version, {"a": "1"})

    deployments = await kube.resolve("deployments")
    web = await kube.create(deployments, json.loads(deployment("web", replicas=2)), namespace)
    scaled = await preview.patch(
        deployments, "web", {"spec": {"replicas": 5}}, namespace, subresource="scale"
    )
    assert scaled["spec"]["replicas"] == 5
    still = await kube.get(deployments, "web", namespace)
    assert (still["metadata"]["generation"], still["spec"]["replicas"]) == (web["metadata"]["generation"], 2)

    pods = await kube.resolve("pods")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "evictee"},
        "spec": {"containers": [{"name": "c", "image": WEB_IMAGE}]},
    }
    created = await kube.create(pods, pod, namespace)
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "evictee", "namespace": namespace},
    }
    await preview.request("POST", pods.path(namespace, "evictee", "eviction"), json=eviction)
    remaining = await kube.get(pods, "evictee", namespace)
    assert remaining["metadata"]["uid"] == created["metadata"]["uid"]
    assert "deletionTimestamp" not in remaining["metadata"]


async def test_every_request_has_a_timeout(kube: KubeClient, namespace: str) -> None:
    watch = f"/api/v1/namespaces/{namespace}/configmaps"
    with pytest.raises(KubeError) as slow:
        await kube.request("GET", watch, params={"watch": "true", "timeoutSeconds": 60}, timeout=0.5)
    assert (slow.value.status, slow.value.reason) == (504, "Timeout")
    assert "within 0.5s" in slow.value.message


async def test_an_unreachable_server_is_a_clear_error() -> None:
    nowhere = KubeClient.from_configuration(k8s_client.Configuration(host="http://127.0.0.1:9"))
    with pytest.raises(KubeError) as down:
        await nowhere.request("GET", "/version")
    await nowhere.aclose()
    assert (down.value.status, down.value.reason) == (503, "ServiceUnavailable")
    assert "cannot reach the API server at http://127.0.0.1:9" in down.value.message


async def test_kubeconfig_is_taken_from_the_environment(
    cluster: ClusterAccess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
    client = KubeClient.from_kubeconfig()
    version = await client.request("GET", "/version")
    await client.aclose()
    assert version["gitVersion"].startswith("v1.")
