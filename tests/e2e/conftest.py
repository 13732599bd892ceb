"""End-to-end harness: the CRDs and identity policies installed, and the operator run as a real process.

Each test gets its own namespace and its own operator watching only that namespace
(``BOSUN_NAMESPACES``), so tests never see each other's tasks and an operator can be SIGKILLed and
restarted mid-task exactly as in production.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ClusterAccess
from tests.fakes.llm import FakeLLM, call
from tests.waiting import admitted, crds_established, eventually

ROOT = Path(__file__).resolve().parents[2]
USER_ROLE = "bosun-e2e-user"


@pytest.fixture(scope="session")
def bosun_installed(cluster: Any, kubectl: Any) -> None:
    """CRDs and identity policies from ``crds/`` (what `make operator` applies), plus a role to use them."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    crds_established(kubectl, "agenttasks.bosun.dev", "approvalgrants.bosun.dev")
    admitted(kubectl, *ADMISSION_PROBES)
    apply_user_role(kubectl)


def apply_user_role(kubectl: Any) -> None:
    """The ClusterRole the ``users`` fixture binds: using AgentTasks and ApprovalGrants, nothing else."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": USER_ROLE},
        "rules": [
            {
                "apiGroups": ["bosun.dev"],
                "resources": ["agenttasks", "approvalgrants"],
                "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
            }
        ],
    }
    kubectl("apply", "-f", "-", input=json.dumps(role))


@dataclass
class Operator:
    """One ``python -m bosun`` process; ``log`` is its combined output."""

    namespace: str
    env: dict[str, str]
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start the process and return at once (``start`` also waits until kopf watches)."""
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bosun"], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append(proc)
        return proc

    def start(self) -> Operator:
        proc = self.spawn()
        starts = len(self.procs)
        eventually(
            "the operator to start watching",
            lambda: (
                self.log.read_text().count("Initial authentication has finished") >= starts
                or proc.poll() is not None
            ),
            timeout=180,
        )
        assert proc.poll() is None, f"operator exited {proc.returncode}:\n{self.log.read_text()[-3000:]}"
        return self

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.procs[-1]

    def kill(self) -> None:
        """SIGKILL: no cleanup, no last status write, as when a node dies."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@pytest.fixture
def operator_factory(
    cluster: Any, namespace: str, bosun_installed: None, tmp_path: Path
) -> Iterator[Callable[..., Operator]]:
    started: list[Operator] = []

    def make(start: bool = True, **env: str) -> Operator:
        full = dict(cluster.env)
        full.update(
            {
                "BOSUN_NAMESPACES": namespace,
                "BOSUN_SWEEP_SECONDS": "2",
                "BOSUN_VERIFY_SECONDS": "60",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "PYTHONUNBUFFERED": "1",
            }
        )
        for key in ("BOSUN_MODEL", "BOSUN_API_BASE", "BOSUN_TOOLS_URL", "BOSUN_TOOLS_TOKEN"):
            full.pop(key, None)
        full.update(env)
        op = Operator(namespace, full, tmp_path / f"operator-{len(started)}.log")
        started.append(op)
        return op.start() if start else op

    yield make
    for op in started:
        op.stop()
        if os.environ.get("BOSUN_E2E_SHOW_LOGS"):
            print(op.log.read_text()[-5000:])


@pytest.fixture
def operator(operator_factory: Callable[..., Operator]) -> Operator:
    """The operator with the offline planner and in-process tools."""
    return operator_factory()


@pytest.fixture
def users(namespace: str, bind_role: Any) -> None:
    """bob (group sre) requests and may change workloads; alice approves; carol has nothing."""
    bind_role(namespace, "bob", USER_ROLE)
    bind_role(namespace, "bob", "edit")
    bind_role(namespace, "alice", USER_ROLE)


def creates_and_reads_only(kubectl: Any, namespace: str, user: str, *own: str) -> None:
    """``user`` may create AgentTasks in ``namespace`` and get only those named ``own``: someone who must
    not see the other tasks there (a follow-up or replay of one of them is refused)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": f"{user}-own-tasks", "namespace": namespace},
        "rules": [
            {"apiGroups": ["bosun.dev"], "resources": ["agenttasks"], "verbs": ["create"]},
            {
                "apiGroups": ["bosun.dev"],
                "resources": ["agenttasks"],
                "verbs": ["get"],
                "resourceNames": list(own),
            },
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": f"{user}-own-tasks", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": f"{user}-own-tasks"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]})
    )


def get(kubectl: Any, namespace: str, kind: str, name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl("-n", namespace, "get", kind, name, "-o", "json").stdout)
    return result


def status_of(kubectl: Any, namespace: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = get(kubectl, namespace, "agenttask", name).get("status") or {}
    return status


def wait_phase(kubectl: Any, namespace: str, name: str, *phases: str, timeout: float = 90) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.clear()
        seen.update(status_of(kubectl, namespace, name))
        return seen.get("phase") in phases

    try:
        eventually(f"agenttask {namespace}/{name} to reach {'/'.join(phases)}", reached, timeout=timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last status:\n{json.dumps(seen, indent=1)[:4000]}") from None
    return dict(seen)


def decided(kubectl: Any, namespace: str, grant: str, state: str | None = None) -> dict[str, Any]:
    """The grant's status once the operator has decided it (once it is in ``state``, when given: a grant
    that counted an approval may later be superseded)."""
    seen: dict[str, Any] = {}

    def check() -> bool:
        seen.clear()
        seen.update(get(kubectl, namespace, "approvalgrant", grant).get("status") or {})
        return bool(seen.get("state")) and state in (None, seen["state"])

    eventually(f"approvalgrant {namespace}/{grant} to be {state or 'decided'}", check, timeout=90)
    return dict(seen)


def apply(kubectl: Any, namespace: str, doc: dict[str, Any], user: str | None = None) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(doc), user=user)


def task_doc(name: str, request: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "AgentTask",
        "metadata": {"name": name},
        "spec": {"request": request, **spec},
    }


def grant_doc(name: str, task: str, plan_hash: str, decision: str = "Approve", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "bosun.dev/v1alpha1",
        "kind": "ApprovalGrant",
        "metadata": {"name": name},
        "spec": {"taskRef": {"name": task}, "planHash": plan_hash, "decision": decision, **spec},
    }


ADMISSION_PROBES = (
    task_doc("admission-probe", "list pods"),
    grant_doc("admission-probe", "admission-probe", "sha256:" + "0" * 64),
)
"""One object of each kind, created in dry runs only (``tests.waiting.admitted``) once Bosun is installed."""


def deployment(kubectl: Any, namespace: str, name: str = "web", replicas: int = 3) -> None:
    kubectl(
        "-n",
        namespace,
        "create",
        "deployment",
        name,
        "--image=registry.example/web:1.0",
        f"--replicas={replicas}",
    )
    kubectl("-n", namespace, "rollout", "status", f"deployment/{name}", "--timeout=90s")


def events(kubectl: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    listing = json.loads(
        kubectl(
            "-n", namespace, "get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json"
        ).stdout
    )
    items: list[dict[str, Any]] = listing["items"]
    return sorted(items, key=lambda e: e.get("eventTime") or e.get("lastTimestamp") or "")


@pytest.fixture
def llm() -> Iterator[FakeLLM]:
    """The scripted OpenAI-compatible model double (``tests/fakes/llm.py``), served on 127.0.0.1."""
    with FakeLLM() as fake:
        yield fake


def with_model(factory: Callable[..., Operator], llm: FakeLLM, **env: str) -> Operator:
    """An operator whose model is the scripted double, reached over HTTP through LiteLLM."""
    return factory(BOSUN_MODEL="openai/gpt-4.1-mini", BOSUN_API_BASE=llm.url, BOSUN_API_KEY="test", **env)


def scale_call(namespace: str, name: str, replicas: int) -> dict[str, Any]:
    """A scripted model's ``k8s_scale`` tool call."""
    return call(
        "k8s_scale", {"kind": "deployment", "name": name, "namespace": namespace, "replicas": replicas}
    )


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in status["conditions"] if c["type"] == kind)
    return found


def replace_status(
    kubectl: Any, namespace: str, name: str, status: dict[str, Any], user: str | None = None
) -> None:
    """Write a task's whole status through the status subresource, as a user with rights on it would."""
    patch = [{"op": "replace", "path": "/status", "value": status}]
    kubectl(
        "-n",
        namespace,
        "patch",
        "agenttask",
        name,
        "--subresource=status",
        "--type=json",
        "-p",
        json.dumps(patch),
        user=user,
    )


def stuck_deployment(kubectl: Any, namespace: str) -> None:
    """web whose pods can never be scheduled, so verification of any scale fails and the task replans."""
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeSelector": {"disk": "ssd"},
                    "containers": [{"name": "web", "image": "registry.example/web:1.0"}],
                },
            },
        },
    }
    apply(kubectl, namespace, doc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# ----- the web console (bosun console) ------------------------------------------------------------------


@dataclass
class ConsoleProcess:
    """One ``bosun console`` run by a person, with their kubeconfig."""

    user: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_console(
    cluster: ClusterAccess, tmp: Path, user: str, namespace: str, *extra: str
) -> ConsoleProcess:
    port = free_port()
    config = cluster.kubeconfig if user == "admin" else cluster.user_kubeconfig(user)
    log = tmp / f"console-{user}-{port}.log"
    env = dict(os.environ)
    env.pop("KUBECONFIG", None)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "bosun"),
                "console",
                "--port",
                str(port),
                *(["--kubeconfig", str(config), "-n", namespace] if "--forwarded-token" not in extra else []),
                *extra,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    console = ConsoleProcess(user, f"http://127.0.0.1:{port}", proc, log)

    def healthy() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"bosun console as {user} exited {proc.returncode}:\n{log.read_text()}")
        try:
            return httpx.get(f"{console.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    eventually(f"the console of {user} to serve /healthz", healthy, timeout=60)
    return console


@pytest.fixture
def consoles(
    cluster: ClusterAccess, tmp_path: Path, namespace: str
) -> Iterator[Callable[..., ConsoleProcess]]:
    started: list[ConsoleProcess] = []

    def start(user: str, *extra: str) -> ConsoleProcess:
        console = start_console(cluster, tmp_path, user, namespace, *extra)
        started.append(console)
        return console

    yield start
    for console in started:
        console.stop()
