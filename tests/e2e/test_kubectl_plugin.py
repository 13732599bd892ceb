"""``kubectl bosun`` as people use it: the installed ``kubectl-bosun`` executable, run as bob, alice and
carol with their own kubeconfigs (and through the real kubectl, which finds the plugin on ``PATH``),
against the real API server, admission policies and an operator process.

bob asks and may change workloads, alice approves, carol has no rights. Every action is the user's own
request: the requester and approvers the operator records are who ran the plugin.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ClusterAccess
from tests.e2e.conftest import (
    USER_ROLE,
    Operator,
    deployment,
    get,
    status_of,
    stuck_deployment,
    wait_phase,
    with_model,
)
from tests.fakes.llm import FakeLLM, call, text, tool_calls
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

PLUGIN = Path(sys.executable).parent / "kubectl-bosun"
"""The entry point installed with the package (pyproject [project.scripts]), beside this interpreter."""
CREATED = re.compile(r"agenttask\.bosun\.dev/(?P<name>[a-z0-9-]+) created")
HASH = re.compile(r"hash (?P<hash>sha256:[0-9a-f]{64})")


def _environment(cluster: ClusterAccess) -> dict[str, str]:
    """PATH with the plugin's directory, so kubectl finds ``kubectl-bosun`` (output is a pipe: no colour)."""
    env = cluster.env
    env["PATH"] = f"{PLUGIN.parent}{os.pathsep}{env['PATH']}"
    env.pop("KUBECONFIG")  # every run names its user's kubeconfig, as a person's shell would hold it
    return env


def _argv(cluster: ClusterAccess, user: str, args: tuple[str, ...], via_kubectl: bool) -> list[str]:
    if not PLUGIN.exists():
        pytest.fail(f"{PLUGIN} is missing: the package is not installed (run `uv sync --frozen`)")
    config = str(cluster.kubeconfig if user == "admin" else cluster.user_kubeconfig(user))
    if via_kubectl:  # kubectl passes everything after the plugin's name on, flags included
        return [str(cluster.bin_dir / "kubectl"), "bosun", *args, "--kubeconfig", config]
    return [str(PLUGIN), "--kubeconfig", config, *args]


Plugin = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def plugin(cluster: ClusterAccess) -> Plugin:
    """Run ``kubectl-bosun ARGS`` as ``user`` to its end (``via_kubectl``: as ``kubectl bosun ARGS``)."""

    def run(
        user: str, *args: str, via_kubectl: bool = False, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            _argv(cluster, user, args, via_kubectl),
            env=_environment(cluster),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=180,
            check=False,
        )
        if expect is not None and proc.returncode != expect:
            raise AssertionError(
                f"kubectl bosun {' '.join(args)} as {user} exited {proc.returncode}, not {expect}:\n"
                f"{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


class Running:
    """A plugin process left running (watch, a confirmation prompt): its output collected as it comes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._out = bytearray()
        self._lock = threading.Lock()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._read, args=(self.proc.stdout.fileno(),), daemon=True)
        self._reader.start()

    def _read(self, fd: int) -> None:
        while chunk := os.read(fd, 4096):  # whatever arrives, even a prompt without a newline
            with self._lock:
                self._out.extend(chunk)

    @property
    def output(self) -> str:
        with self._lock:
            return self._out.decode()

    def wait_for(self, expected: str | re.Pattern[str], timeout: float = 120) -> str:
        """The output once it holds ``expected`` (a text or a pattern)."""

        def shown() -> bool:
            out = self.output
            return expected in out if isinstance(expected, str) else bool(expected.search(out))

        try:
            eventually(f"the plugin to print {expected!r}", shown, timeout=timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; it printed:\n{self.output}") from None
        return self.output

    def answer(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """Exit status, all of stdout and stderr once the process ended by itself."""
        assert self.proc.stderr is not None
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code, self.output, self.proc.stderr.read().decode()


@pytest.fixture
def running(cluster: ClusterAccess) -> Iterator[Callable[..., Running]]:
    """Start plugin processes that the test ends; any still running when it ends are killed."""
    started: list[Running] = []

    def start(user: str, *args: str) -> Running:
        started.append(Running(_argv(cluster, user, args, via_kubectl=False), _environment(cluster)))
        return started[-1]

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.proc.kill()
            proc.proc.wait(timeout=10)


def _replicas(kubectl: Any, namespace: str) -> int:
    value: int = get(kubectl, namespace, "deployment", "web")["spec"]["replicas"]
    return value


def _asked(proc: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """The task ``ask`` created and the hash of the proposal it printed."""
    created, shown = CREATED.search(proc.stdout), HASH.search(proc.stdout)
    assert created, proc.stdout
    assert shown, proc.stdout
    return created["name"], shown["hash"]


def _grants(kubectl: Any, namespace: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = json.loads(
        kubectl("-n", namespace, "get", "approvalgrants", "-o", "json").stdout
    )["items"]
    return items


def test_bob_asks_his_own_approval_is_refused_alice_approves_and_it_runs(
    kubectl: Any,
    namespace: str,
    users: None,
    operator: Operator,
    plugin: Plugin,
    running: Callable[..., Running],
) -> None:
    deployment(kubectl, namespace)
    asked = plugin("bob", "ask", f"scale deployment web in {namespace} to 4", "-n", namespace, "--wait")
    name, plan_hash = _asked(asked)
    assert name.startswith("scale-deployment-web-in-")
    status = status_of(kubectl, namespace, name)
    assert (status["phase"], status["requester"]["user"]) == ("AwaitingApproval", "bob")
    assert plan_hash == status["proposal"]["hash"]
    assert "AwaitingApproval" in asked.stdout
    assert "-  replicas: 3" in asked.stdout
    assert "+  replicas: 4" in asked.stdout
    assert f"kubectl bosun approve {name} -n {namespace} --hash {plan_hash}" in asked.stdout
    assert "\033[" not in asked.stdout  # not a terminal: no colour

    # Through kubectl itself, flags after the plugin's name, as alice.
    shown = plugin("alice", "show", name, "-n", namespace, via_kubectl=True).stdout
    assert f"AgentTask {namespace}/{name}" in shown
    assert "Phase:      AwaitingApproval" in shown
    assert "Requester:  bob (sre)" in shown
    assert f"hash {plan_hash}" in shown
    assert "+  replicas: 4" in shown
    assert "Still needed: a decision on revision 1" in shown
    assert "  Policy: four-eyes on, 1 approver, destructive steps need no particular group," in shown
    listed = plugin("bob", "list", "-n", namespace).stdout
    assert re.search(
        rf"^{name}\s+AwaitingApproval\s+{re.escape(status['proposal']['shortHash'])}\s", listed, re.M
    )

    timeline = running("bob", "watch", "-n", namespace)
    timeline.wait_for(f"agenttask/{name}  AwaitingApproval")

    own = plugin("bob", "approve", name, "-n", namespace, "--yes", expect=1)
    assert "You are about to APPROVE proposal revision 1" in own.stdout
    assert (
        "Rejected (FourEyes): bob requested this task; with four-eyes on, another approver (not bob)"
        in own.stdout
    )
    assert status_of(kubectl, namespace, name)["phase"] == "AwaitingApproval"

    approved = plugin("alice", "approve", name, "-n", namespace, "--yes", "--reason", "change review 42")
    assert "Accepted (Approved): approved steps s1" in approved.stdout
    done = wait_phase(kubectl, namespace, name, "Succeeded")
    assert _replicas(kubectl, namespace) == 4
    accepted = [a for a in done["approvals"] if a["accepted"]]
    assert [a["approver"]["user"] for a in accepted] == ["alice"]
    [grant] = [g for g in _grants(kubectl, namespace) if g["spec"].get("reason") == "change review 42"]
    assert grant["spec"]["planHash"] == plan_hash
    assert grant["spec"]["taskRef"] == {
        "name": name,
        "uid": get(kubectl, namespace, "agenttask", name)["metadata"]["uid"],
    }
    assert grant["metadata"]["labels"]["bosun.dev/via"] == "kubectl-bosun"
    assert grant["metadata"]["annotations"]["bosun.dev/approver"] == "alice"

    timeline.wait_for(f"agenttask/{name}  Succeeded")
    timeline.wait_for("GrantRejected")
    timeline.wait_for("GrantAccepted")
    timeline.proc.send_signal(signal.SIGINT)  # Ctrl-C
    code, _, errors = timeline.finish()
    assert code == 130
    assert "Traceback" not in errors

    after = plugin("alice", "show", name, "-n", namespace).stdout
    assert "Ended Succeeded: Verified" in after
    assert re.search(r"r1-s1\s+k8s_scale\s+Succeeded\s.*\salice\s+bob\s", after)
    assert "Policy:" not in after  # decided: nothing is still needed

    # The next turn of the same conversation (spec.followUpOf); the offline planner proposes again.
    request = f"scale deployment web in {namespace} to 5"
    more = plugin("bob", "ask", request, "-n", namespace, "--follow-up-of", name, "--wait")
    follow_up, _ = _asked(more)
    spec = get(kubectl, namespace, "agenttask", follow_up)["spec"]
    assert (spec["request"], spec["followUpOf"], "model" in spec) == (request, name, False)
    assert f"  Follows up: {name}\n" in plugin("bob", "show", follow_up, "-n", namespace).stdout


def test_deny_ends_a_task_denied_and_list_puts_pending_approvals_first(
    kubectl: Any, namespace: str, users: None, operator: Operator, plugin: Plugin
) -> None:
    deployment(kubectl, namespace)
    denied, _ = _asked(
        plugin("bob", "ask", f"scale deployment web in {namespace} to 5", "-n", namespace, "--wait")
    )
    # The admin acting as alice with --as, as kubectl does: the approver stamped is alice.
    no = plugin(
        "admin", "deny", denied, "-n", namespace, "--yes", "--reason", "not during the sale", "--as", "alice"
    )
    assert "You are about to DENY proposal revision 1" in no.stdout
    assert "Accepted (Denied): Deny accepted: proposal revision 1 is denied" in no.stdout
    status = wait_phase(kubectl, namespace, denied, "Denied")
    assert [a["approver"]["user"] for a in status["approvals"]] == ["alice"]
    assert _replicas(kubectl, namespace) == 3

    failed = plugin("bob", "ask", "write a poem about the cluster", "-n", namespace, "--wait", expect=1)
    assert "Failed: Unsupported: This request needs a model" in failed.stdout
    unwaited = plugin("bob", "ask", "write a poem about the cluster", "-n", namespace)
    assert "Failed: Unsupported" in unwaited.stdout  # without --wait the status says it was created

    pending, _ = _asked(plugin("bob", "ask", f"scale deployment web in {namespace} to 6", "-n", namespace))
    listed = plugin("bob", "list", "-n", namespace).stdout.splitlines()
    assert listed[0].split() == ["NAME", "PHASE", "HASH", "MESSAGE", "REQUESTER", "AGE"]
    rows = [line.split()[:2] for line in listed[1:]]
    assert rows[0] == [pending, "AwaitingApproval"]
    assert [phase for _, phase in rows[1:]] == ["Denied", "Failed", "Failed"]
    again = plugin("bob", "deny", denied, "-n", namespace, "--yes", expect=1)
    assert f"agenttask {namespace}/{denied} is Denied: no proposal awaits a decision" in again.stderr
    assert not again.stdout  # nothing was shown for a decision, since none was possible


def test_a_proposal_that_changed_after_it_was_shown_is_not_approved(
    kubectl: Any,
    namespace: str,
    users: None,
    bind_role: Any,
    operator_factory: Callable[..., Operator],
    llm: FakeLLM,
    plugin: Plugin,
    running: Callable[..., Running],
) -> None:
    """alice reviews revision 1 (show, and an approve waiting for her y); carol approves it first; it runs,
    verification fails, and the model proposes revision 2. alice's y then approves nothing, and so does
    approving later with the hash she reviewed."""
    bind_role(namespace, "carol", USER_ROLE)
    stuck_deployment(kubectl, namespace)
    scale = [
        call("k8s_scale", {"kind": "deployment", "name": "web", "namespace": namespace, "replicas": n})
        for n in (2, 3)
    ]
    llm.script(
        tool_calls(scale[0]),
        text("web has too few replicas; proposing 2."),
        tool_calls(scale[1]),
        text("Still not available; proposing 3."),
    )
    with_model(operator_factory, llm, BOSUN_VERIFY_SECONDS="4")
    name, first = _asked(
        plugin("bob", "ask", f"make web in {namespace} available", "-n", namespace, "--wait")
    )
    assert f"hash {first}" in plugin("alice", "show", name, "-n", namespace).stdout

    prompt = running("alice", "approve", name, "-n", namespace)
    shown = prompt.wait_for("Approve revision 1? [y/N] ")
    assert f"The grant quotes hash {first}" in shown
    assert "Accepted (Approved)" in plugin("carol", "approve", name, "-n", namespace, "--yes").stdout
    eventually(
        "revision 2 to be proposed",
        lambda: (status_of(kubectl, namespace, name).get("proposal") or {}).get("revision") == 2,
        timeout=120,
    )
    second = wait_phase(kubectl, namespace, name, "AwaitingApproval")["proposal"]["hash"]

    prompt.answer("y\n")
    code, out, _ = prompt.finish()
    assert code == 1
    assert f"Rejected (StaleHash): planHash {first} does not match the current proposal (revision 2" in out

    grants = len(_grants(kubectl, namespace))
    late = plugin("alice", "approve", name, "-n", namespace, "--hash", first, "--yes", expect=1)
    assert f"now proposes revision 2 ({second}), not the {first} you reviewed" in late.stderr
    assert len(_grants(kubectl, namespace)) == grants  # refused before any grant was made
    now = status_of(kubectl, namespace, name)
    assert (now["phase"], now["proposal"]["hash"]) == ("AwaitingApproval", second)
    assert _replicas(kubectl, namespace) == 2


def test_carol_without_rights_is_told_what_to_ask_for(
    kubectl: Any, namespace: str, users: None, bosun_installed: None, plugin: Plugin
) -> None:
    refused = plugin("carol", "ask", "scale web to 5", "-n", namespace, expect=1)
    assert refused.stderr.startswith(
        f"Forbidden: carol may not create agenttasks.bosun.dev in namespace {namespace}.\n"
    )
    assert (
        f"kubectl -n {namespace} create rolebinding carol-bosun-requester --clusterrole=bosun-requester "
        "--user=carol" in refused.stderr
    )
    assert 'User "carol" cannot create resource "agenttasks"' in refused.stderr
    assert "Traceback" not in refused.stderr

    for args, verb in ((("list",), "list"), (("show", "anything"), "get")):
        told = plugin("carol", *args, "-n", namespace, via_kubectl=True, expect=1).stderr
        assert f"Forbidden: carol may not {verb} agenttasks.bosun.dev in namespace {namespace}." in told
        assert "--clusterrole=bosun-viewer --user=carol" in told
    # The admin's kubeconfig with --as carol is carol, and is refused as carol.
    assert (
        "Forbidden: carol may not create"
        in plugin("admin", "ask", "x", "-n", namespace, "--as", "carol", expect=1).stderr
    )
    missing = plugin("bob", "show", "nothing-here", "-n", namespace, expect=1)
    assert f"agenttask {namespace}/nothing-here not found" in missing.stderr
