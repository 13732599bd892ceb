"""kopf handlers never raise: during an API outage a reconcile is logged and left to the sweep.

The outage is real: the operator's own client talks to 127.0.0.1 on a port where nothing listens, so
every request fails the way it does when the API server is down."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from bosun.config import OperatorConfig
from bosun.handlers import _run
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
