"""What tools that know nothing about Bosun see, on real objects: tasks driven by the operator (its own
process) into every phase and grants into every state, every version the API server sent recorded by
watches, each checked with the real kstatus library and the chart's Argo CD health script; `kubectl wait
--for=condition=Complete` and `--for=condition=Failed` (real kubectl) return; the printer columns show the
requester from the first second, what a task waits for, and a short hash.

With ``BOSUN_UPDATE_GOLDEN=1`` the last version seen of each phase and grant state is written to
tests/golden/health_objects.json, which tests/unit/test_health_checks.py checks without a cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bosun.api.models import TERMINAL_PHASES
from bosun.core.words import is_true

from tests.conftest import ClusterAccess
from tests.e2e.conftest import USER_ROLE, apply, decided, deployment, get, grant_doc, task_doc, wait_phase
from tests.health import (
    ARGOCD_HEALTH,
    RECORDED,
    argocd_health,
    expected_kstatus,
    kstatus,
    phase_of,
    state_of,
)
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

APPROVAL_TIMEOUT = 45
"""Seconds until the proposal of ``expire`` expires; every other task is decided well before."""
ENDED_BADLY = ("deny", "cancel", "expire", "fail")


class Watch:
    """``kubectl get KIND -w -o json``: every version of every object of a kind, as the API server sent it."""

    def __init__(
        self, cluster: ClusterAccess, namespace: str, kind: str, out: Path, processes: list[Any]
    ) -> None:
        self.out = out
        with out.open("wb") as sink:
            self.proc = subprocess.Popen(
                [str(cluster.bin_dir / "kubectl"), "-n", namespace, "get", kind, "-w", "-o", "json"],
                env=cluster.env,
                stdout=sink,
                stderr=subprocess.DEVNULL,
            )
        processes.append(self.proc)

    def stop(self) -> list[dict[str, Any]]:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        text, decoder, objects, at = self.out.read_text(), json.JSONDecoder(), [], 0
        while text[at:].strip():
            at += len(text[at:]) - len(text[at:].lstrip())
            obj, at = decoder.raw_decode(text, at)
            objects.append(obj)
        return objects


def table(kubectl: Any, namespace: str, *args: str) -> dict[str, dict[str, str]]:
    """``kubectl get agenttasks`` as printed, row by name: each cell read at its header's offset (kubectl
    aligns every cell under its header)."""
    lines = kubectl("-n", namespace, "get", "agenttasks", *args).stdout.splitlines()
    header = lines[0]
    names, starts = header.split(), []
    for name in names:
        starts.append(header.index(name, starts[-1] + 1 if starts else 0))
    rows = {}
    for line in lines[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows[cells[0]] = dict(zip(names, cells, strict=True))
    return rows


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[Any]]]:
    """The kubectl watches and waits a test starts, ended when it ends however it ends."""
    started: list[subprocess.Popen[Any]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def kubectl_wait(cluster: ClusterAccess, namespace: str, until: str, *tasks: str) -> subprocess.Popen[str]:
    """``kubectl wait --for=UNTIL`` on ``tasks``, started now and left running until they meet it."""
    return subprocess.Popen(
        [
            str(cluster.bin_dir / "kubectl"),
            "-n",
            namespace,
            "wait",
            f"--for={until}",
            *[f"agenttask/{t}" for t in tasks],
            "--timeout=300s",
        ],
        env=cluster.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_tools_read_every_phase_and_grant_state(
    cluster: ClusterAccess,
    kubectl: Any,
    namespace: str,
    users: None,
    bind_role: Any,
    operator_factory: Any,
    processes: list[subprocess.Popen[Any]],
    tmp_path: Path,
) -> None:
    bind_role(namespace, "carol", USER_ROLE)
    kubectl("annotate", "namespace", namespace, "bosun.dev/required-approvals=2")
    deployment(kubectl, namespace)
    tasks_watch = Watch(cluster, namespace, "agenttasks", tmp_path / "tasks.json", processes)
    grants_watch = Watch(cluster, namespace, "approvalgrants", tmp_path / "grants.json", processes)
    requests = {
        "succeed": f"scale deployment web in {namespace} to 4",
        "deny": f"scale deployment web in {namespace} to 5",
        "cancel": f"scale deployment web in {namespace} to 6",
        "expire": f"scale deployment web in {namespace} to 7",
        "fail": "write a poem about the cluster",
    }
    for name, request in requests.items():
        apply(kubectl, namespace, task_doc(name, request), user="bob")
    apply(kubectl, namespace, grant_doc("early", "succeed", "sha256:" + "0" * 64), user="alice")

    # Nobody has looked at them yet: in progress for kstatus, and the requester shows already.
    untouched = [get(kubectl, namespace, "agenttask", name) for name in requests]
    untouched.append(get(kubectl, namespace, "approvalgrant", "early"))
    for obj, (status, reason, _) in zip(untouched, kstatus(untouched), strict=True):
        assert (status, reason) == ("InProgress", "LatestGenerationNotObserved"), obj["metadata"]["name"]
    assert {name: row["REQUESTER"] for name, row in table(kubectl, namespace).items()} == dict.fromkeys(
        requests, "bob"
    )
    waiters = [
        kubectl_wait(cluster, namespace, "condition=Complete", "succeed"),
        kubectl_wait(cluster, namespace, "condition=Failed", *ENDED_BADLY),
        kubectl_wait(cluster, namespace, "jsonpath={.status.finishedAt}", *requests),
    ]
    processes.extend(waiters)

    operator_factory(BOSUN_APPROVAL_TIMEOUT_SECONDS=str(APPROVAL_TIMEOUT))
    proposed = {
        name: wait_phase(kubectl, namespace, name, "AwaitingApproval") for name in requests if name != "fail"
    }
    failed = wait_phase(kubectl, namespace, "fail", "Failed")
    assert decided(kubectl, namespace, "early", "Rejected")["reason"] == "StaleHash"

    def grant(name: str, task: str, user: str, decision: str = "Approve") -> None:
        doc = grant_doc(name, task, proposed[task]["proposal"]["hash"], decision)
        apply(kubectl, namespace, doc, user=user)

    grant("carol-succeed", "succeed", "carol")
    grant("carol-deny", "deny", "carol")
    grant("carol-expire", "expire", "carol")
    grant("bob-cancel", "cancel", "bob")
    for name in ("carol-succeed", "carol-deny", "carol-expire"):
        assert decided(kubectl, namespace, name, "Accepted")["reason"] == "ApprovalCounted"
    assert decided(kubectl, namespace, "bob-cancel", "Rejected")["reason"] == "FourEyes"

    rows = table(kubectl, namespace, "-o", "wide")
    assert rows["succeed"]["REASON"] == "ApprovalRequired"
    assert rows["succeed"]["MESSAGE"] == "awaiting 1 of 2 approvals (carol)"
    assert rows["cancel"]["MESSAGE"] == "awaiting approval of revision 1 (1 step)"
    assert rows["succeed"]["HASH"] == proposed["succeed"]["proposal"]["hash"][: len("sha256:") + 12]
    assert rows["succeed"]["REQUEST"] == requests["succeed"]
    assert rows["succeed"]["PENDING"] == "1"
    assert rows["fail"]["REASON"] == "Unsupported"
    assert rows["fail"]["MESSAGE"].startswith("This request needs a model")
    assert rows["fail"]["MESSAGE"].endswith("…")

    grant("alice-succeed", "succeed", "alice")
    grant("alice-deny", "deny", "alice", "Deny")
    kubectl("-n", namespace, "annotate", "agenttask", "cancel", "cancel=true", user="bob")
    apply(kubectl, namespace, grant_doc("late", "fail", "sha256:" + "1" * 64), user="alice")
    for name, phase in (("succeed", "Succeeded"), ("deny", "Denied"), ("cancel", "Cancelled")):
        wait_phase(kubectl, namespace, name, phase, timeout=120)
    wait_phase(kubectl, namespace, "expire", "Expired", timeout=APPROVAL_TIMEOUT + 60)
    assert decided(kubectl, namespace, "alice-deny", "Accepted")["reason"] == "Denied"
    assert decided(kubectl, namespace, "alice-succeed", "Accepted")["reason"] == "Approved"
    for name in ("carol-deny", "carol-expire"):
        assert decided(kubectl, namespace, name, "Superseded")["reason"] == "ProposalClosed"
    assert decided(kubectl, namespace, "late", "Superseded")["reason"] == "TaskFinished"

    # kubectl wait returns: Complete for the task that succeeded, Failed for every task that ended badly,
    # and the finishedAt jsonpath (docs/observability.md) for all of them.
    said = []
    for proc in waiters:
        eventually("kubectl wait to return", lambda proc=proc: proc.poll() is not None, timeout=60)
        said.append(proc.stdout.read() if proc.stdout else "")
        assert proc.returncode == 0, said[-1]
    met = [line.split()[0] for text in said for line in text.splitlines() if line.endswith("condition met")]
    assert sorted(met) == sorted(f"agenttask.bosun.dev/{name}" for name in [*requests, *requests])

    tasks, grants = tasks_watch.stop(), grants_watch.stop()
    seen_phases = {phase_of(t) for t in tasks}
    assert seen_phases >= set(ARGOCD_HEALTH) - {"Planning"}, seen_phases
    assert {state_of(g) for g in grants} == {"", "Accepted", "Rejected", "Superseded"}
    for obj, (status, reason, message) in zip([*tasks, *grants], kstatus([*tasks, *grants]), strict=True):
        label = f"{obj['kind']} {obj['metadata']['name']} ({phase_of(obj)}{state_of(obj)})"
        assert (status, reason) == expected_kstatus(obj), f"{label}: {message}"
    for task in tasks:
        assert argocd_health(task)[0] == ARGOCD_HEALTH[phase_of(task)], task["metadata"]["name"]
    for task in tasks:
        if phase_of(task) in TERMINAL_PHASES:
            unknown = [c["type"] for c in task["status"]["conditions"] if c["status"] == "Unknown"]
            assert unknown == [], f"{task['metadata']['name']} ended with open conditions {unknown}"
    planned = next(c for c in failed["conditions"] if c["type"] == "Planned")
    assert (planned["status"], planned["reason"]) == ("False", "Unsupported")
    if is_true(os.environ.get("BOSUN_UPDATE_GOLDEN", "")):
        record(tasks, grants)


def record(tasks: list[dict[str, Any]], grants: list[dict[str, Any]]) -> None:
    """The last version seen of each task phase and of each grant state and reason, without managedFields."""

    def bare(obj: dict[str, Any]) -> dict[str, Any]:
        meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        return {**obj, "metadata": meta}

    by_phase = {phase_of(t): bare(t) for t in tasks}
    by_state = {
        f"{state_of(g) or 'NotJudged'}/{(g.get('status') or {}).get('reason', '')}".rstrip("/"): bare(g)
        for g in grants
    }
    RECORDED.write_text(
        json.dumps({"agenttasks": by_phase, "approvalgrants": by_state}, indent=1, sort_keys=True) + "\n"
    )
