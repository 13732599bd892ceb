"""The webhook signature: a known vector, and a receiver's check (``tests.fakes.webhook.verify``, written
from the README) accepting what the operator signs and refusing a changed body, another key, or an old
timestamp (a replay)."""

from __future__ import annotations

import time

from bosun.notify.signature import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, signed_headers

from tests.fakes.webhook import Received, verify

KEY = b"k3y-of-at-least-32-bytes-for-the-test"
BODY = b'{"a":1}'


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    # printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'k3y-of-at-least-32-bytes-for-the-test'
    expected = "579583c3cf1425909e521d6017045ace6070a8431b18cf59a361d57b7039ed2f"
    assert signature(KEY, 1_700_000_000, BODY) == f"sha256={expected}"


def _request(body: bytes, headers: dict[str, str]) -> Received:
    return Received("/hook", {name.lower(): value for name, value in headers.items()}, body)


def test_a_receiver_accepts_what_is_signed_and_refuses_changes_other_keys_and_replays() -> None:
    now = int(time.time())
    headers = signed_headers(KEY, now, BODY)
    assert set(headers) == {SIGNATURE_HEADER, TIMESTAMP_HEADER}
    assert verify(_request(BODY, headers), KEY)
    assert not verify(_request(b'{"a":2}', headers), KEY), "a changed body must not verify"
    assert not verify(_request(BODY, headers), b"another-key-of-at-least-32-bytes-long"), "another key"
    old = signed_headers(KEY, now - 600, BODY)
    assert not verify(_request(BODY, old), KEY), "a request signed ten minutes ago is a replay"
    moved = {**old, TIMESTAMP_HEADER: str(now)}
    assert not verify(_request(BODY, moved), KEY), "a replay with a fresh timestamp must not verify"
