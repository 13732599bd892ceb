"""Whether a live object holds what a change set: pure comparisons, no reads.

A change is compared leaf by leaf with the live object: lists of objects are matched by their key
(``name``, ``mountPath``, ``containerPort``, ...), other lists in order; quantities compare by value
(``0.5`` = ``500m``); strategic-merge-patch deletions are checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from bosun.steps.verify.probes.base import LISTED, Verdict, show

LIST_KEYS = ("name", "mountPath", "devicePath", "containerPort", "port", "ip")
"""Fields that identify an item of a list of objects (strategic-merge keys), tried in this order; a key
is used only when it is unique among the expected and the live items."""
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$"
)
_SUFFIX = {
    **{s: Decimal(1024) ** (i + 1) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))},
    **{s: Decimal(10) ** e for s, e in (("n", -9), ("u", -6), ("m", -3), ("k", 3), ("M", 6), ("G", 9))},
    **{s: Decimal(10) ** e for s, e in (("T", 12), ("P", 15), ("E", 18))},
}


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""A field the live object does not have (distinct from an explicit null)."""


@dataclass
class Comparison:
    """What a comparison found: leaves that differ, leaves it could not confirm, and leaves compared."""

    differences: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    checked: int = 0

    def verdict(self, held: str) -> Verdict:
        """``held`` says what holds when nothing differs and everything was confirmed."""
        if self.differences:
            return "failed", _listing(self.differences)
        if self.unconfirmed:
            return "unsure", _listing(self.unconfirmed)
        return "passed", held


def _listing(items: list[str]) -> str:
    more = f"; and {len(items) - LISTED} more" if len(items) > LISTED else ""
    return "; ".join(items[:LISTED]) + more


def is_absent(value: Any) -> bool:
    return value is MISSING or value is None


def join_path(path: str, key: Any) -> str:
    if path.startswith("/"):
        return f"{path}/{key}"
    text = str(key)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        text = f'"{text}"'
    return f"{path}.{text}" if path else text


def quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (``500m``, ``1Gi``, ``0.5``, ``1e3``) as a number; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        return None
    number, exponent, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation:
        return None
    if exponent is not None:
        return amount * Decimal(10) ** int(exponent)
    return amount * _SUFFIX[suffix] if suffix else amount


def same_value(want: Any, got: Any) -> bool:
    """Equal as the API server stores them: exactly, or as the same quantity (it normalises ``0.5`` to
    ``500m`` and ``1024Mi`` to ``1Gi``)."""
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if want == got:
        return True
    a, b = quantity(want), quantity(got)
    return a is not None and a == b


def _only_removals(want: Any) -> bool:
    """Whether ``want`` asks for nothing to be present (nulls, empty maps and lists, deletions)."""
    if want is None:
        return True
    if isinstance(want, dict):
        if want.get("$patch") == "delete":
            return True
        return all(_only_removals(v) for k, v in want.items() if not str(k).startswith("$"))
    if isinstance(want, list):
        return all(isinstance(i, dict) and _only_removals(i) for i in want)
    return False


def compare_tree(want: Any, got: Any, path: str, out: Comparison) -> None:
    """Record in ``out`` where the live ``got`` does not hold what ``want`` sets (``None``: absent)."""
    if want is None:
        out.checked += 1
        if not is_absent(got):
            out.differences.append(f"{path}: still {show(got)}; the change removes it")
    elif isinstance(want, dict):
        _compare_map(want, got, path, out)
    elif isinstance(want, list):
        _compare_list(want, got, path, out)
    else:
        out.checked += 1
        if is_absent(got):
            out.differences.append(
                f"{path}: set to {show(want)} by the change, but the live object has no such field "
                "(the API server dropped it, or it was removed since)"
            )
        elif not same_value(want, got):
            out.differences.append(f"{path}: {show(got)}, expected {show(want)}")


def _compare_map(want: dict[str, Any], got: Any, path: str, out: Comparison) -> None:
    if want.get("$patch") == "delete":
        out.checked += 1
        if not is_absent(got):
            out.differences.append(f"{path}: still present; the change deletes it")
        return
    if is_absent(got):
        if not _only_removals(want):
            out.checked += 1
            out.differences.append(f"{path}: absent in the live object, though the change sets fields there")
        return
    if not isinstance(got, dict):
        out.checked += 1
        out.differences.append(f"{path}: {show(got)} in the live object, expected an object")
        return
    for key, value in want.items():
        if str(key).startswith("$"):
            _directive(str(key), value, got, path, out)
        else:
            compare_tree(value, got.get(key, MISSING), join_path(path, key), out)


def _directive(key: str, value: Any, got: dict[str, Any], path: str, out: Comparison) -> None:
    """Strategic-merge-patch directives: deletions are checked, ordering and retention hints need no
    check (the fields they keep are compared anyway), anything else is reported as not checked."""
    if key == "$patch" and value in ("replace", "merge"):
        return
    if key.startswith("$setElementOrder/") or key == "$retainKeys":
        return
    if key.startswith("$deleteFromPrimitiveList/") and isinstance(value, list):
        name = key.split("/", 1)[1]
        live = got.get(name)
        for item in value:
            out.checked += 1
            if isinstance(live, list) and item in live:
                out.differences.append(
                    f"{join_path(path, name)}: still contains {show(item)}; the change removes it"
                )
        return
    out.unconfirmed.append(f"{path or '(object)'}: patch directive {key} is not checked")


def _is_directive(item: Any) -> bool:
    return isinstance(item, dict) and bool(item) and all(str(k).startswith("$") for k in item)


def _list_key(items: list[Any], got: list[Any]) -> str | None:
    for key in LIST_KEYS:
        wanted = [i.get(key) for i in items if isinstance(i, dict)]
        if len(wanted) != len(items) or not all(isinstance(v, str | int) for v in wanted):
            continue
        live = [i[key] for i in got if isinstance(i, dict) and isinstance(i.get(key), str | int)]
        if len(set(wanted)) == len(wanted) and len(set(live)) == len(live):
            return key
    return None


def covers(want: Any, got: Any) -> Comparison | None:
    """The comparison of one list item with one live item, or None when they do not match."""
    trial = Comparison()
    compare_tree(want, got, "", trial)
    return None if trial.differences or trial.unconfirmed else trial


def _compare_list(want: list[Any], got: Any, path: str, out: Comparison) -> None:
    items = [i for i in want if not _is_directive(i)]
    if is_absent(got):
        if not _only_removals(items):
            out.checked += 1
            out.differences.append(
                f"{path}: absent in the live object, though the change sets {len(items)} item(s)"
            )
        return
    if not isinstance(got, list):
        out.checked += 1
        out.differences.append(f"{path}: {show(got)} in the live object, expected a list")
        return
    key = _list_key(items, got)
    if key is not None:
        live = {i[key]: i for i in got if isinstance(i, dict) and key in i}
        for item in items:
            label = f"{path}[{item[key]}]" if key == "name" else f"{path}[{key}={item[key]}]"
            compare_tree(item, live.get(item[key], MISSING), label, out)
        return
    if len(items) == len(got):
        for index, (item, live_item) in enumerate(zip(items, got, strict=True)):
            compare_tree(item, live_item, f"{path}[{index}]", out)
        return
    if not items:
        out.checked += 1
        out.differences.append(f"{path}: {len(got)} item(s) in the live object; the change empties the list")
        return
    # Lengths differ (a set-like list others add to, such as finalizers): every item, in order.
    position = 0
    for index, item in enumerate(items):
        match = None
        while match is None and position < len(got):
            match = covers(item, got[position])
            position += 1
        if match is None:
            out.checked += 1
            out.differences.append(
                f"{path}[{index}]: no item of the live list ({len(got)} items) matches {show(item)}"
            )
            return
        out.checked += match.checked
