"""Bearer-token credentials against the real API server: a kubeconfig holding only a ServiceAccount token,
an exec plugin handing out that token with a short expiry, and the impersonating view and pod exec
websocket over the same token. (Client certificates are what every other cluster test uses.)"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from bosun_tools.client.exec import exec_in_pod
from bosun_tools.client.kube import KubeClient, KubeError
from bosun_tools.identity import Identity
from kubernetes.config.kube_config import EXPIRY_SKEW_PREVENTION_DELAY

from tests.conftest import ClusterAccess, Kubectl
from tests.tools_support import deployment
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.cluster

ACCOUNT = "robot"


def kubeconfig_for(cluster: ClusterAccess, dest: Path, user: dict[str, Any]) -> Path:
    """The admin kubeconfig's cluster entry with ``user`` as its only credentials."""
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    entry = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [entry],
        "users": [{"name": ACCOUNT, "user": user}],
        "contexts": [{"name": ACCOUNT, "context": {"cluster": entry["name"], "user": ACCOUNT}}],
        "current-context": ACCOUNT,
    }
    dest.write_text(yaml.safe_dump(config))
    return dest


@pytest.fixture
def token(kubectl: Kubectl, namespace: str) -> str:
    """A fresh ServiceAccount's token, as ``kubectl create token`` prints it (newline included)."""
    kubectl("create", "serviceaccount", ACCOUNT, "-n", namespace)
    return kubectl("create", "token", ACCOUNT, "-n", namespace, "--duration=10m").stdout


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[Path], KubeClient]]:
    """Build clients from kubeconfig files; all are closed after the test."""
    made: list[KubeClient] = []

    def make(path: Path) -> KubeClient:
        made.append(KubeClient.from_kubeconfig(path))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


async def username(client: KubeClient) -> str:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    answer = await client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", json=review)
    name: str = answer["status"]["userInfo"]["username"]
    return name


async def test_a_kubeconfig_with_only_a_service_account_token_authenticates_as_that_account(
    cluster: ClusterAccess, namespace: str, token: str, tmp_path: Path, clients: Callable[[Path], KubeClient]
) -> None:
    client = clients(kubeconfig_for(cluster, tmp_path / "kubeconfig", {"token": token.strip()}))
    assert await username(client) == f"system:serviceaccount:{namespace}:{ACCOUNT}"


EXEC_PLUGIN = """
import datetime, json, pathlib, sys

token_file, runs_file, lifetime = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), float(sys.argv[3])
runs_file.write_text(str(int(runs_file.read_text()) + 1 if runs_file.exists() else 1))
expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=lifetime)
token = token_file.read_text().strip()
status = {"token": token, "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")}
credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}
print(json.dumps(credential))
"""


async def test_an_exec_plugin_is_run_again_once_its_token_expires(
    cluster: ClusterAccess, namespace: str, token: str, tmp_path: Path, clients: Callable[[Path], KubeClient]
) -> None:
    (tmp_path / "token").write_text(token)
    (tmp_path / "plugin.py").write_text(EXEC_PLUGIN)
    runs = tmp_path / "runs"
    # The library renews EXPIRY_SKEW_PREVENTION_DELAY before the expiry; this token has 3s beyond that.
    lifetime = EXPIRY_SKEW_PREVENTION_DELAY.total_seconds() + 3
    plugin = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": sys.executable,
        "args": [str(tmp_path / "plugin.py"), str(tmp_path / "token"), str(runs), str(lifetime)],
        "interactiveMode": "Never",
    }
    client = clients(kubeconfig_for(cluster, tmp_path / "kubeconfig", {"exec": plugin}))
    account = f"system:serviceaccount:{namespace}:{ACCOUNT}"
    assert await username(client) == account
    assert await username(client) == account
    assert runs.read_text() == "1"

    async def ran_again() -> bool:
        return await username(client) == account and runs.read_text() == "2"

    await eventually_async("the exec plugin to run again as its token expires", ran_again, within=30)


async def test_impersonation_and_pod_exec_carry_the_token(
    cluster: ClusterAccess,
    kubectl: Kubectl,
    namespace: str,
    token: str,
    tmp_path: Path,
    clients: Callable[[Path], KubeClient],
) -> None:
    # The token's account may only impersonate "runner", and only runner may exec into pods: both calls
    # succeed only if the token is sent (system:anonymous may do neither) and impersonation applies.
    robot, runner = (f"system:serviceaccount:{namespace}:{name}" for name in (ACCOUNT, "runner"))
    bind = f"--serviceaccount={namespace}:"
    for args in (
        ("create", "serviceaccount", "runner"),
        (
            "create",
            "role",
            "impersonate",
            "--verb=impersonate",
            "--resource=serviceaccounts",
            "--resource-name=runner",
        ),
        ("create", "rolebinding", "robot-impersonates", "--role=impersonate", bind + ACCOUNT),
        ("create", "role", "exec", "--verb=get,create", "--resource=pods,pods/exec"),
        ("create", "rolebinding", "runner-execs", "--role=exec", bind + "runner"),
    ):
        kubectl(*args, "-n", namespace)
    kubectl("apply", "-n", namespace, "-f", "-", input=deployment("web", 1))
    kubectl("rollout", "status", "-n", namespace, "deployment/web", "--timeout=90s")
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout)
    pod = pods["items"][0]["metadata"]["name"]

    def allowed(subject: str, verb: str, resource: str) -> bool:
        can_i = ("auth", "can-i", verb, resource, "-n", namespace, f"--as={subject}")
        return kubectl(*can_i, check=False).returncode == 0

    eventually("robot to impersonate runner", lambda: allowed(robot, "impersonate", "serviceaccounts/runner"))
    eventually("runner to exec into pods", lambda: allowed(runner, "create", "pods/exec"))

    client = clients(kubeconfig_for(cluster, tmp_path / "kubeconfig", {"token": token.strip()}))
    as_runner = client.impersonating(Identity(runner))
    assert await username(as_runner) == runner
    ran = await exec_in_pod(as_runner, namespace, pod, ["echo", "token works"])
    assert (ran.stdout, ran.exit_code) == ("token works\n", 0)
    with pytest.raises(KubeError, match=rf'User "{robot}" cannot'):
        await exec_in_pod(client, namespace, pod, ["echo", "not allowed"])
