"""kopf handlers never raise: during an API outage a reconcile is logged and left to the sweep.

The outage is real: the operator's own client talks to 127.0.0.1 on a port where nothing listens, so
every request fails the way it does when the API server is down."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from bosun.api.models import TERMINAL_PHASES
from bosun.config import OperatorConfig
from bosun.handlers import _run, wants_reconcile
from bosun.ports.store import Store
from bosun.steps.task import Deps
from bosun_tools.client.kube import KubeClient


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
