"""Two replicas, one actor: leader election with a coordination.k8s.io Lease (``bosun.leader``).

The drill runs two ``python -m bosun`` processes with ``BOSUN_LEADER_ELECTION=true``, each serving its own
``/readyz`` (which says ``leader`` or ``standby``). Each round bob asks for a build of a fresh Jenkins job on
the Jenkins double — a non-idempotent call — alice approves it, and the leader is SIGKILLed at one of the
moments of execution: just after the grant, once the task shows Executing, once the trigger reached
Jenkins, once the build exists, or while the result is being verified. A new process replaces it (the pod
restarting) and the standby takes over. Afterwards the job must have been triggered at most once and the
task must have finished: Succeeded, or — when the kill landed inside the trigger call, where nobody can
know whether Jenkins got it — Failed with ``InterruptedNonIdempotent`` and nothing run again.

``BOSUN_BENCH_FAILOVER=1 make bench`` runs the same drill (20 rounds, the default Lease timings) and
reports the failover time; the test runs 3 rounds with shorter timings. The elector's own protocol against
the API server (hand-over on release, a Lease taken away, a blocked event loop) is tested below the drill.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest
from bosun.config import LeaderElection
from bosun.leader import LeaderElector
from bosun_tools.client.kube import KubeClient

from tests.e2e.conftest import ROOT, Operator, free_port, grant_doc, task_doc
from tests.fakes.jenkins import FakeJenkins
from tests.waiting import eventually, eventually_async

pytestmark = pytest.mark.cluster

MOMENTS = ("granted", "executing", "triggered", "building", "verifying")
"""When the leader is killed, in the order a task passes them."""
TERMINAL = frozenset({"Succeeded", "Denied", "Failed", "Cancelled", "Expired"})
TEST_TIMINGS = {
    "BOSUN_LEASE_DURATION_SECONDS": "6",
    "BOSUN_RENEW_DEADLINE_SECONDS": "4",
    "BOSUN_RETRY_PERIOD_SECONDS": "1",
}
"""Shorter than client-go's 15/10/2 so three rounds stay quick; the margins keep the same shape."""


class Run(Protocol):
    """kubectl as the admin or as ``user``; returns stdout, raises on failure."""

    def __call__(self, *args: str, user: str | None = None, input: str | None = None) -> str: ...


@dataclass
class Replica:
    """One operator process and its probe port."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def ready(self) -> dict[str, Any] | None:
        """``/readyz`` as JSON (also when it answers 503), or None while nothing answers."""
        if self.proc.poll() is not None:
            return None
        url = f"http://127.0.0.1:{self.port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                body: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        except OSError:
            return None
        return body


@dataclass(frozen=True)
class Outcome:
    moment: str
    phase: str
    reason: str
    triggers: int
    failover: float


@dataclass
class Drill:
    """The failover drill, shared by the test and ``make bench`` (with BOSUN_BENCH_FAILOVER=1)."""

    run: Run
    namespace: str
    env: dict[str, str]
    log_dir: Path
    jenkins: FakeJenkins
    replicas: list[Replica] = field(default_factory=list)
    everything: list[subprocess.Popen[bytes]] = field(default_factory=list)

    # ----- setting up -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """The Jenkins Secret, and RBAC: bob may request tasks and use Jenkins jobs (and list pods, which
        the target-namespace policy asks), alice may approve."""
        data = {"url": self.jenkins.url, "user": self.jenkins.user, "token": self.jenkins.token}
        role = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "failover-drill"},
            "rules": [
                {
                    "apiGroups": ["bosun.dev"],
                    "resources": ["agenttasks", "approvalgrants"],
                    "verbs": ["get", "list", "watch", "create"],
                },
                {"apiGroups": ["bosun.dev"], "resources": ["jenkinsjobs"], "verbs": ["get", "create"]},
            ],
        }
        items: list[dict[str, Any]] = [
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "jenkins"},
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            },
            role,
        ]
        bindings = [("bob", "Role", "failover-drill"), ("alice", "Role", "failover-drill")]
        bindings.append(("bob", "ClusterRole", "view"))
        for user, kind, name in bindings:
            items.append(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": f"{name}-{user}"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
                }
            )
        listing = {"apiVersion": "v1", "kind": "List", "items": items}
        self.run("-n", self.namespace, "apply", "-f", "-", input=json.dumps(listing))
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": "bob",
                "groups": ["sre"],
                "resourceAttributes": {
                    "group": "bosun.dev",
                    "resource": "jenkinsjobs",
                    "verb": "create",
                    "namespace": self.namespace,
                },
            },
        }
        answer = ("create", "-f", "-", "-o", "jsonpath={.status.allowed}")
        eventually(
            "bob's RBAC to reach the authorizer",
            lambda: self.run(*answer, input=json.dumps(review)) == "true",
        )

    def start_replica(self) -> Replica:
        port = free_port()
        log = self.log_dir / f"replica-{len(self.everything)}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "bosun"],
                cwd=ROOT,
                env={**self.env, "BOSUN_HEALTH_PORT": str(port)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.everything.append(proc)
        replica = Replica(proc, port, log)
        self.replicas.append(replica)
        return replica

    def stop(self) -> None:
        for proc in self.everything:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.everything:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    # ----- observing --------------------------------------------------------------------------------

    def roles(self) -> dict[str, list[Replica]]:
        found: dict[str, list[Replica]] = {}
        for replica in self.replicas:
            answer = replica.ready()
            if answer is not None and answer.get("ready"):
                found.setdefault(str(answer.get("role")), []).append(replica)
        return found

    def pair(self, timeout: float = 180) -> Replica:
        """Wait for one ready leader and one ready standby; never two leaders. Returns the leader."""
        seen: dict[str, list[Replica]] = {}

        def settled() -> bool:
            seen.clear()
            seen.update(self.roles())
            assert len(seen.get("leader", [])) <= 1, "two replicas say they lead"
            return len(seen.get("leader", [])) == 1 and len(seen.get("standby", [])) == 1

        eventually("one ready leader and one ready standby", settled, timeout=timeout, interval=0.1)
        return seen["leader"][0]

    def status(self, name: str) -> dict[str, Any]:
        out = self.run("-n", self.namespace, "get", "agenttask", name, "-o", "jsonpath={.status}")
        status: dict[str, Any] = json.loads(out) if out.strip() else {}
        return status

    def wait_status(
        self, name: str, what: str, check: Callable[[dict[str, Any]], bool], timeout: float = 120
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def reached() -> bool:
            seen.clear()
            seen.update(self.status(name))
            return check(seen)

        try:
            eventually(f"agenttask {name} {what}", reached, timeout=timeout, interval=0.02)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last status:\n{json.dumps(seen, indent=1)[:4000]}") from None
        return dict(seen)

    def triggers(self, job: str) -> int:
        """POSTs that reached Jenkins for ``job`` (each one a build, or a refused attempt at one)."""
        return sum(1 for t in self.jenkins.triggered if t.job == (job,))

    def finish_builds(self, job: str) -> None:
        for number, build in list(self.jenkins.jobs[(job,)].builds.items()):
            if build.building:
                self.jenkins.finish_build([job], number)

    def reach(self, moment: str, name: str, job: str) -> None:
        """Wait for ``moment`` of the task's execution (builds stay running until the kill, so the
        verification is still waiting for them when ``verifying`` comes)."""
        checks: dict[str, Callable[[], bool]] = {
            "granted": lambda: True,
            "executing": lambda: self.status(name).get("phase") in ("Executing", *TERMINAL, "Verifying"),
            "triggered": lambda: self.triggers(job) > 0,
            "building": lambda: bool(self.jenkins.jobs[(job,)].builds),
            "verifying": lambda: self.status(name).get("phase") in ("Verifying", *TERMINAL),
        }
        eventually(f"agenttask {name} to reach '{moment}'", checks[moment], timeout=120, interval=0.02)

    # ----- one round --------------------------------------------------------------------------------

    def round(self, index: int, moment: str) -> Outcome:
        job = name = f"deploy-{index}"
        self.jenkins.add_job([job])
        leader = self.pair()
        self.run(
            "-n", self.namespace, "apply", "-f", "-", user="bob",
            input=json.dumps(task_doc(name, f"trigger jenkins job {job}")),
        )  # fmt: skip
        status = self.wait_status(name, "to await approval", lambda s: s.get("phase") == "AwaitingApproval")
        grant = grant_doc(f"{name}-ok", name, status["proposal"]["hash"])
        self.run("-n", self.namespace, "apply", "-f", "-", user="alice", input=json.dumps(grant))
        self.reach(moment, name, job)
        killed = time.monotonic()
        leader.proc.kill()
        leader.proc.wait(timeout=30)
        self.replicas.remove(leader)
        self.start_replica()  # the kubelet restarting the container
        eventually(
            "the standby to lead and watch",
            lambda: bool(self.roles().get("leader")),
            timeout=120,
            interval=0.05,
        )
        failover = time.monotonic() - killed

        def finished(status: dict[str, Any]) -> bool:
            self.finish_builds(job)
            return status.get("phase") in TERMINAL

        final = self.wait_status(name, "to finish after the failover", finished, timeout=180)
        ready = next((c for c in final.get("conditions", []) if c["type"] == "Ready"), {})
        return Outcome(moment, final["phase"], ready.get("reason", ""), self.triggers(job), failover)


def judge(outcomes: list[Outcome]) -> None:
    """The drill's claims: nothing ran twice, nothing was left unfinished, and a task that did not
    succeed stopped only because its non-idempotent call was interrupted (never re-run)."""
    for outcome in outcomes:
        assert outcome.triggers <= 1, f"the job was triggered {outcome.triggers} times: {outcome}"
        assert outcome.phase in ("Succeeded", "Failed"), outcome
        if outcome.phase == "Succeeded":
            assert outcome.triggers == 1, outcome
        else:
            assert outcome.reason == "InterruptedNonIdempotent", outcome


def moments(rounds: int, rng: random.Random) -> list[str]:
    """Every moment equally often, in random order (a random sample when there are fewer rounds)."""
    chosen = [MOMENTS[i % len(MOMENTS)] for i in range(rounds)]
    rng.shuffle(chosen)
    return chosen


@pytest.fixture
def drill(
    kubectl: Any, namespace: str, operator_factory: Callable[..., Operator], tmp_path: Path
) -> Iterator[Drill]:
    def run(*args: str, user: str | None = None, input: str | None = None) -> str:
        out: str = kubectl(*args, user=user, input=input).stdout
        return out

    template = operator_factory(
        start=False,
        BOSUN_LEADER_ELECTION="true",
        BOSUN_LEADER_ELECTION_NAMESPACE=namespace,
        BOSUN_TOOLS_JENKINS_SECRET=f"{namespace}/jenkins",
        **TEST_TIMINGS,
    )
    with FakeJenkins() as jenkins:
        prepared = Drill(run, namespace, template.env, tmp_path, jenkins)
        try:
            prepared.prepare()
            yield prepared
        finally:
            prepared.stop()


def test_the_standby_takes_over_and_no_call_runs_twice(drill: Drill) -> None:
    drill.start_replica()
    drill.start_replica()
    rng = random.Random()
    seed = rng.randrange(2**32)
    rng.seed(seed)
    outcomes = [drill.round(i, moment) for i, moment in enumerate(moments(3, rng))]
    print(f"seed {seed}: " + "; ".join(f"{o.moment} -> {o.phase} ({o.reason})" for o in outcomes))
    judge(outcomes)
    lease = json.loads(drill.run("-n", drill.namespace, "get", "lease", "bosun-operator", "-o", "json"))
    assert lease["spec"]["leaseTransitions"] >= 3, "every kill handed the Lease over"


# ----- the elector against the API server -------------------------------------------------------------


@pytest.fixture
async def kube(cluster: Any) -> Any:
    client = KubeClient.from_kubeconfig(cluster.kubeconfig)
    yield client
    await client.aclose()


def elector(kube: KubeClient, namespace: str, on_lost: Callable[[str], None]) -> LeaderElector:
    settings = LeaderElection(namespace, "elector", lease_duration=4, renew_deadline=3, retry_period=0.5)
    return LeaderElector(kube, settings, on_lost=on_lost)


async def test_release_hands_over_without_waiting_for_expiry(kube: KubeClient, namespace: str) -> None:
    lost: list[str] = []
    first, second = elector(kube, namespace, lost.append), elector(kube, namespace, lost.append)
    await first.acquire()
    keeping = asyncio.create_task(first.keep())
    waiting = asyncio.create_task(second.acquire())

    async def standing_by() -> bool:
        return second.holder == first.identity

    await eventually_async("the second to see the first lead", standing_by)
    assert not waiting.done()
    keeping.cancel()
    released = time.monotonic()
    await first.release()
    await asyncio.wait_for(waiting, timeout=10)
    assert time.monotonic() - released < second.settings.lease_duration, "took over before any expiry"
    assert second.is_leader
    assert not first.is_leader
    assert lost == []


async def test_a_leader_whose_lease_was_taken_stops(kube: KubeClient, namespace: str, kubectl: Any) -> None:
    lost: list[str] = []
    leader = elector(kube, namespace, lost.append)
    await leader.acquire()
    keeping = asyncio.create_task(leader.keep())
    patch = {"spec": {"holderIdentity": "someone-else", "renewTime": "2030-01-01T00:00:00.000000Z"}}
    kubectl("-n", namespace, "patch", "lease", "elector", "--type=merge", "-p", json.dumps(patch))

    async def noticed() -> bool:
        return bool(lost)

    await eventually_async("the leader to notice", noticed)
    await asyncio.wait_for(keeping, timeout=10)
    assert lost == [f"lease {namespace}/elector is held by someone-else now"]
    assert not leader.is_leader


async def test_a_blocked_event_loop_cannot_keep_acting(kube: KubeClient, namespace: str) -> None:
    """The watchdog thread calls ``on_lost`` at the renew deadline even while the loop cannot run (in the
    operator, ``on_lost`` ends the process)."""
    noticed = threading.Event()
    lost: list[str] = []

    def on_lost(reason: str) -> None:
        lost.append(reason)
        noticed.set()

    leader = elector(kube, namespace, on_lost)
    await leader.acquire()
    keeping = asyncio.create_task(leader.keep())

    async def watching() -> bool:
        return leader._watchdog is not None and leader._watchdog.is_alive()

    await eventually_async("keep() to start its watchdog", watching)
    blocked = time.monotonic()
    assert noticed.wait(timeout=30), "the watchdog never fired"  # blocks the event loop, on purpose
    assert time.monotonic() - blocked <= leader.settings.renew_deadline + 1
    assert "the event loop did not get to renew it" in lost[0]
    await asyncio.wait_for(keeping, timeout=10)
    assert len(lost) == 1, "on_lost is called once"
