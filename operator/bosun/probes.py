"""What objectively confirms the effect of each mutating tool, and how the answers are judged.

``CHECKS`` holds one entry per mutating tool of ``bosun_tools.registry`` (a unit test walks the registry,
so a tool cannot be added without one). A ``Probe`` reads the world only through read-only tools
(``k8s_get``, ``k8s_list``, ``k8s_rollout_status``, ``helm_status``, ``rollouts_status``,
``jenkins_get_build``), as the identity that executed; what it may use of the executed call is its
arguments and the small ``data`` the tool returned (recorded with the step, dropped when over 1 KiB).
Nothing passes on the tool's word or the model's.

A probe answers with a ``Verdict``:

- ``passed``: the check holds;
- ``pending``: not yet (a rollout in progress, an object still finalizing): ask again until the deadline;
- ``failed``: it does not hold, and waiting would not change that (a field the API server dropped, a
  patch reverted since): fail at once rather than sit out the deadline;
- ``unsure``: the tools cannot tell (the output lacks the data, an object too large to read back whole,
  Secret values the read tools redact): fail, saying what could not be confirmed, so a person checks.

The comparisons are pure. An applied manifest is compared leaf by leaf with the live object (fields the
server owns, and ``status``, which controllers own and server-side apply ignores, are skipped); lists of
objects are matched by their key (``name``, ``mountPath``, ``containerPort``, ...), other lists in order;
quantities compare by value (``0.5`` = ``500m``). Secret values are compared only as SHA-256 digests and
never appear in a message; the read tools redact them to ``<redacted N bytes>``, so today a value of the
expected size cannot be confirmed (``unsure``) and one of another size is known to differ.

RBAC objects need no access-review check: changes to ``rbac.authorization.k8s.io`` (and the other groups
of ``bosun.core.scope.DENIED_GROUPS``) are refused before they are proposed, so they are never executed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

import yaml
from bosun_tools.output import LAST_APPLIED, cap_text, redacted_marker
from bosun_tools.registry import defaults_of
from bosun_tools.sealing import COMPARE_TOOL
from bosun_tools.secrets import Placeholder
from bosun_tools.toolsets.rollouts import ROLLOUTS, current_step_index

# The tools' own rules (kubectl drain's pod classes, where a kind keeps its pod template): one copy of each.
from bosun_tools.workloads import dig, drain_plan, pod_spec_path

from bosun.ports.gateway import ToolCallOutcome

Status = Literal["passed", "pending", "failed", "unsure"]
Verdict = tuple[Status, str]

ROLLOUT_WAIT_CAP = 300
"""The rollout-status tool waits at most this long per call (its own bound)."""
SHOW_CAP = 120
"""Bytes of a field value quoted in a message."""
LISTED = 10
"""Differences named in one message; the rest are counted."""
DRAIN_POD_READS = 50
"""Pods left on a drained node that are read one by one; with more, a person checks."""
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
LIST_KEYS = ("name", "mountPath", "devicePath", "containerPort", "port", "ip")
"""Fields that identify an item of a list of objects (strategic-merge keys), tried in this order; a key
is used only when it is unique among the expected and the live items."""
WORKLOAD_KINDS = {
    "deployment": "deployment",
    "deployments": "deployment",
    "deploy": "deployment",
    "statefulset": "statefulset",
    "statefulsets": "statefulset",
    "sts": "statefulset",
    "daemonset": "daemonset",
    "daemonsets": "daemonset",
    "ds": "daemonset",
}
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


class Reader(Protocol):
    """Read-only tool calls as the executing identity, bounded by the verification deadline."""

    async def __call__(self, tool: str, args: dict[str, Any]) -> ToolCallOutcome: ...

    def remaining(self) -> float:
        """Seconds left before the deadline."""
        ...


@dataclass(frozen=True)
class Probe:
    """One objective check of one executed step: its name (what is checked) and how to look."""

    name: str
    look: Callable[[Reader], Awaitable[Verdict]]


Builder = Callable[[dict[str, Any], dict[str, Any] | None], list[Probe]]


# ----- pure comparisons -------------------------------------------------------------------------------------


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


def _show(value: Any) -> str:
    return cap_text(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str), SHOW_CAP)[0]


def _absent(value: Any) -> bool:
    return value is MISSING or value is None


def _join(path: str, key: Any) -> str:
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


def _compare(want: Any, got: Any, path: str, out: Comparison) -> None:
    """Record in ``out`` where the live ``got`` does not hold what ``want`` sets (``None``: absent)."""
    if want is None:
        out.checked += 1
        if not _absent(got):
            out.differences.append(f"{path}: still {_show(got)}; the change removes it")
    elif isinstance(want, dict):
        _compare_map(want, got, path, out)
    elif isinstance(want, list):
        _compare_list(want, got, path, out)
    else:
        out.checked += 1
        if _absent(got):
            out.differences.append(
                f"{path}: set to {_show(want)} by the change, but the live object has no such field "
                "(the API server dropped it, or it was removed since)"
            )
        elif not same_value(want, got):
            out.differences.append(f"{path}: {_show(got)}, expected {_show(want)}")


def _compare_map(want: dict[str, Any], got: Any, path: str, out: Comparison) -> None:
    if want.get("$patch") == "delete":
        out.checked += 1
        if not _absent(got):
            out.differences.append(f"{path}: still present; the change deletes it")
        return
    if _absent(got):
        if not _only_removals(want):
            out.checked += 1
            out.differences.append(f"{path}: absent in the live object, though the change sets fields there")
        return
    if not isinstance(got, dict):
        out.checked += 1
        out.differences.append(f"{path}: {_show(got)} in the live object, expected an object")
        return
    for key, value in want.items():
        if str(key).startswith("$"):
            _directive(str(key), value, got, path, out)
        else:
            _compare(value, got.get(key, MISSING), _join(path, key), out)


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
                    f"{_join(path, name)}: still contains {_show(item)}; the change removes it"
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


def _covers(want: Any, got: Any) -> Comparison | None:
    """The comparison of one list item with one live item, or None when they do not match."""
    trial = Comparison()
    _compare(want, got, "", trial)
    return None if trial.differences or trial.unconfirmed else trial


def _compare_list(want: list[Any], got: Any, path: str, out: Comparison) -> None:
    items = [i for i in want if not _is_directive(i)]
    if _absent(got):
        if not _only_removals(items):
            out.checked += 1
            out.differences.append(
                f"{path}: absent in the live object, though the change sets {len(items)} item(s)"
            )
        return
    if not isinstance(got, list):
        out.checked += 1
        out.differences.append(f"{path}: {_show(got)} in the live object, expected a list")
        return
    key = _list_key(items, got)
    if key is not None:
        live = {i[key]: i for i in got if isinstance(i, dict) and key in i}
        for item in items:
            label = f"{path}[{item[key]}]" if key == "name" else f"{path}[{key}={item[key]}]"
            _compare(item, live.get(item[key], MISSING), label, out)
        return
    if len(items) == len(got):
        for index, (item, live_item) in enumerate(zip(items, got, strict=True)):
            _compare(item, live_item, f"{path}[{index}]", out)
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
            match = _covers(item, got[position])
            position += 1
        if match is None:
            out.checked += 1
            out.differences.append(
                f"{path}[{index}]: no item of the live list ({len(got)} items) matches {_show(item)}"
            )
            return
        out.checked += match.checked


# ----- Secret values: digests only, never shown -------------------------------------------------------------


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


def _secret_bytes(section: str, values: Any, out: Comparison) -> dict[str, bytes | None]:
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


def _compare_secret(values: Mapping[str, bytes | None], live: Mapping[str, Any], out: Comparison) -> None:
    """The API server merges ``stringData`` into ``data``, so every value is looked for in ``data``."""
    data = live.get("data")
    stored = data if isinstance(data, dict) else {}
    for key, wanted in values.items():
        path = _join("data", key)
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


def _split_secret(want: dict[str, Any], out: Comparison) -> tuple[dict[str, Any], dict[str, bytes | None]]:
    """A Secret change without its values (compared by digest instead) and without kubectl's
    last-applied annotation (which holds them, and is redacted when read)."""
    values = {
        **_secret_bytes("data", want.get("data"), out),
        **_secret_bytes("stringData", want.get("stringData"), out),
    }
    rest = {k: v for k, v in want.items() if k not in ("data", "stringData")}
    meta = rest.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
        annotations = {k: v for k, v in meta["annotations"].items() if k != LAST_APPLIED}
        rest["metadata"] = {**meta, "annotations": annotations}
    return rest, values


def _compare_fields(want: Mapping[str, Any], live: Mapping[str, Any], *, secret: bool) -> Comparison:
    out = Comparison()
    fields = dict(want)
    if secret:
        fields, values = _split_secret(fields, out)
        _compare_secret(values, live, out)
    meta = fields.get("metadata")
    if isinstance(meta, dict):
        fields["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_OWNED_METADATA}
    _compare(fields, live, "", out)
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
            out.unconfirmed.append(f"{_show(op)}: not a JSON-patch operation with a valid path")
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
        _compare_secret({tokens[1]: None}, live, out)
    elif operation in ("add", "replace") and len(tokens) == 2:
        _compare_secret(_secret_bytes(section, {tokens[1]: value}, out), live, out)
    elif operation in ("add", "replace") and len(tokens) == 1:
        _compare_secret(_secret_bytes(section, value, out), live, out)
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
                _compare(value, live, "", out)
            else:
                out.unconfirmed.append(f"{pointer}: {operation}")
            continue
        parent, last = _resolve(live, tokens[:-1]), tokens[-1]
        if isinstance(parent, list):
            _list_expectation(parent, last, operation, value, pointer, out)
            continue
        got = parent.get(last, MISSING) if isinstance(parent, dict) else MISSING
        if operation in ("add", "replace"):
            _compare(value, got, pointer, out)
            continue
        out.checked += 1
        if operation == "absent" and not _absent(got):
            out.differences.append(f"{pointer}: still {_show(got)}; the patch removes it")
        elif operation == "present" and _absent(got):
            out.differences.append(f"{pointer}: absent in the live object; the patch puts a value there")
    return out


def _list_expectation(
    parent: list[Any], last: str, operation: str, value: Any, pointer: str, out: Comparison
) -> None:
    index = int(last) if last.isdigit() else None
    if operation == "add":
        match = next((m for m in (_covers(value, item) for item in parent) if m is not None), None)
        out.checked += match.checked if match else 1
        if match is None:
            out.differences.append(f"{pointer}: no item of the live list matches {_show(value)}")
    elif operation == "replace" and index is not None:
        _compare(value, parent[index] if index < len(parent) else MISSING, pointer, out)
    elif operation == "present" and index is not None:
        out.checked += 1
        if index >= len(parent):
            out.differences.append(f"{pointer}: the live list has only {len(parent)} item(s)")
    else:
        out.unconfirmed.append(
            f"{pointer} (a list item removed by position cannot be told apart from the one that moved up)"
        )


# ----- reading the world ------------------------------------------------------------------------------------


def _where(name: str, namespace: str | None) -> str:
    return f"{namespace}/{name}" if namespace else name


def _get_args(kind: str, name: str, namespace: str | None) -> dict[str, Any]:
    args: dict[str, Any] = {"kind": kind, "name": name, "output": "yaml"}
    if namespace:
        args["namespace"] = namespace
    return args


def _not_found(outcome: ToolCallOutcome) -> bool:
    return (outcome.error or "").startswith("NotFound")


def live_object(outcome: ToolCallOutcome) -> dict[str, Any] | Verdict:
    """The object a ``k8s_get`` with ``output=yaml`` returned, or the verdict when there is none: failed
    when it does not exist, unsure when it cannot be read whole."""
    if not outcome.ok:
        if _not_found(outcome):
            return "failed", f"it does not exist ({outcome.error})"
        return "unsure", f"reading it failed: {outcome.error}"
    if outcome.truncated:
        return (
            "unsure",
            "it is larger than k8s_get returns (the output was truncated), so it was not compared",
        )
    try:
        obj = yaml.safe_load(outcome.text)
    except yaml.YAMLError:
        obj = None
    if not isinstance(obj, dict):
        return "unsure", "k8s_get did not return the object as YAML"
    return obj


def _reading(
    tool: str, args: dict[str, Any], judge: Callable[[ToolCallOutcome], Verdict]
) -> Callable[[Reader], Awaitable[Verdict]]:
    async def look(read: Reader) -> Verdict:
        return judge(await read(tool, args))

    return look


def _object_probe(
    name: str, kind: str, obj: str, namespace: str | None, judge: Callable[[dict[str, Any]], Verdict]
) -> Probe:
    """A probe that reads one object with ``k8s_get`` and judges it."""

    def on_outcome(outcome: ToolCallOutcome) -> Verdict:
        live = live_object(outcome)
        return live if isinstance(live, tuple) else judge(live)

    return Probe(name, _reading("k8s_get", _get_args(kind, obj, namespace), on_outcome))


def _known(name: str, verdict: Verdict) -> Probe:
    """A check decided from the executed call's recorded data alone."""

    async def look(read: Reader) -> Verdict:
        return verdict

    return Probe(name, look)


def _unrecorded(name: str, what: str) -> Probe:
    return _known(
        name,
        (
            "unsure",
            f"{what} was not recorded with the step (the tool's output data was missing or over 1 KiB)",
        ),
    )


def workload_kind(kind: str) -> str | None:
    """``deployment``/``statefulset``/``daemonset`` for any spelling of those kinds (``deploy``,
    ``Deployment.apps``, ``sts``), None for other kinds."""
    name, _, group = kind.lower().partition(".")
    return WORKLOAD_KINDS.get(name) if group in ("", "apps") else None


# ----- Kubernetes -------------------------------------------------------------------------------------------


def rollout_verdict(
    data: Mapping[str, Any], *, replicas: int | None = None, images: Mapping[str, Any] | None = None
) -> Verdict:
    """Judge ``k8s_rollout_status`` facts: the spec says what was asked, the rollout is complete and the
    replicas are available."""
    available = data.get("available") or 0
    total = data.get("replicas")
    facts = f"{available}/{total} available"
    if replicas is not None and total != replicas:
        return "failed", f"spec.replicas is {total}, expected {replicas}; {facts}"
    if images is not None and data.get("images") != dict(images):
        return "failed", f"runs images {_show(data.get('images'))}, expected {_show(dict(images))}"
    if not data.get("complete"):
        return "pending", f"rollout not complete: {facts}"
    if replicas is not None and available < replicas:
        return "pending", f"only {facts}"
    return "passed", f"rolled out, {facts}"


def _rollout_probe(
    kind: str,
    name: str,
    namespace: str,
    *,
    replicas: int | None = None,
    images: Mapping[str, Any] | None = None,
) -> Probe:
    """The rollout tool waits by itself: it is given the time left before the deadline."""

    async def look(read: Reader) -> Verdict:
        wait = max(0, min(int(read.remaining()), ROLLOUT_WAIT_CAP))
        args = {"kind": kind, "name": name, "namespace": namespace, "wait_seconds": wait}
        outcome = await read("k8s_rollout_status", args)
        if not outcome.ok:
            return "failed", f"k8s_rollout_status failed: {outcome.error}"
        return rollout_verdict(outcome.data or {}, replicas=replicas, images=images)

    return Probe(f"{kind} {namespace}/{name} rolled out", look)


def _manifest_kind(doc: Mapping[str, Any]) -> str:
    """The kind as k8s_get resolves it within the document's API group (``Deployment.apps``)."""
    group = str(doc.get("apiVersion", "")).rpartition("/")[0]
    return f"{doc['kind']}.{group}" if group else str(doc["kind"])


def _applied_judge(doc: dict[str, Any]) -> Callable[[dict[str, Any]], Verdict]:
    def judge(live: dict[str, Any]) -> Verdict:
        if live.get("apiVersion") != doc.get("apiVersion"):
            return "unsure", (
                f"it reads back as {live.get('apiVersion')}, the manifest is {doc.get('apiVersion')}: "
                "fields can differ between versions"
            )
        result = compare_applied(doc, live)
        return result.verdict(f"all {result.checked} applied fields match the live object")

    return judge


def without_sealed(change: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A Secret change (manifest document or merge patch) without its sealed values, and the SHA-256
    digest each placeholder carries, by data key: those are confirmed by ``sealed_probe``, by digest."""
    rest, digests = dict(change), {}
    for section in ("data", "stringData"):
        values = change.get(section)
        if not isinstance(values, dict):
            continue
        kept = {}
        for key, value in values.items():
            placeholder = Placeholder.parse(value) if isinstance(value, str) else None
            if placeholder is None:
                kept[key] = value
            else:
                digests[str(key)] = placeholder.digest
        rest[section] = kept
    return rest, digests


def sealed_probe(what: str, name: str, namespace: str | None, digests: dict[str, str]) -> Probe:
    """The live Secret holds the approved sealed values: the tool server compares digests, as the identity
    that executed, and shows no value."""

    def on_outcome(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            if _not_found(outcome):
                return "failed", f"it does not exist ({outcome.error})"
            return "unsure", f"comparing its sealed values failed: {outcome.error}"
        states = (outcome.data or {}).get("keys") or {}
        wrong = [
            f"data.{key} {states.get(key, 'not compared')}" for key in digests if states.get(key) != "same"
        ]
        if wrong:
            return "failed", f"{', '.join(wrong)} (compared by digest with the approved value)"
        return "passed", f"the {len(digests)} sealed value(s) hold the approved digests"

    args = {"namespace": namespace, "name": name, "digests": digests}
    return Probe(f"{what} holds the sealed values", _reading(COMPARE_TOOL, args, on_outcome))


def apply_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Every document of the manifest exists and holds its fields; an applied workload also rolls out."""
    try:
        docs = [d for d in yaml.safe_load_all(str(args.get("manifest", ""))) if d]
    except yaml.YAMLError as exc:
        return [_known("applied manifest", ("unsure", f"the manifest cannot be read again: {exc}"))]
    placed = {
        (o.get("kind"), o.get("name")): o.get("namespace")
        for o in (data or {}).get("objects", [])
        if isinstance(o, dict)
    }
    if not docs:
        return [_known("applied manifest", ("unsure", "the manifest holds no document"))]
    probes: list[Probe] = []
    for doc in docs:
        meta = doc.get("metadata") if isinstance(doc, dict) else None
        if (
            not isinstance(doc, dict)
            or not doc.get("kind")
            or not isinstance(meta, dict)
            or not meta.get("name")
        ):
            probes.append(
                _known("applied manifest", ("unsure", f"a document has no kind or name: {_show(doc)}"))
            )
            continue
        kind, name = str(doc["kind"]), str(meta["name"])
        namespace = placed.get((kind, name), meta.get("namespace") or args.get("namespace"))
        what = f"{kind.lower()} {_where(name, namespace)}"
        if is_secret(doc):
            doc, digests = without_sealed(doc)
            if digests:
                probes.append(sealed_probe(what, name, namespace, digests))
        probes.append(
            _object_probe(
                f"{what} holds the applied fields", _manifest_kind(doc), name, namespace, _applied_judge(doc)
            )
        )
        workload = workload_kind(_manifest_kind(doc))
        if workload and namespace:
            probes.append(_rollout_probe(workload, name, namespace))
    return probes


def _patched_judge(patch: Any) -> Callable[[dict[str, Any]], Verdict]:
    def judge(live: dict[str, Any]) -> Verdict:
        if isinstance(patch, list):
            result = compare_json_patch(patch, live)
        elif isinstance(patch, dict):
            result = compare_patch(patch, live)
        else:
            return "unsure", f"the patch is neither an object nor a list: {_show(patch)}"
        return result.verdict(f"all {result.checked} patched fields hold")

    return judge


def patch_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Every set leaf holds and every removed one is gone; a patched workload also rolls out."""
    kind, name, namespace = str(args["kind"]), str(args["name"]), args.get("namespace")
    probes = [
        _object_probe(
            f"{kind.lower()} {_where(name, namespace)} patched",
            kind,
            name,
            namespace,
            _patched_judge(args.get("patch")),
        )
    ]
    workload = workload_kind(kind)
    if workload and namespace:
        probes.append(_rollout_probe(workload, name, namespace))
    return probes


def scale_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Workloads roll out to the replica count; other scalable kinds show it in ``spec.replicas``."""
    kind, name, namespace, replicas = (
        str(args["kind"]),
        str(args["name"]),
        str(args["namespace"]),
        args["replicas"],
    )
    workload = workload_kind(kind)
    if workload:
        return [_rollout_probe(workload, name, namespace, replicas=replicas)]

    def judge(live: dict[str, Any]) -> Verdict:
        spec = live.get("spec") or {}
        if "replicas" not in spec:
            return (
                "unsure",
                f"it has no spec.replicas (its scale subresource maps elsewhere); expected {replicas}",
            )
        if spec["replicas"] != replicas:
            return "failed", f"spec.replicas is {spec['replicas']}, expected {replicas}"
        return "passed", f"spec.replicas is {replicas}"

    return [_object_probe(f"{kind.lower()} {namespace}/{name} scaled", kind, name, namespace, judge)]


def set_image_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """The container runs the image in the object's pod template; a workload also rolls out."""
    kind, name, namespace = str(args["kind"]), str(args["name"]), str(args["namespace"])
    container, image = args["container"], args["image"]

    def judge(live: dict[str, Any]) -> Verdict:
        spec = dig(live, pod_spec_path(str(live.get("kind", ""))))
        found = [
            c
            for c in [*spec.get("containers", []), *spec.get("initContainers", [])]
            if c.get("name") == container
        ]
        if not found:
            return "failed", f"it has no container {container}"
        if found[0].get("image") != image:
            return "failed", f"container {container} has image {found[0].get('image')}, expected {image}"
        return "passed", f"container {container} has image {image}"

    probes = [_object_probe(f"{kind.lower()} {namespace}/{name} image set", kind, name, namespace, judge)]
    workload = workload_kind(kind)
    if workload:
        probes.append(_rollout_probe(workload, name, namespace))
    return probes


def restart_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    return [_rollout_probe(str(args["kind"]), str(args["name"]), str(args["namespace"]))]


def undo_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Rolled out, running the images the rollback restored (as the tool recorded them)."""
    kind, name, namespace = str(args["kind"]), str(args["name"]), str(args["namespace"])
    images = (data or {}).get("images")
    if not isinstance(images, dict):
        return [
            _rollout_probe(kind, name, namespace),
            _unrecorded(f"{kind} {namespace}/{name} rolled back", "the images the rollback restored"),
        ]
    return [_rollout_probe(kind, name, namespace, images=images)]


def gone_verdict(outcome: ToolCallOutcome, uid: str | None) -> Verdict:
    """Judge a read of a deleted object: not found, or found with another UID (re-created, e.g. a pod by
    its controller), is gone; the same object is still finalizing."""
    if not outcome.ok:
        if _not_found(outcome):
            return "passed", "gone"
        return "unsure", f"reading it failed: {outcome.error}"
    live = live_object(outcome)
    if isinstance(live, tuple):
        return "pending", "it still exists (it could not be read whole to compare its uid)"
    meta = live.get("metadata") or {}
    if uid and meta.get("uid") != uid:
        return "passed", f"deleted; an object of the same name was created since (uid {meta.get('uid')})"
    state = (
        f"it is being deleted (finalizers: {', '.join(meta.get('finalizers') or []) or 'none'})"
        if meta.get("deletionTimestamp")
        else "it still exists and is not being deleted"
    )
    if uid is None:
        state += "; the deleted object's uid was not recorded, so a re-created one cannot be told apart"
    return "pending", state


def delete_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    kind, name, namespace = str(args["kind"]), str(args["name"]), args.get("namespace")
    uid = (data or {}).get("uid")
    read_args = _get_args(kind, name, namespace)

    def judge(outcome: ToolCallOutcome) -> Verdict:
        return gone_verdict(outcome, uid if isinstance(uid, str) else None)

    return [Probe(f"{kind.lower()} {_where(name, namespace)} deleted", _reading("k8s_get", read_args, judge))]


def _cordon_probe(node: str, unschedulable: bool) -> Probe:
    def judge(live: dict[str, Any]) -> Verdict:
        state = bool((live.get("spec") or {}).get("unschedulable"))
        verdict: Status = "passed" if state == unschedulable else "failed"
        return verdict, f"spec.unschedulable is {str(state).lower()}"

    verb = "cordoned" if unschedulable else "uncordoned"
    return _object_probe(f"node {node} {verb}", "nodes", node, None, judge)


def cordon_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    return [_cordon_probe(str(args["name"]), True)]


def uncordon_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    return [_cordon_probe(str(args["name"]), False)]


def table_names(text: str) -> list[tuple[str, str]] | None:
    """(namespace, name) of each row of a ``k8s_list`` table over all namespaces; None if it is not
    one."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].startswith("No resources found"):
        return []
    if lines[0].split()[:2] != ["NAMESPACE", "NAME"]:
        return None
    return [(cells[0], cells[1]) for cells in (line.split() for line in lines[1:]) if len(cells) >= 2]


def _left_on_node(node: str) -> Callable[[Reader], Awaitable[Verdict]]:
    """Pods still on the node that drain evicts (kubectl drain's rules, as the drain tool applies them:
    mirror and DaemonSet pods stay)."""

    async def look(read: Reader) -> Verdict:
        args = {"kind": "pods", "field_selector": f"spec.nodeName={node}", "limit": 500}
        listed = await read("k8s_list", args)
        if not listed.ok:
            return "unsure", f"listing its pods failed: {listed.error}"
        rows = table_names(listed.text)
        if rows is None or listed.truncated or (listed.data or {}).get("more") or len(rows) > DRAIN_POD_READS:
            return (
                "unsure",
                f"its pods could not all be read (more than {DRAIN_POD_READS}, or an unexpected listing)",
            )
        left: list[str] = []
        for namespace, pod in rows:
            live = live_object(await read("k8s_get", _get_args("pods", pod, namespace)))
            if isinstance(live, tuple):
                if live[0] == "failed":
                    continue  # gone since it was listed
                return "unsure", f"pod {namespace}/{pod}: {live[1]}"
            evict, _, _ = drain_plan([live], force=True, delete_emptydir_data=True)
            if evict:
                left.append(f"{namespace}/{pod}")
        if left:
            return "pending", f"{len(left)} evictable pod(s) still on it: {', '.join(left[:LISTED])}"
        return "passed", f"no evictable pods left ({len(rows)} DaemonSet or mirror pod(s) stay)"

    return look


def drain_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    node = str(args["name"])
    return [_cordon_probe(node, True), Probe(f"node {node} drained", _left_on_node(node))]


def job_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """The Job exists and belongs to the CronJob (its name is generated when the call gave none)."""
    namespace, cronjob = str(args["namespace"]), str(args["cronjob"])
    name = args.get("job_name") or (data or {}).get("name")
    if not name:
        return [_unrecorded(f"job from cronjob {namespace}/{cronjob} created", "the generated job name")]

    def judge(live: dict[str, Any]) -> Verdict:
        owners = (live.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("kind") == "CronJob" and o.get("name") == cronjob for o in owners):
            return "failed", f"it exists but does not belong to cronjob {cronjob}"
        return "passed", f"exists, created from cronjob {cronjob}"

    return [_object_probe(f"job {namespace}/{name} created", "jobs.batch", str(name), namespace, judge)]


def run_pod_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    namespace, name, image = str(args["namespace"]), str(args["name"]), args["image"]

    def judge(live: dict[str, Any]) -> Verdict:
        images = [c.get("image") for c in (live.get("spec") or {}).get("containers", [])]
        if image not in images:
            return "failed", f"it exists but runs {', '.join(map(str, images))}, not {image}"
        phase = (live.get("status") or {}).get("phase", "Pending")
        return "passed", f"exists with image {image} (phase {phase})"

    return [_object_probe(f"pod {namespace}/{name} created", "pods", name, namespace, judge)]


def exec_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """Decided by the exit code the call recorded: there is nothing to read back."""
    name = f"command in pod {args['namespace']}/{args['name']} succeeded"
    code = (data or {}).get("exit_code")
    if code is None:
        return [_unrecorded(name, "the exit code")]
    return [_known(name, ("passed" if code == 0 else "failed", f"exit code {code}"))]


# ----- Helm -------------------------------------------------------------------------------------------------


def helm_verdict(data: Mapping[str, Any], revision: Any = None) -> Verdict:
    """Deployed, at the revision the executed call made (when it recorded one)."""
    state, live = data.get("status"), data.get("revision")
    facts = f"release status {state}, revision {live}"
    if isinstance(state, str) and state.startswith("pending-"):
        return "pending", facts
    if state != "deployed":
        return "failed", facts
    if revision is not None and live != revision:
        return "failed", f"{facts}; the executed change made revision {revision}"
    return "passed", facts


def helm_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    release, namespace = str(args["release"]), str(args["namespace"])
    revision = (data or {}).get("revision")

    def judge(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            return "failed", f"helm_status failed: {outcome.error}"
        return helm_verdict(outcome.data or {}, revision)

    read_args = {"release": release, "namespace": namespace}
    return [Probe(f"helm release {namespace}/{release} deployed", _reading("helm_status", read_args, judge))]


def helm_uninstall_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    release, namespace = str(args["release"]), str(args["namespace"])

    def judge(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            return (
                ("passed", "gone")
                if _not_found(outcome)
                else ("unsure", f"helm_status failed: {outcome.error}")
            )
        state = (outcome.data or {}).get("status")
        if state == "uninstalled":
            return "passed", "uninstalled (its history is kept)"
        if state == "uninstalling":
            return "pending", "still uninstalling"
        return "failed", f"release status {state}, revision {(outcome.data or {}).get('revision')}"

    read_args = {"release": release, "namespace": namespace}
    return [
        Probe(f"helm release {namespace}/{release} uninstalled", _reading("helm_status", read_args, judge))
    ]


# ----- Argo Rollouts ----------------------------------------------------------------------------------------


def _rollout_status_probe(
    args: dict[str, Any], what: str, judge: Callable[[Mapping[str, Any]], Verdict]
) -> Probe:
    name, namespace = str(args["name"]), str(args["namespace"])

    def on_outcome(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            return "failed", f"rollouts_status failed: {outcome.error}"
        return judge(outcome.data or {})

    read_args = {"name": name, "namespace": namespace}
    return Probe(f"rollout {namespace}/{name} {what}", _reading("rollouts_status", read_args, on_outcome))


def _flag_probes(what: str, key: str, wanted: bool, field_name: str) -> Builder:
    """A Rollout flag the tool sets (``spec.paused`` or ``status.abort``) has the value it set."""

    def build(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
        def judge(status: Mapping[str, Any]) -> Verdict:
            value = bool(status.get(key))
            verdict: Status = "passed" if value == wanted else "failed"
            return verdict, f"{field_name} is {str(value).lower()} (phase {status.get('phase')})"

        return [_rollout_status_probe(args, what, judge)]

    return build


def rollouts_set_image_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    container, image = args["container"], args["image"]

    def judge(status: Mapping[str, Any]) -> Verdict:
        entries = [str(e).split("=", 1) for e in status.get("images") or []]
        chosen = [(n, i) for n, i in (e for e in entries if len(e) == 2) if container in ("*", n)]
        if not chosen:
            return "failed", f"it has no container {container}"
        wrong = [f"{n}={i}" for n, i in chosen if i != image]
        if wrong:
            return "failed", f"{', '.join(wrong)}, expected {image}"
        return "passed", f"{', '.join(n for n, _ in chosen)} run {image}"

    return [_rollout_status_probe(args, "image set", judge)]


def rollouts_undo_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """The template the rollback put in place, as its images; a Rollout with a ``workloadRef`` records
    none, so its template is left to a person."""
    what = f"rollout {args['namespace']}/{args['name']} rolled back"
    if data is not None and data.get("changed") is False:
        revision = data.get("revision")
        return [
            _known(what, ("passed", f"it already ran the template of revision {revision}; nothing changed"))
        ]
    images = (data or {}).get("images")
    if not images:
        return [_unrecorded(what, "the restored pod template")]

    def judge(status: Mapping[str, Any]) -> Verdict:
        if status.get("images") != images:
            return "failed", f"runs {_show(status.get('images'))}, the rollback set {_show(images)}"
        return "passed", f"runs {', '.join(map(str, images))}"

    return [_rollout_status_probe(args, "rolled back", judge)]


def promote_verdict(live: Mapping[str, Any], *, full: bool, promoted_step: int | None) -> Verdict:
    """Judge a Rollout after promote: unpaused and moved on, or (full) set to promote fully.

    ``promoted_step`` is the step index the promote left (from its output data). A controller that
    reaches a later pause step pauses again: paused at a step after it is progress, at it is not."""
    spec, status = live.get("spec") or {}, live.get("status") or {}
    if status.get("abort"):
        return "failed", "it is aborted (status.abort)"
    if full:
        current, stable = status.get("currentPodHash"), status.get("stableRS")
        if status.get("promoteFull"):
            return "passed", "status.promoteFull is set"
        if current and current == stable:
            return "passed", f"fully promoted: the current pods ({current}) are the stable ones"
        return (
            "failed",
            f"status.promoteFull is not set and the current pods ({current}) are not stable ({stable})",
        )
    if spec.get("paused"):
        return "failed", "spec.paused is still true"
    reasons = [str(c.get("reason")) for c in status.get("pauseConditions") or []]
    index = current_step_index(live)
    if not reasons:
        return "passed", f"not paused (step {index})"
    if promoted_step is None:
        return "unsure", (
            f"paused by {', '.join(reasons)} at step {index}; whether it moved past the promoted step is "
            "unknown: the step the promote left was not recorded"
        )
    if index is not None and index > promoted_step:
        return "passed", f"moved on to step {index} (paused there by {', '.join(reasons)})"
    return (
        "failed",
        f"paused by {', '.join(reasons)} at step {index}, the promote left it at step {promoted_step}",
    )


def promote_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    name, namespace, full = str(args["name"]), str(args["namespace"]), bool(args.get("full"))
    step = (data or {}).get("step")

    def judge(live: dict[str, Any]) -> Verdict:
        return promote_verdict(live, full=full, promoted_step=step if isinstance(step, int) else None)

    what = "fully promoted" if full else "promoted"
    return [_object_probe(f"rollout {namespace}/{name} {what}", ROLLOUTS, name, namespace, judge)]


def rollouts_restart_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """``spec.restartAt`` is set; the controller restarts the pods from it."""
    name, namespace = str(args["name"]), str(args["namespace"])

    def judge(live: dict[str, Any]) -> Verdict:
        stamp = (live.get("spec") or {}).get("restartAt")
        return ("passed", f"spec.restartAt is {stamp}") if stamp else ("failed", "spec.restartAt is not set")

    return [_object_probe(f"rollout {namespace}/{name} restarted", ROLLOUTS, name, namespace, judge)]


# ----- Jenkins ----------------------------------------------------------------------------------------------


def _job_label(job: Any) -> str:
    return "/".join(map(str, job)) if isinstance(job, list) else str(job)


def build_verdict(data: Mapping[str, Any]) -> Verdict:
    if data.get("building"):
        return "pending", f"build #{data.get('number')} still running"
    result = data.get("result")
    return ("passed" if result == "SUCCESS" else "failed"), f"build #{data.get('number')} result {result}"


def _build_probe(name: str, job: Any, number: int, judge: Callable[[Mapping[str, Any]], Verdict]) -> Probe:
    def on_outcome(outcome: ToolCallOutcome) -> Verdict:
        if not outcome.ok:
            return "failed", f"jenkins_get_build failed: {outcome.error}"
        return judge(outcome.data or {})

    return Probe(name, _reading("jenkins_get_build", {"job": job, "number": number}, on_outcome))


def trigger_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    job = args.get("job")
    number = (data or {}).get("number")
    if number is None:
        return [
            _known(
                f"jenkins job {_job_label(job)} built",
                ("unsure", "Jenkins gave no build number for the triggered build, so its result is unknown"),
            )
        ]
    return [_build_probe(f"jenkins build {_job_label(job)} #{number} succeeded", job, number, build_verdict)]


def stop_build_probes(args: dict[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    job, number = args.get("job"), int(args["number"])

    def judge(build: Mapping[str, Any]) -> Verdict:
        if build.get("building"):
            return "pending", f"build #{number} still running"
        return "passed", f"build #{number} is not running (result {build.get('result')})"

    return [_build_probe(f"jenkins build {_job_label(job)} #{number} stopped", job, number, judge)]


# ----- the registry of checks -------------------------------------------------------------------------------

CHECKS: Mapping[str, Builder] = {
    "k8s_apply": apply_probes,
    "k8s_patch": patch_probes,
    "k8s_scale": scale_probes,
    "k8s_set_image": set_image_probes,
    "k8s_rollout_restart": restart_probes,
    "k8s_rollout_undo": undo_probes,
    "k8s_delete": delete_probes,
    "k8s_cordon": cordon_probes,
    "k8s_uncordon": uncordon_probes,
    "k8s_drain": drain_probes,
    "k8s_create_job_from_cronjob": job_probes,
    "k8s_run_pod": run_pod_probes,
    "k8s_exec": exec_probes,
    "helm_install": helm_probes,
    "helm_upgrade": helm_probes,
    "helm_rollback": helm_probes,
    "helm_uninstall": helm_uninstall_probes,
    "rollouts_promote": promote_probes,
    "rollouts_pause": _flag_probes("paused", "paused", True, "spec.paused"),
    "rollouts_resume": _flag_probes("resumed", "paused", False, "spec.paused"),
    "rollouts_abort": _flag_probes("aborted", "aborted", True, "status.abort"),
    "rollouts_retry": _flag_probes("retried", "aborted", False, "status.abort"),
    "rollouts_set_image": rollouts_set_image_probes,
    "rollouts_restart": rollouts_restart_probes,
    "rollouts_undo": rollouts_undo_probes,
    "jenkins_trigger_build": trigger_probes,
    "jenkins_stop_build": stop_build_probes,
}
"""Each mutating tool's checks, built from the call's arguments (tool defaults filled in) and its
recorded output data."""


def probes_for(tool: str, args: Mapping[str, Any], data: dict[str, Any] | None) -> list[Probe]:
    """The objective checks of one executed call; a tool without a known check gets one that fails and
    says so (it never passes silently)."""
    build = CHECKS.get(tool)
    if build is None:
        return [_known(f"{tool} call", ("unsure", f"no objective check is known for {tool}"))]
    try:
        return build({**defaults_of(tool), **args}, data)
    except (KeyError, TypeError, ValueError) as exc:
        return [_known(f"{tool} call", ("unsure", f"its arguments do not say what to check ({exc!r})"))]
