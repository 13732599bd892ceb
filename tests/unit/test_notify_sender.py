"""The sender against a real HTTP receiver on 127.0.0.1 (``tests.fakes.webhook``), without a cluster:
signed posts, retries with backoff, refusals given up at once, receivers that never answer, a full queue,
and what the logs show (never a sink's URL)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bosun.api.models import AgentTaskStatus, Proposal, ProposedStep, UserRef
from bosun.core.phases import transition
from bosun.notify.formats import render
from bosun.notify.notice import notice_of
from bosun.notify.sender import BACKOFF_CAP_SECONDS, Notifier, backoff
from bosun.notify.settings import NotifySettings

from tests.fakes.webhook import HANG, FakeWebhook, verify
from tests.waiting import eventually_async

KEY = b"0123456789abcdef0123456789abcdef"
HOOK = "/hooks/T0-s3cr3t-path"
"""A path that, like a Slack URL's, is itself a credential: it must never reach a log line."""


@pytest.fixture(autouse=True)
def _info_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The sender reports a delivery at INFO."""
    caplog.set_level(logging.INFO, logger="bosun")


@pytest.fixture
def receiver() -> Iterator[FakeWebhook]:
    with FakeWebhook() as fake:
        yield fake


def _status(name: str = "scale-web") -> tuple[dict[str, Any], AgentTaskStatus]:
    """A task that just proposed one step, as a status write stored it."""
    at = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    step = ProposedStep(
        id="s1",
        tool="k8s_scale",
        args={"kind": "deployment", "name": "web", "namespace": "shop", "replicas": 5},
        rationale="r",
        diff="-  replicas: 3\n+  replicas: 5",
    )
    status = AgentTaskStatus(
        phase="Planning",
        requester=UserRef(user="bob"),
        proposal=Proposal(
            revision=1, hash="sha256:" + "0" * 64, created_at=at, summary="scale", steps=[step]
        ),
    )
    status = transition(
        status, "AwaitingApproval", reason="ApprovalRequired", message="m", generation=1, now=at
    )
    return {"metadata": {"namespace": "shop", "name": name, "uid": f"uid-{name}"}}, status


def _settings(tmp_path: Path, url: str, kind: str = "webhook", **tuning: float) -> NotifySettings:
    (tmp_path / "ops.url").write_text(url)
    (tmp_path / "ops.signing-key").write_bytes(KEY)
    env = {
        "BOSUN_NOTIFY_SINKS": json.dumps([{"name": "ops", "type": kind}]),
        "BOSUN_NOTIFY_SECRET_DIR": str(tmp_path),
        "BOSUN_NOTIFY_BACKOFF_SECONDS": "0.01",
        **{f"BOSUN_NOTIFY_{key.upper()}": str(value) for key, value in tuning.items()},
    }
    return NotifySettings.from_env(env)


@pytest.fixture
async def started(tmp_path: Path, receiver: FakeWebhook) -> AsyncIterator[Notifier]:
    notifier = Notifier.start(_settings(tmp_path, receiver.url(HOOK)), annotation_approvals=True)
    yield notifier
    await notifier.stop()


async def _received(receiver: FakeWebhook, count: int) -> None:
    async def arrived() -> bool:
        return len(receiver.received(HOOK)) >= count

    await eventually_async(f"{count} request(s) at the receiver", arrived, within=20)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    async def seen() -> bool:
        return text in caplog.text

    await eventually_async(f"the log to say {text!r}", seen, within=20)


async def test_a_proposal_is_posted_signed_with_its_delivery_id(
    started: Notifier, receiver: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    body, status = _status()
    started.observe(body, status)
    await _received(receiver, 1)
    [request] = receiver.received(HOOK)
    notice = notice_of(body, status, annotation_approvals=True)
    assert notice is not None
    assert request.body == render("webhook", notice)
    assert verify(request, KEY)
    assert request.headers["x-bosun-delivery"] == notice.delivery_id
    assert request.headers["x-bosun-event"] == "AwaitingApproval"
    assert request.headers["content-type"] == "application/json"
    await _logged(caplog, "delivered (attempt 1 of 6)")


async def test_a_failing_receiver_is_retried_with_the_same_delivery_id_until_it_takes_it(
    started: Notifier, receiver: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer(HOOK, 500, 503, 429)
    started.observe(*_status())
    await _received(receiver, 4)
    await _logged(caplog, "delivered (attempt 4 of 6)")
    attempts = receiver.received(HOOK)
    assert len({a.headers["x-bosun-delivery"] for a in attempts}) == 1
    assert all(verify(a, KEY) for a in attempts), "every attempt is signed anew"
    assert "HTTP 500 receiver failure scripted by the test); retrying in" in caplog.text


async def test_a_refusal_is_given_up_at_once_and_logged_without_the_url(
    started: Notifier, receiver: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer(HOOK, 403)
    started.observe(*_status())
    await _logged(caplog, "was not delivered (attempt 1 of 6: HTTP 403")
    assert len(receiver.received(HOOK)) == 1
    assert "the receiver refused it); given up, the task is unaffected; check the sink's URL" in caplog.text
    assert "sink ops" in caplog.text
    assert "s3cr3t" not in caplog.text


async def test_a_receiver_that_never_answers_is_given_up_after_each_attempts_timeout(
    tmp_path: Path, receiver: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer(HOOK, HANG, HANG)
    notifier = Notifier.start(
        _settings(tmp_path, receiver.url(HOOK), timeout_seconds=0.3, attempts=2), annotation_approvals=True
    )
    try:
        notifier.observe(*_status())
        await _logged(caplog, "was not delivered (attempt 2 of 2: no answer within 0.3s); given up")
        assert receiver.open_requests == 2
    finally:
        await notifier.stop()


async def test_a_refused_connection_is_retried_then_given_up(
    tmp_path: Path, receiver: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.start(
        _settings(tmp_path, receiver.refused_url("/hooks/s3cr3t"), attempts=2), annotation_approvals=True
    )
    try:
        notifier.observe(*_status())
        await _logged(caplog, "was not delivered (attempt 2 of 2: ConnectError")
        assert "s3cr3t" not in caplog.text
    finally:
        await notifier.stop()


async def test_a_full_queue_drops_the_new_message_and_observe_neither_waits_nor_raises(
    tmp_path: Path, receiver: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.start(
        _settings(tmp_path, receiver.url(HOOK)), annotation_approvals=True, queue_size=1
    )
    try:
        notifier.observe(*_status("first"))  # no await in between: the worker has not taken it yet
        notifier.observe(*_status("second"))
        assert "so the AwaitingApproval notification of agenttask shop/second is dropped" in caplog.text
        notifier.observe({"no": "metadata"}, _status()[1])
        assert "could not prepare a notification about agenttask None/None; nothing is sent" in caplog.text
        await _received(receiver, 1)
        assert [r.json()["task"]["name"] for r in receiver.received(HOOK)] == ["first"]
    finally:
        await notifier.stop()


async def test_stopping_waits_one_attempt_and_says_what_was_not_delivered(
    tmp_path: Path, receiver: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answer(HOOK, HANG, HANG)
    notifier = Notifier.start(
        _settings(tmp_path, receiver.url(HOOK), timeout_seconds=0.5), annotation_approvals=True
    )
    notifier.observe(*_status())
    await _received(receiver, 1)
    await notifier.stop()
    assert "stopping with 1 notification(s) not delivered" in caplog.text


async def test_httpx_request_lines_name_the_sink_never_its_url(
    tmp_path: Path, receiver: FakeWebhook, caplog: pytest.LogCaptureFixture
) -> None:
    """A Slack or Teams URL is the credential; httpx logs each request's URL at INFO (shown at debug)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # whatever an earlier ``logs.configure`` left there
    notifier = Notifier.start(
        _settings(tmp_path, receiver.url(HOOK), kind="slack"), annotation_approvals=True
    )
    try:
        notifier.observe(*_status())
        await _logged(caplog, "delivered (attempt 1 of 6)")
        assert 'HTTP Request: POST <URL of notification sink ops> "HTTP/1.0 200 OK"' in caplog.text
        assert "s3cr3t" not in caplog.text
        assert "x-bosun-signature" not in receiver.received(HOOK)[0].headers, "Slack authenticates by URL"
    finally:
        await notifier.stop()


def test_backoff_doubles_with_jitter_up_to_the_cap_and_honours_retry_after() -> None:
    assert [backoff(n, 2.0, rand=lambda: 0.0) for n in (1, 2, 3)] == [1.0, 2.0, 4.0]
    assert [backoff(n, 2.0, rand=lambda: 1.0) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff(10, 2.0, rand=lambda: 1.0) == BACKOFF_CAP_SECONDS
    assert backoff(1, 2.0, retry_after=30, rand=lambda: 0.0) == 30
    assert backoff(1, 2.0, retry_after=3600, rand=lambda: 0.0) == BACKOFF_CAP_SECONDS
