"""Turning planned calls into a bounded, hashed proposal, and replaying what another task ran."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bosun.api.models import MAX_PROPOSAL_STEPS, PROPOSAL_ARGS_CAP, STEP_ARGS_CAP, AgentTaskStatus, StepRecord
from bosun.core.approval import plan_hash
from bosun.core.proposals import add_usage, history_lines, proposal_records
from bosun.planner import PlannedCall, Usage
from bosun.steps.plan import build_proposal, replay_calls

T0 = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
UID = "0b7c6a0e-1111-4222-8333-444455556666"


def scale(replicas: int, **extra: Any) -> PlannedCall:
    args = {"kind": "deployment", "name": "web", "namespace": "shop", "replicas": replicas, **extra}
    return PlannedCall("", "k8s_scale", args, "because", "Would scale", "-  replicas: 3\n+  replicas: 5")


def test_proposal_numbers_steps_records_safety_and_hashes_them() -> None:
    proposal, problem = build_proposal(
        [scale(5), PlannedCall("x", "k8s_delete", {"kind": "pod", "name": "p", "namespace": "shop"}, "")],
        task_uid=UID,
        revision=2,
        summary="two",
        now=T0,
    )
    assert problem is None
    assert proposal is not None
    assert [s.id for s in proposal.steps] == ["s1", "s2"]
    assert proposal.steps[0].idempotent
    assert not proposal.steps[0].destructive
    assert proposal.steps[1].destructive
    assert proposal.hash == plan_hash(UID, 2, proposal.steps)
    records = proposal_records(proposal)
    assert [(r.id, r.state) for r in records] == [
        ("r2-s1", "AwaitingApproval"),
        ("r2-s2", "AwaitingApproval"),
    ]


def test_unknown_tools_count_as_mutating_destructive_and_not_idempotent() -> None:
    proposal, _ = build_proposal(
        [PlannedCall("", "nuke_cluster", {}, "")], task_uid=UID, revision=1, summary="", now=T0
    )
    assert proposal is not None
    step = proposal.steps[0]
    assert (step.mutating, step.destructive, step.idempotent) == (True, True, False)


def test_oversized_plans_are_refused_not_truncated() -> None:
    too_many = [scale(i) for i in range(MAX_PROPOSAL_STEPS + 1)]
    assert build_proposal(too_many, task_uid=UID, revision=1, summary="", now=T0)[0] is None
    huge = [scale(5, note="x" * STEP_ARGS_CAP)]
    proposal, problem = build_proposal(huge, task_uid=UID, revision=1, summary="", now=T0)
    assert proposal is None
    assert problem is not None
    assert "bytes of arguments" in problem
    many = [scale(i, note="x" * (STEP_ARGS_CAP - 200)) for i in range(PROPOSAL_ARGS_CAP // STEP_ARGS_CAP + 2)]
    assert build_proposal(many, task_uid=UID, revision=1, summary="", now=T0)[0] is None


def test_replay_takes_only_executed_mutations_in_order() -> None:
    def record(n: int, state: str, mutating: bool = True, **args: Any) -> StepRecord:
        return StepRecord(
            id=f"r1-s{n}", revision=1, tool="k8s_scale", args=args, mutating=mutating, state=state
        )

    status = AgentTaskStatus(
        steps=[
            record(1, "Succeeded", mutating=False, name="read"),
            record(2, "Succeeded", name="a"),
            record(3, "Denied", name="b"),
            record(4, "Failed", name="c"),
            record(5, "Succeeded", name="d"),
            record(6, "Succeeded", compacted="9000 bytes"),
        ]
    )
    calls = replay_calls({"metadata": {"name": "old"}, "status": status.wire()})
    assert [c.args["name"] for c in calls] == ["a", "d"]
    assert "Replay of step r1-s2 of task old" in calls[0].rationale


def test_model_context_is_rebuilt_from_status_and_usage_adds_up() -> None:
    status = AgentTaskStatus(
        steps=[
            StepRecord(
                id="p1-i1",
                revision=1,
                tool="k8s_get",
                args={"name": "web"},
                mutating=False,
                state="Succeeded",
                output="3/3 ready",
            ),
        ]
    )
    assert history_lines(status) == ['[p1-i1] k8s_get {"name":"web"} -> Succeeded: 3/3 ready']
    total = add_usage(add_usage(status, Usage(1, 100, 20, 0.001)), Usage(2, 50, 5, 0.0005))
    assert (total.usage.calls, total.usage.prompt_tokens, total.usage.completion_tokens) == (3, 150, 25)
    assert total.usage.cost_usd == 0.0015
    assert total.usage.wire()["costUSD"] == 0.0015


def test_usage_names_the_model_its_calls_were_made_with() -> None:
    """``status.usage.model``: written with the usage whenever a model is configured, kept when a later
    update has none to name (a replay, the offline planner), the latest when it changed."""
    status = AgentTaskStatus()
    assert "model" not in status.usage.wire()
    assert add_usage(status, Usage()).usage.model is None
    first = add_usage(status, Usage(1, 100, 20, 0.001), "openai/gpt-4.1-mini")
    assert first.usage.wire() == {
        "calls": 1,
        "promptTokens": 100,
        "completionTokens": 20,
        "costUSD": 0.001,
        "model": "openai/gpt-4.1-mini",
    }
    assert add_usage(first, Usage()).usage.model == "openai/gpt-4.1-mini"
    assert add_usage(first, Usage(1, 1, 1, 0), "anthropic/claude").usage.model == "anthropic/claude"
