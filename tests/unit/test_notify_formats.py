"""What notifications say: the generic webhook document, the Slack and Teams messages (golden files), what
they leave out, and that the largest proposal still fits what Slack and Teams accept.

The golden files (``tests/golden/notify_*.json``) are what a receiver gets; a change to them is a change of
a public format and shows in review. Regenerate with
``BOSUN_UPDATE_GOLDEN=1 uv run pytest -q tests/unit/test_notify_formats.py`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from bosun.api.models import (
    DIFF_CAP,
    PREVIEW_CAP,
    SUMMARY_CAP,
    AgentTaskStatus,
    Proposal,
    ProposedStep,
    StepRecord,
    TaskPhase,
    UserRef,
)
from bosun.core.phases import transition
from bosun.notify.formats import render, slack_message, teams_message, webhook_payload
from bosun.notify.notice import NOTIFIABLE, Notice, notice_of

from tests.unit.test_golden import GOLDEN, check

UID = "0b7c6a0e-1111-4222-8333-444455556666"
HASH = "sha256:" + "ab12" * 16
BODY = {"metadata": {"namespace": "shop", "name": "rotate-db", "uid": UID}}
PROPOSED_AT = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
ENDED_AT = datetime(2026, 5, 4, 12, 5, tzinfo=UTC)
PLACEHOLDER = "sealed:sha256:5e8c…@shop/bosun-sealed-1/password"
STEP_OUTPUT = "s3cr3t-from-a-read-output"
"""Stands for whatever a call's output could carry: no notification may contain it."""


def _steps() -> list[ProposedStep]:
    manifest = (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: db}}\nstringData: {{password: {PLACEHOLDER}}}\n"
    )
    return [
        ProposedStep(
            id="s1",
            tool="k8s_apply",
            args={"manifest": manifest, "namespace": "shop"},
            destructive=False,
            rationale="rotate the password",
            preview="would configure secret/db: stringData.password changes (sha256:5e8c…)",
            diff="--- secret/db\n+++ secret/db\n-  password: <redacted 18 bytes>\n+  password: sha256:5e8c…",
        ),
        ProposedStep(
            id="s2",
            tool="k8s_restart",
            args={"kind": "deployment", "name": "web", "namespace": "shop"},
            destructive=True,
            idempotent=False,
            rationale="pick up the new password",
            preview="would restart deployment/web (3 pods) & roll out again",
        ),
    ]


ENDS: dict[str, tuple[tuple[TaskPhase, ...], str, str]] = {
    "Succeeded": (("Executing", "Verifying", "Succeeded"), "Verified", "deployment shop/web rolled out"),
    "Failed": (("Executing", "Failed"), "ToolFailed", 'step s2 failed: deployments.apps "web" not found'),
    "Denied": (("Denied",), "Denied", "alice denied revision 2: not during the sale"),
    "Expired": (("Expired",), "Expired", "nobody decided revision 2 within 168h"),
    "Cancelled": (("Cancelled",), "Cancelled", "cancelled by annotation cancel=true"),
}
"""How the sample task goes from its proposal to each end, and the reason and message it ends with."""


def _status(phase: str, steps: list[ProposedStep] | None = None) -> AgentTaskStatus:
    """A task that proposed ``steps`` (read something first) and then reached ``phase``, through the real
    transitions."""
    status = AgentTaskStatus(
        phase="Planning",
        requester=UserRef(user="bob", groups=["sre", "system:authenticated"]),
        iteration=1,
        proposal=Proposal(
            revision=2,
            hash=HASH,
            created_at=PROPOSED_AT,
            summary="Rotate db's password.",
            steps=steps or _steps(),
        ),
        steps=[
            StepRecord(
                id="p1-i1",
                revision=1,
                tool="k8s_get",
                args={},
                mutating=False,
                state="Succeeded",
                output=STEP_OUTPUT,
            )
        ],
        summary=f"s1: secret/db configured: {STEP_OUTPUT}",
    )
    status = transition(
        status,
        "AwaitingApproval",
        reason="ApprovalRequired",
        message="proposal",
        generation=1,
        now=PROPOSED_AT,
    )
    if phase == "AwaitingApproval":
        return status
    route, reason, message = ENDS[phase]
    for to in route:
        status = transition(status, to, reason=reason, message=message, generation=1, now=ENDED_AT)
    return status


def _notice(phase: str, *, annotation_approvals: bool = True) -> Notice:
    notice = notice_of(BODY, _status(phase), annotation_approvals=annotation_approvals)
    assert notice is not None
    return notice


def _golden(payload: dict[str, Any]) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


TRANSLATORS = {"webhook": webhook_payload, "slack": slack_message, "teams": teams_message}


@pytest.mark.parametrize("event", ["AwaitingApproval", "Failed"])
@pytest.mark.parametrize("kind", sorted(TRANSLATORS))
def test_notifications_match_their_golden_files(kind: str, event: str) -> None:
    generated = _golden(TRANSLATORS[kind](_notice(event)))
    how = (
        "regenerate with BOSUN_UPDATE_GOLDEN=1 uv run pytest -q tests/unit/test_notify_formats.py and review"
    )
    check(GOLDEN / f"notify_{kind}_{event}.json", generated, how)


def test_a_proposal_notice_names_its_hash_and_each_way_to_approve_exactly_it() -> None:
    notice = _notice("AwaitingApproval")
    assert (notice.plan_hash, notice.revision) == (HASH, 2)
    assert notice.approve is not None
    assert f"planHash: {HASH}" in notice.approve.grant
    assert "generateName: rotate-db-" in notice.approve.grant  # each required approver can run it as it is
    assert notice.approve.annotate == "kubectl -n shop annotate agenttask rotate-db approve=true"
    without = _notice("AwaitingApproval", annotation_approvals=False).approve
    assert without is not None
    assert without.annotate is None, "never a way of approving the operator refuses"
    for kind in TRANSLATORS:
        assert HASH in render(kind, notice).decode(), f"the {kind} message does not name the plan hash"


def test_the_delivery_id_is_one_per_change() -> None:
    """The same on every attempt (a receiver drops repeats by it), different for another proposal or end."""
    proposal = _notice("AwaitingApproval")
    assert proposal.delivery_id == _notice("AwaitingApproval").delivery_id
    replanned = dataclasses.replace(proposal, plan_hash="sha256:" + "cd34" * 16)
    assert len({proposal.delivery_id, replanned.delivery_id, _notice("Failed").delivery_id}) == 3


@pytest.mark.parametrize("event", NOTIFIABLE)
def test_no_notification_carries_call_outputs_or_the_summary_built_from_them(event: str) -> None:
    notice = _notice(event)
    assert notice.event == event
    for kind in TRANSLATORS:
        assert STEP_OUTPUT not in render(kind, notice).decode(), f"{kind} carries a call's output"


def test_only_a_proposal_and_the_ends_of_a_task_are_notified() -> None:
    for phase in ("Planning", "Executing", "Verifying"):
        status = _status("AwaitingApproval").model_copy(update={"phase": phase})
        assert notice_of(BODY, status, annotation_approvals=True) is None


def test_slack_text_is_escaped_so_a_manifest_cannot_mention_the_channel() -> None:
    step = _steps()[0].model_copy(update={"diff": "+  note: <!channel> & <@U123> say hi"})
    notice = notice_of(BODY, _status("AwaitingApproval", steps=[step]), annotation_approvals=True)
    assert notice is not None
    text = json.dumps(slack_message(notice))
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in text
    assert "<!channel>" not in text
    assert "<@U123>" not in text


SLACK_BLOCKS_TEXT = 12_000
TEAMS_BYTES = 20_000


def _texts(value: Any) -> list[str]:
    """Every ``text`` of a Block Kit message, nested ones included."""
    if isinstance(value, dict):
        own = [value["text"]] if isinstance(value.get("text"), str) else []
        return own + [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def test_the_largest_proposal_fits_what_slack_and_teams_accept() -> None:
    """20 steps (the most a proposal has) with the largest arguments and diffs, full of characters Slack
    escapes to five: every Slack block within its limit and the blocks within what Slack takes in all; the
    Teams message within what Teams takes."""
    big = "&<>" * 3000
    steps = [
        ProposedStep(
            id=f"s{n}",
            tool="k8s_apply",
            args={"manifest": big, "namespace": "shop"},
            rationale="r",
            preview=big[:PREVIEW_CAP],
            diff=big[:DIFF_CAP],
            destructive=True,
            cluster_scoped=True,
        )
        for n in range(1, 21)
    ]
    status = _status("AwaitingApproval", steps=steps)
    assert status.proposal is not None
    status = status.model_copy(
        update={"proposal": status.proposal.model_copy(update={"summary": big[:SUMMARY_CAP]})}
    )
    notice = notice_of(BODY, status, annotation_approvals=True)
    assert notice is not None

    slack = slack_message(notice)
    assert len(slack["blocks"]) <= 50
    header, fields = slack["blocks"][0], slack["blocks"][1]["fields"]
    assert len(header["text"]["text"]) <= 150
    assert len(fields) <= 10
    assert all(len(f["text"]) <= 2000 for f in fields)
    for block in slack["blocks"][2:]:
        assert block["type"] != "section" or len(block["text"]["text"]) <= 3000, block["text"]["text"][:200]
    assert sum(len(t) for t in _texts(slack["blocks"])) <= SLACK_BLOCKS_TEXT
    assert len(render("teams", notice)) <= TEAMS_BYTES
    assert all(f"s{n}" in json.dumps(slack) for n in range(1, 21)), "every step is shown, if cut"
