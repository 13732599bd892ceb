"""kopf handlers never raise: during an API outage a reconcile is logged and left to the sweep.

The outage is real: the operator's own client talks to 127.0.0.1 on a port where nothing listens, so
every request fails the way it does when the API server is down."""

from __future__ import annotations

import inspect
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from bosun import handlers
from bosun.api.models import TERMINAL_PHASES, AgentTaskSpec, AgentTaskStatus, PendingEvent
from bosun.config import OperatorConfig
from bosun.handlers import (
    NoDiffBase,
    _run,
    _sweep_namespace,
    index_grant_names,
    index_namespace_annotations,
    index_task_phases,
    on_grant_event,
    on_task_event,
    wants_reconcile,
)
from bosun.ports.store import Store
from bosun.steps.task import Deps, Task
from bosun_tools.client.kube import KubeClient, KubeError


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_reconcile_during_an_api_outage_raises_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "down", "cluster": {"server": f"http://127.0.0.1:{_closed_port()}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "down", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    kube = KubeClient.from_kubeconfig(kubeconfig)
    deps = Deps(
        store=Store(kube),
        gateway=None,  # type: ignore[arg-type]  # the reconcile never gets as far as the tools
        config=OperatorConfig.from_env({}),
        operator_identity=None,
        identity_trusted=True,
    )
    try:
        await _run(deps, "shop", "scale-web", "0b7c6a0e-1111-4222-8333-444455556666")
    finally:
        await kube.aclose()
    assert "reconcile of agenttask shop/scale-web failed; the sweep retries" in caplog.text


async def test_a_task_lock_lives_only_while_a_reconcile_holds_or_awaits_it() -> None:
    """Finished and deleted tasks leave no lock behind in a long-running operator."""
    deps = Deps(
        store=None,  # type: ignore[arg-type]  # locking needs no API server
        gateway=None,  # type: ignore[arg-type]
        config=OperatorConfig.from_env({}),
        operator_identity=None,
        identity_trusted=True,
    )
    async with deps.locked("uid-1") as got:
        assert got
        async with deps.locked("uid-1", wait=False) as second:
            assert not second, "the sweep skips a task another reconcile is working on"
        assert list(deps.locks) == ["uid-1"]
    assert list(deps.locks) == []


def test_every_watch_handler_runs_in_the_event_loop_and_kopf_keeps_no_diff_base() -> None:
    """kopf runs a plain function in a worker thread, a coroutine in the event loop: the handlers called on
    every watch event are coroutines. Bosun has no change handlers, so kopf's essence of an object (a deep
    copy per event) is never built."""
    per_event = (
        index_namespace_annotations,
        index_task_phases,
        index_grant_names,
        on_task_event,
        on_grant_event,
    )
    assert all(inspect.iscoroutinefunction(fn) for fn in per_event)
    body = kopf.Body({"metadata": {"name": "t", "annotations": {"a": "b"}}, "spec": {"request": "r"}})
    storage = NoDiffBase()
    assert (storage.build(body=body), storage.fetch(body=body)) == ({}, None)


class PostingStore:
    """Records each Event post; the Events whose reason is in ``failing`` cannot be posted."""

    def __init__(self, failing: set[str]) -> None:
        self.posted: list[str] = []
        self.failing = failing

    async def post_event(self, obj: dict[str, Any], type_: str, reason: str, message: str, **_: Any) -> bool:
        self.posted.append(reason)
        return reason not in self.failing


async def test_a_pending_event_this_process_posted_is_not_posted_again_until_the_next_write() -> None:
    """A task awaiting approval keeps its last write's pending Events in status, and the sweep reconciles it
    again and again: each post of the same entry would be answered 409. What could not be posted is tried
    again; another process (a restart) posts what the status records, which creates nothing twice."""
    store = PostingStore(failing={"Refused"})

    def process() -> Deps:
        return Deps(
            store=store,  # type: ignore[arg-type]  # posting Events is all this needs
            gateway=None,  # type: ignore[arg-type]
            config=OperatorConfig.from_env({}),
            operator_identity=None,
            identity_trusted=True,
        )

    deps = process()
    at = datetime(2026, 12, 1, tzinfo=UTC)
    pending = [
        PendingEvent(id=f"{n:016x}", type="Normal", reason=reason, message="m", at=at)
        for n, reason in enumerate(("ApprovalRequired", "Refused"))
    ]
    body = {"metadata": {"name": "t", "namespace": "shop", "uid": "u-1"}}

    def looked_at(deps: Deps) -> Task:
        status = AgentTaskStatus(phase="AwaitingApproval", pending_events=pending)
        return Task(body, AgentTaskSpec(request="r"), status, deps)

    for _ in range(3):  # the event that woke it, then two sweeps
        task = looked_at(deps)
        await task.post_pending()
        assert task.status.pending_events == []
    assert store.posted == ["ApprovalRequired", "Refused", "Refused", "Refused"]
    store.posted.clear()
    await looked_at(process()).post_pending()  # a new process: nothing remembered
    assert store.posted == ["ApprovalRequired", "Refused"]


PHASES = (None, "Pending", "Planning", "AwaitingApproval", "Executing", "Verifying", *sorted(TERMINAL_PHASES))


def _task(phase: str | None, annotations: dict[str, str], ttl: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"request": "scale web to 3"}
    if ttl is not None:
        spec["ttlSecondsAfterFinished"] = ttl
    return {
        "metadata": {"name": "t", "namespace": "shop", "uid": "u", "annotations": annotations},
        "spec": spec,
        "status": {"phase": phase} if phase else {},
    }


@pytest.mark.parametrize("phase", PHASES)
def test_what_the_operator_writes_itself_wakes_no_reconcile(phase: str | None) -> None:
    """A status write of its own (any phase after the first) is a MODIFIED event that needs nothing done:
    waking on it would read and judge every task once more per write."""
    wakes = wants_reconcile("MODIFIED", _task(phase, {"bosun.dev/requester": "bob"}))
    assert wakes == (phase in (None, "Pending")), "only a task not started yet is worked on"


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize("event_type", [None, "ADDED"])
def test_a_task_seen_for_the_first_time_is_reconciled_unless_it_has_nothing_left(
    phase: str | None, event_type: str | None
) -> None:
    """Creation, operator start and re-listing: every unfinished task is picked up at once (resume), and a
    finished one only when it still waits for its TTL."""
    finished = phase in TERMINAL_PHASES
    assert wants_reconcile(event_type, _task(phase, {})) == (not finished)
    assert wants_reconcile(event_type, _task(phase, {}, ttl=60))


@pytest.mark.parametrize("phase", PHASES)
def test_an_approve_annotation_always_wakes_the_task_and_a_cancel_one_while_it_is_unfinished(
    phase: str | None,
) -> None:
    assert wants_reconcile("MODIFIED", _task(phase, {"approve": "true"}))
    assert wants_reconcile("MODIFIED", _task(phase, {"approve": "false"})), "a denial is a decision too"
    assert wants_reconcile("MODIFIED", _task(phase, {"cancel": "yes"})) == (phase not in TERMINAL_PHASES)
    assert wants_reconcile("MODIFIED", _task(phase, {"cancel": "false"})) == (phase in (None, "Pending"))


@pytest.mark.parametrize("phase", PHASES)
def test_a_deleted_task_wakes_nothing(phase: str | None) -> None:
    assert not wants_reconcile("DELETED", _task(phase, {"approve": "true", "cancel": "true"}))


class PagedStore:
    """Lists ``tasks`` a page at a time as the API server does, the continue token being the index of the
    page's first task; the token ``expiring`` names is answered 410 once, as after etcd compacted the
    listing's revision."""

    def __init__(self, tasks: list[dict[str, Any]], expiring: str | None = None) -> None:
        self.tasks = tasks
        self.expiring = expiring
        self.asked: list[str | None] = []

    async def task_page(
        self, namespace: str | None, size: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        self.asked.append(after)
        if after is not None and after == self.expiring:
            self.expiring = None
            raise KubeError(410, "Expired", "The provided continue parameter is too old")
        start = int(after or 0)
        end = start + size
        return self.tasks[start:end], str(end) if end < len(self.tasks) else None


def _listed(name: str, phase: str | None, ttl: int | None = None) -> dict[str, Any]:
    body = _task(phase, {}, ttl)
    body["metadata"] = {**body["metadata"], "name": name, "uid": f"uid-{name}"}
    return body


async def _swept(store: PagedStore, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """The reconciles one sweep of namespace ``shop`` starts: (task name, the body it starts from)."""
    started: list[tuple[str, Any]] = []

    async def run(deps: Deps, namespace: str, name: str, uid: str, **kwargs: Any) -> None:
        assert not kwargs["wait"], "the sweep skips a task another reconcile is working on"
        started.append((name, kwargs["seen"]))

    monkeypatch.setattr(handlers, "_run", run)
    monkeypatch.setattr(handlers, "SWEEP_PAGE", 2)
    deps = Deps(
        store=store,  # type: ignore[arg-type]  # listing tasks is all the sweep asks of it
        gateway=None,  # type: ignore[arg-type]
        config=OperatorConfig.from_env({}),
        operator_identity=None,
        identity_trusted=True,
    )
    await _sweep_namespace(deps, "shop")
    return started


TASKS = [
    _listed("new", None),
    _listed("done", "Succeeded"),
    _listed("waiting", "AwaitingApproval"),
    _listed("expiring", "Succeeded", ttl=60),
    _listed("planning", "Planning"),
]


async def test_the_sweep_reconciles_every_due_task_from_its_page(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listing comes a page at a time (the sweep never holds every task at once); each due task is
    reconciled from the body its page gave, and a finished one without a TTL is left alone."""
    store = PagedStore(TASKS)
    started = await _swept(store, monkeypatch)
    assert [name for name, _ in started] == ["new", "waiting", "expiring", "planning"]
    assert all(seen is body for (_, seen), body in zip(started, [TASKS[0], *TASKS[2:]], strict=True))
    assert store.asked == [None, "2", "4"]


async def test_a_listing_that_expires_during_a_sweep_starts_again_and_reconciles_no_task_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pass that takes longer than the continue token lives (a few slow reconciles) lists again from the
    start: the tasks of the later pages are still looked at in this pass, the earlier ones not again."""
    store = PagedStore(TASKS, expiring="4")
    started = await _swept(store, monkeypatch)
    assert [name for name, _ in started] == ["new", "waiting", "expiring", "planning"]
    assert store.asked == [None, "2", "4", None, "2", "4"]


@pytest.mark.parametrize(
    "failure", [KubeError(410, "Expired", "too old"), KubeError(503, "ServiceUnavailable", "down"), OSError()]
)
async def test_a_sweep_that_cannot_list_reconciles_nothing_and_says_so(
    failure: Exception, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The first page failing (even with 410: there was no token to expire) leaves the namespace to the
    next pass."""

    class Failing(PagedStore):
        async def task_page(
            self, namespace: str | None, size: int, after: str | None
        ) -> tuple[list[dict[str, Any]], str | None]:
            self.asked.append(after)
            raise failure

    store = Failing(TASKS)
    assert await _swept(store, monkeypatch) == []
    assert store.asked == [None]
    assert "sweep could not list agenttasks" in caplog.text
