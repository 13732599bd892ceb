"""Shared fixtures: the real control plane, kubectl as the admin or as an ordinary user, namespaces.

By default the session starts the local control plane of ``tests/cluster`` (or reuses one that
``make cluster-up`` left running, and then leaves it running). With ``BOSUN_TEST_KUBECONFIG`` pointing at
the admin kubeconfig of another cluster (kind, k3d, a real one), the same tests run there; the users
alice, bob and carol are then acted out by impersonation through that admin kubeconfig.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import localcluster

USERS = localcluster.USERS


@dataclass(frozen=True)
class ClusterAccess:
    """The cluster the tests talk to, whichever way it was obtained."""

    kubeconfig: Path
    bin_dir: Path
    users_dir: Path

    def user_kubeconfig(self, name: str) -> Path:
        if name not in USERS:
            raise KeyError(f"unknown test user {name!r}; the test users are {', '.join(USERS)}")
        return self.users_dir / f"{name}.kubeconfig"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env


def _impersonating_kubeconfigs(admin: Path, dest: Path) -> None:
    """Kubeconfigs that act as alice/bob/carol through the admin's impersonation right (``as`` fields)."""
    import yaml

    config = yaml.safe_load(admin.read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    user_entry = next(u for u in config["users"] if u["name"] == current["context"]["user"])
    dest.mkdir(parents=True, exist_ok=True)
    for name, groups in USERS.items():
        entry = {"name": name, "user": {**user_entry["user"], "as": name, "as-groups": list(groups) or None}}
        if not groups:
            del entry["user"]["as-groups"]
        copy = {
            **config,
            "users": [entry],
            "contexts": [{"name": name, "context": {**current["context"], "user": name}}],
            "current-context": name,
        }
        (dest / f"{name}.kubeconfig").write_text(yaml.safe_dump(copy))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterAccess]:
    external = os.environ.get("BOSUN_TEST_KUBECONFIG")
    if external:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.fail("BOSUN_TEST_KUBECONFIG is set but kubectl is not on PATH; install kubectl >= 1.34")
        users = tmp_path_factory.mktemp("users")
        _impersonating_kubeconfigs(Path(external), users)
        yield ClusterAccess(Path(external), Path(kubectl).parent, users)
        return
    with localcluster.session_cluster() as (local, _started_here):
        yield ClusterAccess(local.kubeconfig, local.bin_dir, local.state_dir / "users")


class Kubectl(Protocol):
    def __call__(
        self, *args: str, user: str | None = None, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def kubectl_for(cluster: ClusterAccess) -> Kubectl:
    """The real kubectl of ``cluster``, as the admin, or as one of the ordinary users with ``user=``."""

    def run(
        *args: str, user: str | None = None, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        config = cluster.user_kubeconfig(user) if user else cluster.kubeconfig
        proc = subprocess.run(
            [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(config), *args],
            input=input,
            capture_output=True,
            text=True,
            env=cluster.env,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} (as {user or 'admin'}) exited {proc.returncode}:\n"
                f"{proc.stderr}{proc.stdout}"
            )
        return proc

    return run


@pytest.fixture(scope="session")
def kubectl(cluster: ClusterAccess) -> Kubectl:
    """Run the real kubectl as the admin, or as one of the ordinary users with ``user=``."""
    return kubectl_for(cluster)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (deletion finishes in the background)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"t-{slug}-{uuid.uuid4().hex[:5]}"
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "bosun.dev/test=true")
    yield name
    kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


BindRole = Callable[..., None]


@pytest.fixture
def bind_role(kubectl: Kubectl) -> BindRole:
    """Grant a user or group a ClusterRole inside one namespace, as an admin would with a RoleBinding."""

    def bind(namespace: str, subject: str, clusterrole: str, kind: str = "User") -> None:
        name = f"{clusterrole}-{kind.lower()}-{subject}".replace(":", "-")[:63]
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": clusterrole},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": subject}],
        }
        kubectl("apply", "-f", "-", input=json.dumps(binding))

    return bind
