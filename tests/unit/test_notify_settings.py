"""Notification settings: what the administrator writes, read strictly at start, every mistake named with
what to do; the Secret files read and checked without ever quoting them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bosun.config import OperatorConfig
from bosun.notify.settings import NotifySettings

SLACK_URL = "https://hooks.slack.example/services/T0/B0/s3cr3t-path"
SIGNING_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def secret_dir(tmp_path: Path) -> Path:
    """The notification Secret as the kubelet mounts it: one file per key."""
    files = {
        "ops.url": "https://tickets.example/hooks/bosun\n",
        "ops.signing-key": SIGNING_KEY + "\n",
        "chat.url": SLACK_URL,
    }
    for key, value in files.items():
        (tmp_path / key).write_text(value)
    return tmp_path


def _env(secret_dir: Path, sinks: object, **more: str) -> dict[str, str]:
    return {"BOSUN_NOTIFY_SINKS": json.dumps(sinks), "BOSUN_NOTIFY_SECRET_DIR": str(secret_dir), **more}


def test_no_sinks_means_no_notifications() -> None:
    assert OperatorConfig.from_env({}).notify == NotifySettings()
    assert NotifySettings.from_env({"BOSUN_NOTIFY_SINKS": " "}).sinks == ()


def test_sinks_take_the_default_events_unless_they_list_their_own(secret_dir: Path) -> None:
    sinks = [
        {"name": "ops", "type": "webhook"},
        {"name": "chat", "type": "slack", "events": ["Failed", "Expired"]},
    ]
    config = OperatorConfig.from_env(
        _env(secret_dir, sinks, BOSUN_NOTIFY_EVENTS="AwaitingApproval,Succeeded")
    )
    ops, chat = config.notify.sinks
    assert (ops.name, ops.kind, ops.events) == (
        "ops",
        "webhook",
        frozenset({"AwaitingApproval", "Succeeded"}),
    )
    assert (chat.name, chat.kind, chat.events) == ("chat", "slack", frozenset({"Failed", "Expired"}))
    assert ops.url() == "https://tickets.example/hooks/bosun"  # blanks and the newline of the file dropped
    assert ops.signing_key() == SIGNING_KEY.encode()
    assert chat.url() == SLACK_URL
    alone = NotifySettings.from_env(_env(secret_dir, sinks[:1]))
    assert alone.sinks[0].events == frozenset({"AwaitingApproval"}), "a proposal awaiting approval by default"


@pytest.mark.parametrize(
    ("sinks", "refusal"),
    [
        ("[{", "BOSUN_NOTIFY_SINKS is not JSON"),
        ({"name": "ops"}, "BOSUN_NOTIFY_SINKS must be a JSON list of sinks"),
        (["ops"], "BOSUN_NOTIFY_SINKS[0] is not an object"),
        (
            [{"name": "ops", "type": "webhook", "url": "https://x"}],
            "BOSUN_NOTIFY_SINKS[0] has unknown field(s) url",
        ),
        ([{"name": "Ops_1", "type": "webhook"}], "BOSUN_NOTIFY_SINKS[0].name='Ops_1' is not a sink name"),
        (
            [{"name": "ops", "type": "email"}],
            "BOSUN_NOTIFY_SINKS[0].type='email' is not one of webhook, slack",
        ),
        ([{"name": "ops", "type": "webhook", "events": []}], "BOSUN_NOTIFY_SINKS[0].events must list events"),
        (
            [{"name": "ops", "type": "webhook", "events": ["Executing"]}],
            "BOSUN_NOTIFY_SINKS[0].events: 'Executing' is not an event to notify",
        ),
        ([{"name": "ops", "type": "webhook"}, {"name": "ops", "type": "slack"}], "names sink ops twice"),
    ],
)
def test_mistakes_in_the_sinks_stop_the_operator_saying_what_to_fix(
    secret_dir: Path, sinks: object, refusal: str
) -> None:
    env = _env(secret_dir, sinks)
    if isinstance(sinks, str):
        env["BOSUN_NOTIFY_SINKS"] = sinks
    with pytest.raises(ValueError, match=re.escape(refusal)):
        OperatorConfig.from_env(env)


@pytest.mark.parametrize(
    ("variable", "value", "refusal"),
    [
        (
            "BOSUN_NOTIFY_EVENTS",
            "AwaitingApproval,Done",
            "BOSUN_NOTIFY_EVENTS: 'Done' is not an event to notify",
        ),
        (
            "BOSUN_NOTIFY_TIMEOUT_SECONDS",
            "0",
            "BOSUN_NOTIFY_TIMEOUT_SECONDS='0' is not a number from 0.1 to 300",
        ),
        ("BOSUN_NOTIFY_ATTEMPTS", "2.5", "BOSUN_NOTIFY_ATTEMPTS='2.5' is not a whole number"),
        ("BOSUN_NOTIFY_ATTEMPTS", "many", "BOSUN_NOTIFY_ATTEMPTS='many' is not a number from 1 to 20"),
        ("BOSUN_NOTIFY_BACKOFF_SECONDS", "-1", "BOSUN_NOTIFY_BACKOFF_SECONDS='-1' is not a number"),
    ],
)
def test_mistakes_in_the_other_settings_stop_the_operator(
    secret_dir: Path, variable: str, value: str, refusal: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(refusal)):
        NotifySettings.from_env(_env(secret_dir, [{"name": "ops", "type": "webhook"}], **{variable: value}))


@pytest.mark.parametrize(
    ("key", "content", "refusal"),
    [
        ("ops.url", None, "ops.url is missing; add the key ops.url to the notification Secret mounted at"),
        ("ops.signing-key", None, "add the key ops.signing-key to the notification Secret"),
        (
            "ops.url",
            "hooks.example/s3cr3t",
            "does not hold an http(s) URL; put the receiver's URL under the key",
        ),
        ("ops.signing-key", "s3cr3t-short", "holds 12 bytes, and a signing key needs at least 32"),
    ],
)
def test_a_missing_or_unusable_secret_file_is_named_and_never_quoted(
    secret_dir: Path, key: str, content: str | None, refusal: str
) -> None:
    if content is None:
        (secret_dir / key).unlink()
    else:
        (secret_dir / key).write_text(content)
    with pytest.raises(ValueError, match=re.escape(refusal)) as raised:
        OperatorConfig.from_env(_env(secret_dir, [{"name": "ops", "type": "webhook"}]))
    assert str(raised.value).startswith("notification sink ops: ")
    assert "s3cr3t" not in str(raised.value), "a Secret's content is never put in a message"
