"""``cluster-up`` / ``cluster-down`` as a developer uses them: idempotent up, and a down that stops
exactly the recorded processes and leaves nothing running or stored behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

SCRIPT = Path(__file__).resolve().parents[1] / "cluster" / "localcluster.py"


def run(state_dir: Path, command: str) -> str:
    env = {**os.environ, "BOSUN_CLUSTER_DIR": str(state_dir)}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), command],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"localcluster {command} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a parent that is gone to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    first = run(state, "up")
    assert "cluster up at https://127.0.0.1:" in first
    recorded = json.loads((state / "state.json").read_text())
    pids = recorded["pids"]
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert all(alive(pid) for pid in pids.values())

    second = run(state, "up")
    assert "already up" in second
    assert json.loads((state / "state.json").read_text())["pids"] == pids

    status = run(state, "status")
    assert "kube-apiserver" in status
    assert "MiB" in status

    run(state, "down")
    assert not any(alive(pid) for pid in pids.values())
    assert not Path(recorded["etcd_data"]).exists()
    assert sorted(p.name for p in state.iterdir()) == ["logs"]
