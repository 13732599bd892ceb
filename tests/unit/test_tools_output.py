"""Output capping, Secret redaction and preview diffs: the pure helpers every tool's output passes through."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta

from bosun_tools.output import (
    LAST_APPLIED,
    ToolOutput,
    age,
    cap_text,
    clean,
    field_changes,
    redact,
    redact_pair,
    table,
    yaml_diff,
)

SECRET_VALUE = "hunter2-very-secret"


def _secret(**extra: object) -> dict[str, object]:
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "db",
            "namespace": "shop",
            "annotations": {LAST_APPLIED: json.dumps({"stringData": {"password": SECRET_VALUE}})},
        },
        "data": {"password": encoded},
        "stringData": {"token": SECRET_VALUE},
        **extra,
    }


def test_cap_text_marks_what_was_dropped() -> None:
    text, cut = cap_text("x" * 100, 40)
    assert cut
    assert text.startswith("x" * 40)
    assert text.endswith("…[truncated 60 bytes]")
    same, cut = cap_text("short", 40)
    assert (same, cut) == ("short", False)


def test_cap_text_tail_keeps_the_end_for_logs() -> None:
    text, cut = cap_text("".join(f"line {i}\n" for i in range(100)), 30, keep="tail")
    assert cut
    assert text.startswith("…[truncated")
    assert text.rstrip().endswith("line 99")


def test_capped_output_records_truncation_of_text_and_diff() -> None:
    out = ToolOutput.capped("a" * 50, cap=10, diff="b" * 5)
    assert out.truncated
    assert "…[truncated 40 bytes]" in out.text
    assert out.diff == "bbbbb"
    assert ToolOutput.capped("ok", cap=10, truncated=True).truncated


def test_redact_secret_replaces_every_value_and_the_last_applied_annotation() -> None:
    out = redact(_secret())
    dumped = json.dumps(out)
    assert SECRET_VALUE not in dumped
    assert base64.b64encode(SECRET_VALUE.encode()).decode() not in dumped
    assert out["data"] == {"password": f"<redacted {len(SECRET_VALUE)} bytes>"}
    assert out["stringData"] == {"token": f"<redacted {len(SECRET_VALUE)} bytes>"}
    assert out["metadata"]["annotations"][LAST_APPLIED].startswith("<redacted ")


def test_redact_does_not_modify_its_input_or_other_kinds() -> None:
    secret = _secret()
    redact(secret)
    assert secret["data"] != {"password": f"<redacted {len(SECRET_VALUE)} bytes>"}
    config_map = {"kind": "ConfigMap", "data": {"k": "visible"}}
    assert redact(config_map) == config_map


def test_redact_typed_and_mixed_lists() -> None:
    item = {k: v for k, v in _secret().items() if k not in ("kind", "apiVersion")}  # list items carry no kind
    typed = redact({"kind": "SecretList", "items": [item]})
    mixed = redact({"kind": "List", "items": [_secret(), {"kind": "ConfigMap", "data": {"a": "b"}}]})
    assert SECRET_VALUE not in json.dumps(typed)
    assert SECRET_VALUE not in json.dumps(mixed)
    assert mixed["items"][1]["data"] == {"a": "b"}
    assert SECRET_VALUE not in json.dumps(redact([_secret()]))
    assert redact(item, "Secret")["data"]["password"].startswith("<redacted")


def test_field_changes_name_the_exact_fields() -> None:
    before = {
        "kind": "Deployment",
        "metadata": {"name": "web", "resourceVersion": "1", "generation": 1, "managedFields": [{}]},
        "spec": {
            "replicas": 3,
            "template": {
                "spec": {"containers": [{"name": "app", "image": "app:1"}, {"name": "log", "image": "l:1"}]}
            },
        },
        "status": {"replicas": 3},
    }
    after = json.loads(json.dumps(before))
    after["metadata"].update(resourceVersion="2", generation=2)
    after["spec"]["replicas"] = 5
    after["spec"]["template"]["spec"]["containers"][1]["image"] = "l:2"
    after["status"]["replicas"] = 5
    assert field_changes(before, after) == [
        "spec.replicas: 3 -> 5",
        "spec.template.spec.containers[log].image: l:1 -> l:2",
    ]
    assert field_changes(None, {"kind": "Pod", "spec": {"x": 1}}) == [
        "kind: (unset) -> Pod",
        "spec.x: (unset) -> 1",
    ]
    assert field_changes({"kind": "Pod"}, None) == ["kind: Pod -> (removed)"]


def test_yaml_diff_drops_server_noise() -> None:
    before = {"kind": "X", "metadata": {"name": "a", "resourceVersion": "1", "uid": "u"}, "spec": {"n": 1}}
    after = {"kind": "X", "metadata": {"name": "a", "resourceVersion": "9", "uid": "u"}, "spec": {"n": 2}}
    diff = yaml_diff(before, after, "x/a")
    assert "-  n: 1" in diff
    assert "+  n: 2" in diff
    assert "resourceVersion" not in diff
    assert "uid" not in diff
    assert clean({"metadata": {"managedFields": [1], "name": "a"}}) == {"metadata": {"name": "a"}}


def test_a_changed_secret_value_shows_its_key_and_a_digest_of_the_new_value_never_the_value() -> None:
    before = _secret()
    after = json.loads(json.dumps(before))
    after["data"]["password"] = base64.b64encode(SECRET_VALUE[::-1].encode()).decode()
    after["stringData"] = {"token": SECRET_VALUE, "api": "t0ken-value"}
    old, new = redact_pair(before, after)
    n = len(SECRET_VALUE)
    short = hashlib.sha256(SECRET_VALUE[::-1].encode()).hexdigest()[:12]
    token = hashlib.sha256(b"t0ken-value").hexdigest()[:12]
    assert field_changes(old, new) == [
        f"data.password: <redacted {n} bytes> -> <redacted {n} bytes, sha256:{short}>",
        f"stringData.api: (unset) -> <redacted 11 bytes, sha256:{token}>",
    ]
    assert SECRET_VALUE[::-1] not in json.dumps(new)
    assert field_changes(*redact_pair(before, before)) == []


def test_table_aligns_columns_and_says_when_nothing_was_found() -> None:
    rows = [["NAME", "READY"], ["web", "2/2"], ["api-server", "0/1"]]
    assert table(rows) == "NAME         READY\nweb          2/2\napi-server   0/1"
    assert table([["NAME", "READY"]]) == "No resources found."


def test_age_is_kubectls_short_form() -> None:
    def stamp(ago: timedelta) -> str:
        return (datetime.now(UTC) - ago).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert age(stamp(timedelta(seconds=30))) in ("30s", "31s")
    assert age(stamp(timedelta(minutes=5, seconds=3))) == "5m"
    assert age(stamp(timedelta(hours=3, minutes=59))) == "3h"
    assert age(stamp(timedelta(days=2, hours=1))) == "2d"
    assert age(None) == "<unknown>"
