"""Read-only Kubernetes tools against the real control plane, called through the real MCP server
in-process, as the server identity or as impersonated users (alice, bob of group sre, carol)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import yaml
from bosun_tools.server import build_server
from bosun_tools.settings import ToolSettings
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.tools_support import call, deployment, mcp
from tests.waiting import crds_established

pytestmark = pytest.mark.cluster
__all__ = ["mcp"]  # the shared client fixture, used with this module's server fixture

SECRET_VALUE = "s3cr3t-Value-never-shown"
CRD_GROUP = "tools-test.bosun.dev"


@pytest.fixture(scope="module")
def server(cluster: ClusterAccess) -> FastMCP:
    return build_server(ToolSettings(kubeconfig=str(cluster.kubeconfig), toolsets=("kubernetes",)))


@pytest.fixture
def web(kubectl: Kubectl, namespace: str) -> str:
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("web"))
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    return "web"


async def test_get_list_describe_events_and_rollout_of_a_deployment(
    mcp: Client[Any], namespace: str, web: str
) -> None:
    got = await call(mcp, "k8s_get", {"kind": "deploy", "name": web, "namespace": namespace})
    assert got["text"].split("\n")[0].split()[:2] == ["NAME", "READY"]
    assert "2/2" in got["text"]
    assert got["data"] == {"kind": "Deployment", "name": "web", "namespace": namespace}

    full = yaml.safe_load(
        (
            await call(
                mcp, "k8s_get", {"kind": "Deployment", "name": web, "namespace": namespace, "output": "yaml"}
            )
        )["text"]
    )
    assert full["spec"]["replicas"] == 2
    assert "managedFields" not in full["metadata"]

    pods = await call(mcp, "k8s_get", {"kind": "pods", "namespace": namespace, "label_selector": "app=web"})
    assert pods["data"]["count"] == 2
    assert "Running" in pods["text"]
    everywhere = await call(
        mcp, "k8s_get", {"kind": "deployments.apps", "field_selector": f"metadata.name={web}"}
    )
    assert everywhere["text"].startswith("NAMESPACE")
    assert namespace in everywhere["text"]

    describe = {"kind": "deployment", "name": web, "namespace": namespace, "output": "describe"}
    described = await call(mcp, "k8s_get", describe)
    assert "Events:" in described["text"]
    assert "ScalingReplicaSet" in described["text"]
    assert "replicas: 2" in described["text"]
    with pytest.raises(ToolError, match="output=describe needs a name"):
        await call(mcp, "k8s_get", {"kind": "deployment", "namespace": namespace, "output": "describe"})
    with pytest.raises(ToolError, match="either name or a selector"):
        await call(
            mcp, "k8s_get", {"kind": "pods", "name": "p", "namespace": namespace, "label_selector": "a=b"}
        )

    of_web = f"involvedObject.kind=Deployment,involvedObject.name={web}"
    events = await call(mcp, "k8s_get", {"kind": "events", "namespace": namespace, "field_selector": of_web})
    assert events["text"].split()[:5] == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT"]
    assert "ScalingReplicaSet" in events["text"]
    assert "deployment/web" in events["text"]
    warnings = await call(
        mcp, "k8s_get", {"kind": "ev", "namespace": namespace, "field_selector": "type=Warning"}
    )
    assert warnings["data"] == {"kind": "Event", "namespace": namespace, "count": 0}

    status = await call(mcp, "k8s_rollout_status", {"name": web, "namespace": namespace})
    assert status["data"]["complete"] is True
    assert status["text"] == 'deployment "web" successfully rolled out'
    history = await call(mcp, "k8s_rollout_history", {"name": web, "namespace": namespace})
    assert history["data"]["revisions"] == [1]
    revision = await call(mcp, "k8s_rollout_history", {"name": web, "namespace": namespace, "revision": 1})
    assert "registry.example/web:1.0" in revision["text"]


async def test_rollout_status_reports_an_unfinished_rollout_after_waiting(
    mcp: Client[Any], kubectl: Kubectl, namespace: str
) -> None:
    kubectl(
        "apply", "-n", namespace, "-f", "-", input=deployment("stuck", 1, nodeSelector={"no": "such-node"})
    )
    status = await call(
        mcp, "k8s_rollout_status", {"name": "stuck", "namespace": namespace, "wait_seconds": 2}
    )
    assert status["data"]["complete"] is False
    assert "Waiting" in status["text"]


async def test_cluster_scoped_and_discovery_tools(mcp: Client[Any]) -> None:
    nodes = await call(mcp, "k8s_get", {"kind": "no"})
    assert "kwok-node-0" in nodes["text"]
    assert not nodes["text"].startswith("NAMESPACE")
    node = await call(mcp, "k8s_get", {"kind": "node", "name": "kwok-node-0"})
    assert "Ready" in node["text"]
    resources = await call(mcp, "k8s_api_resources", {"group": "apps"})
    assert "deployments" in resources["text"]
    assert "apps/v1" in resources["text"]
    assert "pods " not in resources["text"]


async def test_custom_resources_are_listed_and_read(
    mcp: Client[Any], kubectl: Kubectl, namespace: str
) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
                    ],
                }
            ],
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(crd))
    crds_established(kubectl, f"widgets.{CRD_GROUP}")
    widget = {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": "w1"},
        "spec": {"size": 7},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(widget))

    listed = await call(mcp, "k8s_get", {"kind": f"widgets.{CRD_GROUP}", "namespace": namespace})
    assert listed["text"].split("\n")[0].split() == ["NAME", "SIZE"]
    assert listed["text"].split("\n")[1].split()[:2] == ["w1", "7"]
    got = await call(mcp, "k8s_get", {"kind": "wdg", "name": "w1", "namespace": namespace, "output": "yaml"})
    assert yaml.safe_load(got["text"])["spec"] == {"size": 7}
    patched = await call(
        mcp,
        "k8s_patch",
        {"kind": "widget", "name": "w1", "namespace": namespace, "patch": {"spec": {"size": 9}}},
    )
    assert patched["data"]["patch_type"] == "merge"  # strategic is not served for custom resources
    assert patched["data"]["changes"] == ["spec.size: 7 -> 9"]


async def test_missing_objects_and_types_are_clear_errors(mcp: Client[Any], namespace: str) -> None:
    with pytest.raises(
        ToolError, match=rf'NotFound: deployments.apps "nope" not found in namespace {namespace}'
    ):
        await call(mcp, "k8s_get", {"kind": "deployment", "name": "nope", "namespace": namespace})
    with pytest.raises(ToolError, match='no resource type "gizmos"'):
        await call(mcp, "k8s_get", {"kind": "gizmos"})
    with pytest.raises(ToolError, match=r"deployments\.apps are namespaced: pass namespace"):
        await call(mcp, "k8s_get", {"kind": "deployment", "name": "web"})
    with pytest.raises(
        ToolError, match=f"has no revision 9; revisions: none|not found in namespace {namespace}"
    ):
        await call(mcp, "k8s_rollout_history", {"name": "nope", "namespace": namespace, "revision": 9})


async def test_metrics_api_absence_is_explained(mcp: Client[Any]) -> None:
    with pytest.raises(ToolError, match=r"metrics API \(metrics.k8s.io\) is not available"):
        await call(mcp, "k8s_top", {"kind": "nodes"})


async def test_impersonated_user_without_rights_is_forbidden_though_the_server_could(
    mcp: Client[Any], namespace: str, web: str, bind_role: BindRole
) -> None:
    assert (await call(mcp, "k8s_get", {"kind": "pods", "namespace": namespace}))["data"]["count"] == 2
    with pytest.raises(ToolError, match=r'Forbidden: .*User "carol" cannot list resource "pods"'):
        await call(mcp, "k8s_get", {"kind": "pods", "namespace": namespace}, user="carol")
    with pytest.raises(ToolError, match='User "carol" cannot get resource "deployments/scale"'):
        await call(
            mcp,
            "k8s_scale",
            {"kind": "deployment", "name": web, "namespace": namespace, "replicas": 3},
            user="carol",
        )
    no = await call(
        mcp, "k8s_can_i", {"verb": "list", "resource": "pods", "namespace": namespace}, user="carol"
    )
    assert no["data"]["allowed"] is False
    assert no["text"].startswith(f"no: carol cannot list pods in namespace {namespace}")

    bind_role(namespace, "carol", "view")
    yes = await call(
        mcp, "k8s_can_i", {"verb": "list", "resource": "pods", "namespace": namespace}, user="carol"
    )
    assert yes["data"]["allowed"] is True
    listed = await call(mcp, "k8s_get", {"kind": "pods", "namespace": namespace}, user="carol")
    assert listed["data"]["count"] == 2
    can_patch = await call(
        mcp,
        "k8s_can_i",
        {"verb": "patch", "resource": "deployments", "namespace": namespace, "subresource": "scale"},
        user="carol",
    )
    assert can_patch["data"] == {
        "allowed": False,
        "verb": "patch",
        "resource": "deployments.apps/scale",
        "namespace": namespace,
    }


async def test_every_group_of_the_identity_is_impersonated(
    mcp: Client[Any], namespace: str, web: str, bind_role: BindRole
) -> None:
    """Rights granted to group sre count only if the groups travel as repeated Impersonate-Group headers."""
    bind_role(namespace, "sre", "view", kind="Group")
    args = {"kind": "deployments", "namespace": namespace}
    with pytest.raises(ToolError, match="Forbidden"):
        await call(mcp, "k8s_get", args, user="bob")
    with pytest.raises(ToolError, match="Forbidden"):
        await call(mcp, "k8s_get", args, user="bob", groups=("oncall",))
    listed = await call(mcp, "k8s_get", args, user="bob", groups=("oncall", "sre"))
    assert listed["data"]["count"] == 1


async def test_a_secret_value_never_leaves_through_any_read_path(
    mcp: Client[Any], kubectl: Kubectl, namespace: str
) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db"},
        "stringData": {"password": SECRET_VALUE},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(secret))  # also writes last-applied
    env = [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}]
    pod_spec = {"containers": [{"name": "api", "image": "registry.example/api:1", "env": env}]}
    kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        input=deployment("api", 1, **{"containers": pod_spec["containers"]}),
    )
    kubectl("rollout", "status", "-n", namespace, "deployment/api", "--timeout=90s")
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()

    outputs = [
        await call(mcp, "k8s_get", {"kind": "secret", "name": "db", "namespace": namespace}),
        await call(
            mcp, "k8s_get", {"kind": "secret", "name": "db", "namespace": namespace, "output": "yaml"}
        ),
        await call(mcp, "k8s_get", {"kind": "secrets", "namespace": namespace}),
        await call(mcp, "k8s_get", {"kind": "secrets", "namespace": namespace, "output": "yaml"}),
        await call(
            mcp, "k8s_get", {"kind": "secrets", "output": "yaml", "field_selector": "metadata.name=db"}
        ),
        await call(
            mcp, "k8s_get", {"kind": "secret", "name": "db", "namespace": namespace, "output": "describe"}
        ),
        await call(mcp, "k8s_get", {"kind": "events", "namespace": namespace}),
        await call(
            mcp,
            "k8s_get",
            {"kind": "deployment", "name": "api", "namespace": namespace, "output": "describe"},
        ),
        await call(mcp, "k8s_get", {"kind": "pods", "namespace": namespace, "output": "yaml"}),
        await call(mcp, "k8s_rollout_history", {"name": "api", "namespace": namespace, "revision": 1}),
    ]
    for output in outputs:
        dumped = json.dumps(output)
        assert SECRET_VALUE not in dumped
        assert encoded not in dumped
    got = yaml.safe_load(outputs[1]["text"])
    assert got["data"] == {"password": f"<redacted {len(SECRET_VALUE)} bytes>"}
    assert "<redacted" in got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    assert "<set to the key" not in outputs[7]["text"]
    assert "secretKeyRef" in outputs[7]["text"]  # the reference is shown, never the value


async def test_large_outputs_are_capped_with_a_visible_marker(
    mcp: Client[Any], kubectl: Kubectl, namespace: str
) -> None:
    big = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "big"},
        "data": {"blob": "x" * 40_000},
    }
    kubectl("apply", "--server-side", "-n", namespace, "-f", "-", input=json.dumps(big))
    got = await call(
        mcp, "k8s_get", {"kind": "configmap", "name": "big", "namespace": namespace, "output": "yaml"}
    )
    assert got["truncated"] is True
    assert len(got["text"].encode()) < 16_100
    assert got["text"].rstrip().endswith("bytes]")
    assert "…[truncated " in got["text"]
    for i in range(3):
        kubectl("create", "configmap", f"c{i}", "-n", namespace)
    page = await call(mcp, "k8s_get", {"kind": "configmaps", "namespace": namespace, "limit": 2})
    assert page["truncated"] is True
    assert page["data"]["more"] is True
    assert "more than 2 objects" in page["text"]
