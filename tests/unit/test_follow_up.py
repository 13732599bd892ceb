"""``spec.followUpOf``: which earlier task may be followed up, the bounded context the model is given of it
and of its chain, and the reading as the requester could read (RBAC asked before every read)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bosun.api import crdgen
from bosun.api.models import (
    FOLLOW_UP_CONTEXT_CAP,
    FOLLOW_UP_EXCLUSIVE,
    MAX_FOLLOW_UP_TURNS,
    AgentTaskSpec,
    AgentTaskStatus,
    Condition,
    StepRecord,
    Verification,
)
from bosun.config import OperatorConfig
from bosun.core import follow_up as rules
from bosun.core.follow_up import FollowUp, Refusal
from bosun.planner import PlanningContext
from bosun.planner.prompts import judge_message, request_message
from bosun.steps.follow_up import model_context, read_follow_up
from bosun.steps.task import Deps, Task
from bosun_tools.identity import Identity
from pydantic import ValidationError

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
BOB = Identity("bob", ("sre",))


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def task(
    name: str,
    request: str,
    *,
    phase: str | None = "Succeeded",
    summary: str | None = None,
    follow_up_of: str | None = None,
    created: datetime = T0,
    steps: list[StepRecord] | None = None,
    verification: Verification | None = None,
    reason: str = "Answered",
    message: str = "answered",
) -> dict[str, Any]:
    status = AgentTaskStatus(
        phase=phase,  # type: ignore[arg-type]
        summary=summary,
        steps=steps or [],
        verification=verification,
        conditions=[
            Condition(
                type="Ready",
                status="True" if phase == "Succeeded" else "False",
                reason=reason,
                message=message,
                last_transition_time=created,
            )
        ],
    )
    spec: dict[str, Any] = {"request": request}
    if follow_up_of:
        spec["followUpOf"] = follow_up_of
    return {
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": f"uid-{name}",
            "creationTimestamp": _stamp(created),
        },
        "spec": spec,
        "status": status.wire(),
    }


def record(tool: str, state: str, *, mutating: bool = True, n: int = 1, **args: Any) -> StepRecord:
    return StepRecord(
        id=f"r1-s{n}" if mutating else f"p1-i{n}",
        revision=1,
        tool=tool,
        args=args,
        mutating=mutating,
        state=state,  # type: ignore[arg-type]
    )


# ----- the spec ----------------------------------------------------------------------------------------


def test_follow_up_of_is_a_name_and_excludes_replay_in_python_and_in_the_crd() -> None:
    assert AgentTaskSpec.model_validate({"request": "and now?", "followUpOf": "scale-web"}).wire() == {
        "request": "and now?",
        "maxIterations": 3,
        "followUpOf": "scale-web",
        "clusterScope": False,
    }
    with pytest.raises(ValidationError, match="followUpOf"):
        AgentTaskSpec.model_validate({"request": "x", "followUpOf": "Not A Name"})
    with pytest.raises(ValidationError) as err:
        AgentTaskSpec.model_validate({"request": "x", "followUpOf": "a", "replayOf": "b"})
    assert "spec.replayOf and spec.followUpOf are mutually exclusive" in str(err.value)
    spec = crdgen.agenttask_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert {"rule": "!has(self.replayOf) || !has(self.followUpOf)", "message": FOLLOW_UP_EXCLUSIVE} in spec[
        "x-kubernetes-validations"
    ]
    assert spec["properties"]["followUpOf"]["pattern"] == spec["properties"]["replayOf"]["pattern"]


# ----- may it be followed up ---------------------------------------------------------------------------


def _refusal(
    previous: dict[str, Any] | None, *, allowed: bool = True, after: timedelta = timedelta(0)
) -> Any:
    return rules.previous_refusal(
        "first", "shop", "carol", allowed=allowed, previous=previous, follower_created=T0 + after
    )


def test_a_task_the_requester_may_not_get_is_refused_without_saying_whether_it_exists() -> None:
    refusal = _refusal(None, allowed=False)
    assert refusal == _refusal(task("first", "secret things"), allowed=False)
    assert refusal.reason == "FollowUpForbidden"
    for words in ("spec.followUpOf", "carol may not get agenttasks.bosun.dev first", "namespace shop"):
        assert words in refusal.message
    assert "secret" not in refusal.message


def test_a_missing_or_later_task_is_not_found_and_an_unfinished_one_is_refused() -> None:
    missing = _refusal(None)
    assert missing.reason == "FollowUpNotFound"
    assert missing.message.startswith("spec.followUpOf: AgentTask first not found in namespace shop;")
    assert "kubectl -n shop get agenttasks" in missing.message
    later = _refusal(task("first", "x", created=T0 + timedelta(seconds=1)))
    assert later.reason == "FollowUpNotFound"
    assert "created after this one" in later.message
    assert _refusal(task("first", "x"), after=timedelta(0)) is None, "same second is not after"
    for phase in ("AwaitingApproval", None):
        unfinished = _refusal(task("first", "x", phase=phase))
        assert unfinished.reason == "FollowUpNotFinished"
        assert (
            f"AgentTask first in namespace shop is {phase or 'Pending'}, not finished" in unfinished.message
        )
        assert "then create the follow-up again" in unfinished.message
    for phase in ("Succeeded", "Failed", "Denied", "Cancelled", "Expired"):
        assert _refusal(task("first", "x", phase=phase)) is None


def test_an_earlier_turn_is_shown_only_when_readable_finished_earlier_and_not_seen() -> None:
    later = task("second", "and then?", created=T0 + timedelta(minutes=5))
    earlier = task("first", "what?")
    assert rules.earlier_turn_usable(earlier, later, set(), allowed=True)
    assert not rules.earlier_turn_usable(earlier, later, set(), allowed=False)
    assert not rules.earlier_turn_usable(None, later, set(), allowed=True)
    assert not rules.earlier_turn_usable(task("first", "x", phase="Planning"), later, set(), allowed=True)
    assert not rules.earlier_turn_usable(earlier, later, {"uid-first"}, allowed=True)
    newer = task("first", "x", created=T0 + timedelta(minutes=6))
    assert not rules.earlier_turn_usable(newer, later, set(), allowed=True)


# ----- what the model is told --------------------------------------------------------------------------


def test_a_turn_carries_request_outcome_answer_changes_and_verdict() -> None:
    body = task(
        "scale-web",
        "scale web in shop to 5",
        summary="Scaled web to 5; 5/5 available.",
        reason="Verified",
        message="objective checks passed",
        steps=[
            record("k8s_get", "Succeeded", mutating=False, kind="deployment", name="web"),
            record("k8s_scale", "Succeeded", kind="deployment", name="web", replicas=5),
            record("k8s_delete", "Denied", n=2, kind="pod", name="web-1"),
        ],
        verification=Verification(revision=1, passed=True, judgement="web runs 5 replicas", checked_at=T0),
    )
    text = rules.context([rules.turn_of(body)])
    assert text == "\n".join(
        [
            rules.HEADER,
            "--- AgentTask scale-web",
            "Request: scale web in shop to 5",
            "Ended: Succeeded (Verified): objective checks passed",
            "Answer: Scaled web to 5; 5/5 available.",
            "Changes proposed or run:",
            '- k8s_scale {"kind":"deployment","name":"web","replicas":5} -> Succeeded',
            '- k8s_delete {"kind":"pod","name":"web-1"} -> Denied',
            "- (1 read-only call(s))",
            "Verification: revision 1 passed: web runs 5 replicas",
        ]
    )


def test_each_part_of_a_turn_is_bounded() -> None:
    many = [record("k8s_patch", "Succeeded", n=i, name="w" * 500) for i in range(1, 30)]
    turn = rules.turn_of(task("big", "r" * 10_000, summary="s" * 8000, message="m" * 10_000, steps=many))
    kept = turn.request.split("…")[0]
    assert len(turn.request) <= rules.REQUEST_CAP
    assert turn.request == kept + f"…[truncated {10_000 - len(kept)} characters]"
    assert len(kept) > rules.REQUEST_CAP - 40
    assert turn.answer is not None
    assert len(turn.answer) <= rules.ANSWER_CAP
    assert turn.answer.endswith(" characters]")
    assert len(turn.ended) <= len("Succeeded (Answered): ") + rules.OUTCOME_CAP
    assert turn.calls[0] == f"({29 - rules.STEP_LINES} earlier change(s) left out)"
    assert len(turn.calls) == rules.STEP_LINES + 1
    assert all(len(line) <= rules.STEP_LINE_CAP for line in turn.calls)


def test_the_whole_context_stays_within_its_cap_with_a_marker() -> None:
    huge = task(
        "huge",
        "r" * 10_000,
        summary="s" * 8000,
        message="m" * 10_000,
        steps=[record("k8s_apply", "Succeeded", n=i, manifest="y" * 5000) for i in range(1, 20)],
        verification=Verification(revision=3, passed=False, judgement="j" * 4000, checked_at=T0),
    )
    text = rules.context([rules.turn_of(huge)])
    assert len(text) <= FOLLOW_UP_CONTEXT_CAP
    assert "…[truncated" in text
    assert text.startswith(rules.HEADER + "\n--- AgentTask huge\nRequest: rrr")
    assert len(rules.context([rules.turn_of(huge)] * 3)) <= FOLLOW_UP_CONTEXT_CAP
    assert len(rules.context([rules.turn_of(huge)], cap=500)) <= 500


def test_a_chain_keeps_the_newest_turns_oldest_first_and_says_what_was_left_out() -> None:
    turns = [rules.turn_of(task(f"t{i}", f"request {i}", summary=f"answer {i}")) for i in range(1, 6)]
    text = rules.context(turns)
    kept = [f"t{i}" for i in range(1, 6) if f"AgentTask t{i}\n" in text]
    assert kept == ["t3", "t4", "t5"][-MAX_FOLLOW_UP_TURNS:]
    assert text.index("request 3") < text.index("request 4") < text.index("request 5")
    assert "(2 earlier turn(s) left out)" in text
    assert "(earlier turns left out)" in rules.context(turns[-1:], more=True)
    assert "left out" not in rules.context(turns[-2:])


def test_turns_that_do_not_fit_are_dropped_oldest_first_before_the_newest_is_cut() -> None:
    big = [rules.turn_of(task(f"t{i}", f"request {i} " + "r" * 500, summary="s" * 1100)) for i in range(3)]
    text = rules.context(big, cap=2 * len(rules.context(big[-1:])))
    assert "AgentTask t0" not in text
    assert "AgentTask t1" in text
    assert "AgentTask t2" in text
    assert "(1 earlier turn(s) left out)" in text
    assert "…[truncated" not in text


def test_the_follow_up_comes_before_the_request_for_the_planner_and_the_judge() -> None:
    ctx = PlanningContext(
        request="and now api too", namespace="shop", target_namespaces=["shop"], identity=BOB
    )
    assert not request_message(ctx).startswith(rules.HEADER)
    ctx.follow_up = rules.context([rules.turn_of(task("first", "scale web to 5", summary="done"))])
    for message in (request_message(ctx), judge_message(ctx, "api runs 5")):
        assert message.startswith(ctx.follow_up + "\n\nRequest: and now api too\n")


# ----- reading as the requester could ------------------------------------------------------------------


class Reader:
    """The store as reading a chain needs it: tasks by name, and RBAC's answer per (user, name)."""

    def __init__(self, *tasks: dict[str, Any], forbidden: tuple[str, ...] = ()) -> None:
        self.tasks = {t["metadata"]["name"]: t for t in tasks}
        self.forbidden = forbidden
        self.asked: list[tuple[str, str]] = []

    async def may_get_task(self, user: Identity, namespace: str, name: str) -> bool:
        assert namespace == "shop"
        self.asked.append(("may_get", name))
        return name not in self.forbidden

    async def get_task(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.asked.append(("get", name))
        return self.tasks.get(name)


def _follower(name: str = "next", follows: str = "t4", minutes: int = 60) -> dict[str, Any]:
    return task(name, "and now?", phase=None, follow_up_of=follows, created=T0 + timedelta(minutes=minutes))


def _chain(length: int) -> list[dict[str, Any]]:
    """t0 <- t1 <- ... each following up the one before, a minute apart."""
    return [
        task(
            f"t{i}",
            f"request {i}",
            summary=f"answer {i}",
            follow_up_of=f"t{i - 1}" if i else None,
            created=T0 + timedelta(minutes=i),
        )
        for i in range(length)
    ]


async def test_a_forbidden_task_is_never_read() -> None:
    reader = Reader(*_chain(5), forbidden=("t4",))
    found = await read_follow_up(reader, _follower(), BOB)
    assert isinstance(found, Refusal)
    assert found.reason == "FollowUpForbidden"
    assert reader.asked == [("may_get", "t4")]


async def test_reading_follows_the_chain_up_to_the_bound_asking_before_each_read() -> None:
    reader = Reader(*_chain(5))
    found = await read_follow_up(reader, _follower(), BOB)
    assert isinstance(found, FollowUp)
    assert (found.name, found.phase) == ("t4", "Succeeded")
    assert reader.asked == [(verb, name) for name in ("t4", "t3", "t2") for verb in ("may_get", "get")]
    assert "(earlier turns left out)" in found.context
    assert found.context.index("answer 2") < found.context.index("answer 3") < found.context.index("answer 4")
    assert "answer 1" not in found.context
    assert await read_follow_up(reader, task("x", "y", phase=None), BOB) is None


async def test_the_chain_stops_at_a_task_the_requester_may_not_read_a_loop_or_a_gap() -> None:
    forbidden = await read_follow_up(Reader(*_chain(5), forbidden=("t3",)), _follower(), BOB)
    assert isinstance(forbidden, FollowUp)
    assert "answer 4" in forbidden.context
    assert "request 3" not in forbidden.context
    assert "(earlier turns left out)" in forbidden.context

    a = task("a", "first a", summary="a1", follow_up_of="b", created=T0)
    b = task("b", "then b", summary="b1", follow_up_of="a", created=T0)
    looped = await read_follow_up(Reader(a, b), _follower(follows="b"), BOB)
    assert isinstance(looped, FollowUp)
    assert looped.context.count("--- AgentTask") == 2

    gap = await read_follow_up(Reader(*_chain(5)[2:]), _follower(), BOB)
    assert isinstance(gap, FollowUp)
    assert gap.context.count("--- AgentTask") == 3
    short = await read_follow_up(Reader(*_chain(5)[3:]), _follower(), BOB)
    assert isinstance(short, FollowUp)
    assert short.context.count("--- AgentTask") == 2
    assert "(earlier turns left out)" in short.context
    whole = await read_follow_up(Reader(*_chain(2)), _follower(follows="t1"), BOB)
    assert isinstance(whole, FollowUp)
    assert "left out" not in whole.context


async def test_an_unfinished_or_missing_task_is_refused() -> None:
    chain = _chain(5)
    chain[4] = task("t4", "still going", phase="AwaitingApproval", created=T0 + timedelta(minutes=4))
    unfinished = await read_follow_up(Reader(*chain), _follower(), BOB)
    assert isinstance(unfinished, Refusal)
    assert unfinished.reason == "FollowUpNotFinished"
    missing = await read_follow_up(Reader(), _follower(), BOB)
    assert isinstance(missing, Refusal)
    assert missing.reason == "FollowUpNotFound"


def test_a_lost_follow_up_tells_the_model_so() -> None:
    text = rules.lost("first", Refusal("FollowUpNotFound", "gone"))
    assert text.startswith("This request follows up AgentTask first, which can no longer be shown")


def _task_of(body: dict[str, Any], reader: Reader) -> Task:
    body["metadata"]["annotations"] = {"bosun.dev/requester": "bob", "bosun.dev/requester-groups": "sre"}
    deps = Deps(
        store=reader,  # type: ignore[arg-type]
        gateway=None,  # type: ignore[arg-type]
        config=OperatorConfig.from_env({}),
        operator_identity=None,
        identity_trusted=True,
    )
    return Task(body, AgentTaskSpec.model_validate(body["spec"]), AgentTaskStatus(), deps)


async def test_once_planned_a_task_that_is_gone_is_said_to_be_gone_and_read_once_per_reconcile() -> None:
    reader = Reader()
    strict = await model_context(_task_of(_follower(), reader), strict=True)
    assert isinstance(strict, Refusal)
    assert strict.reason == "FollowUpNotFound"
    task_ = _task_of(_follower(), reader)
    carried_on = await model_context(task_, strict=False)
    assert isinstance(carried_on, FollowUp)
    assert carried_on.context == rules.lost("t4", Refusal("FollowUpNotFound", ""))
    asked = len(reader.asked)
    await model_context(task_, strict=False)
    assert len(reader.asked) == asked, "one reading per reconcile"
    assert await model_context(_task_of(task("x", "y", phase=None), reader), strict=True) is None
