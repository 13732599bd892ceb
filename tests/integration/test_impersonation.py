"""The chart's operator ServiceAccount, its token used directly with kubectl as an attacker holding it would:
it reads no Secret itself and cannot reach ``system:masters`` through impersonation, yet it still acts as an
ordinary requester (user, groups) or a ServiceAccount, which is all Bosun needs.

Exactly what the chart grants that ServiceAccount is installed (``helm template`` of its RBAC, filtered to
the bindings naming it): installing the whole chart would add nothing to the question and would aggregate
its requester role into the cluster's ``edit`` role while other tests run. The bearer token goes through
the kubectl binary, in a kubeconfig holding nothing else.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import BindRole, ClusterAccess, Kubectl
from tests.integration.test_chart import CHART, helm

pytestmark = pytest.mark.cluster

AsOperator = Callable[..., subprocess.CompletedProcess[str]]


def granted_to_the_service_account(rendered: str) -> list[dict[str, Any]]:
    """The ServiceAccount, the bindings naming it and the roles they bind: all that identity holds."""
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    [account] = [d for d in docs if d["kind"] == "ServiceAccount"]
    name = account["metadata"]["name"]
    bindings = [
        d
        for d in docs
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(s["kind"] == "ServiceAccount" and s["name"] == name for s in d["subjects"])
    ]
    bound = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings}
    roles = [d for d in docs if (d["kind"], d["metadata"]["name"]) in bound]
    assert len(roles) == len(bound), "a binding names a role the chart does not render"
    return [account, *roles, *bindings]


@pytest.fixture
def as_operator(
    cluster: ClusterAccess, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> Iterator[AsOperator]:
    """kubectl authenticated only by a token of the chart's operator ServiceAccount."""
    release = f"i{namespace[-5:]}"  # cluster-scoped RBAC objects carry the release name
    rendered = helm(
        cluster, "template", release, str(CHART), "-n", namespace, "--show-only", "templates/rbac.yaml"
    ).stdout
    objects = json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": granted_to_the_service_account(rendered)}
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=objects)
    try:
        account = f"{release}-bosun"
        token = kubectl("-n", namespace, "create", "token", account, "--duration=15m").stdout.strip()
        config = json.loads(kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout)
        context = config["contexts"][0]["context"]
        config["users"] = [{"name": account, "user": {"token": token}}]
        config["contexts"] = [{"name": account, "context": {"cluster": context["cluster"], "user": account}}]
        config["current-context"] = account
        path = tmp_path / "operator.kubeconfig"
        path.write_text(json.dumps(config))

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(path), *args],
                capture_output=True,
                text=True,
                env=cluster.env,
                timeout=60,
                check=False,
            )

        whoami = run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
        assert whoami.stdout == f"system:serviceaccount:{namespace}:{account}", whoami.stderr
        yield run
    finally:
        kubectl("delete", "-n", namespace, "--ignore-not-found", "-f", "-", input=objects, check=False)


def allowed(result: subprocess.CompletedProcess[str]) -> bool:
    assert result.returncode == 0 or "(Forbidden)" in result.stderr, result.stderr
    return result.returncode == 0


@pytest.fixture
def secret(kubectl: Kubectl, namespace: str) -> str:
    kubectl("-n", namespace, "create", "secret", "generic", "db", "--from-literal=password=hunter2")
    return "db"


def test_the_cluster_runs_constrained_impersonation(kubectl: Kubectl) -> None:
    """The chart relies on it (beta, on by default in 1.36): with the gate off, the operator's constrained
    grants mean nothing and every impersonated call is Forbidden (closed, but broken)."""
    metrics = kubectl("get", "--raw", "/metrics").stdout
    assert 'kubernetes_feature_enabled{name="ConstrainedImpersonation",stage="BETA"} 1' in metrics


def test_the_operator_token_reads_no_secret_itself(
    as_operator: AsOperator, namespace: str, secret: str
) -> None:
    assert not allowed(as_operator("-n", namespace, "get", "secret", secret))
    assert not allowed(as_operator("get", "secrets", "--all-namespaces"))


def test_the_operator_token_cannot_act_as_system_masters(
    as_operator: AsOperator, namespace: str, secret: str
) -> None:
    for user in ("x", "alice", "bosun-admin"):
        result = as_operator(
            f"--as={user}", "--as-group=system:masters", "-n", namespace, "get", "secret", secret
        )
        assert not allowed(result)
        assert "impersonating the system:masters group is not allowed" in result.stderr, result.stderr
    # Legacy impersonation (the verb that has no such exception) is not granted at all.
    for resource in ("users", "groups", "serviceaccounts"):
        assert as_operator("auth", "can-i", "impersonate", resource).stdout.strip() == "no"


def test_the_operator_token_acts_as_an_ordinary_requester_with_exactly_their_rights(
    as_operator: AsOperator, namespace: str, secret: str, bind_role: BindRole
) -> None:
    bind_role(namespace, "alice", "edit")
    bind_role(namespace, "sre", "view", kind="Group")
    # alice may read Secrets in this namespace, so Bosun acting as alice may; nowhere else.
    assert allowed(as_operator("--as=alice", "-n", namespace, "get", "secret", secret))
    assert not allowed(as_operator("--as=alice", "-n", "kube-system", "get", "secrets"))
    assert allowed(as_operator("--as=alice", "-n", namespace, "create", "configmap", "made-by-alice"))
    # Groups are carried: bob reads pods only through his group sre.
    assert allowed(as_operator("--as=bob", "--as-group=sre", "-n", namespace, "get", "pods"))
    assert not allowed(as_operator("--as=bob", "-n", namespace, "get", "pods"))


def test_the_operator_token_acts_as_a_service_account_by_name_only(
    as_operator: AsOperator, kubectl: Kubectl, namespace: str, bind_role: BindRole
) -> None:
    """The execution ServiceAccount (and requesters that are ServiceAccounts): constrained impersonation of
    a ServiceAccount takes its name only, and the API server adds its groups itself; naming groups too is
    refused, so the operator must not send them."""
    kubectl("-n", namespace, "create", "serviceaccount", "deployer")
    bind_role(namespace, f"system:serviceaccount:{namespace}:deployer", "edit")
    sa = f"--as=system:serviceaccount:{namespace}:deployer"
    assert allowed(as_operator(sa, "-n", namespace, "create", "configmap", "made-by-deployer"))
    whoami = as_operator(sa, "auth", "whoami", "-o", "json")
    assert allowed(whoami)
    groups = json.loads(whoami.stdout)["status"]["userInfo"]["groups"]
    assert f"system:serviceaccounts:{namespace}" in groups
    assert not allowed(as_operator(sa, "--as-group=system:serviceaccounts", "-n", namespace, "get", "pods"))
