"""The Helm chart installs and its operator ServiceAccount holds only what Bosun needs."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import localcluster
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
        "--set",
        "identityPolicies.install=false",
        "--wait",
        "--timeout=120s",
    )
    yield name
    helm(cluster, "uninstall", name, "-n", namespace, "--wait")


def test_chart_lints_and_renders_the_admission_policies(cluster: ClusterAccess) -> None:
    helm(cluster, "lint", "--strict", str(CHART))
    rendered = helm(cluster, "template", "t", str(CHART), "--kube-version", "1.36.3").stdout
    assert rendered.count("kind: MutatingAdmissionPolicy\n") >= 3
    assert rendered.count("kind: ValidatingAdmissionPolicy\n") == 1  # spec.targetNamespaces readable
    # The test cluster already has them (applied from crds/ by the e2e tests), so install without.
    kinds = helm(
        cluster,
        "template",
        "t",
        str(CHART),
        "--kube-version",
        "1.36.3",
        "--set",
        "identityPolicies.install=false",
    ).stdout
    assert "AdmissionPolicy" not in kinds


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
    # Impersonation is constrained (never system:masters; tests/integration/test_impersonation.py): the
    # legacy verb, which would allow --as-group=system:masters, is not granted.
    authn = "authentication.k8s.io"
    assert can("impersonate:user-info", "users", authn, namespace="")
    assert can("impersonate:user-info", "groups", authn, namespace="")
    assert can("impersonate:serviceaccount", "serviceaccounts", authn)
    assert can("impersonate-on:user-info:patch", "deployments", "apps")
    assert not can(
        "impersonate-on:user-info:escalate", "clusterroles", "rbac.authorization.k8s.io", namespace=""
    )
    for resource in ("users", "groups", "serviceaccounts"):
        assert not can("impersonate", resource, namespace="")
    # Everything else happens as the requester, so the operator's own identity cannot do it.
    assert not can("get", "secrets")
    assert not can("patch", "deployments", "apps")
    assert not can("delete", "pods")
    assert not can("create", "clusterrolebindings", "rbac.authorization.k8s.io", namespace="")


def test_chart_ships_the_generated_crds_and_identity_policies() -> None:
    """The chart carries copies of ``crds/`` (Helm installs CRDs only from its own crds/ folder, and
    admission policies must be templates so upgrades update them); ``make crds`` refreshes both."""
    generated = Path(__file__).resolve().parents[2] / "crds"
    for crd in generated.glob("bosun.dev_*.yaml"):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text(), (
            f"run `make crds`: {crd.name} differs"
        )
    policy = (generated / "identity-policy.yaml").read_text()
    assert (CHART / "files" / "identity-policy.yaml").read_text() == policy, "run `make crds`"


def test_helm_built_here_renders_the_chart_without_a_kube_version() -> None:
    """tests/cluster/build.sh (like the Dockerfile) links helm with the Kubernetes version of its client-go,
    as helm's Makefile does; the module's built-in default, 1.20, would fail the chart's kubeVersion."""
    helm_binary = localcluster.build_binaries() / "helm"
    rendered = subprocess.run(
        [str(helm_binary), "template", "t", str(CHART)], capture_output=True, text=True, timeout=180
    )
    assert rendered.returncode == 0, f"helm template without --kube-version failed:\n{rendered.stderr}"
    assert "kind: MutatingAdmissionPolicy\n" in rendered.stdout


def _rendered(*args: str) -> subprocess.CompletedProcess[str]:
    helm_binary = localcluster.build_binaries() / "helm"
    return subprocess.run(
        [str(helm_binary), "template", "t", str(CHART), *args], capture_output=True, text=True, timeout=180
    )


def _policy_versions(manifest: str) -> set[str]:
    """The API versions of the rendered MutatingAdmissionPolicies and their bindings."""
    lines = manifest.splitlines()
    return {
        previous.removeprefix("apiVersion: admissionregistration.k8s.io/")
        for previous, line in itertools.pairwise(lines)
        if line.startswith("kind: MutatingAdmissionPolicy")
    }


@pytest.mark.parametrize(
    ("kube_version", "policies", "impersonation"),
    [
        ("1.36.0", "v1", "constrained"),
        ("1.35.2", "v1beta1", "legacy"),
        ("1.34.0", "v1beta1", "legacy"),
        ("1.33.5", "v1alpha1", "legacy"),
        ("1.32.0", "v1alpha1", "constrained"),
    ],
)
def test_the_chart_renders_for_every_supported_kubernetes(
    kube_version: str, policies: str, impersonation: str
) -> None:
    """auto picks the policy API each version has; before 1.36 the impersonation mode must be chosen."""
    if kube_version != "1.36.0":
        refused = _rendered("--kube-version", kube_version)
        assert refused.returncode != 0
        expected = f"impersonation.mode: Kubernetes v{kube_version} has no constrained impersonation"
        assert expected in refused.stderr
    rendered = _rendered("--kube-version", kube_version, "--set", f"impersonation.mode={impersonation}")
    assert rendered.returncode == 0, rendered.stderr
    assert _policy_versions(rendered.stdout) == {policies}
    assert "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n" in rendered.stdout
    legacy = "verbs: [impersonate]" in rendered.stdout
    assert legacy == (impersonation == "legacy")
    assert ("impersonate:user-info" in rendered.stdout) == (impersonation == "constrained")


def test_the_chart_refuses_what_it_cannot_install_safely() -> None:
    too_old = _rendered("--kube-version", "1.31.0")
    assert "chart requires kubeVersion: >=1.32.0-0" in too_old.stderr
    unknown = _rendered("--set", "identityPolicies.apiVersion=v2")
    assert 'identityPolicies.apiVersion: "v2" is not one of auto, v1, v1beta1, v1alpha1' in unknown.stderr
    mode = _rendered("--set", "impersonation.mode=anyone")
    assert 'impersonation.mode: "anyone" is not one of auto, constrained, legacy' in mode.stderr
