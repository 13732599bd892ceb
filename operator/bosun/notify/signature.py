"""How a webhook receiver knows a message comes from this operator and is not a replay: pure, no I/O.

Every webhook request carries

- ``X-Bosun-Timestamp``: the Unix time (seconds) of this attempt;
- ``X-Bosun-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with the sink's signing key, of the
  timestamp, a ``.``, and the raw request body, byte for byte as received;
- ``X-Bosun-Delivery``: the notification's id, the same on every attempt (drop repeats by it).

A receiver recomputes the HMAC over ``f"{timestamp}.".encode() + raw_body`` with the shared key, compares
it with a constant-time comparison (``hmac.compare_digest``), and refuses a timestamp more than five
minutes away from its own clock. Signing the timestamp with the body is what makes the window hold: a
captured request cannot be replayed later with a fresh timestamp, and each retry is signed anew with its
own time (the scheme Slack and Stripe use for their own webhooks). Only the generic webhook is signed:
Slack and Teams authenticate the sender by the secret URL itself.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Bosun-Signature"
TIMESTAMP_HEADER = "X-Bosun-Timestamp"
DELIVERY_HEADER = "X-Bosun-Delivery"
EVENT_HEADER = "X-Bosun-Event"
SCHEME = "sha256="


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Bosun-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return SCHEME + digest


def signed_headers(key: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(key, timestamp, body)}
