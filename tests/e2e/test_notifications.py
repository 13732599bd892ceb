"""Approvals reach people: a real operator process notifies a webhook receiver double on 127.0.0.1
(``tests.fakes.webhook``) of proposals awaiting approval and of tasks' ends.

The sinks are configured as the chart does it: ``BOSUN_NOTIFY_*`` variables, and each sink's URL and
signing key in files, where the chart mounts the notification Secret. Every URL's path carries
``s3cr3t`` (a Slack URL is itself the credential), so a test can see that no URL reaches a log line.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    Operator,
    apply,
    deployment,
    get,
    grant_doc,
    task_doc,
    wait_phase,
    with_model,
)
from tests.e2e.test_secrets import (  # noqa: F401  (llm: a fixture)
    FORMS,
    NEW_PASSWORD,
    OLD_PASSWORD,
    llm,
    script_rotation,
)
from tests.fakes.llm import FakeLLM
from tests.fakes.webhook import HANG, FakeWebhook, Received, verify
from tests.waiting import eventually

pytestmark = pytest.mark.cluster

SIGNING_KEY = "e2e-signing-key-0123456789abcdef-s3cr3t"
BOTH = "AwaitingApproval,Succeeded"


@pytest.fixture
def receiver() -> Iterator[FakeWebhook]:
    with FakeWebhook() as fake:
        yield fake


def notifying(
    start: Callable[..., Operator], tmp_path: Path, sinks: dict[str, tuple[str, str]], **env: str
) -> Operator:
    """An operator (``start``: the factory, or one with a model) notifying ``sinks`` (name -> (type,
    URL)), each URL and webhook signing key in a file of the directory the chart mounts the Secret at."""
    secret = tmp_path / "notify-secret"
    secret.mkdir(exist_ok=True)
    for name, (kind, url) in sinks.items():
        (secret / f"{name}.url").write_text(url)
        if kind == "webhook":
            (secret / f"{name}.signing-key").write_text(SIGNING_KEY)
    spec = [{"name": name, "type": kind} for name, (kind, _) in sinks.items()]
    return start(
        BOSUN_NOTIFY_SINKS=json.dumps(spec),
        BOSUN_NOTIFY_SECRET_DIR=str(secret),
        BOSUN_NOTIFY_BACKOFF_SECONDS="0.2",
        **env,
    )


def posts(receiver: FakeWebhook, path: str, count: int, timeout: float = 60) -> list[Received]:
    """Wait until ``path`` received ``count`` requests; all it received then."""
    eventually(f"{count} POST(s) at {path}", lambda: len(receiver.received(path)) >= count, timeout=timeout)
    return receiver.received(path)


def logged(operator: Operator, line: str, timeout: float = 60) -> None:
    eventually(f"the operator to log {line!r}", lambda: line in operator.log.read_text(), timeout=timeout)


def scale_task(kubectl: Any, namespace: str, name: str = "scale-web") -> None:
    deployment(kubectl, namespace)
    apply(kubectl, namespace, task_doc(name, f"scale deployment web in {namespace} to 5"), user="bob")


def test_a_proposal_is_posted_once_signed_with_its_diff_and_no_secret_even_across_a_restart(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    tmp_path: Path,
    receiver: FakeWebhook,
) -> None:
    path = "/hooks/ops-s3cr3t"
    operator = notifying(
        operator_factory, tmp_path, {"ops": ("webhook", receiver.url(path))}, BOSUN_NOTIFY_EVENTS=BOTH
    )
    scale_task(kubectl, namespace)
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    [request] = posts(receiver, path, 1)

    assert verify(request, SIGNING_KEY.encode()), "the signature verifies as the README tells receivers"
    sent = request.json()
    proposal = status["proposal"]
    assert request.headers["x-bosun-event"] == sent["event"] == "AwaitingApproval"
    assert request.headers["x-bosun-delivery"] == sent["deliveryId"]
    uid = get(kubectl, namespace, "agenttask", "scale-web")["metadata"]["uid"]
    assert sent["task"] == {"namespace": namespace, "name": "scale-web", "uid": uid}
    assert sent["requester"]["user"] == "bob"
    assert (sent["proposal"]["revision"], sent["proposal"]["hash"]) == (1, proposal["hash"])
    [step] = sent["proposal"]["steps"]
    assert step["tool"] == "k8s_scale"
    assert step["diff"] == proposal["steps"][0]["diff"]
    assert "replicas: 5" in step["diff"], "the approver sees what changes"
    assert f"planHash: {proposal['hash']}" in sent["approve"]["grant"]
    assert sent["approve"]["annotate"] == f"kubectl -n {namespace} annotate agenttask scale-web approve=true"
    assert SIGNING_KEY not in request.body.decode()

    # A restart lists the task again: the proposal was notified already and is not notified twice.
    operator.kill()
    operator.start()
    apply(kubectl, namespace, grant_doc("ok", "scale-web", proposal["hash"]), user="alice")
    assert (
        wait_phase(kubectl, namespace, "scale-web", "Succeeded", "Failed", timeout=120)["phase"]
        == "Succeeded"
    )
    received = posts(receiver, path, 2)
    assert [r.json()["event"] for r in received] == ["AwaitingApproval", "Succeeded"]
    assert received[1].json()["proposal"]["hash"] == proposal["hash"], "which proposal ran"
    assert "s3cr3t" not in operator.log.read_text(), "no URL or key in the operator's log"


def test_a_failing_receiver_gets_retries_and_the_task_is_unaffected(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    tmp_path: Path,
    receiver: FakeWebhook,
) -> None:
    path = "/hooks/flaky-s3cr3t"
    receiver.answer(path, 500, 502, 503)
    operator = notifying(operator_factory, tmp_path, {"flaky": ("webhook", receiver.url(path))})
    scale_task(kubectl, namespace)

    attempts = posts(receiver, path, 4)
    logged(operator, "to sink flaky delivered (attempt 4 of 6)")
    assert len({a.headers["x-bosun-delivery"] for a in attempts}) == 1, "one notification, retried"
    assert all(verify(a, SIGNING_KEY.encode()) for a in attempts), "each attempt signed anew"
    assert "to sink flaky failed (attempt 1 of 6: HTTP 500" in operator.log.read_text()
    status = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")
    assert status["proposal"]["revision"] == 1, "nothing about the task changed"

    # Approved with the very command the notification gave.
    command = shlex.split(attempts[-1].json()["approve"]["annotate"])
    assert command[0] == "kubectl"
    kubectl(*command[1:], user="alice")
    assert (
        wait_phase(kubectl, namespace, "scale-web", "Succeeded", "Failed", timeout=120)["phase"]
        == "Succeeded"
    )


def test_receivers_that_never_answer_or_are_gone_hold_up_nothing_and_are_logged(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    tmp_path: Path,
    receiver: FakeWebhook,
) -> None:
    slow, gone = "/hooks/slow-s3cr3t", "/hooks/gone-s3cr3t"
    receiver.answer(slow, HANG, HANG)
    operator = notifying(
        operator_factory,
        tmp_path,
        {"slow": ("webhook", receiver.url(slow)), "gone": ("webhook", receiver.refused_url(gone))},
        BOSUN_NOTIFY_TIMEOUT_SECONDS="8",
        BOSUN_NOTIFY_ATTEMPTS="2",
    )
    scale_task(kubectl, namespace)
    proposal = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")["proposal"]
    apply(kubectl, namespace, grant_doc("ok", "scale-web", proposal["hash"]), user="alice")
    assert (
        wait_phase(kubectl, namespace, "scale-web", "Succeeded", "Failed", timeout=120)["phase"]
        == "Succeeded"
    )
    assert "to sink slow was not delivered" not in operator.log.read_text(), (
        "the task went through approval, execution and verification while the slow sink still held its "
        "first notification"
    )
    logged(operator, "to sink gone was not delivered (attempt 2 of 2: ConnectError")
    logged(operator, "to sink slow was not delivered (attempt 2 of 2: no answer within 8s); given up")
    assert "s3cr3t" not in operator.log.read_text()


def test_slack_and_teams_get_their_own_message_shapes(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    tmp_path: Path,
    receiver: FakeWebhook,
) -> None:
    slack_path, teams_path = "/services/T0/B0/s3cr3t", "/workflows/teams-s3cr3t"
    sinks = {"chat": ("slack", receiver.url(slack_path)), "team": ("teams", receiver.url(teams_path))}
    notifying(operator_factory, tmp_path, sinks)
    scale_task(kubectl, namespace)
    plan_hash = wait_phase(kubectl, namespace, "scale-web", "AwaitingApproval")["proposal"]["hash"]

    [slack] = posts(receiver, slack_path, 1)
    message = slack.json()
    assert plan_hash in message["text"], "the notification text names the proposal"
    assert message["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": f"Approval needed: AgentTask {namespace}/scale-web"},
    }
    assert any("`k8s_scale`" in b.get("text", {}).get("text", "") for b in message["blocks"])
    assert "x-bosun-signature" not in slack.headers, "Slack authenticates the sender by its URL"

    [teams] = posts(receiver, teams_path, 1)
    [attachment] = teams.json()["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    facts = {f["title"]: f["value"] for f in next(e for e in card["body"] if e["type"] == "FactSet")["facts"]}
    assert (facts["Plan hash"], facts["Revision"]) == (plan_hash, "1")


def test_a_rotated_password_is_in_no_notification(
    kubectl: Any,
    namespace: str,
    users: None,
    operator_factory: Callable[..., Operator],
    tmp_path: Path,
    receiver: FakeWebhook,
    llm: FakeLLM,  # noqa: F811  (the fixture imported above)
) -> None:
    """As tests/e2e/test_secrets.py: the model proposes a new password for Secret db (and repeats it in its
    own words); every sink is told of the proposal and of the success, and no message carries it."""
    kubectl("-n", namespace, "create", "secret", "generic", "db", f"--from-literal=password={OLD_PASSWORD}")
    script_rotation(llm, namespace)
    paths = {"ops": "/hooks/ops-s3cr3t", "chat": "/services/s3cr3t", "team": "/workflows/s3cr3t"}
    kinds = {"ops": "webhook", "chat": "slack", "team": "teams"}
    operator = notifying(
        lambda **env: with_model(operator_factory, llm, **env),
        tmp_path,
        {name: (kinds[name], receiver.url(path)) for name, path in paths.items()},
        BOSUN_NOTIFY_EVENTS=BOTH,
    )
    apply(
        kubectl, namespace, task_doc("rotate", f"rotate the password of Secret db in {namespace}"), user="bob"
    )
    proposal = wait_phase(kubectl, namespace, "rotate", "AwaitingApproval")["proposal"]
    apply(kubectl, namespace, grant_doc("rotate-ok", "rotate", proposal["hash"]), user="alice")
    assert (
        wait_phase(kubectl, namespace, "rotate", "Succeeded", "Failed", timeout=120)["phase"] == "Succeeded"
    )

    bodies = {name: [r.body.decode() for r in posts(receiver, path, 2)] for name, path in paths.items()}
    assert "sealed:sha256:" in bodies["ops"][0], "the proposed manifest is sent, with its placeholder"
    for name, sent in bodies.items():
        assert len(sent) == 2, f"sink {name}: one message for the proposal, one for the success"
        for body in sent:
            for form in FORMS:
                assert form not in body, f"the new password ({form}) is in a message to sink {name}"
            assert SIGNING_KEY not in body
    assert "s3cr3t" not in operator.log.read_text()
