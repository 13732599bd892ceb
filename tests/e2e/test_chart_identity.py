"""The chart's own identity, end to end: what a pod's credentials amount to, without a client certificate.

``charts/bosun`` is installed with helm (two replicas, so its Lease RBAC too, and the tool server), a token
is minted for the chart's ServiceAccount (``kubectl create token``: what the kubelet mounts into the pod),
and the operator runs as a process whose kubeconfig holds nothing but that token — then with an exec
credential plugin whose ExecCredential expires every few seconds, then beside a separate tool server
running with the same ServiceAccount's token. Each run drives a whole task: bob's request, alice's
approval, execution as bob through the chart's constrained impersonation, verification, TTL deletion. The
logs must hold no ``Forbidden`` and no ``system:anonymous``.

A token the chart did not grant shows what a failed startup looks like: unready, saying what to fix.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import (
    ROOT,
    Operator,
    apply,
    deployment,
    free_port,
    get,
    grant_doc,
    task_doc,
    wait_phase,
)
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

CHART = ROOT / "charts" / "bosun"
EXPIRES = 8
"""Seconds an ExecCredential of the plugin is valid: several expire during one task."""


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    service_account: str
    token: str
    tools_token: str

    @property
    def fullname(self) -> str:
        return f"{self.name}-bosun"


def helm(cluster: Any, *args: str) -> str:
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), *args], env=cluster.env, capture_output=True, text=True, timeout=180
    )
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}{proc.stdout}"
    return proc.stdout


def token_kubeconfig(cluster: Any, path: Path, user: dict[str, Any]) -> Path:
    """The admin kubeconfig's cluster (address and CA) with ``user`` as the only credentials."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "bosun", "user": user}],
        "contexts": [
            {"name": "bosun", "context": {"cluster": admin["clusters"][0]["name"], "user": "bosun"}}
        ],
        "current-context": "bosun",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def release(cluster: Any, kubectl: Any, namespace: str, bosun_installed: None) -> Iterator[Release]:
    """The chart in the test's namespace: two replicas (leader election and its Lease Role) and the
    separate tool server. The identity policies are already installed cluster-wide (by the e2e harness),
    so the chart does not install them again."""
    name = f"ci{uuid.uuid4().hex[:6]}"  # cluster-scoped RBAC objects carry the release name
    helm(
        cluster, "install", name, str(CHART), "-n", namespace,
        "--set", "identityPolicies.install=false",
        "--set", "operator.replicas=2",
        "--set", "tools.mode=server",
    )  # fmt: skip
    try:
        account = f"{name}-bosun"
        token = kubectl("-n", namespace, "create", "token", account, "--duration=1h").stdout.strip()
        secret = json.loads(
            kubectl("-n", namespace, "get", "secret", f"{account}-tool-tokens", "-o", "json").stdout
        )
        tools_token = base64.b64decode(secret["data"]["operator"]).decode()
        yield Release(name, namespace, f"system:serviceaccount:{namespace}:{account}", token, tools_token)
    finally:
        helm(cluster, "uninstall", name, "-n", namespace, "--wait", "--timeout=120s")


def chart_env(release: Release, kubeconfig: Path) -> dict[str, str]:
    """What the chart's Deployment sets, pointed at this process's kubeconfig (its health port is free)."""
    return {
        "KUBECONFIG": str(kubeconfig),
        "BOSUN_LEADER_ELECTION": "true",
        "BOSUN_LEADER_ELECTION_NAMESPACE": release.namespace,
        "BOSUN_LEADER_ELECTION_NAME": f"{release.fullname}-operator",
        "BOSUN_HEALTH_PORT": str(free_port()),
    }


def drive_a_task(kubectl: Any, namespace: str, name: str, replicas: int) -> None:
    """bob asks, alice approves, the call runs as bob, it is verified, and the task goes at its TTL."""
    request = task_doc(name, f"scale deployment web in {namespace} to {replicas}", ttlSecondsAfterFinished=3)
    apply(kubectl, namespace, request, user="bob")
    status = wait_phase(kubectl, namespace, name, "AwaitingApproval", timeout=120)
    assert status["requester"]["user"] == "bob"
    apply(kubectl, namespace, grant_doc(f"{name}-ok", name, status["proposal"]["hash"]), user="alice")
    status = wait_phase(kubectl, namespace, name, "Succeeded", timeout=120)
    [step] = [r for r in status["steps"] if r["mutating"]]
    assert step["ranAs"]["user"] == "bob"
    assert [u["user"] for u in step["approvedBy"]] == ["alice"]
    assert status["verification"]["passed"] is True
    assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == replicas
    eventually(
        f"agenttask {name} to be deleted after its TTL",
        lambda: kubectl("-n", namespace, "get", "agenttask", name, check=False).returncode != 0,
        timeout=60,
    )


def clean(*logs: Path) -> None:
    for log in logs:
        text = log.read_text()
        for word in ("Forbidden", "system:anonymous", "Traceback"):
            assert word not in text, f"{log.name} holds {word}:\n{text[-4000:]}"


def ready(operator: Operator) -> dict[str, Any]:
    port = operator.env["BOSUN_HEALTH_PORT"]
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read())
    return body


def test_the_operator_runs_on_the_charts_serviceaccount_token(
    cluster: Any,
    kubectl: Any,
    namespace: str,
    users: None,
    release: Release,
    operator_factory: Callable[..., Operator],
    tmp_path: Path,
) -> None:
    deployment(kubectl, namespace)
    kubeconfig = token_kubeconfig(cluster, tmp_path / "token.kubeconfig", {"token": release.token})
    operator = operator_factory(**chart_env(release, kubeconfig))
    eventually("the operator to lead and watch", lambda: ready(operator).get("role") == "leader", timeout=60)
    assert f"bosun operator as {release.service_account}" in operator.log.read_text()
    drive_a_task(kubectl, namespace, "scale-token", 4)
    lease = get(kubectl, namespace, "lease", f"{release.fullname}-operator")
    assert lease["spec"]["holderIdentity"], "the chart's Role lets the ServiceAccount hold its Lease"
    clean(operator.log)
    # What else two replicas bring: a budget that keeps one, and probes on the health port.
    budget = get(kubectl, namespace, "poddisruptionbudget", f"{release.fullname}-operator")
    assert budget["spec"]["minAvailable"] == 1
    pod = get(kubectl, namespace, "deployment", f"{release.fullname}-operator")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_chart_refuses_two_replicas_without_leader_election(cluster: Any) -> None:
    proc = subprocess.run(
        [str(cluster.bin_dir / "helm"), "template", "t", str(CHART), "--set", "operator.replicas=2",
         "--set", "operator.leaderElection.enabled=false"],
        env=cluster.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "operator.replicas > 1 needs leader election" in proc.stderr


def test_an_exec_plugin_token_is_refreshed_when_it_expires(
    cluster: Any,
    kubectl: Any,
    namespace: str,
    users: None,
    release: Release,
    operator_factory: Callable[..., Operator],
    tmp_path: Path,
) -> None:
    """An ExecCredential with a short expirationTimestamp, as EKS/GKE/AKS plugins print: the operator,
    kopf and the in-process tool server run the plugin again once it expired."""
    deployment(kubectl, namespace)
    (tmp_path / "token").write_text(release.token)
    calls = tmp_path / "calls"
    plugin = tmp_path / "credential-plugin.py"
    plugin.write_text(
        textwrap.dedent(
            f"""
            import datetime, json, pathlib, time
            here = pathlib.Path({str(tmp_path)!r})
            with open(here / "calls", "a") as log:
                log.write(f"{{time.time()}}\\n")
            expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds={EXPIRES})
            print(json.dumps({{
                "apiVersion": "client.authentication.k8s.io/v1",
                "kind": "ExecCredential",
                "status": {{
                    "token": (here / "token").read_text().strip(),
                    "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }},
            }}))
            """
        )
    )
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(plugin)],
            "interactiveMode": "Never",
        }
    }
    kubeconfig = token_kubeconfig(cluster, tmp_path / "exec.kubeconfig", exec_user)
    operator = operator_factory(**chart_env(release, kubeconfig))
    drive_a_task(kubectl, namespace, "scale-exec", 5)

    def invoked() -> list[float]:
        return [float(line) for line in calls.read_text().split()]

    first = invoked()[0]
    eventually(
        "the plugin to run again after its credential expired",
        lambda: any(t > first + EXPIRES for t in invoked()),
        timeout=EXPIRES * 4,
    )
    clean(operator.log)


def test_with_the_separate_tool_server_on_the_charts_token(
    cluster: Any,
    kubectl: Any,
    namespace: str,
    users: None,
    release: Release,
    operator_factory: Callable[..., Operator],
    tmp_path: Path,
) -> None:
    """tools.mode=server: the tool server impersonates requesters with the chart ServiceAccount's token,
    the operator reaches it with the chart's generated operator token. Both log JSON (logFormat: json),
    one object per line, and the lines about the task name it."""
    deployment(kubectl, namespace)
    kubeconfig = token_kubeconfig(cluster, tmp_path / "token.kubeconfig", {"token": release.token})
    port = free_port()
    tools_log = tmp_path / "tools.log"
    env = dict(
        cluster.env,
        KUBECONFIG=str(kubeconfig),
        BOSUN_TOOLS_PORT=str(port),
        BOSUN_TOOLS_OPERATOR_TOKEN=release.tools_token,
        BOSUN_LOG_FORMAT="json",
        PYTHONUNBUFFERED="1",
    )
    with tools_log.open("ab") as out:
        tools = subprocess.Popen(
            [sys.executable, "-m", "bosun_tools"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        eventually(
            "the tool server's /healthz", lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60
        )
        operator = operator_factory(
            BOSUN_TOOLS_URL=f"http://127.0.0.1:{port}/mcp",
            BOSUN_TOOLS_TOKEN=release.tools_token,
            BOSUN_LOG_FORMAT="json",
            **chart_env(release, kubeconfig),
        )
        drive_a_task(kubectl, namespace, "scale-server", 2)
    finally:
        tools.terminate()
        tools.wait(timeout=20)
    clean(operator.log, tools_log)
    lines = [json.loads(line) for line in operator.log.read_text().splitlines()]
    about = [line for line in lines if (line.get("object") or {}).get("name") == "scale-server"]
    assert about, "lines about the task carry it"
    assert {line["object"]["namespace"] for line in about} == {namespace}
    served = [json.loads(line) for line in tools_log.read_text().splitlines()]
    assert any(line["logger"].startswith("uvicorn") for line in served), "uvicorn's lines too"


def test_a_token_without_the_charts_rights_is_unready_and_says_what_to_fix(
    cluster: Any, kubectl: Any, namespace: str, operator_factory: Callable[..., Operator], tmp_path: Path
) -> None:
    """A ServiceAccount the chart did not set up: the pod is alive but unready, and says what is missing."""
    kubectl("-n", namespace, "create", "serviceaccount", "unbound")
    token = kubectl("-n", namespace, "create", "token", "unbound", "--duration=1h").stdout.strip()
    kubeconfig = token_kubeconfig(cluster, tmp_path / "unbound.kubeconfig", {"token": token})
    port = free_port()
    operator = operator_factory(start=False, KUBECONFIG=str(kubeconfig), BOSUN_HEALTH_PORT=str(port))
    operator.spawn()
    account = f"system:serviceaccount:{namespace}:unbound"
    eventually("the log to say what is missing", lambda: "not ready: Forbidden" in operator.log.read_text())
    answer = ready(operator)
    assert answer["ready"] is False
    assert answer["problem"].startswith(
        f"Forbidden: {account} may not list agenttasks.bosun.dev in namespace "
    )
    assert "grant it these rights" in answer["problem"]
    assert _answers(f"http://127.0.0.1:{port}/healthz"), "alive: a restart would fix nothing"
    assert "Initial authentication" not in operator.log.read_text(), "kopf never started"
    assert operator.proc.poll() is None, "it waits for the fix, checking again with backoff"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False
