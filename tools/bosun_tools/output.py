"""What every tool returns, and the helpers that keep outputs small and free of Secret values.

Outputs go to a model (tokens are money) and into AgentTask status (etcd objects are small), so every
text is capped with a visible marker; Secret values must never leave the server (whatever leaves it reaches
a model, logs and etcd), so every read path sends objects through ``redact`` before rendering them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import json
from datetime import UTC, datetime
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field

from bosun_tools.secrets import LAST_APPLIED as LAST_APPLIED  # re-exported: the tools and probes use it
from bosun_tools.secrets import SHORT_DIGEST, digest

DEFAULT_CAP = 16_000
# Fields that change on every write or are owned by the server: showing them in a preview would hide the
# one line a reviewer has to approve.
_NOISE_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")
# Lists whose items carry a unique "name": diffs and change paths address items by name, not position.
_KEYED_LISTS = (
    "containers",
    "initContainers",
    "ephemeralContainers",
    "env",
    "ports",
    "volumes",
    "volumeMounts",
)


class ToolOutput(BaseModel):
    """The one result shape of every Bosun tool, so the operator reads any tool's answer the same way."""

    text: str = Field(description="Human/model-readable result, capped.")
    diff: str | None = Field(default=None, description="Preview of a mutation (preview mode only).")
    truncated: bool = False
    data: dict[str, Any] | None = Field(default=None, description="Small facts for verification.")
    sealed_args: dict[str, Any] | None = Field(
        default=None,
        description="The call's arguments with each secret value replaced by a placeholder (previews only).",
    )

    @classmethod
    def capped(
        cls,
        text: str,
        *,
        cap: int = DEFAULT_CAP,
        keep: Literal["head", "tail"] = "head",
        diff: str | None = None,
        data: dict[str, Any] | None = None,
        truncated: bool = False,
    ) -> ToolOutput:
        """Build an output with ``text`` and ``diff`` capped; ``truncated`` also records earlier cuts
        (for example logs the server already limited)."""
        body, cut = cap_text(text, cap, keep=keep)
        diff_body, diff_cut = cap_text(diff, cap) if diff is not None else (None, False)
        return cls(text=body, diff=diff_body, truncated=truncated or cut or diff_cut, data=data)


def cap_text(text: str, cap: int, *, keep: Literal["head", "tail"] = "head") -> tuple[str, bool]:
    """Cut ``text`` to at most ``cap`` UTF-8 bytes plus a marker that says how much was dropped."""
    raw = text.encode()
    if len(raw) <= cap:
        return text, False
    dropped = len(raw) - cap
    marker = f"…[truncated {dropped} bytes]"
    if keep == "tail":
        return marker + "\n" + raw[-cap:].decode(errors="ignore"), True
    return raw[:cap].decode(errors="ignore") + "\n" + marker, True


# ----- Secret redaction -----------------------------------------------------------------------------------


def redacted_marker(size: int) -> str:
    return f"<redacted {size} bytes>"


def _value_bytes(value: Any, encoded: bool) -> bytes:
    """A Secret value's bytes: base64-decoded from ``data`` (``encoded``), as written otherwise."""
    text = value if isinstance(value, str) else json.dumps(value)
    if encoded:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            pass
    return text.encode()


def is_secret(obj: dict[str, Any], kind_hint: str | None = None) -> bool:
    return (obj.get("kind") or kind_hint) == "Secret"


def redact(obj: Any, kind_hint: str | None = None) -> Any:
    """Return a copy with every Secret value replaced by ``<redacted N bytes>``.

    Works on single objects, typed lists (``SecretList`` items carry no kind), mixed ``List`` objects and
    Events; key names stay visible because people need them to reference a Secret, values never do.
    """
    if isinstance(obj, list):
        return [redact(item, kind_hint) for item in obj]
    if not isinstance(obj, dict):
        return obj
    kind = obj.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
        item_kind = kind[: -len("List")] or None
        out = dict(obj)
        out["items"] = [redact(item, item_kind) for item in obj["items"]]
        return out
    if not is_secret(obj, kind_hint):
        return obj
    out = copy.deepcopy(obj)
    for key in ("data", "binaryData"):
        if isinstance(out.get(key), dict):
            out[key] = {k: redacted_marker(len(_value_bytes(v, True))) for k, v in out[key].items()}
    if isinstance(out.get("stringData"), dict):
        out["stringData"] = {k: redacted_marker(len(str(v).encode())) for k, v in out["stringData"].items()}
    annotations = out.get("metadata", {}).get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        annotations[LAST_APPLIED] = redacted_marker(len(str(annotations[LAST_APPLIED]).encode()))
    return out


def redact_pair(before: Any, after: Any) -> tuple[Any, Any]:
    """Redact two states of one object for a preview. Each Secret value that is new or changes is marked
    with a short SHA-256 digest of its bytes (``<redacted 12 bytes, sha256:1a2b3c4d5e6f>``): an approver
    sees which keys change and can compare the digest with the proposal's placeholder, never the value.
    (Without it, a new value of the same length would redact to the same marker and look unchanged.)"""
    old, new = redact(before), redact(after)
    if before is None and isinstance(after, dict) and is_secret(after):
        before = {}
    if not (isinstance(before, dict) and isinstance(after, dict) and is_secret(after)):
        return old, new
    for key in ("data", "binaryData", "stringData"):
        was, now = before.get(key), after.get(key)
        if not isinstance(now, dict):
            continue
        for item, value in now.items():
            if not (isinstance(was, dict) and was.get(item) == value):
                short = digest(_value_bytes(value, key != "stringData"))[:SHORT_DIGEST]
                new[key][item] = f"{new[key][item][:-1]}, sha256:{short}>"
    return old, new


# ----- rendering and diffs --------------------------------------------------------------------------------


def clean(obj: dict[str, Any], *, for_diff: bool = False) -> dict[str, Any]:
    """Drop managedFields always; for diffs also server-owned noise and status."""
    out = copy.deepcopy(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
        if for_diff:
            for key in _NOISE_METADATA:
                meta.pop(key, None)
            annotations = meta.get("annotations")
            if isinstance(annotations, dict):
                annotations.pop(LAST_APPLIED, None)
                if not annotations:
                    meta.pop("annotations")
    if for_diff:
        out.pop("status", None)
    return out


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
"""PyYAML's safe dumper in C (libyaml, in PyYAML's wheels) where it is available: the same YAML as the
pure-Python one, about six times faster on a Deployment, and a preview dumps the object twice."""


def to_yaml(obj: Any) -> str:
    dumped: str = yaml.dump(
        obj, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000
    )
    return dumped


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(isinstance(i, dict | list) for i in value):
        keyed = prefix.rsplit(".", 1)[-1] in _KEYED_LISTS and all(
            isinstance(i, dict) and "name" in i for i in value
        )
        for index, item in enumerate(value):
            label = item["name"] if keyed else index
            _flatten(item, f"{prefix}[{label}]", out)
    else:
        out[prefix] = value


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def field_changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """One line per changed leaf field, e.g. ``spec.replicas: 3 -> 5``; the exact facts a reviewer
    approves, independent of YAML layout."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    if before:
        _flatten(clean(before, for_diff=True), "", old)
    if after:
        _flatten(clean(after, for_diff=True), "", new)
    lines: list[str] = []
    for path in sorted(set(old) | set(new), key=_path_order(old, new)):
        if path in old and path in new:
            if old[path] != new[path]:
                lines.append(f"{path}: {_scalar(old[path])} -> {_scalar(new[path])}")
        elif path in new:
            lines.append(f"{path}: (unset) -> {_scalar(new[path])}")
        else:
            lines.append(f"{path}: {_scalar(old[path])} -> (removed)")
    return lines


def _path_order(old: dict[str, Any], new: dict[str, Any]) -> Any:
    order = {path: i for i, path in enumerate([*old, *[p for p in new if p not in old]])}
    return lambda path: order[path]


def yaml_diff(
    before: dict[str, Any] | None, after: dict[str, Any] | None, label: str, *, context: int = 2
) -> str:
    """Unified diff of the cleaned YAML of two object states (``None`` = absent)."""
    old = to_yaml(clean(before, for_diff=True)).splitlines() if before else []
    new = to_yaml(clean(after, for_diff=True)).splitlines() if after else []
    lines = difflib.unified_diff(old, new, f"{label} (live)", f"{label} (after)", n=context, lineterm="")
    return "\n".join(lines)


# ----- tables ---------------------------------------------------------------------------------------------


def table(rows: list[list[str]]) -> str:
    """Left-aligned columns like ``kubectl get`` (header first): every toolset renders lists this way so
    the model reads one shape; only a header means nothing was found."""
    if len(rows) <= 1:
        return "No resources found."
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)).rstrip() for r in rows)


def age(stamp: str | None, now: datetime | None = None) -> str:
    """An RFC 3339 timestamp as kubectl's short age (``5m``, ``3d``) at ``now`` (default: this moment):
    what people compare at a glance."""
    if not stamp:
        return "<unknown>"
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"
