"""The Helm chart installs and its operator ServiceAccount holds only what Bosun needs."""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import localcluster
import pytest
import yaml
from bosun.notify.settings import NotifySettings

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


SHARDS = [{"name": "a", "namespaces": ["shop", "payments"]}, {"name": "b", "namespaces": ["search"]}]


def _objects(manifest: str, kind: str) -> dict[str, dict[str, Any]]:
    """The rendered objects of ``kind``, by name."""
    return {d["metadata"]["name"]: d for d in yaml.safe_load_all(manifest) if d and d["kind"] == kind}


def test_the_chart_renders_one_operator_deployment_per_shard_with_its_own_lease() -> None:
    """operator.shards (docs/scaling.md): each shard is a Deployment watching only its namespaces, electing
    its leader on a Lease of its own (two shards sharing one would leave one of them idle), with selectors
    that never overlap; the Lease Role names every shard's Lease."""
    rendered = _rendered(
        "--kube-version", "1.36.3",
        "--set", "operator.replicas=2",
        "--set-json", f"operator.shards={json.dumps(SHARDS)}",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    deployments = _objects(rendered.stdout, "Deployment")
    assert set(deployments) == {"t-bosun-operator-a", "t-bosun-operator-b"}
    for shard in SHARDS:
        name = f"t-bosun-operator-{shard['name']}"
        spec = deployments[name]["spec"]
        [container] = spec["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["BOSUN_NAMESPACES"] == ",".join(shard["namespaces"])
        assert env["BOSUN_LEADER_ELECTION"] == "true"
        assert env["BOSUN_LEADER_ELECTION_NAME"] == name
        selector = spec["selector"]["matchLabels"]
        assert selector["bosun.dev/shard"] == shard["name"]
        assert selector.items() <= spec["template"]["metadata"]["labels"].items()
        budget = _objects(rendered.stdout, "PodDisruptionBudget")[name]
        assert budget["spec"]["selector"]["matchLabels"] == selector
    role = _objects(rendered.stdout, "Role")["t-bosun-leader-election"]
    leases = next(rule for rule in role["rules"] if "resourceNames" in rule)
    assert leases["resourceNames"] == ["t-bosun-operator-a", "t-bosun-operator-b"]

    single = _rendered("--kube-version", "1.36.3", "--set", "watchNamespaces={shop}")
    [deployment] = _objects(single.stdout, "Deployment").values()
    assert deployment["metadata"]["name"] == "t-bosun-operator"
    assert "bosun.dev/shard" not in deployment["spec"]["selector"]["matchLabels"]  # selectors are immutable


@pytest.mark.parametrize(
    ("shards", "extra", "refusal"),
    [
        (
            [{"name": "a", "namespaces": ["shop"]}, {"name": "b", "namespaces": ["search", "shop"]}],
            [],
            'namespace "shop" is in shards "a" and "b"',
        ),
        ([{"name": "a", "namespaces": []}], [], 'shard "a" lists no namespaces'),
        ([*SHARDS, {"name": "a", "namespaces": ["ads"]}], [], 'shard "a" is listed twice'),
        ([{"name": "Shard_A", "namespaces": ["shop"]}], [], '"Shard_A" is not a shard name'),
        (SHARDS, ["--set", "watchNamespaces={ads}"], "watchNamespaces and operator.shards are both set"),
    ],
)
def test_the_chart_refuses_shards_it_cannot_keep_apart(
    shards: list[dict[str, Any]], extra: list[str], refusal: str
) -> None:
    """A namespace in two shards, or a shard with none (it would watch every namespace), would have two
    operators handle one task; a bad name would make bad object names; shards replace watchNamespaces."""
    refused = _rendered(
        "--kube-version", "1.36.3", "--set-json", f"operator.shards={json.dumps(shards)}", *extra
    )
    assert refused.returncode != 0
    assert refusal in refused.stderr


def test_the_argocd_health_check_renders_and_merges_into_argocd_cm_as_documented(
    cluster: ClusterAccess, kubectl: Kubectl, namespace: str
) -> None:
    """argocdHealth.render=true makes a ConfigMap holding files/argocd-health.lua under Argo CD's key, and
    the one-line merge docs/observability.md gives adds it to an argocd-cm (a stand-in in the test
    namespace) without touching its other keys."""
    key = "resource.customizations.health.bosun.dev_AgentTask"
    rendered = helm(
        cluster,
        "template",
        "bosun",
        str(CHART),
        "--kube-version",
        "1.36.3",
        "--set",
        "argocdHealth.render=true",
        "--show-only",
        "templates/argocd-health.yaml",
    ).stdout
    lua = (CHART / "files" / "argocd-health.lua").read_text()
    assert yaml.safe_load(rendered)["data"] == {key: lua}
    assert "argocd-health" not in _rendered("--kube-version", "1.36.3").stdout
    kubectl("-n", namespace, "apply", "-f", "-", input=rendered)
    kubectl("-n", namespace, "create", "configmap", "argocd-cm", "--from-literal=url=https://argocd.example")
    doc = (CHART.parents[1] / "docs" / "observability.md").read_text()
    [command] = [line for line in doc.splitlines() if line.startswith("kubectl -n argocd patch configmap")]
    command = command.replace("-n argocd ", f"-n {namespace} ").replace(
        "-n bosun-system ", f"-n {namespace} "
    )
    env = {**cluster.env, "KUBECONFIG": str(cluster.kubeconfig)}
    merged = subprocess.run(["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60)
    assert merged.returncode == 0, merged.stderr
    data = json.loads(kubectl("-n", namespace, "get", "configmap", "argocd-cm", "-o", "json").stdout)["data"]
    assert data == {"url": "https://argocd.example", key: lua}


def test_the_chart_configures_notifications_and_mounts_their_secret(tmp_path: Path) -> None:
    """notifications.*: the sinks in the environment (which the operator's own parser accepts), their URLs
    and keys only in the mounted Secret; nothing of it without sinks; sinks without a Secret refused."""
    sinks = [{"name": "ops", "type": "webhook"}, {"name": "chat", "type": "slack", "events": ["Failed"]}]
    rendered = _rendered(
        "--kube-version", "1.36.3",
        "--set", "notifications.secret=bosun-notify",
        "--set-json", f"notifications.sinks={json.dumps(sinks)}",
        "--set", "notifications.events={AwaitingApproval,Expired}",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    [deployment] = _objects(rendered.stdout, "Deployment").values()
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if e["name"].startswith("BOSUN_NOTIFY_")}
    mount = next(m for m in container["volumeMounts"] if m["name"] == "notify")
    assert mount == {"name": "notify", "mountPath": env["BOSUN_NOTIFY_SECRET_DIR"], "readOnly": True}
    assert {"name": "notify", "secret": {"secretName": "bosun-notify"}} in pod["volumes"]

    for key, value in {"ops.url": "https://tickets.example/hook", "ops.signing-key": "k" * 32}.items():
        (tmp_path / key).write_text(value)
    (tmp_path / "chat.url").write_text("https://hooks.slack.example/services/T0/B0/x")
    parsed = NotifySettings.from_env({**env, "BOSUN_NOTIFY_SECRET_DIR": str(tmp_path)})
    assert [(s.name, s.kind, s.events) for s in parsed.sinks] == [
        ("ops", "webhook", frozenset({"AwaitingApproval", "Expired"})),
        ("chat", "slack", frozenset({"Failed"})),
    ]
    assert (parsed.timeout_seconds, parsed.attempts, parsed.backoff_seconds) == (5.0, 6, 2.0)

    plain = _rendered("--kube-version", "1.36.3")
    assert "BOSUN_NOTIFY_" not in plain.stdout
    assert "name: notify" not in plain.stdout
    refused = _rendered("--kube-version", "1.36.3", "--set-json", f"notifications.sinks={json.dumps(sinks)}")
    assert refused.returncode != 0
    assert "notifications.sinks is set but notifications.secret is not" in refused.stderr


def test_the_chart_serves_metrics_with_a_service_monitor_rules_and_a_dashboard() -> None:
    """metrics.*: the port and its variables on the operator and the tool server, a Service of every
    operator pod, and on request a ServiceMonitor, the alert rules (thresholds from values) and the Grafana
    dashboard; metrics.enabled=false leaves none of it."""
    rendered = _rendered(
        "--kube-version", "1.36.3",
        "--set", "tools.mode=server",
        "--set", "metrics.serviceMonitor.enabled=true",
        "--set", "metrics.prometheusRule.enabled=true",
        "--set", "metrics.prometheusRule.approvalHours=6",
        "--set", "metrics.dashboard.enabled=true",
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    deployments = _objects(rendered.stdout, "Deployment")
    for name in ("t-bosun-operator", "t-bosun-tools"):
        [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert (env["BOSUN_METRICS_PORT"], env["BOSUN_METRICS_ADDRESS"]) == ("9090", "0.0.0.0")
        assert {"name": "metrics", "containerPort": 9090} in container["ports"]
    services = _objects(rendered.stdout, "Service")
    metrics = services["t-bosun-metrics"]
    assert metrics["spec"]["selector"] == {
        "app.kubernetes.io/instance": "t",
        "app.kubernetes.io/component": "operator",
    }
    assert {"name": "metrics", "port": 9090, "targetPort": "metrics"} in metrics["spec"]["ports"]
    [monitor] = _objects(rendered.stdout, "ServiceMonitor").values()
    wanted = monitor["spec"]["selector"]["matchLabels"]
    scraped = {name for name, s in services.items() if wanted.items() <= s["metadata"]["labels"].items()}
    assert scraped == {"t-bosun-metrics", "t-bosun-tools"}
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    [rule] = _objects(rendered.stdout, "PrometheusRule").values()
    alerts = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert set(alerts) >= {"BosunProposalWaitingTooLong", "BosunTasksFailing", "BosunModelErrors"}
    assert "> 6 * 3600" in alerts["BosunProposalWaitingTooLong"]["expr"]
    assert "__" not in json.dumps(rule), "a threshold placeholder was left in the rules"
    [dashboard] = _objects(rendered.stdout, "ConfigMap").values()
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["bosun.json"]) == json.loads(
        (CHART / "files" / "grafana-dashboard.json").read_text()
    )

    plain = _rendered("--kube-version", "1.36.3")
    assert "ServiceMonitor" not in plain.stdout
    assert "PrometheusRule" not in plain.stdout
    off = _rendered(
        "--kube-version", "1.36.3", "--set", "tools.mode=server", "--set", "metrics.enabled=false"
    )  # fmt: skip
    assert "BOSUN_METRICS_PORT" not in off.stdout
    assert "t-bosun-metrics" not in off.stdout


def test_the_chart_turns_traces_on_with_an_otlp_endpoint() -> None:
    """tracing.otlpEndpoint: OTEL_EXPORTER_OTLP_ENDPOINT on the operator and the tool server; empty (the
    default): not set, so neither process sets tracing up."""
    collector = "http://otel-collector.monitoring:4318"
    rendered = _rendered(
        "--kube-version", "1.36.3", "--set", "tools.mode=server", "--set", f"tracing.otlpEndpoint={collector}"
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    deployments = _objects(rendered.stdout, "Deployment")
    for name in ("t-bosun-operator", "t-bosun-tools"):
        [container] = deployments[name]["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == collector, name
    plain = _rendered("--kube-version", "1.36.3", "--set", "tools.mode=server")
    assert plain.returncode == 0, plain.stderr
    assert "OTEL_EXPORTER_OTLP" not in plain.stdout
