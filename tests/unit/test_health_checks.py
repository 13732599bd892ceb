"""kstatus (the real library, tests/kstatus) and the chart's Argo CD health script on task and grant
objects recorded from the API server during real runs (tests/e2e/test_health.py records them), so the
table of docs/observability.md is checked without a cluster; the documented argocd-cm snippet is the
chart's file."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from bosun.api.models import AgentTaskStatus
from bosun.core.phases import transition

from tests.health import (
    ARGOCD_HEALTH,
    ARGOCD_HEALTH_LUA,
    GRANT_KSTATUS,
    ROOT,
    TASK_KSTATUS,
    argocd_health,
    expected_kstatus,
    kstatus,
    recorded,
    state_of,
)

TASKS = recorded()["agenttasks"]
GRANTS = recorded()["approvalgrants"]


def planning(task: dict[str, Any]) -> dict[str, Any]:
    """A Planning task: the offline planner writes Planning together with its outcome, so no run records
    one; its status is made by the operator's own ``transition`` on the recorded task that never started."""
    status = transition(
        AgentTaskStatus(),
        "Planning",
        reason="Planning",
        message="planning the request of bob",
        generation=task["metadata"]["generation"],
        now=datetime(2026, 12, 1, tzinfo=UTC),
    )
    return {**task, "status": status.wire()}


ALL_TASKS = {**TASKS, "Planning": planning(TASKS["Pending"])}


def test_every_phase_and_grant_state_is_recorded() -> None:
    assert set(TASKS) == set(TASK_KSTATUS) - {"Planning"}
    assert {state_of(g) for g in GRANTS.values()} == set(GRANT_KSTATUS)
    assert {"Accepted/Denied", "Superseded/ProposalClosed", "Superseded/TaskFinished"} <= set(GRANTS)


def test_kstatus_reads_each_phase_as_documented() -> None:
    objects = [*ALL_TASKS.values(), *GRANTS.values()]
    labels = [*ALL_TASKS, *GRANTS]
    computed = kstatus(objects)
    for label, obj, (status, reason, message) in zip(labels, objects, computed, strict=True):
        assert (status, reason) == expected_kstatus(obj), f"{label}: {message}"
    by_phase = dict(zip(ALL_TASKS, computed[: len(ALL_TASKS)], strict=True))
    assert {phase: result[0] for phase, result in by_phase.items()} == TASK_KSTATUS
    assert by_phase["AwaitingApproval"][1] == "ApprovalRequired"
    assert "awaits approval" in by_phase["AwaitingApproval"][2]


@pytest.mark.parametrize("phase", sorted(ARGOCD_HEALTH))
def test_the_argocd_health_script_maps_each_phase(phase: str) -> None:
    task = ALL_TASKS[phase]
    status, message = argocd_health(task)
    assert status == ARGOCD_HEALTH[phase]
    if phase == "Pending":
        assert message == "waiting for the Bosun operator to start the task"
    else:
        assert message == f"{phase}: {task['status']['message']}"


def test_the_argocd_health_script_waits_for_a_newer_generation() -> None:
    done = TASKS["Succeeded"]
    newer = {**done, "metadata": {**done["metadata"], "generation": done["metadata"]["generation"] + 1}}
    assert argocd_health(newer)[0] == "Progressing"


def test_the_documented_argocd_snippet_is_the_charts_file() -> None:
    doc = (ROOT / "docs" / "observability.md").read_text()
    block = re.search(r"resource\.customizations\.health\.bosun\.dev_AgentTask: \|\n((?:    .*\n)+)", doc)
    assert block is not None, "docs/observability.md lost its argocd-cm snippet"
    documented = "".join(line[4:] + "\n" for line in block.group(1).splitlines())
    assert documented == ARGOCD_HEALTH_LUA.read_text()
