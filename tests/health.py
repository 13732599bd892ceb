"""What tools that know nothing about Bosun read from its objects: kstatus (Flux, kpt, cli-utils) and the
Argo CD health script of the chart, with the table of what each must say per task phase and grant state.

``kstatus`` runs the real library (``tests/kstatus``, sigs.k8s.io/cli-utils pinned in its go.mod), built
once into the cache by ``tests/kstatus/build.sh``. ``argocd_health`` runs the chart's Lua file with lupa,
in a table named ``obj`` as Argo CD does. ``RECORDED`` holds objects taken from the API server during real
tasks (tests/e2e/test_health.py writes it with ``BOSUN_UPDATE_GOLDEN=1``), so both can be checked without a
cluster.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "golden" / "health_objects.json"
ARGOCD_HEALTH_LUA = ROOT / "charts" / "bosun" / "files" / "argocd-health.lua"

TASK_KSTATUS = {
    "Pending": "InProgress",
    "Planning": "InProgress",
    "AwaitingApproval": "InProgress",
    "Executing": "InProgress",
    "Verifying": "InProgress",
    "Succeeded": "Current",
    "Failed": "Failed",
    "Denied": "Failed",
    "Expired": "Failed",
    "Cancelled": "Failed",
}
"""kstatus per phase ("Pending" also stands for a task the operator has not written yet). AwaitingApproval is
InProgress like the working phases; its reason, ApprovalRequired, is what tells "needs a person" apart."""

ARGOCD_HEALTH = {
    "Pending": "Progressing",
    "Planning": "Progressing",
    "AwaitingApproval": "Suspended",
    "Executing": "Progressing",
    "Verifying": "Progressing",
    "Succeeded": "Healthy",
    "Failed": "Degraded",
    "Denied": "Degraded",
    "Expired": "Degraded",
    "Cancelled": "Degraded",
}

GRANT_KSTATUS = {"": "InProgress", "Accepted": "Current", "Superseded": "Current", "Rejected": "Failed"}
"""kstatus per grant state ("" for a grant not judged yet): only a rejection asks its author to act."""


def phase_of(task: dict[str, Any]) -> str:
    return str((task.get("status") or {}).get("phase") or "Pending")


def state_of(grant: dict[str, Any]) -> str:
    return str((grant.get("status") or {}).get("state") or "")


def expected_kstatus(obj: dict[str, Any]) -> tuple[str, str]:
    """What kstatus must compute for a recorded task or grant: the status of the tables above, and the
    reason it reports: LatestGenerationNotObserved before the operator wrote anything, then the reason of
    Ready (tasks in progress) or of Stalled (whatever ended badly), none once current."""
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) != obj["metadata"]["generation"]:
        return "InProgress", "LatestGenerationNotObserved"
    expected = TASK_KSTATUS[phase_of(obj)] if obj["kind"] == "AgentTask" else GRANT_KSTATUS[state_of(obj)]
    source = {"InProgress": "Ready", "Failed": "Stalled"}.get(expected)
    reason = next((c["reason"] for c in status.get("conditions", []) if c["type"] == source), "")
    return expected, reason


@functools.cache
def kstatus_binary() -> Path:
    built = subprocess.run(
        ["bash", str(ROOT / "tests" / "kstatus" / "build.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    return Path(built.stdout.strip().splitlines()[-1])


def kstatus(objects: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(status, reason, message) as sigs.k8s.io/cli-utils' kstatus computes them, per object."""
    ran = subprocess.run(
        [str(kstatus_binary())],
        input=json.dumps(objects),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if ran.returncode != 0:
        raise AssertionError(f"tests/kstatus exited {ran.returncode}: {ran.stderr}")
    return [(r["status"], r["reason"], r["message"]) for r in json.loads(ran.stdout)]


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) of the chart's Argo CD health script for ``obj``, run as Argo CD runs it: the
    object as a Lua table named ``obj``, the script's body as a function returning ``{status, message}``."""
    import lupa

    lua = lupa.LuaRuntime(unpack_returned_tuples=True)

    def table(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: table(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([table(v) for v in value])
        return value

    script = lua.eval(f"function(obj)\n{ARGOCD_HEALTH_LUA.read_text()}\nend")
    result = script(table(obj))
    return str(result["status"]), str(result["message"])


def recorded() -> dict[str, dict[str, dict[str, Any]]]:
    """The recorded objects: ``{"agenttasks": {phase: task}, "approvalgrants": {state/reason: grant}}``."""
    data: dict[str, dict[str, dict[str, Any]]] = json.loads(RECORDED.read_text())
    return data
