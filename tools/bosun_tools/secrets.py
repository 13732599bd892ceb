"""Where a tool call's arguments carry secret values, and what stands in for them, so that no value reaches a
model, a log, an approval or a task's status.

Secret values are found by type and structure, never by asking the model: the ``data``/``stringData`` of a
Secret in any manifest document or in a patch of a Secret (merge, strategic or JSON patch), env ``value``s
whose name says secret, Helm values under secret-looking keys or with a secret shape, Jenkins parameters
whose name says secret, and anywhere the shapes that are secrets wherever they appear (PEM private keys,
JWTs, well-known token formats, URLs with a password). The tool server adds what only it can know at call
time (a Jenkins password parameter, a chart's ``"format": "password"``) through ``bosun_tools.sealing``.

Two stand-ins exist, and neither is ever accepted as a value:

- a **placeholder** ``sealed:sha256:<64 hex>@<namespace>/<secret>/<key>`` names the holding Secret and key
  where the tool server keeps the value until the approved call runs, and the SHA-256 digest of the value's
  bytes (for a Secret's base64 ``data``, of the decoded bytes). It stands for the whole value of one field;
  the tool server resolves it (checking the digest) or refuses the call, and a field that merely contains
  ``sealed:sha256:`` is refused. In a base64 field the placeholder is not even valid base64, so the API
  server itself would reject it as a literal;
- a **redaction marker** ``<redacted ...>`` is what outputs, records and the model see instead of a value.
  A call that passes one as a value (copied from an output) is refused instead of writing the marker.

Everything here is pure (no I/O), so the operator uses the same finding to keep values out of what it
records and sends to the model.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
PLACEHOLDER_PREFIX = "sealed:sha256:"
SHORT_DIGEST = 12
"""Hex digits of a digest shown to people: enough to compare two values, too few to stand for one."""
MIN_SCRUBBED = 4
"""Shorter values are still sealed but not searched for in free text, where they would erase ordinary
words (a 3-character password protects nothing anyway)."""

_PLACEHOLDER = re.compile(
    r"^sealed:sha256:(?P<digest>[0-9a-f]{64})"
    r"@(?P<namespace>[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)"
    r"/(?P<secret>[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?)"
    r"/(?P<key>[-._a-zA-Z0-9]+)$"
)
_MARKER = re.compile(r"^<redacted(?: [^<>]*)?>$")

_SECRET_NAME = re.compile(
    r"(?i)(passw|(^|[_.-])pass$|pwd|passphrase|secret|token|credential|api[_.-]?key|private[_.-]?key|"
    r"access[_.-]?key|auth[_.-]?key|signing[_.-]?key|encryption[_.-]?key|(^|[_.-])key$|(?-i:[a-z0-9]Key)$|"
    r"(^|[_.-])dsn$|connection[_.-]?string)"
)
"""Names (env variables, Helm keys, Jenkins parameters) whose value is a secret."""
_REFERENCE_NAME = re.compile(r"(?i)(name|ref|existing.*|file|path)$")
"""Names that point at a secret held elsewhere (``existingSecret``, ``secretName``, ``tokenFile``): their
value is a name, which people need to see."""

_STRONG_SHAPES = (
    re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    re.compile(
        r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}|"
        r"xox[abprs]-[A-Za-z0-9-]{10,}|sk_live_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16})\b"
    ),
    re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@"),
)
"""Values that are secrets wherever they appear: private keys, JWTs, token formats, URLs with a password."""
_ENV_LIST = re.compile(r"(?i)env")
"""Lists of ``{name, value}`` items that set environment variables: a pod's ``env``, a chart's ``extraEnv``,
``envVars``..."""
_TOKEN_CHARS = re.compile(r"^[A-Za-z0-9+/=_.~-]{24,}$")
_HIGH_ENTROPY_BITS = 3.8
"""Bits per character above which a long token-like Helm value counts as generated, hence secret: random
base64 of 24+ characters scores about 4.3, words, hostnames and hex digests (at most 4.0) score less."""

Path = tuple[str | int, ...]


# ----- placeholders, digests, markers ----------------------------------------------------------------------


def digest(raw: bytes) -> str:
    """The SHA-256 hex digest a placeholder carries: of the value's bytes, never of an encoding of them."""
    return hashlib.sha256(raw).hexdigest()


def marker(digest_hex: str) -> str:
    """What people and the model see instead of a value: a short digest to compare, not the value."""
    return f"<redacted sha256:{digest_hex[:SHORT_DIGEST]}>"


def is_marker(text: str) -> bool:
    return bool(_MARKER.match(text))


@dataclass(frozen=True)
class Placeholder:
    """A sealed value: the digest of its bytes and the holding Secret key where the tool server keeps it."""

    digest: str
    namespace: str
    secret: str
    key: str

    def __str__(self) -> str:
        return f"{PLACEHOLDER_PREFIX}{self.digest}@{self.namespace}/{self.secret}/{self.key}"

    @classmethod
    def parse(cls, text: str) -> Placeholder | None:
        """The placeholder ``text`` is, or None when it is none (also when it only looks like one)."""
        match = _PLACEHOLDER.match(text)
        if match is None:
            return None
        return cls(match["digest"], match["namespace"], match["secret"], match["key"])


def looks_sealed(text: str) -> bool:
    """Whether ``text`` is, or pretends to contain, a placeholder: such a field is resolved or refused."""
    return PLACEHOLDER_PREFIX in text


# ----- finding ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One string value in a call's arguments: where it is, in the arguments and in words, and what it is."""

    path: Path
    """Keys from the arguments down; inside a manifest, the document's index comes after ``manifest``."""
    where: str
    value: str
    secret: bool
    binary: bool
    """The field holds the value base64-encoded (a Secret's ``data``): digests and the holding Secret keep
    the decoded bytes, and the field gets them back encoded."""

    def raw(self) -> bytes:
        """The value's bytes; a binary field that is not valid base64 raises ``ValueError``."""
        if not self.binary:
            return self.value.encode()
        try:
            return base64.b64decode(self.value, validate=True)
        except binascii.Error:
            raise ValueError(
                f"{self.where} is not valid base64; a Secret's data holds base64, put plain text under "
                "stringData instead"
            ) from None


def secret_name(name: str) -> bool:
    """Whether an env variable, Helm key or Jenkins parameter called ``name`` holds a secret value."""
    return bool(_SECRET_NAME.search(name)) and not _REFERENCE_NAME.search(name)


def secret_shape(value: str) -> bool:
    return any(shape.search(value) for shape in _STRONG_SHAPES)


def _generated(value: str) -> bool:
    """A long token-like string of lower case, upper case and digits with high entropy: a generated secret.
    (Hex digests, UUIDs and image tags have no upper case, so they never qualify.)"""
    if not _TOKEN_CHARS.match(value):
        return False
    mixed = all(re.search(pattern, value) for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]"))
    counts = Counter(value)
    bits = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return mixed and bits >= _HIGH_ENTROPY_BITS


def _kind_of(argument: Any) -> str | None:
    """The kind a ``kind`` argument names, as far as finding secrets needs it (no API discovery here)."""
    if not isinstance(argument, str):
        return None
    word = argument.lower()
    if word in ("secret", "secrets"):
        return "Secret"
    if word in ("configmap", "configmaps", "cm"):
        return "ConfigMap"
    return argument


def _dotted(keys: Iterable[str | int]) -> str:
    text = ""
    for key in keys:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


@dataclass(frozen=True)
class _Scope:
    """How values under one argument are judged: a Kubernetes object (of ``kind``), Helm values, Jenkins
    parameters or anything else; ``where`` names the argument in messages."""

    mode: str
    kind: str | None
    where: str


def _judge(scope: _Scope, logical: Path, parent: Any, value: str) -> tuple[bool, bool]:
    """(secret, binary) of a value at ``logical`` (keys inside the object, values or parameters)."""
    field = logical[0] if len(logical) == 2 else None
    binary = (scope.kind, field) in (("Secret", "data"), ("ConfigMap", "binaryData"))
    if scope.kind == "Secret" and field in ("data", "stringData"):
        return True, binary
    if scope.kind == "Secret" and logical == ("metadata", "annotations", LAST_APPLIED):
        return True, False
    in_env = (
        len(logical) >= 3
        and logical[-1] == "value"
        and isinstance(logical[-3], str)
        and _ENV_LIST.search(logical[-3]) is not None
        and isinstance(parent, Mapping)
        and isinstance(parent.get("name"), str)
    )
    if in_env and secret_name(parent["name"]):
        return True, binary
    names = [key for key in logical if isinstance(key, str)]
    if scope.mode in ("helm", "jenkins") and names and secret_name(names[-1]):
        return True, binary
    if scope.mode == "helm" and _generated(value):
        return True, binary
    return secret_shape(value), binary


def _walk(node: Any, path: Path, logical: Path, scope: _Scope, parent: Any, out: list[Leaf]) -> None:
    if isinstance(node, Mapping):
        for key, item in node.items():
            _walk(item, (*path, str(key)), (*logical, str(key)), scope, node, out)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _walk(item, (*path, index), (*logical, index), scope, node, out)
    elif isinstance(node, str):
        secret, binary = _judge(scope, logical, parent, node)
        out.append(Leaf(path, _where(scope.where, _dotted(logical)), node, secret, binary))


def _where(place: str, dotted: str) -> str:
    """``values.auth.password``, ``command[1]``, ``manifest document 1 (Secret db) stringData.password``."""
    if not dotted:
        return place
    if place.endswith(")"):
        return f"{place} {dotted}"
    return place + dotted if dotted.startswith("[") else f"{place}.{dotted}"


def documents(manifest: str) -> list[Any] | None:
    """The documents of a YAML manifest, or None when it does not parse."""
    try:
        return list(yaml.safe_load_all(manifest))
    except yaml.YAMLError:
        return None


def _pointer(path: Any) -> Path:
    """The keys of a JSON pointer (``/spec/template/spec/containers/0/env/-``), array indexes as ints."""
    if not isinstance(path, str):
        return ()
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in path.split("/")[1:]]
    return tuple(int(t) if t.isdigit() else t for t in tokens)


def leaves(args: Mapping[str, Any]) -> list[Leaf]:
    """Every string value in ``args``, each judged secret or not by where it is and what it looks like.

    Arguments are read by name, the same in every toolset: ``manifest`` (YAML documents), ``patch`` (of an
    object of kind ``kind``), ``values`` (Helm), ``parameters`` (Jenkins); any other argument is checked
    for secret shapes only."""
    out: list[Leaf] = []
    for name, value in args.items():
        if name == "manifest" and isinstance(value, str):
            docs = documents(value)
            if docs is None:
                secret = secret_shape(value) or bool(re.search(r"(?m)^\s*kind:\s*[\"']?Secret\b", value))
                out.append(Leaf((name,), "manifest (not valid YAML)", value, secret, False))
                continue
            for index, doc in enumerate(docs):
                kind = doc.get("kind") if isinstance(doc, Mapping) else None
                meta = doc.get("metadata") if isinstance(doc, Mapping) else None
                title = (meta or {}).get("name") if isinstance(meta, Mapping) else None
                scope = _Scope("object", kind, f"manifest document {index + 1} ({kind} {title})")
                _walk(doc, (name, index), (), scope, None, out)
        elif name == "patch" and isinstance(value, list):
            kind = _kind_of(args.get("kind"))
            for index, op in enumerate(value):
                if not isinstance(op, Mapping) or "value" not in op:
                    continue
                at = _pointer(op.get("path"))
                scope = _Scope("object", kind, f"patch[{index}] ({op.get('op')} {op.get('path')})")
                parent = op["value"] if isinstance(op["value"], Mapping) else None
                _walk_at(op["value"], (name, index, "value"), at, scope, parent, out)
        elif name == "patch":
            _walk(value, (name,), (), _Scope("object", _kind_of(args.get("kind")), "patch"), None, out)
        elif name == "values":
            _walk(value, (name,), (), _Scope("helm", None, "values"), None, out)
        elif name == "parameters":
            _walk(value, (name,), (), _Scope("jenkins", None, "parameters"), None, out)
        else:
            _walk(value, (name,), (), _Scope("plain", None, name), None, out)
    return out


def _walk_at(node: Any, path: Path, logical: Path, scope: _Scope, parent: Any, out: list[Leaf]) -> None:
    """``_walk`` for a JSON-patch value placed at ``logical``: a string set directly (``/data/password``)
    is judged at the pointer's place; where words name it, the pointer shows already."""
    if isinstance(node, str):
        secret, binary = _judge(scope, logical, parent, node)
        out.append(Leaf(path, scope.where, node, secret, binary))
    else:
        _walk(node, path, logical, scope, parent, out)


def with_values(args: Mapping[str, Any], replacements: Mapping[Path, str]) -> dict[str, Any]:
    """A copy of ``args`` with the value at each path replaced; a manifest that changes is written again as
    YAML (the same objects in another layout; an empty document stays, as ``null``, so paths still hold)."""
    out = copy.deepcopy(dict(args))
    manifest_changes = {p: v for p, v in replacements.items() if p[:1] == ("manifest",) and len(p) > 1}
    for path, value in replacements.items():
        if path in manifest_changes:
            continue
        if path == ("manifest",):
            out["manifest"] = value
            continue
        node: Any = out
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    if manifest_changes:
        docs = documents(str(out["manifest"])) or []
        for path, value in manifest_changes.items():
            node = docs
            for key in path[1:-1]:
                node = node[key]
            node[path[-1]] = value
        out["manifest"] = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=1000)
    return out


# ----- what the operator and the server do with what was found ---------------------------------------------


@dataclass(frozen=True)
class Found:
    """The secret values of one call's arguments (placeholders excluded: they are no values)."""

    leaves: tuple[Leaf, ...]

    @classmethod
    def of(cls, args: Mapping[str, Any]) -> Found:
        return cls(tuple(leaf for leaf in leaves(args) if leaf.secret and not stand_in(leaf.value)))

    @property
    def wheres(self) -> list[str]:
        return [leaf.where for leaf in self.leaves]

    def redacted(self, args: Mapping[str, Any], *, digests: bool = True) -> dict[str, Any]:
        """``args`` with each secret value replaced by its marker: what may be recorded or shown. Without
        ``digests`` the marker is a bare ``<redacted>``: for values read back, where nobody needs to
        compare them with a proposed one."""
        if not self.leaves:
            return dict(args)
        return with_values(
            args,
            {leaf.path: marker(digest(_bytes(leaf))) if digests else "<redacted>" for leaf in self.leaves},
        )

    def scrub(self, text: str) -> str:
        return scrub(text, values_of(self.leaves))


def stand_in(value: str) -> bool:
    """Whether ``value`` stands for no value of its own: empty, a placeholder or a redaction marker."""
    return value == "" or looks_sealed(value) or is_marker(value)


def _bytes(leaf: Leaf) -> bytes:
    """A leaf's bytes for its digest; a binary field that is not base64 is digested as written (the call
    fails anyway, and its marker must still not show the value)."""
    try:
        return leaf.raw()
    except ValueError:
        return leaf.value.encode()


def values_of(found: Iterable[Leaf]) -> dict[str, str]:
    """Every text form in which the values of ``found`` may appear in output (as written, decoded, base64,
    each long line of a multi-line value), mapped to the digest of the value."""
    forms: dict[str, str] = {}
    for leaf in found:
        raw = _bytes(leaf)
        value_digest = digest(raw)
        texts = {leaf.value, base64.b64encode(raw).decode()}
        with contextlib.suppress(UnicodeDecodeError):
            texts.add(raw.decode())
        for text in list(texts):
            texts.update(line.strip() for line in text.splitlines() if len(line.strip()) >= 16)
        forms.update({text: value_digest for text in texts if len(text) >= MIN_SCRUBBED})
    return forms


_TRUNCATED = re.compile(r"…\[truncated \d+ bytes[^\]]*\]")


def scrub(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every form of every value replaced by the value's marker, longest first; where an
    output cap cut a value in two, the part left beside the truncation marker goes too."""
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, marker(values[value]))
    cut = _TRUNCATED.search(text)
    if cut is None:
        return text
    head = _without_cut_value(text[: cut.start()], values, at_end=True)
    tail = _without_cut_value(text[cut.end() :], values, at_end=False)
    return head + cut.group() + tail


def _without_cut_value(part: str, values: Mapping[str, str], *, at_end: bool) -> str:
    """``part`` (the text before or after a truncation marker) with the piece of a value the cut left at
    that end replaced by the value's marker."""
    body = part.rstrip("\n") if at_end else part.lstrip("\n")
    for value in sorted(values, key=len, reverse=True):
        for size in range(len(value) - 1, MIN_SCRUBBED - 1, -1):
            if at_end and body.endswith(value[:size]):
                return body[:-size] + marker(values[value]) + part[len(body) :]
            if not at_end and body.startswith(value[-size:]):
                return part[: len(part) - len(body)] + marker(values[value]) + body[size:]
    return part


def scrub_all(node: Any, values: Mapping[str, str]) -> Any:
    """``scrub`` for every string in a JSON-like structure."""
    if not values:
        return node
    if isinstance(node, str):
        return scrub(node, values)
    if isinstance(node, Mapping):
        return {key: scrub_all(item, values) for key, item in node.items()}
    if isinstance(node, list):
        return [scrub_all(item, values) for item in node]
    return node
