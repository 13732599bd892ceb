"""The resource models: wire format, bounds, and the size guarantee of a task's status."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bosun.api.models import (
    DIFF_CAP,
    MAX_HISTORY,
    MAX_PROPOSAL_STEPS,
    PREVIEW_CAP,
    RATIONALE_CAP,
    STATUS_BUDGET,
    STEP_OUTPUT_CAP,
    SUMMARY_CAP,
    AgentTaskSpec,
    AgentTaskStatus,
    ApprovalGrantSpec,
    Proposal,
    ProposedStep,
    StepRecord,
    cap,
)
from bosun.core.status_bounds import bound_status, status_size
from pydantic import ValidationError

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_spec_wire_format_is_camel_case_with_defaults() -> None:
    spec = AgentTaskSpec.model_validate({"request": "scale web to 5", "targetNamespaces": ["shop"]})
    assert spec.max_iterations == 3
    assert spec.wire() == {
        "request": "scale web to 5",
        "targetNamespaces": ["shop"],
        "maxIterations": 3,
        "clusterScope": False,
    }


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"request": ""}, "request"),
        ({"request": "x" * 9000}, "request"),
        ({"request": "x", "targetNamespaces": ["Not_A_Name"]}, "targetNamespaces"),
        ({"request": "x", "maxIterations": 0}, "maxIterations"),
        ({"request": "x", "replayOf": "bad name"}, "replayOf"),
    ],
)
def test_spec_bounds(spec: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        AgentTaskSpec.model_validate(spec)
    assert field in str(err.value)


def test_grant_needs_a_well_formed_hash_and_decision() -> None:
    with pytest.raises(ValidationError):
        ApprovalGrantSpec.model_validate({"taskRef": {"name": "t"}, "planHash": "abc", "decision": "Approve"})
    with pytest.raises(ValidationError):
        ApprovalGrantSpec.model_validate(
            {"taskRef": {"name": "t"}, "planHash": "sha256:" + "a" * 64, "decision": "Maybe"}
        )


def test_cap_leaves_a_visible_marker() -> None:
    text = cap("x" * (STEP_OUTPUT_CAP + 500), STEP_OUTPUT_CAP)
    assert text is not None
    assert text.endswith("…[truncated 500 bytes]")
    assert cap("short", STEP_OUTPUT_CAP) == "short"


def _worst_record(n: int, revision: int) -> StepRecord:
    return StepRecord(
        id=f"p{revision}-i{n}",
        revision=revision,
        tool="k8s_logs",
        args={"manifest": "y" * 8000},
        mutating=False,
        state="Succeeded",
        output=cap("z" * 100_000, STEP_OUTPUT_CAP),
        error=cap("e" * 10_000, 1024),
    )


def test_status_stays_within_budget_whatever_is_recorded() -> None:
    """Hundreds of huge records (a chatty model over many rounds) still leave a small object."""
    big_steps = [
        ProposedStep(
            id=f"s{i}",
            tool="k8s_apply",
            args={"manifest": "m" * 3000},
            rationale=cap("r" * 5000, RATIONALE_CAP),
            preview=cap("p" * 5000, PREVIEW_CAP),
            diff=cap("d" * 50_000, DIFF_CAP),
        )
        for i in range(1, MAX_PROPOSAL_STEPS + 1)
    ]
    status = AgentTaskStatus().model_copy(
        update=dict(
            proposal=Proposal(
                revision=9, hash="sha256:" + "0" * 64, created_at=T0, summary="s" * 8000, steps=big_steps
            ),
            steps=[_worst_record(n, revision=n % 5) for n in range(300)],
            summary=cap("s" * 50_000, SUMMARY_CAP),
        )
    )
    bounded = bound_status(status)
    assert len(bounded.steps) <= MAX_HISTORY
    assert status_size(bounded) <= STATUS_BUDGET
    assert status_size(bounded) < 1024 * 1024 // 3


def test_bounding_never_drops_steps_of_the_current_proposal() -> None:
    current = [
        StepRecord(
            id=f"r2-s{i}",
            revision=2,
            step_id=f"s{i}",
            tool="k8s_scale",
            args={},
            mutating=True,
            state="Approved",
        )
        for i in range(1, 6)
    ]
    old = [_worst_record(n, revision=1) for n in range(80)]
    status = AgentTaskStatus().model_copy(
        update=dict(
            proposal=Proposal(revision=2, hash="sha256:" + "0" * 64, created_at=T0, summary="", steps=[]),
            steps=[*current[:2], *old, *current[2:]],
        )
    )
    bounded = bound_status(status)
    kept = {r.id for r in bounded.steps}
    assert {r.id for r in current} <= kept
    assert len(bounded.steps) <= MAX_HISTORY
