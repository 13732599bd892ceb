"""Sharding by namespace (docs/scaling.md): two operator processes on one cluster, each with its own
``BOSUN_NAMESPACES`` and its own Lease, as two shard Deployments of the chart run them.

Each shard sets ``HOSTNAME`` (a pod's name in a cluster), which Bosun writes as ``reportingInstance`` of
its Events, and logs JSON, whose lines name the object they are about. Who handled a task is read from both
(``tests.bench.shards``): the Events say which process moved it and how often it was planned; the logs
would also show a process that received or reconciled the task without getting to write anything.
``make bench`` measures the same setup under load.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.bench.shards import logged_uids, repeated, reporters
from tests.e2e.conftest import (
    USER_ROLE,
    Operator,
    apply,
    deployment,
    get,
    grant_doc,
    task_doc,
    wait_phase,
)
from tests.waiting import eventually

pytestmark = pytest.mark.cluster


@dataclass(frozen=True)
class Namespaces:
    """Where the tasks go: shard a's, shard b's, and one that no shard watches."""

    a: str
    b: str
    unwatched: str


@pytest.fixture
def namespaces(namespace: str, kubectl: Any, bind_role: Any) -> Iterator[Namespaces]:
    """The test's namespace and two more; in each, bob may ask and change workloads, alice may approve."""
    made = Namespaces(namespace, f"{namespace[:50]}-b", f"{namespace[:50]}-none")
    try:
        for name in (made.b, made.unwatched):
            kubectl("create", "namespace", name)
        for name in (made.a, made.b, made.unwatched):
            bind_role(name, "bob", USER_ROLE)
            bind_role(name, "bob", "edit")
            bind_role(name, "alice", USER_ROLE)
        yield made
    finally:
        for name in (made.b, made.unwatched):
            kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False)


def shard(
    factory: Callable[..., Operator],
    name: str,
    watched: str,
    lease_namespace: str,
    start: bool = True,
    **env: str,
) -> Operator:
    """One shard: watches ``watched``, reports its Events as ``name``, elects a leader among its own
    replicas with the Lease ``bosun-<name>`` (unless ``env`` says otherwise); started and watching
    unless ``start`` is False."""
    settings = {
        "BOSUN_NAMESPACES": watched,
        "HOSTNAME": name,
        "BOSUN_LOG_FORMAT": "json",
        "BOSUN_LEADER_ELECTION": "true",
        "BOSUN_LEADER_ELECTION_NAMESPACE": lease_namespace,
        "BOSUN_LEADER_ELECTION_NAME": f"bosun-{name}",
        **env,
    }
    return factory(start=start, **settings)


def namespace_events(kubectl: Any, namespace: str) -> list[dict[str, Any]]:
    listing = json.loads(kubectl("-n", namespace, "get", "events", "-o", "json").stdout)
    items: list[dict[str, Any]] = listing["items"]
    return items


def uid(kubectl: Any, namespace: str, kind: str, name: str) -> str:
    return str(get(kubectl, namespace, kind, name)["metadata"]["uid"])


def ask_and_approve(kubectl: Any, namespace: str) -> None:
    """A question and a proposal from bob; the proposal approved by alice with an ApprovalGrant."""
    apply(kubectl, namespace, task_doc("question", f"list pods in {namespace}"), user="bob")
    apply(kubectl, namespace, task_doc("scale", f"scale deployment web in {namespace} to 4"), user="bob")
    proposal = wait_phase(kubectl, namespace, "scale", "AwaitingApproval")["proposal"]
    apply(kubectl, namespace, grant_doc("ok", "scale", proposal["hash"]), user="alice")


def test_each_shard_handles_its_own_namespaces_and_each_task_once(
    kubectl: Any, namespaces: Namespaces, operator_factory: Callable[..., Operator]
) -> None:
    """Both shards lead at once (a Lease each); a question and an approved proposal in each namespace end
    Succeeded; every Event about each task and grant comes from the shard of its namespace, none is posted
    twice, and the other shard's log never names them."""
    deployment(kubectl, namespaces.a)
    deployment(kubectl, namespaces.b)
    shards = {
        namespaces.a: shard(operator_factory, "shard-a", namespaces.a, namespaces.a),
        namespaces.b: shard(operator_factory, "shard-b", namespaces.b, namespaces.a),
    }
    for namespace in shards:
        ask_and_approve(kubectl, namespace)
    for namespace in shards:
        wait_phase(kubectl, namespace, "question", "Succeeded")
        wait_phase(kubectl, namespace, "scale", "Succeeded", timeout=120)
        assert get(kubectl, namespace, "deployment", "web")["spec"]["replicas"] == 4

    leases = {
        name: get(kubectl, namespaces.a, "lease", f"bosun-{name}")["spec"]["holderIdentity"]
        for name in ("shard-a", "shard-b")
    }
    assert all(leases.values()), f"each shard leads its own Lease: {leases}"
    logged = {namespace: logged_uids(op.log) for namespace, op in shards.items()}
    for namespace, op in shards.items():
        name = op.env["HOSTNAME"]
        [other] = [ns for ns in shards if ns != namespace]
        events = namespace_events(kubectl, namespace)
        by = reporters(events)
        twice = repeated(events)
        for kind, obj in (("agenttask", "question"), ("agenttask", "scale"), ("approvalgrant", "ok")):
            handled = uid(kubectl, namespace, kind, obj)
            assert by.get(handled) == {name}, f"{kind} {namespace}/{obj}: Events from {by.get(handled)}"
            assert handled not in twice, f"{kind} {namespace}/{obj}: {twice.get(handled)} posted twice"
            assert handled in logged[namespace], f"{kind} {namespace}/{obj} is not in {name}'s log"
            assert handled not in logged[other], f"{kind} {namespace}/{obj} was handled by the other shard"


def test_a_task_in_a_namespace_no_shard_watches_stays_untouched(
    kubectl: Any, namespaces: Namespaces, operator_factory: Callable[..., Operator]
) -> None:
    """The failure mode of namespace sharding: a namespace left out of every shard's BOSUN_NAMESPACES is
    served by nobody. Its task is created after both shards run and before tasks they do handle, so any
    process watching it would have handled it by then; it keeps the resourceVersion it was created with
    (nothing wrote to it: no phase, no stamp by the operator), no Event is about it and no log names it."""
    shards = [
        shard(operator_factory, "shard-a", namespaces.a, namespaces.a),
        shard(operator_factory, "shard-b", namespaces.b, namespaces.a),
    ]
    created = json.loads(
        kubectl(
            "-n",
            namespaces.unwatched,
            "create",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps(task_doc("orphan", f"list pods in {namespaces.unwatched}")),
            user="bob",
        ).stdout
    )
    for namespace in (namespaces.a, namespaces.b):
        apply(kubectl, namespace, task_doc("question", f"list pods in {namespace}"), user="bob")
    for namespace in (namespaces.a, namespaces.b):
        wait_phase(kubectl, namespace, "question", "Succeeded")

    orphan = get(kubectl, namespaces.unwatched, "agenttask", "orphan")
    assert "phase" not in (orphan.get("status") or {})
    assert orphan["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert namespace_events(kubectl, namespaces.unwatched) == []
    for op in shards:
        assert orphan["metadata"]["uid"] not in logged_uids(op.log)


def test_two_shards_sharing_one_lease_serve_only_one_of_them(
    kubectl: Any, namespaces: Namespaces, operator_factory: Callable[..., Operator]
) -> None:
    """Why every shard needs its own Lease name: with the same one (here the default, ``bosun-operator``)
    the second shard is a standby of the first, and its namespaces wait until the first one stops."""
    default_lease = ""  # BOSUN_LEADER_ELECTION_NAME empty: the default name
    leader = shard(
        operator_factory, "shard-a", namespaces.a, namespaces.a, BOSUN_LEADER_ELECTION_NAME=default_lease
    )
    standby = shard(
        operator_factory,
        "shard-b",
        namespaces.b,
        namespaces.a,
        start=False,
        BOSUN_LEADER_ELECTION_NAME=default_lease,
    )
    standby.spawn()
    eventually(
        "shard-b to stand by on shard-a's Lease",
        lambda: "stands by" in standby.log.read_text() or standby.proc.poll() is not None,
    )
    assert standby.proc.poll() is None, standby.log.read_text()[-3000:]
    apply(kubectl, namespaces.b, task_doc("waiting", f"list pods in {namespaces.b}"), user="bob")
    apply(kubectl, namespaces.a, task_doc("question", f"list pods in {namespaces.a}"), user="bob")
    wait_phase(kubectl, namespaces.a, "question", "Succeeded")
    assert "phase" not in (get(kubectl, namespaces.b, "agenttask", "waiting").get("status") or {})
    holder = get(kubectl, namespaces.a, "lease", "bosun-operator")["spec"]["holderIdentity"]
    assert holder in leader.log.read_text()

    leader.stop()  # the first shard hands the Lease over; the second takes it and serves its namespace
    wait_phase(kubectl, namespaces.b, "waiting", "Succeeded")
