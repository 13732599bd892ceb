"""The Helm chart installs and its operator ServiceAccount holds only what Bosun needs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ClusterAccess, Kubectl

pytestmark = pytest.mark.cluster

CHART = Path(__file__).resolve().parents[2] / "charts" / "bosun"


def helm(cluster: ClusterAccess, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), *args], env=cluster.env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}"
    return proc


@pytest.fixture
def release(cluster: ClusterAccess, namespace: str) -> Iterator[str]:
    name = f"b{namespace[-5:]}"  # cluster-scoped RBAC objects carry the release name
    helm(
        cluster,
        "install",
        name,
        str(CHART),
        "-n",
        namespace,
        "--set",
        "tools.mode=server",
        "--wait",
        "--timeout=120s",
    )
    yield name
    helm(cluster, "uninstall", name, "-n", namespace, "--wait")


def test_chart_lints(cluster: ClusterAccess) -> None:
    helm(cluster, "lint", "--strict", str(CHART))


def test_chart_installs_and_rbac_is_least_privilege(release: str, namespace: str, kubectl: Kubectl) -> None:
    deployments = json.loads(kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)["items"]
    available = {d["metadata"]["name"]: d["status"].get("availableReplicas") for d in deployments}
    assert available == {f"{release}-bosun-operator": 1, f"{release}-bosun-tools": 1}

    sa = f"system:serviceaccount:{namespace}:{release}-bosun"

    def can(
        verb: str, resource: str, group: str = "", subresource: str = "", namespace: str = "default"
    ) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": sa,
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"],
                "resourceAttributes": {
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "subresource": subresource,
                    "namespace": namespace,
                },
            },
        }
        out = kubectl("create", "-o", "json", "-f", "-", input=json.dumps(review)).stdout
        return bool(json.loads(out)["status"].get("allowed"))

    assert can("patch", "agenttasks", "bosun.dev", subresource="status")
    assert can("create", "approvalgrants", "bosun.dev")
    assert can("create", "events")
    assert can("impersonate", "users", namespace="")
    assert can("impersonate", "groups", namespace="")
    # Everything else happens as the requester, so the operator's own identity cannot do it.
    assert not can("get", "secrets")
    assert not can("patch", "deployments", "apps")
    assert not can("delete", "pods")
    assert not can("create", "clusterrolebindings", "rbac.authorization.k8s.io", namespace="")
