"""The console without a cluster: what its views decide from task objects (the same objects the golden
files of ``kubectl bosun`` are made from), its overview arithmetic, how it takes a forwarded token, and the
protections every answer carries. The console against a real API server and in a real browser is in
tests/e2e/test_console.py and tests/e2e/test_console_identity.py.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from bosun.api.models import AgentTaskStatus, ApprovalRecord, Proposal, Usage
from bosun.console import overview as stats
from bosun.console.access import ForwardedTokenAccess, forwarded_token
from bosun.console.app import CONTENT_SECURITY_POLICY, build_app
from bosun.console.views import (
    Filters,
    chosen_steps,
    diff_lines,
    grant_notice,
    task_rows,
    task_view,
    timeline,
    waits_for,
)
from bosun.core.approval_policy import ApprovalPolicy
from bosun_tools.client.kube import Credentials, KubeClient
from kubernetes import client as k8s_client
from starlette.requests import Request
from starlette.testclient import TestClient

from tests.unit.test_kubectl_plugin import (
    ALICE,
    BOB,
    CAROL,
    HASH,
    NOW,
    SCALE_DIFF,
    _at,
    _body,
    _steps,
    awaiting_task,
    failed_task,
    succeeded_task,
)

# ----- views ---------------------------------------------------------------------------------------------


def test_a_task_waits_for_exactly_those_who_may_still_decide_it() -> None:
    """Over every phase, requester, viewer and counted approval: waiting iff a proposal is open, the viewer
    did not ask for it, and has no approval counted for this revision."""
    proposal = Proposal(revision=2, hash=HASH, created_at=_at(1), summary="s", steps=_steps())
    people = [BOB, ALICE, CAROL]
    for phase, asker, viewer, approver, counted, revision in itertools.product(
        ["Planning", "AwaitingApproval", "Executing", "Succeeded"],
        [BOB, None],
        ["bob", "alice", "carol", None],
        [*people, None],
        [True, False],
        [1, 2],
    ):
        approvals = (
            []
            if approver is None
            else [
                ApprovalRecord(
                    grant="g", decision="Approve", accepted=counted, revision=revision, approver=approver,
                    reason="r", at=_at(2),
                )
            ]
        )  # fmt: skip
        status = AgentTaskStatus(phase=phase, proposal=proposal, approvals=approvals)  # type: ignore[arg-type]
        expected = (
            viewer is not None
            and phase == "AwaitingApproval"
            and (asker is None or asker.user != viewer)
            and not (approver is not None and counted and revision == 2 and approver.user == viewer)
        )
        assert waits_for(status, asker, viewer) is expected, (
            phase,
            asker,
            viewer,
            approver,
            counted,
            revision,
        )


def test_rows_waiting_for_the_viewer_come_first_then_the_newest() -> None:
    older_waiting = awaiting_task()
    newer_done = succeeded_task()
    newer_done["metadata"]["creationTimestamp"] = "2026-05-04T13:00:00Z"
    failed = failed_task()
    rows = task_rows([failed, newer_done, older_waiting], "alice", NOW, Filters())
    assert [r.name for r in rows] == ["scale-web", "scale-web-done", "write-a-poem"]
    assert [r.waiting_for_me for r in rows] == [True, False, False]
    assert [r.name for r in task_rows([failed, older_waiting], "bob", NOW, Filters())] == [
        "scale-web",
        "write-a-poem",
    ]
    assert not any(r.waiting_for_me for r in task_rows([older_waiting], "bob", NOW, Filters()))
    assert [r.name for r in task_rows([failed, older_waiting], "alice", NOW, Filters(phase="Failed"))] == [
        "write-a-poem"
    ]
    assert task_rows([failed], "alice", NOW, Filters(requester="carol")) == []


def test_a_diff_is_marked_line_by_line_for_its_colour() -> None:
    assert [line.kind for line in diff_lines(SCALE_DIFF)] == [
        "file", "file", "hunk", "same", "same", "remove", "add"
    ]  # fmt: skip
    assert diff_lines(None) == []


def test_the_steps_a_decision_names() -> None:
    proposal = Proposal(revision=3, hash=HASH, created_at=_at(1), summary="s", steps=_steps())
    assert chosen_steps(proposal, [], everything=True) is None
    assert chosen_steps(proposal, ["s2", "s1"], everything=False) is None  # every step: no subset
    assert chosen_steps(proposal, ["s2"], everything=False) == ["s2"]
    with pytest.raises(ValueError, match="steps s9 are not in proposal revision 3, whose steps are s1, s2"):
        chosen_steps(proposal, ["s9"], everything=False)
    with pytest.raises(ValueError, match="no step was picked"):
        chosen_steps(proposal, [], everything=False)


def test_the_timeline_tells_the_story_in_order() -> None:
    moments = timeline(succeeded_task())
    kinds = [m.kind for m in moments]
    assert kinds[0] == "asked"
    assert (
        kinds.index("proposed") < kinds.index("approval") < kinds.index("verification") < kinds.index("ended")
    )
    read = next(m for m in moments if m.kind == "read")
    assert read.text.startswith("read: k8s_get")
    assert read.detail == "deployment web: 3/3 available"
    executed = next(m for m in moments if m.kind == "execution")
    assert executed.text.startswith("succeeded: k8s_scale")
    assert executed.text.endswith(" as bob")
    assert next(m for m in moments if m.kind == "approval").text == "alice approved revision 1"
    assert moments[-1].text == "ended Succeeded"


def test_a_proposal_not_yet_run_is_told_by_the_proposal_and_its_decisions_not_as_execution() -> None:
    moments = timeline(awaiting_task())
    assert [m.kind for m in moments] == ["asked", "proposed", "approval", "approval"]
    assert [m.text for m in moments if m.kind == "approval"] == [
        "carol approved revision 2",
        "bob approved (not counted)",
    ]


def test_the_task_page_offers_a_decision_only_on_an_open_proposal() -> None:
    waiting = task_view(awaiting_task(), "bob", NOW)
    assert waiting.decision is not None
    assert waiting.decision.hash == HASH
    assert waiting.decision.viewer_is_requester
    assert waiting.decision.still_needed.startswith("1 of 2 approvals (carol) for revision 2")
    assert [s.tags for s in waiting.steps] == [[], ["destructive"]]
    assert not task_view(awaiting_task(), "alice", NOW).decision.viewer_is_requester  # type: ignore[union-attr]
    done = task_view(succeeded_task(), "alice", NOW)
    assert done.decision is None
    assert done.finished
    assert done.outcome.startswith("Verified: ")


def test_a_grant_notice_says_the_operators_verdict() -> None:
    grant: dict[str, Any] = {"metadata": {"name": "g"}, "status": {}}
    assert grant_notice(grant, "g").tone == "wait"
    grant["status"] = {"state": "Rejected", "reason": "FourEyes", "message": "bob requested this task"}
    notice = grant_notice(grant, "g")
    assert (notice.tone, notice.text) == (
        "bad",
        "approvalgrant g: Rejected (FourEyes): bob requested this task",
    )
    assert grant_notice(None, "g").text == "approvalgrant g no longer exists"


# ----- overview ------------------------------------------------------------------------------------------


def test_the_overview_counts_phases_decisions_latency_and_spend() -> None:
    done = succeeded_task()
    done["status"]["usage"] = Usage(
        calls=3, prompt_tokens=1000, completion_tokens=200, cost_usd=0.01, model="openai/gpt-4.1"
    ).wire()
    waiting = awaiting_task()
    waiting["spec"]["model"] = "anthropic/claude-sonnet-4"
    summary = stats.overview([done, waiting, failed_task()])
    assert summary.total == 3
    assert summary.phases == [("AwaitingApproval", 1), ("Succeeded", 1), ("Failed", 1)]
    assert summary.busiest == 1
    # alice's approval (counted, let revision 1 run), carol's (counted, still waiting), bob's (refused).
    assert (summary.decisions.approvals, summary.decisions.denials, summary.decisions.not_counted) == (
        2,
        0,
        1,
    )
    # Only proposals whose approval let them run are measured: revision 1, proposed at +1 min, approved at +3.
    assert (summary.latency.count, summary.latency.median) == (1, 120.0)
    models = dict(summary.per_model)
    assert models["openai/gpt-4.1"].tokens == 1200
    assert models["openai/gpt-4.1"].cost_usd == pytest.approx(0.01)
    assert models["anthropic/claude-sonnet-4"].tasks == 1
    assert models[stats.DEFAULT_MODEL].tasks == 1
    assert [day for day, _ in summary.per_day] == ["2026-05-04"]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (2.345, "2.3 s"), (42.4, "42 s"), (185, "3 min 5 s"), (7800, "2 h 10 min")],
)
def test_durations_read_as_people_say_them(seconds: float | None, shown: str) -> None:
    assert stats.seconds_text(seconds) == shown


def test_an_empty_namespace_has_an_empty_overview() -> None:
    summary = stats.overview([])
    assert (summary.total, summary.phases, summary.busiest, summary.latency.median) == (0, [], 0, None)


# ----- identity and protections ----------------------------------------------------------------------------


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "query_string": b""})


@pytest.mark.parametrize(
    ("headers", "token"),
    [
        ({"Authorization": "Bearer abc.def"}, "abc.def"),
        ({"Authorization": "bearer  abc "}, "abc"),
        ({"X-Forwarded-Access-Token": "xyz"}, "xyz"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, None),
        ({"Authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_the_forwarded_token_is_taken_only_as_a_bearer_token(
    headers: dict[str, str], token: str | None
) -> None:
    assert forwarded_token(_request(headers)) == token


def _cluster(**fields: Any) -> Credentials:
    configuration = k8s_client.Configuration()
    configuration.host = "https://127.0.0.1:1"
    for name, value in fields.items():
        setattr(configuration, name, value)
    return Credentials(configuration)


async def test_a_forwarded_token_is_the_only_credential_sent() -> None:
    held = _cluster(api_key={"authorization": "Bearer the-consoles-own"}, username="admin", password="pw")
    stripped = Credentials.cluster_only(held)
    assert await stripped.authorization() is None
    forwarded = Credentials.forwarded(held, "the-persons")
    assert await forwarded.authorization() == "Bearer the-persons"
    assert held.configuration.api_key == {
        "authorization": "Bearer the-consoles-own"
    }  # the original is intact
    assert await forwarded.renewed("Bearer the-persons") is None  # a refused token is final


def test_no_token_is_forwarded_over_a_client_certificate_connection() -> None:
    client = KubeClient(_shared_with_certificate())
    with pytest.raises(ValueError, match="the certificate would authenticate instead"):
        client.forwarding("token")


def _shared_with_certificate() -> Any:
    import httpx
    from bosun_tools.client.kube import _Shared

    return _Shared(
        _cluster(cert_file="/etc/client.crt", key_file="/etc/client.key"), False, httpx.AsyncClient()
    )


def test_without_a_forwarded_token_every_route_but_health_is_refused_with_the_protections() -> None:
    app = build_app(ForwardedTokenAccess(_cluster()))
    with TestClient(app) as browser:
        for path in ("/", "/overview", "/tasks/shop/web", "/stream/tasks"):
            answer = browser.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["cache-control"] == "no-store"
        assert browser.post("/ask", data={"request": "x"}).status_code == 401
        assert browser.get("/healthz").text == "ok"
        script = browser.get("/static/console.js")
        assert script.status_code == 200
        assert "cache-control" not in script.headers


def test_an_unreachable_api_server_is_said_not_hidden() -> None:
    app = build_app(ForwardedTokenAccess(_cluster()))
    with TestClient(app) as browser:
        answer = browser.get("/", headers={"Authorization": "Bearer t"})
    assert answer.status_code == 502
    assert "cannot reach the API server at https://127.0.0.1:1" in answer.text


def test_the_age_of_a_row_is_the_viewers_now() -> None:
    [row] = task_rows(
        [_body("t", AgentTaskStatus(phase="Pending"), "r")], None, _at(0) + timedelta(hours=2), Filters()
    )
    assert row.age == "2h"
    assert row.requester == "bob"


def test_the_decision_says_the_policy_the_operator_judges_by() -> None:
    body = awaiting_task()
    policy = ApprovalPolicy.from_env({}).for_namespace("shop", {"bosun.dev/required-approvals": "2"})
    body["status"]["approvalPolicy"] = policy.as_status().wire()
    decision = task_view(body, "alice", NOW).decision
    assert decision is not None
    assert decision.policy.startswith("four-eyes on, 2 distinct approvers")
    assert not decision.policy_problem
    broken = ApprovalPolicy.from_env({}).for_namespace("shop", {"bosun.dev/required-approvals": "many"})
    body["status"]["approvalPolicy"] = broken.as_status().wire()
    assert task_view(body, "alice", NOW).decision.policy_problem  # type: ignore[union-attr]
