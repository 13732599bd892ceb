"""Secret values a change set, compared with the live ones as SHA-256 digests and never shown.

The read tools redact values to ``<redacted N bytes>``, so today a value of the expected size cannot be
confirmed (``unsure``) and one of another size is known to differ.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal

from bosun_tools.output import LAST_APPLIED, redacted_marker

from bosun.steps.verify.probes.compare import Comparison, join_path


def is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def secret_value_state(wanted: bytes, got: Any) -> Literal["same", "different", "unreadable", "absent"]:
    """How a live Secret value (as a read tool returned it) compares with the bytes a change set.

    Readable values are compared as SHA-256 digests. The read tools redact values to ``<redacted N
    bytes>`` (N decoded bytes): a marker of another size proves a different value, one of the same size
    proves nothing (``unreadable``)."""
    if got is None:
        return "absent"
    if got == redacted_marker(len(wanted)):
        return "unreadable"
    try:
        live = base64.b64decode(str(got), validate=True)
    except (binascii.Error, ValueError):
        return "different"  # a redaction marker of another size
    same = hmac.compare_digest(hashlib.sha256(wanted).digest(), hashlib.sha256(live).digest())
    return "same" if same else "different"


def secret_bytes(section: str, values: Any, out: Comparison) -> dict[str, bytes | None]:
    """The bytes each key of a change's ``data`` (base64) or ``stringData`` (plain) section sets."""
    result: dict[str, bytes | None] = {}
    if not isinstance(values, dict):
        if values is not None:
            out.unconfirmed.append(f"{section}: not a map in the change")
        return result
    for key, value in values.items():
        if value is None:
            result[str(key)] = None
        elif section == "stringData":
            result[str(key)] = str(value).encode()
        else:
            try:
                result[str(key)] = base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError):
                out.unconfirmed.append(f"data.{key}: not valid base64 in the change")
    return result


def compare_secret(values: Mapping[str, bytes | None], live: Mapping[str, Any], out: Comparison) -> None:
    """The API server merges ``stringData`` into ``data``, so every value is looked for in ``data``."""
    data = live.get("data")
    stored = data if isinstance(data, dict) else {}
    for key, wanted in values.items():
        path = join_path("data", key)
        out.checked += 1
        got = stored.get(key)
        if wanted is None:
            if got is not None:
                out.differences.append(f"{path}: still set; the change removes it")
            continue
        state = secret_value_state(wanted, got)
        if state == "absent":
            out.differences.append(f"{path}: absent in the live object")
        elif state == "different":
            out.differences.append(f"{path}: differs from the value the change set (values are never shown)")
        elif state == "unreadable":
            out.unconfirmed.append(
                f"{path} (the read tools redact Secret values: the live value has the expected size, "
                "but no digest to compare)"
            )


def split_secret(want: dict[str, Any], out: Comparison) -> tuple[dict[str, Any], dict[str, bytes | None]]:
    """A Secret change without its values (compared by digest instead) and without kubectl's
    last-applied annotation (which holds them, and is redacted when read)."""
    values = {
        **secret_bytes("data", want.get("data"), out),
        **secret_bytes("stringData", want.get("stringData"), out),
    }
    rest = {k: v for k, v in want.items() if k not in ("data", "stringData")}
    meta = rest.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        annotations = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
        rest["metadata"] = {**meta, "annotations": annotations}
    return rest, values
