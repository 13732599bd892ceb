"""Whether an applied manifest, a merge or strategic patch, or a JSON patch took effect: pure.

Fields the server owns, and ``status`` (which controllers own and server-side apply ignores), are skipped;
Secret values are compared by digest (``secret_values``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bosun.steps.verify.probes.base import show
from bosun.steps.verify.probes.compare import MISSING, Comparison, compare_tree, covers, is_absent
from bosun.steps.verify.probes.secret_values import compare_secret, is_secret, secret_bytes, split_secret

SERVER_OWNED_METADATA = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "selfLink",
        "namespace",  # the tools place objects in the call's namespace; the read is made there
    }
)


def _compare_fields(want: Mapping[str, Any], live: Mapping[str, Any], *, secret: bool) -> Comparison:
    out = Comparison()
    fields = dict(want)
    if secret:
        fields, values = split_secret(fields, out)
        compare_secret(values, live, out)
    meta = fields.get("metadata")
    if isinstance(meta, dict):
        fields["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_OWNED_METADATA}
    compare_tree(fields, live, "", out)
    return out


def compare_applied(doc: Mapping[str, Any], live: Mapping[str, Any]) -> Comparison:
    """Whether the live object holds every leaf of an applied document (server-owned metadata and
    ``status`` aside)."""
    fields = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "status")}
    return _compare_fields(fields, live, secret=is_secret(doc))


def compare_patch(patch: Mapping[str, Any], live: Mapping[str, Any]) -> Comparison:
    """Whether a merge or strategic patch took effect: every set leaf holds, every ``null`` is gone."""
    return _compare_fields(patch, live, secret=is_secret(live))


def _pointer(path: Any) -> list[str] | None:
    if not isinstance(path, str) or (path and not path.startswith("/")):
        return None
    return [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]] if path else []


def _pointer_text(tokens: list[str]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens) or "(whole object)"


def _related(a: list[str], b: list[str]) -> bool:
    """Whether one pointer contains the other, so a later operation overrides an earlier one (``-``
    appends are distinct every time)."""
    return all(x == y and x != "-" for x, y in zip(a, b, strict=False))


def _resolve(obj: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(obj, dict):
            obj = obj.get(token, MISSING)
        elif isinstance(obj, list) and token.isdigit() and int(token) < len(obj):
            obj = obj[int(token)]
        else:
            return MISSING
    return obj


Expectation = tuple[list[str], str, Any]
"""(pointer tokens, operation: add / replace / absent / present, value)."""


def _expectations(ops: list[Any], out: Comparison) -> list[Expectation]:
    """What a JSON patch leaves behind: later operations on the same or a containing path override
    earlier ones; ``test`` sets nothing."""
    found: list[Expectation] = []
    for op in ops:
        name = op.get("op") if isinstance(op, dict) else None
        if name == "test":
            continue
        tokens = _pointer(op.get("path")) if isinstance(op, dict) else None
        if tokens is None:
            out.unconfirmed.append(f"{show(op)}: not a JSON-patch operation with a valid path")
            continue
        new: list[Expectation] = []
        if name in ("add", "replace"):
            new.append((tokens, str(name), op.get("value")))
        elif name == "remove":
            new.append((tokens, "absent", None))
        elif name in ("move", "copy"):
            source = _pointer(op.get("from"))
            if name == "move" and source is not None:
                new.append((source, "absent", None))
            new.append((tokens, "present", None))
        else:
            out.unconfirmed.append(f"{_pointer_text(tokens)}: unknown JSON-patch operation {name!r}")
            continue
        for tokens_new, _, _ in new:
            found = [e for e in found if not _related(e[0], tokens_new)]
        found.extend(new)
    return found


def _json_secret(
    tokens: list[str], operation: str, value: Any, live: Mapping[str, Any], out: Comparison
) -> None:
    section = tokens[0]
    if operation == "absent" and len(tokens) == 2 and section == "data":
        compare_secret({tokens[1]: None}, live, out)
    elif operation in ("add", "replace") and len(tokens) == 2:
        compare_secret(secret_bytes(section, {tokens[1]: value}, out), live, out)
    elif operation in ("add", "replace") and len(tokens) == 1:
        compare_secret(secret_bytes(section, value, out), live, out)
    else:
        out.unconfirmed.append(f"{_pointer_text(tokens)} of a Secret ({operation})")


def compare_json_patch(ops: list[Any], live: Mapping[str, Any]) -> Comparison:
    """Whether a JSON patch took effect: ``add``/``replace`` values present, ``remove``d (and ``move``d
    from) paths absent, ``move``/``copy`` targets present. A list item removed by position cannot be told
    from the item that moved into its place: it is reported unconfirmed."""
    out = Comparison()
    secret = is_secret(live)
    for tokens, operation, value in _expectations(ops, out):
        pointer = _pointer_text(tokens)
        if secret and tokens and tokens[0] in ("data", "stringData"):
            _json_secret(tokens, operation, value, live, out)
            continue
        if not tokens:
            if operation in ("add", "replace"):
                compare_tree(value, live, "", out)
            else:
                out.unconfirmed.append(f"{pointer}: {operation}")
            continue
        parent, last = _resolve(live, tokens[:-1]), tokens[-1]
        if isinstance(parent, list):
            _list_expectation(parent, last, operation, value, pointer, out)
            continue
        got = parent.get(last, MISSING) if isinstance(parent, dict) else MISSING
        if operation in ("add", "replace"):
            compare_tree(value, got, pointer, out)
            continue
        out.checked += 1
        if operation == "absent" and not is_absent(got):
            out.differences.append(f"{pointer}: still {show(got)}; the patch removes it")
        elif operation == "present" and is_absent(got):
            out.differences.append(f"{pointer}: absent in the live object; the patch puts a value there")
    return out


def _list_expectation(
    parent: list[Any], last: str, operation: str, value: Any, pointer: str, out: Comparison
) -> None:
    index = int(last) if last.isdigit() else None
    if operation == "add":
        match = next((m for m in (covers(value, item) for item in parent) if m is not None), None)
        out.checked += match.checked if match else 1
        if match is None:
            out.differences.append(f"{pointer}: no item of the live list matches {show(value)}")
    elif operation == "replace" and index is not None:
        compare_tree(value, parent[index] if index < len(parent) else MISSING, pointer, out)
    elif operation == "present" and index is not None:
        out.checked += 1
        if index >= len(parent):
            out.differences.append(f"{pointer}: the live list has only {len(parent)} item(s)")
    else:
        out.unconfirmed.append(
            f"{pointer} (a list item removed by position cannot be told apart from the one that moved up)"
        )
