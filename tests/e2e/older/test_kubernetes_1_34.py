"""Bosun on Kubernetes 1.34: the chart's beta admission policies and legacy impersonation, end to end.

The chart is installed as a 1.34 administrator would: ``identityPolicies.apiVersion=v1beta1`` (what ``auto``
picks there) and ``impersonation.mode=legacy`` (1.34 has no constrained impersonation, and the chart refuses
to guess). The operator then runs on the chart ServiceAccount's token and drives a whole task; and since
legacy impersonation would let that token act as ``system:masters``, the operator's own refusal is shown to
hold: a task from a ``system:masters`` member fails without a single call.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import localcluster
import pytest

from tests.conftest import ClusterAccess, kubectl_for
from tests.e2e.conftest import (
    ADMISSION_PROBES,
    ROOT,
    Operator,
    apply,
    apply_user_role,
    condition,
    deployment,
    free_port,
    get,
    task_doc,
    wait_phase,
)
from tests.e2e.test_chart_identity import (
    CHART,
    Release,
    clean,
    drive_a_task,
    helm,
    ready,
    token_kubeconfig,
)
from tests.waiting import admitted, crds_established, eventually

pytestmark = pytest.mark.cluster

RELEASE = Release(
    "old", "bosun-system", "system:serviceaccount:bosun-system:old-bosun", token="", tools_token=""
)
POLICY = "bosun-identity-task-requester"


@pytest.fixture(scope="module")
def bosun_installed(cluster: Any, kubectl: Any) -> str:
    """The chart, policies and CRDs included, as on 1.34; returns a token of its ServiceAccount."""
    kubectl("create", "namespace", RELEASE.namespace)
    helm(
        cluster, "install", RELEASE.name, str(CHART), "-n", RELEASE.namespace,
        "--set", "identityPolicies.apiVersion=v1beta1",
        "--set", "impersonation.mode=legacy",
    )  # fmt: skip
    crds_established(kubectl, "agenttasks.bosun.dev", "approvalgrants.bosun.dev")
    admitted(kubectl, *ADMISSION_PROBES)
    apply_user_role(kubectl)
    account = RELEASE.fullname
    token: str = kubectl("-n", RELEASE.namespace, "create", "token", account, "--duration=1h").stdout.strip()
    return token


@pytest.fixture
def chart_operator(
    cluster: Any, bosun_installed: str, operator_factory: Callable[..., Operator], tmp_path: Path
) -> Operator:
    kubeconfig = token_kubeconfig(cluster, tmp_path / "token.kubeconfig", {"token": bosun_installed})
    return operator_factory(KUBECONFIG=str(kubeconfig), BOSUN_HEALTH_PORT=str(free_port()))


def test_the_chart_writes_its_policies_through_the_beta_api(kubectl: Any, bosun_installed: str) -> None:
    stored = json.loads(
        kubectl(
            "get",
            "mutatingadmissionpolicies.v1beta1.admissionregistration.k8s.io",
            POLICY,
            "-o",
            "json",
            "--show-managed-fields",
        ).stdout
    )
    writers = {entry["manager"]: entry["apiVersion"] for entry in stored["metadata"]["managedFields"]}
    assert writers["helm"] == "admissionregistration.k8s.io/v1beta1"
    role = json.loads(kubectl("get", "clusterrole", f"{RELEASE.fullname}-operator", "-o", "json").stdout)
    verbs = {verb for rule in role["rules"] for verb in rule.get("verbs", [])}
    assert "impersonate" in verbs
    assert not any(verb.startswith("impersonate:") or verb.startswith("impersonate-on:") for verb in verbs)


def test_a_whole_task_on_the_charts_token_with_legacy_impersonation(
    kubectl: Any, namespace: str, users: None, chart_operator: Operator
) -> None:
    deployment(kubectl, namespace)
    drive_a_task(kubectl, namespace, "scale-on-1-34", 4)
    assert f"bosun operator as {RELEASE.service_account}" in chart_operator.log.read_text()
    clean(chart_operator.log)


def test_the_operator_will_not_act_as_system_masters_though_the_token_could(
    kubectl: Any, namespace: str, users: None, chart_operator: Operator
) -> None:
    """The admin's certificate is in system:masters; legacy impersonation would let the token lend it."""
    deployment(kubectl, namespace)
    apply(kubectl, namespace, task_doc("as-masters", f"scale deployment web in {namespace} to 5"))
    status = wait_phase(kubectl, namespace, "as-masters", "Failed", "AwaitingApproval", timeout=120)
    assert status["phase"] == "Failed"
    ready = condition(status, "Ready")
    assert ready["reason"] == "RequesterNotImpersonable"
    assert "system:masters" in ready["message"]
    assert not [step for step in status.get("steps", []) if step["mutating"]]
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 3


def test_without_the_feature_gate_the_chart_and_the_operator_refuse_to_run(
    cluster: Any, tmp_path_factory: pytest.TempPathFactory, operator_factory: Callable[..., Operator]
) -> None:
    """A 1.34 cluster whose administrator did not turn MutatingAdmissionPolicy on: helm refuses to install,
    and an operator started anyway (policies applied by hand are impossible there) stays unready, naming
    the flags to set."""
    state = tmp_path_factory.mktemp("kubernetes-1.34-no-gate")
    plain = localcluster.up(quiet=True, state_dir=state, emulation=localcluster.Emulation("1.34"))
    try:
        bare = ClusterAccess(plain.kubeconfig, plain.bin_dir, plain.state_dir / "users")
        install = subprocess.run(
            [str(plain.bin_dir / "helm"), "install", "x", str(CHART), "--set", "impersonation.mode=legacy"],
            env=bare.env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert install.returncode != 0
        assert "serves no MutatingAdmissionPolicy API" in install.stderr
        assert "--feature-gates=MutatingAdmissionPolicy=true" in install.stderr
        for crd in ("agenttasks", "approvalgrants"):
            kubectl_for(bare)("apply", "--server-side", "-f", str(ROOT / "crds" / f"bosun.dev_{crd}.yaml"))
        env = {"KUBECONFIG": str(plain.kubeconfig), "BOSUN_HEALTH_PORT": str(free_port())}
        operator = operator_factory(start=False, **env)
        operator.spawn()
        eventually("the operator to say why it is not ready", lambda: "not ready" in operator.log.read_text())
        answer = ready(operator)
        assert answer["ready"] is False
        assert "serves no MutatingAdmissionPolicy API" in answer["problem"]
        assert "Initial authentication" not in operator.log.read_text(), "kopf never started"
    finally:
        localcluster.down(quiet=True, state_dir=state)
