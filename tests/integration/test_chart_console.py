"""The web console in the chart (``console.enabled``): rendered as documented, and its own identity able to do
nothing with Bosun on a real API server.

``bosun console --forwarded-token`` sends each person's own bearer token (forwarded by an authenticating
proxy) to the API server and never impersonates, so the chart gives its ServiceAccount no Role, ClusterRole
or binding and keeps its token out of the pod. The render tests check that; the cluster tests install what
the chart grants that ServiceAccount (nothing, so far), mint a token for it as a thief of the pod could,
and show that every read, write and watch of AgentTasks, ApprovalGrants and what surrounds them is refused.

``console_service_account_token`` (and the fixture ``console_account``) is the reusable part: the console's
end-to-end tests forward that token to a running console to show that every action through it fails too.
It yields the token with exactly what the console's pod has besides it: the API server's address and the
CA of the ``kube-root-ca.crt`` ConfigMap the chart mounts.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import localcluster
import pytest
import yaml

from tests.conftest import ClusterAccess, Kubectl
from tests.integration.test_chart import CHART, _objects, _rendered, helm
from tests.waiting import crds_established, eventually

pytestmark = pytest.mark.cluster

ROOT = CHART.parents[1]
KUBE = "1.36.3"
CA_DIR = "/etc/bosun/kube-ca"
SELF_REVIEWS = {
    "selfsubjectreviews.authentication.k8s.io",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
}
"""What ``system:basic-user`` lets every authenticated identity do: ask who it is and what it may do."""


# --- rendering ---------------------------------------------------------------------------------------------


def render(*values: str) -> str:
    rendered = _rendered("--kube-version", KUBE, *values)
    assert rendered.returncode == 0, rendered.stderr
    return rendered.stdout


def console_pod(manifest: str) -> dict[str, Any]:
    spec: dict[str, Any] = _objects(manifest, "Deployment")["t-bosun-console"]["spec"]["template"]["spec"]
    return spec


def covers(binding: dict[str, Any], subject: dict[str, Any], namespace: str, account: str) -> bool:
    """Whether this subject of a (Cluster)RoleBinding includes the ServiceAccount ``namespace/account``."""
    name = subject["name"]
    if subject["kind"] == "ServiceAccount":
        where = subject.get("namespace", binding["metadata"].get("namespace"))
        return bool(name == account and where == namespace)
    if subject["kind"] == "User":
        return bool(name == f"system:serviceaccount:{namespace}:{account}")
    return name in ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated")


def granted_to(docs: list[dict[str, Any]], namespace: str, account: str) -> list[dict[str, Any]]:
    """The ServiceAccount ``account``, every binding whose subjects include it and the roles those bind."""
    [sa] = [d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == account]
    bindings = [
        d
        for d in docs
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(covers(d, s, namespace, account) for s in d.get("subjects") or [])
    ]
    bound = {(b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings}
    roles = [d for d in docs if (d["kind"], d["metadata"]["name"]) in bound]
    return [sa, *roles, *bindings]


def test_the_console_is_not_installed_by_default() -> None:
    manifest = render()
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    assert not [d for d in docs if "console" in d["metadata"]["name"]]
    assert "bosun console" not in manifest
    assert "- console\n" not in manifest


def test_the_console_has_its_own_service_account_with_no_token_and_no_rights() -> None:
    """Everything the chart can render (tool server, Jenkins credentials, leader election: every Role and
    binding it has) and not one binding reaches the console's ServiceAccount, by name or by group."""
    manifest = render(
        "--set", "console.enabled=true",
        "--set", "tools.mode=server",
        "--set", "tools.jenkinsSecret=jenkins",
        "--set", "operator.replicas=2",
        "--namespace", "ops",
    )  # fmt: skip
    docs = [d for d in yaml.safe_load_all(manifest) if d]
    [sa] = [d for d in docs if d["kind"] == "ServiceAccount" and d["metadata"]["name"] == "t-bosun-console"]
    assert sa["automountServiceAccountToken"] is False
    assert sa["metadata"]["namespace"] == "ops"
    assert "annotations" not in sa["metadata"], "no cloud identity either (IRSA, Workload Identity)"
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert bindings, "the render holds the chart's bindings, so the check below means something"
    assert granted_to(docs, "ops", "t-bosun-console") == [sa]
    assert "t-bosun-console" not in json.dumps([d for d in docs if "Role" in d["kind"]])

    pod = console_pod(manifest)
    assert pod["serviceAccountName"] == "t-bosun-console"
    assert pod["automountServiceAccountToken"] is False
    assert not [v for v in pod["volumes"] if "secret" in v or "projected" in v], "no credentials mounted"
    [container] = pod["containers"]
    assert "envFrom" not in container
    assert "env" not in container


def test_the_console_runs_with_forwarded_tokens_probes_and_a_restricted_pod() -> None:
    manifest = render("--set", "console.enabled=true")
    pod = console_pod(manifest)
    [container] = pod["containers"]
    assert container["image"] == "ghcr.io/bosun-dev/bosun:0.1.0"
    assert container["args"] == [
        "bosun", "console",
        "--address", "0.0.0.0",
        "--port", "8080",
        "--forwarded-token",
        "--certificate-authority", f"{CA_DIR}/ca.crt",
        "--log-format", "text",
        "--log-level", "info",
    ]  # fmt: skip
    assert {"name": "http", "containerPort": 8080} in container["ports"]
    # The image's `bosun` runs the console with these arguments, as its own parser reads them.
    console = pytest.importorskip("bosun.console.main")
    parsed = console.parser().parse_args(container["args"][2:])
    assert parsed.forwarded_token is True
    assert (parsed.address, parsed.port) == ("0.0.0.0", 8080)
    assert parsed.certificate_authority == f"{CA_DIR}/ca.crt"
    assert (parsed.kubeconfig, parsed.context, parsed.api_server) == (None, None, None)

    # The CA is the cluster's, from the ConfigMap Kubernetes publishes in every namespace.
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == CA_DIR)
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"] == {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}

    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    restricted = container["securityContext"]
    assert restricted["readOnlyRootFilesystem"] is True
    assert restricted["allowPrivilegeEscalation"] is False
    assert restricted["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]

    service = _objects(manifest, "Service")["t-bosun-console"]["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    labels = _objects(manifest, "Deployment")["t-bosun-console"]["spec"]["template"]["metadata"]["labels"]
    assert service["selector"].items() <= labels.items()
    operator = _objects(manifest, "Deployment")["t-bosun-operator"]["spec"]["template"]["metadata"]["labels"]
    assert not service["selector"].items() <= operator.items(), "the Service reaches console pods only"
    assert "Ingress" not in {d["kind"] for d in yaml.safe_load_all(manifest) if d}
    assert "PodDisruptionBudget" not in manifest


def test_the_console_follows_the_charts_scheduling_and_its_own_values() -> None:
    manifest = render(
        "--set", "console.enabled=true",
        "--set", "console.replicas=3",
        "--set", "console.port=9000",
        "--set", "console.service.port=8443",
        "--set", "console.apiServer.url=https://api.example.com:6443",
        "--set", "console.apiServer.caConfigMap=api-ca",
        "--set", "console.apiServer.caKey=bundle.pem",
        "--set-json", 'nodeSelector={"pool":"ops"}',
        "--set-json", 'tolerations=[{"key":"ops","operator":"Exists","effect":"NoSchedule"}]',
        "--set-json", 'podAnnotations={"team":"sre"}',
        "--set", "logFormat=json",
        "--set", "console.logLevel=debug",
        "--set-json", 'console.extraEnv=[{"name":"HTTPS_PROXY","value":"http://proxy.example:3128"}]',
    )  # fmt: skip
    deployment = _objects(manifest, "Deployment")["t-bosun-console"]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "ops"}
    assert pod["tolerations"] == [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}]
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"team": "sre"}
    # Several replicas: a soft anti-affinity over them, and a budget that keeps one.
    selector = deployment["spec"]["selector"]["matchLabels"]
    term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == selector
    budget = _objects(manifest, "PodDisruptionBudget")["t-bosun-console"]
    assert budget["spec"]["selector"]["matchLabels"] == selector
    assert budget["spec"]["minAvailable"] == 1
    [container] = pod["containers"]
    args = container["args"]
    assert args[args.index("--port") + 1] == "9000"
    assert args[args.index("--api-server") + 1] == "https://api.example.com:6443"
    assert {"name": "http", "containerPort": 9000} in container["ports"]
    volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert volume["configMap"] == {"name": "api-ca", "items": [{"key": "bundle.pem", "path": "ca.crt"}]}
    assert args[args.index("--log-format") + 1] == "json"
    assert args[args.index("--log-level") + 1] == "debug"
    assert container["env"] == [{"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"}]
    service = _objects(manifest, "Service")["t-bosun-console"]["spec"]
    assert service["ports"] == [{"name": "http", "port": 8443, "targetPort": "http"}]

    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}
    given = render("--set", "console.enabled=true", "--set-json", f"affinity={json.dumps(affinity)}")
    assert console_pod(given)["affinity"] == affinity


def test_the_console_ingress_routes_to_its_service_with_tls() -> None:
    annotations = {
        "nginx.ingress.kubernetes.io/auth-url": "https://$host/oauth2/auth",
        "nginx.ingress.kubernetes.io/auth-response-headers": "Authorization",
    }
    manifest = render(
        "--set", "console.enabled=true",
        "--set", "console.ingress.enabled=true",
        "--set", "console.ingress.className=nginx",
        "--set", "console.ingress.host=bosun.example.com",
        "--set-json", f"console.ingress.annotations={json.dumps(annotations)}",
        "--set-json", 'console.ingress.tls=[{"secretName":"bosun-console-tls"}]',
    )  # fmt: skip
    ingress = _objects(manifest, "Ingress")["t-bosun-console"]
    assert ingress["metadata"]["annotations"] == annotations
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [{"secretName": "bosun-console-tls", "hosts": ["bosun.example.com"]}]
    [rule] = spec["rules"]
    assert rule["host"] == "bosun.example.com"
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    assert path["backend"]["service"] == {"name": "t-bosun-console", "port": {"name": "http"}}
    assert _objects(manifest, "Service")["t-bosun-console"]["spec"]["ports"][0]["name"] == "http"

    bare = render("--set", "console.enabled=true", "--set", "console.ingress.enabled=true")
    spec = _objects(bare, "Ingress")["t-bosun-console"]["spec"]
    assert "tls" not in spec
    assert "ingressClassName" not in spec
    assert "host" not in spec["rules"][0]


def test_the_chart_lints_with_the_console() -> None:
    for extra in ([], ["--set", "console.ingress.enabled=true", "--set", "console.replicas=2"]):
        linted = subprocess.run(
            [str(_helm_binary()), "lint", "--strict", str(CHART), "--set", "console.enabled=true", *extra],
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert linted.returncode == 0, linted.stdout + linted.stderr


def _helm_binary() -> Path:
    return Path(localcluster.build_binaries()) / "helm"


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        (["console.port=80"], "console.port: 80 is not a port the console can listen on"),
        (["console.port=70000"], "console.port: 70000 is not a port the console can listen on"),
        (["console.service.port=0"], "console.service.port: 0 is not a port (1-65535)"),
        (["console.replicas=-1"], "console.replicas: -1 is negative"),
        (
            ["console.apiServer.url=http://10.0.0.1:6443"],
            'console.apiServer.url: "http://10.0.0.1:6443" is not an https:// URL',
        ),
        (["console.apiServer.caConfigMap="], "console.apiServer.caConfigMap and console.apiServer.caKey"),
        (["console.apiServer.caKey="], "console.apiServer.caConfigMap and console.apiServer.caKey"),
    ],
)
def test_the_chart_refuses_a_console_it_cannot_run_safely(values: list[str], refusal: str) -> None:
    args = ["--set", "console.enabled=true"]
    for value in values:
        args += ["--set", value]
    refused = _rendered("--kube-version", KUBE, *args)
    assert refused.returncode != 0
    assert refusal in refused.stderr


def test_the_chart_refuses_an_ingress_without_the_console() -> None:
    refused = _rendered("--kube-version", KUBE, "--set", "console.ingress.enabled=true")
    assert refused.returncode != 0
    assert "console.ingress.enabled is set but console.enabled is not" in refused.stderr
    refused = _rendered(
        "--kube-version", KUBE,
        "--set", "console.enabled=true",
        "--set", "console.ingress.enabled=true",
        "--set-json", 'console.ingress.tls=[{"hosts":["bosun.example.com"]}]',
    )  # fmt: skip
    assert "console.ingress.tls: every entry needs a secretName" in refused.stderr


# --- the console's identity on a real API server -----------------------------------------------------------


@dataclass(frozen=True)
class ConsoleServiceAccount:
    """A token of the chart's console ServiceAccount and what the console's pod has besides it: the API
    server's address and the CA of ``kube-root-ca.crt``. ``kubeconfig`` holds nothing else."""

    namespace: str
    name: str
    token: str
    api_server: str
    ca_file: Path
    kubeconfig: Path
    kubectl_binary: Path

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        """One request to the API server with only this token: the HTTP status and the decoded body."""
        request = urllib.request.Request(
            self.api_server + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={
                "Authorization": f"Bearer {self.token}",
                "Accept": "application/json",
                "Content-Type": content_type,
            },
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                return int(response.status), _json(response.read())
        except urllib.error.HTTPError as refused:
            return refused.code, _json(refused.read())

    def kubectl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real kubectl with only this token (no other credentials reachable)."""
        return subprocess.run(
            [str(self.kubectl_binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, timeout=60, check=False,
            env={"PATH": str(self.kubectl_binary.parent), "HOME": str(self.kubeconfig.parent)},
        )  # fmt: skip


def _json(raw: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(raw or b"{}")
    except ValueError:
        return {"raw": raw.decode(errors="replace")}
    return decoded if isinstance(decoded, dict) else {"items": decoded}


@contextlib.contextmanager
def console_service_account_token(
    cluster: ClusterAccess,
    kubectl: Kubectl,
    namespace: str,
    workdir: Path,
    *,
    release: str | None = None,
    installed: bool = False,
    duration: str = "30m",
) -> Iterator[ConsoleServiceAccount]:
    """A token of the console ServiceAccount of ``release`` in ``namespace``.

    Unless ``installed`` (the release was installed with helm and ``console.enabled=true``), exactly what the
    chart grants that ServiceAccount is applied first: ``helm template`` with the console on, filtered to
    the ServiceAccount, every binding whose subjects include it (by name or by group) and the roles those
    bind; and removed afterwards. Installing the whole chart would add nothing to the question.
    """
    release = release or f"c{uuid.uuid4().hex[:6]}"
    account = f"{release}-bosun-console"
    applied = ""
    if not installed:
        rendered = helm(
            cluster, "template", release, str(CHART), "-n", namespace, "--set", "console.enabled=true"
        ).stdout
        docs = [d for d in yaml.safe_load_all(rendered) if d]
        applied = json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": granted_to(docs, namespace, account)}
        )
        kubectl("apply", "-n", namespace, "-f", "-", input=applied)
    try:
        token = kubectl("-n", namespace, "create", "token", account, f"--duration={duration}").stdout.strip()
        ca_file = workdir / f"{account}-ca.crt"
        ca_file.write_text(_published_ca(kubectl, namespace))
        server = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").stdout
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "cluster", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
            ],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": account, "context": {"cluster": "cluster", "user": account}}],
            "current-context": account,
        }
        kubeconfig = workdir / f"{account}.kubeconfig"
        kubeconfig.write_text(json.dumps(config))
        yield ConsoleServiceAccount(
            namespace, account, token, server.rstrip("/"), ca_file, kubeconfig, cluster.bin_dir / "kubectl"
        )
    finally:
        if applied:
            kubectl("delete", "-n", namespace, "--ignore-not-found", "-f", "-", input=applied, check=False)


def _published_ca(kubectl: Kubectl, namespace: str) -> str:
    """The cluster CA of the namespace's ``kube-root-ca.crt`` (published shortly after a namespace exists)."""
    found: list[str] = []

    def published() -> bool:
        got = kubectl("-n", namespace, "get", "configmap", "kube-root-ca.crt", "-o", "json", check=False)
        if got.returncode == 0:
            found.append(json.loads(got.stdout)["data"]["ca.crt"])
        return bool(found)

    eventually(f"kube-root-ca.crt in {namespace}", published, timeout=60)
    return found[0]


@pytest.fixture
def console_account(
    cluster: ClusterAccess, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> Iterator[ConsoleServiceAccount]:
    """A token of the chart's console ServiceAccount in the test's namespace (see the module docstring)."""
    with console_service_account_token(cluster, kubectl, namespace, tmp_path) as account:
        yield account


@pytest.fixture(scope="module")
def bosun_kinds(kubectl: Kubectl) -> None:
    """Bosun's CRDs (what `make operator` applies), so there are AgentTasks to be refused."""
    for name in ("bosun.dev_agenttasks.yaml", "bosun.dev_approvalgrants.yaml"):
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds" / name))
    crds_established(kubectl, "agenttasks.bosun.dev", "approvalgrants.bosun.dev")


TASK = "scale-web"
GRANT = "scale-web-ok"


def task_doc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "AgentTask",
        "metadata": {"name": name},
        "spec": {"request": "scale deployment web to 5"},
    }


def grant_doc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "ApprovalGrant",
        "metadata": {"name": name},
        "spec": {"taskRef": {"name": TASK}, "planHash": "sha256:" + "0" * 64, "decision": "Approve"},
    }


def a_namespace_holding_a_task(kubectl: Kubectl, namespace: str) -> None:
    """An AgentTask (nobody reconciles it here), a grant for it, a Secret, a Pod and an Event."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}]},
    }
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "scale-web.1"},
        "involvedObject": {
            "apiVersion": "bosun.dev/v1alpha1",
            "kind": "AgentTask",
            "name": TASK,
            "namespace": namespace,
        },
        "reason": "Proposed",
        "message": "awaiting approval",
        "type": "Normal",
    }
    eventually(  # a Pod needs the namespace's default ServiceAccount, which the controller creates
        f"the default ServiceAccount of {namespace}",
        lambda: kubectl("-n", namespace, "get", "serviceaccount", "default", check=False).returncode == 0,
    )
    for doc in (task_doc(TASK), grant_doc(GRANT), pod, event):
        kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(doc))
    kubectl("-n", namespace, "create", "secret", "generic", "db", "--from-literal=password=hunter2")


def every_request_is_refused(account: ConsoleServiceAccount, kubectl: Kubectl, namespace: str) -> None:
    """Reads, watches and writes of Bosun's resources and their surroundings: each one 403 (authenticated,
    not authorized: a 401 would prove nothing), and afterwards nothing changed."""
    status, review = account.call(
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
    )
    assert status == 201, review
    assert review["status"]["userInfo"]["username"] == account.username

    bosun = f"/apis/bosun.dev/v1alpha1/namespaces/{namespace}"
    approve = {"metadata": {"annotations": {"approve": "true"}}}
    status_patch = {"status": {"phase": "Approved"}}
    requests: list[tuple[str, str, dict[str, Any] | None]] = []
    for kind, name, doc in (
        ("agenttasks", TASK, task_doc("mine")),
        ("approvalgrants", GRANT, grant_doc("mine")),
    ):
        requests += [
            ("GET", f"{bosun}/{kind}", None),  # list
            ("GET", f"{bosun}/{kind}/{name}", None),
            ("GET", f"{bosun}/{kind}?watch=true&timeoutSeconds=2", None),
            ("POST", f"{bosun}/{kind}", doc),
            ("PATCH", f"{bosun}/{kind}/{name}", approve),  # the approve=true annotation
            ("DELETE", f"{bosun}/{kind}/{name}", None),
            ("GET", f"/apis/bosun.dev/v1alpha1/{kind}", None),  # in every namespace
            ("GET", f"/apis/bosun.dev/v1alpha1/{kind}?watch=true&timeoutSeconds=2", None),
        ]
    requests += [
        ("GET", f"{bosun}/agenttasks/{TASK}/status", None),
        ("PATCH", f"{bosun}/agenttasks/{TASK}/status", status_patch),
        ("PUT", f"{bosun}/agenttasks/{TASK}/status", {**task_doc(TASK), **status_patch}),
        ("GET", f"/api/v1/namespaces/{namespace}/pods", None),
        ("GET", f"/api/v1/namespaces/{namespace}/pods?watch=true&timeoutSeconds=2", None),
        ("GET", f"/api/v1/namespaces/{namespace}/pods/web/log", None),
        ("GET", f"/api/v1/namespaces/{namespace}/secrets", None),
        ("GET", f"/api/v1/namespaces/{namespace}/secrets/db", None),
        ("GET", f"/api/v1/namespaces/{namespace}/events", None),
        ("GET", f"/apis/events.k8s.io/v1/namespaces/{namespace}/events", None),
        ("GET", f"/api/v1/namespaces/{namespace}/configmaps", None),
        ("GET", "/api/v1/namespaces", None),
    ]
    answered: dict[str, int] = {}
    for method, path, body in requests:
        content_type = "application/merge-patch+json" if method == "PATCH" else "application/json"
        status, answer = account.call(method, path, body, content_type)
        answered[f"{method} {path}"] = status
        if status == 403:
            assert answer.get("reason") == "Forbidden", answer
            assert account.username in answer.get("message", ""), answer
    allowed = {request: status for request, status in answered.items() if status != 403}
    assert not allowed, f"the console's own token was not refused: {allowed}"

    # Nothing changed meanwhile.
    tasks = json.loads(kubectl("-n", namespace, "get", "agenttasks", "-o", "json").stdout)["items"]
    assert [t["metadata"]["name"] for t in tasks] == [TASK]
    assert "approve" not in (tasks[0]["metadata"].get("annotations") or {})
    assert "phase" not in (tasks[0].get("status") or {})
    grants = json.loads(kubectl("-n", namespace, "get", "approvalgrants", "-o", "json").stdout)["items"]
    assert [g["metadata"]["name"] for g in grants] == [GRANT]


def nothing_on_the_list(account: ConsoleServiceAccount, namespace: str) -> None:
    """``kubectl auth can-i --list``: no bosun.dev resource, and no resource at all beyond asking who it is
    and what it may do (what every authenticated identity may)."""
    for scope in (["-n", namespace], ["-n", "default"]):
        listed = account.kubectl("auth", "can-i", "--list", *scope)
        assert listed.returncode == 0, listed.stderr
        assert "bosun.dev" not in listed.stdout, listed.stdout
        rows = [line.split() for line in listed.stdout.splitlines()[1:] if line.strip()]
        resources = {row[0] for row in rows if not row[0].startswith("[")}
        assert resources <= SELF_REVIEWS, listed.stdout
    for verb, resource in (
        ("create", "agenttasks.bosun.dev"),
        ("list", "agenttasks.bosun.dev"),
        ("watch", "agenttasks.bosun.dev"),
        ("patch", "agenttasks.bosun.dev/status"),
        ("create", "approvalgrants.bosun.dev"),
        ("list", "approvalgrants.bosun.dev"),
        ("list", "secrets"),
        ("list", "pods"),
        ("list", "events"),
    ):
        answer = account.kubectl("auth", "can-i", verb, resource, "-n", namespace)
        assert answer.stdout.strip() == "no", (verb, resource, answer.stdout, answer.stderr)


def test_the_console_service_account_can_do_nothing_with_bosun(
    console_account: ConsoleServiceAccount, kubectl: Kubectl, namespace: str, bosun_kinds: None
) -> None:
    a_namespace_holding_a_task(kubectl, namespace)
    every_request_is_refused(console_account, kubectl, namespace)
    nothing_on_the_list(console_account, namespace)


def test_the_installed_console_gets_nothing_from_the_charts_rbac(
    cluster: ClusterAccess, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    """The whole chart installed with the console on (two replicas and the Ingress, so the API server accepts
    every object the console brings): the Deployment becomes available, the ServiceAccount is stored with
    its token off, no binding in the cluster names it, and with every Role, ClusterRole and binding the
    chart creates in place, its token is refused all the same."""
    release = f"c{namespace[-5:]}"  # cluster-scoped RBAC objects carry the release name
    helm(
        cluster, "install", release, str(CHART), "-n", namespace,
        "--set", "identityPolicies.install=false",
        "--set", "console.enabled=true",
        "--set", "console.replicas=2",
        "--set", "console.ingress.enabled=true",
        "--set", "console.ingress.host=bosun.example.com",
        "--set-json", 'console.ingress.tls=[{"secretName":"bosun-console-tls"}]',
        "--wait", "--timeout=120s",
    )  # fmt: skip
    try:
        account = f"{release}-bosun-console"
        deployment = json.loads(kubectl("-n", namespace, "get", "deployment", account, "-o", "json").stdout)
        assert deployment["status"].get("availableReplicas") == 2
        stored = json.loads(kubectl("-n", namespace, "get", "serviceaccount", account, "-o", "json").stdout)
        assert stored["automountServiceAccountToken"] is False
        kubectl("-n", namespace, "get", "service,ingress,poddisruptionbudget", account)
        bindings = json.loads(kubectl("get", "rolebindings,clusterrolebindings", "-A", "-o", "json").stdout)
        # Kubernetes' own defaults bind every authenticated identity to discovery and self-reviews (what
        # `auth can-i --list` shows below); nothing else may reach the console's account.
        defaults = {"kubernetes.io/bootstrapping": "rbac-defaults"}
        naming = [
            b["metadata"]["name"]
            for b in bindings["items"]
            if any(covers(b, s, namespace, account) for s in b.get("subjects") or [])
            and not defaults.items() <= (b["metadata"].get("labels") or {}).items()
        ]
        assert not naming, f"bindings reach the console's ServiceAccount: {naming}"

        a_namespace_holding_a_task(kubectl, namespace)
        with console_service_account_token(
            cluster, kubectl, namespace, tmp_path, release=release, installed=True
        ) as console:
            every_request_is_refused(console, kubectl, namespace)
            nothing_on_the_list(console, namespace)
    finally:
        helm(cluster, "uninstall", release, "-n", namespace, "--wait", "--timeout=120s")
