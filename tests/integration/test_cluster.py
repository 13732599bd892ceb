"""The local control plane does what the rest of Bosun relies on: real scheduling and rollouts on kwok
nodes, RBAC for ordinary users, impersonation, CRDs with a status subresource, server-side dry-run."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.tools_support import deployment
from tests.waiting import crds_established, eventually

pytestmark = pytest.mark.cluster


def test_kwok_nodes_are_ready(kubectl: Kubectl) -> None:
    nodes = json.loads(kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    assert len(ready) >= 2, f"expected at least two Ready nodes, got {ready}"


def test_deployment_rolls_out_restarts_and_scales(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("web", 3))
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    status = json.loads(kubectl("get", "-n", namespace, "deployment/web", "-o", "json").stdout)["status"]
    assert status["availableReplicas"] == 3

    kubectl("rollout", "restart", "-n", namespace, "deployment/web")
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    history = kubectl("rollout", "history", "-n", namespace, "deployment/web").stdout
    assert "2" in history.split()

    kubectl("scale", "-n", namespace, "deployment/web", "--replicas=5")
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    kubectl(
        "wait",
        "-n",
        namespace,
        "deployment/web",
        "--for=jsonpath={.status.availableReplicas}=5",
        "--timeout=60s",
    )


def test_deleting_a_namespace_with_pods_finishes(kubectl: Kubectl) -> None:
    kubectl("create", "namespace", "t-ns-delete")
    kubectl("apply", "-n", "t-ns-delete", "-f", "-", input=deployment("doomed", 2))
    kubectl("rollout", "status", "-n", "t-ns-delete", "deployment/doomed", "--timeout=90s")
    kubectl("delete", "namespace", "t-ns-delete", "--timeout=120s")
    gone = kubectl("get", "namespace", "t-ns-delete", check=False)
    assert gone.returncode != 0
    assert "NotFound" in gone.stderr


def test_ordinary_user_is_forbidden_until_bound(
    kubectl: Kubectl, namespace: str, bind_role: BindRole
) -> None:
    denied = kubectl("get", "pods", "-n", namespace, user="alice", check=False)
    assert denied.returncode != 0
    assert 'User "alice" cannot list resource "pods"' in denied.stderr

    bind_role(namespace, "alice", "view")
    eventually(
        "alice to be allowed",
        lambda: kubectl("get", "pods", "-n", namespace, user="alice", check=False).returncode == 0,
    )


def test_group_membership_comes_from_the_certificate(
    kubectl: Kubectl, namespace: str, bind_role: BindRole
) -> None:
    bind_role(namespace, "sre", "view", kind="Group")
    who = json.loads(kubectl("auth", "whoami", "-o", "json", user="bob").stdout)
    assert who["status"]["userInfo"]["username"] == "bob"
    assert "sre" in who["status"]["userInfo"]["groups"]
    eventually(
        "bob (group sre) to list pods",
        lambda: kubectl("get", "pods", "-n", namespace, user="bob", check=False).returncode == 0,
    )
    assert kubectl("get", "pods", "-n", namespace, user="carol", check=False).returncode != 0


def test_admin_can_impersonate(kubectl: Kubectl, namespace: str) -> None:
    as_alice = kubectl("get", "pods", "-n", namespace, "--as=alice", check=False)
    assert as_alice.returncode != 0
    assert 'User "alice" cannot list' in as_alice.stderr
    assert (
        kubectl("auth", "can-i", "list", "pods", "-n", namespace, "--as=alice", check=False).stdout.strip()
        == "no"
    )
    assert kubectl("auth", "can-i", "list", "pods", "-n", namespace).stdout.strip() == "yes"


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.cluster.bosun.dev"},
    "spec": {
        "group": "cluster.bosun.dev",
        "scope": "Namespaced",
        "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            },
                            "status": {"type": "object", "properties": {"phase": {"type": "string"}}},
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def gadget_crd(kubectl: Kubectl) -> Iterator[None]:
    """A throw-away CRD, removed again: the session's cluster is shared by every later test."""
    kubectl("apply", "-f", "-", input=json.dumps(CRD))
    crds_established(kubectl, "gadgets.cluster.bosun.dev")
    yield
    kubectl("delete", "crd", "gadgets.cluster.bosun.dev", "--wait=false", check=False)


def test_crd_with_status_subresource_round_trips(kubectl: Kubectl, namespace: str, gadget_crd: None) -> None:
    gadget = {
        "apiVersion": "cluster.bosun.dev/v1",
        "kind": "Gadget",
        "metadata": {"name": "g"},
        "spec": {"size": 2},
    }
    eventually(
        "the Gadget kind to be served",
        lambda: (
            kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(gadget), check=False).returncode
            == 0
        ),
    )
    kubectl(
        "patch",
        "-n",
        namespace,
        "gadget/g",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"phase":"Ready"}}',
    )
    # The main endpoint ignores status, and the status endpoint ignores spec.
    kubectl("patch", "-n", namespace, "gadget/g", "--type=merge", "-p", '{"status":{"phase":"Forged"}}')
    got = json.loads(kubectl("get", "-n", namespace, "gadget/g", "-o", "json").stdout)
    assert got["status"] == {"phase": "Ready"}
    assert got["metadata"]["generation"] == 1
    invalid = kubectl(
        "patch", "-n", namespace, "gadget/g", "--type=merge", "-p", '{"spec":{"size":0}}', check=False
    )
    assert invalid.returncode != 0
    assert "spec.size" in invalid.stderr


def test_server_side_dry_run_changes_nothing(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("web", 3))
    dry = kubectl(
        "scale", "-n", namespace, "deployment/web", "--replicas=7", "--dry-run=server", "-o", "json"
    )
    assert json.loads(dry.stdout)["spec"]["replicas"] == 7
    live = json.loads(kubectl("get", "-n", namespace, "deployment/web", "-o", "json").stdout)
    assert live["spec"]["replicas"] == 3
    diff = kubectl(
        "diff", "-n", namespace, "-f", "-", input=deployment("web", 4), check=False
    )  # kubectl diff exits 1 when there are differences
    assert diff.returncode == 1
    assert "-  replicas: 3" in diff.stdout
    assert "+  replicas: 4" in diff.stdout


def test_helm_install_deploys_an_available_deployment(
    cluster: ClusterAccess, kubectl: Kubectl, namespace: str
) -> None:
    chart = Path(__file__).resolve().parents[1] / "charts" / "web"
    subprocess.run(
        [
            str(cluster.bin_dir / "helm"),
            "install",
            "demo",
            str(chart),
            "-n",
            namespace,
            "--set",
            "replicaCount=2",
            "--wait",
            "--timeout=90s",
        ],
        env=cluster.env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    deployments = json.loads(kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)["items"]
    assert [d["status"].get("availableReplicas") for d in deployments] == [2]
    releases = subprocess.run(
        [str(cluster.bin_dir / "helm"), "list", "-n", namespace, "-o", "json"],
        env=cluster.env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert [(r["name"], r["status"]) for r in json.loads(releases.stdout)] == [("demo", "deployed")]


def test_pod_logs_and_exec_are_served_by_kwok(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("web", 1))
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    pod = kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "name").stdout.strip()
    logs = kubectl("logs", "-n", namespace, pod, "--tail=1").stdout
    assert logs == "GET /api/orders 500 upstream timeout\n"
    assert kubectl("exec", "-n", namespace, pod, "--", "echo", "hello").stdout == "hello\n"
