"""Sealing: new secret values wait for approval in a holding Secret, and only digests travel.

A mutating call previewed with secret values in its arguments (``bosun_tools.secrets`` finds them) runs its
dry-run with the real values; then the tool server writes them into one holding Secret of the task's
namespace, as the calling identity (the operator's own identity cannot read or write Secrets), owned by the
AgentTask so Kubernetes deletes it with the task, and returns the arguments with each value replaced by a
placeholder naming that Secret, the key and the value's SHA-256 digest. The operator proposes those sealed
arguments, so the plan hash an approver approves covers the digests: it names the exact values without
containing them.

Any call whose arguments hold placeholders gets them resolved first: the holding Secret is read as the
calling identity and each value must match its digest, or the call is refused before anything runs, so
exactly the approved value runs or nothing does. A resolved value is sealed again when a preview returns,
wherever it was put. Every output and error of the call is scrubbed of every value it carried.

Holding Secrets: type ``bosun.dev/sealed``, immutable, label ``bosun.dev/sealed-for=<task uid>``, an
ownerReference to the AgentTask, one per previewed call (named from the task and the values' digests, so the
same call previewed again finds its Secret), one key per value. ``bosun_delete_sealed`` (the internal
toolset) removes a finished task's holding Secrets, and ``bosun_compare_sealed`` lets verification confirm
that a Secret holds a sealed value by comparing digests, never showing one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bosun_tools.client.kube import KubeClient, KubeError
from bosun_tools.errors import ToolError
from bosun_tools.output import ToolOutput
from bosun_tools.secrets import (
    PLACEHOLDER_PREFIX,
    SHORT_DIGEST,
    Leaf,
    Path,
    Placeholder,
    digest,
    is_marker,
    leaves,
    looks_sealed,
    scrub,
    scrub_all,
    stand_in,
    values_of,
    with_values,
)

SEALED_TYPE = "bosun.dev/sealed"
SEALED_FOR = "bosun.dev/sealed-for"
TASK_API_VERSION = "bosun.dev/v1alpha1"
TASK_META = "bosun.dev/task"
CLEANUP_TOOL = "bosun_delete_sealed"
COMPARE_TOOL = "bosun_compare_sealed"
KEY_DIGITS = 20
"""Hex digits of a value's digest that name its key in the holding Secret (the full digest is checked)."""
PLACEHOLDER_FORM = f"{PLACEHOLDER_PREFIX}<64 hex>@<namespace>/<secret>/<key>"


@dataclass(frozen=True)
class TaskRef:
    """The AgentTask a call is made for: its holding Secrets live in its namespace and are owned by it."""

    namespace: str
    name: str
    uid: str

    def as_meta(self) -> dict[str, str]:
        return {"namespace": self.namespace, "name": self.name, "uid": self.uid}

    @classmethod
    def from_meta(cls, raw: Any) -> TaskRef | None:
        if raw is None:
            return None
        fields = ("namespace", "name", "uid")
        if not isinstance(raw, Mapping) or not all(isinstance(raw.get(f), str) and raw[f] for f in fields):
            wanted = '{"namespace": ..., "name": ..., "uid": ...}'
            raise ToolError(f'_meta "{TASK_META}" must be {wanted}; got {raw!r}')
        return cls(raw["namespace"], raw["name"], raw["uid"])


def holder_name(task: TaskRef, digests: Iterable[str]) -> str:
    """One name per task and set of values: previewing the same call again finds the same Secret."""
    basis = "\n".join([task.uid, *sorted(set(digests))])
    return f"bosun-sealed-{hashlib.sha256(basis.encode()).hexdigest()[:20]}"


class CallSecrets:
    """The secret values of one tool call: found in its arguments, resolved from placeholders, or marked by
    the tool itself (what only it learns while running, e.g. that a Jenkins parameter is a password)."""

    def __init__(self) -> None:
        self._args: dict[str, Any] = {}
        self._resolved: set[Path] = set()
        self._marked: set[Path] = set()

    def mark(self, *path: str | int) -> None:
        """Treat the value at ``path`` (argument name first) as secret: sealed, and scrubbed from output."""
        self._marked.add(path)

    def found(self) -> list[Leaf]:
        """The secret values in the arguments the call runs with."""
        return [
            leaf
            for leaf in leaves(self._args)
            if (leaf.secret or leaf.path in self._resolved or leaf.path in self._marked)
            and not stand_in(leaf.value)
        ]

    def scrub(self, text: str) -> str:
        return scrub(text, values_of(self.found()))

    def scrub_output(self, out: ToolOutput) -> ToolOutput:
        values = values_of(self.found())
        if not values:
            return out
        return out.model_copy(
            update={
                "text": scrub(out.text, values),
                "diff": scrub(out.diff, values) if out.diff is not None else None,
                "data": scrub_all(out.data, values),
            }
        )

    async def resolve(
        self, args: Mapping[str, Any], kube: KubeClient, who: str, task: TaskRef | None
    ) -> dict[str, Any]:
        """The arguments with each placeholder replaced by its value, read from its holding Secret as the
        caller and checked against its digest; refuses redaction markers and malformed placeholders, and,
        for a call made for ``task``, placeholders of another namespace than the task's."""
        self._args = dict(args)
        wanted: dict[Path, tuple[Leaf, Placeholder]] = {}
        for leaf in leaves(args):
            if is_marker(leaf.value):
                raise ToolError(
                    f"{leaf.where} is {leaf.value}, which Bosun shows in place of a secret value; it is not "
                    "a value: pass the value itself (it is sealed, never shown) or leave the field out"
                )
            if not looks_sealed(leaf.value):
                continue
            placeholder = Placeholder.parse(leaf.value)
            if placeholder is None:
                raise ToolError(
                    f"{leaf.where} looks like a sealed value but is not exactly one ({PLACEHOLDER_FORM}); a "
                    "sealed value stands for a whole field and is written by Bosun, never by hand"
                )
            if task is not None and placeholder.namespace != task.namespace:
                raise ToolError(
                    f"{leaf.where} names a sealed value held in namespace {placeholder.namespace}; the "
                    f"sealed values of task {task.name} are held in its namespace {task.namespace}, so "
                    "nothing ran"
                )
            wanted[leaf.path] = (leaf, placeholder)
        if not wanted:
            return self._args
        holders = {
            (p.namespace, p.secret): await _holder(kube, p.namespace, p.secret, who)
            for _, p in wanted.values()
        }
        replacements = {
            path: unseal(holders[(p.namespace, p.secret)], leaf, p) for path, (leaf, p) in wanted.items()
        }
        self._args = with_values(args, replacements)
        self._resolved = set(wanted)
        return self._args

    async def seal(
        self, tool: str, kube: KubeClient, task: TaskRef | None, who: str
    ) -> dict[str, Any] | None:
        """Keep the call's secret values in a holding Secret of ``task`` and return the arguments with
        placeholders instead (None when the call carries no secret value)."""
        found = self.found()
        if not found:
            return None
        wheres = ", ".join(leaf.where for leaf in found)
        if task is None:
            raise ToolError(
                f"{tool} would write secret values ({wheres}); a preview keeps them only in a holding Secret "
                f'owned by the task they are for, and this call named no task (_meta "{TASK_META}"), so '
                "nothing was sealed: preview it through Bosun's operator"
            )
        raws: dict[Path, bytes] = {}
        for leaf in found:
            try:
                raws[leaf.path] = leaf.raw()
            except ValueError as exc:
                raise ToolError(str(exc)) from None
        digests = {path: digest(raw) for path, raw in raws.items()}
        name = holder_name(task, digests.values())
        data = {d[:KEY_DIGITS]: base64.b64encode(raws[path]).decode() for path, d in digests.items()}
        await _store(kube, task, name, tool, data, who, wheres)
        return with_values(
            self._args,
            {path: str(Placeholder(d, task.namespace, name, d[:KEY_DIGITS])) for path, d in digests.items()},
        )


async def _holder(kube: KubeClient, namespace: str, name: str, who: str) -> dict[str, Any]:
    try:
        secret = await kube.get(await kube.resolve("secrets", "v1"), name, namespace)
    except KubeError as exc:
        if exc.status == 404:
            raise ToolError(
                f"the sealed values of this call were held in Secret {namespace}/{name}, which no longer "
                "exists (it is deleted when its task finishes, or someone deleted it); the values cannot be "
                "recovered and nothing ran: ask for the change again so its values are sealed anew"
            ) from None
        if exc.status == 403:
            raise ToolError(
                f"Forbidden: {who} may not read Secret {namespace}/{name}, which holds the sealed values of "
                f"this call; the identity that runs it needs get on secrets in namespace {namespace}"
            ) from None
        raise
    labels = (secret.get("metadata") or {}).get("labels") or {}
    if secret.get("type") != SEALED_TYPE or SEALED_FOR not in labels:
        raise ToolError(
            f"Secret {namespace}/{name}, named by a sealed value, is not one of Bosun's holding Secrets "
            f"(type {SEALED_TYPE}, label {SEALED_FOR}); sealed values are written by Bosun only, so nothing "
            "ran"
        )
    return secret


def unseal(holder: Mapping[str, Any], leaf: Leaf, placeholder: Placeholder) -> str:
    """The field's value from the holding Secret, encoded as the field wants it, once its digest matches."""
    where = f"Secret {placeholder.namespace}/{placeholder.secret} key {placeholder.key}"
    encoded = (holder.get("data") or {}).get(placeholder.key)
    try:
        raw = base64.b64decode(encoded or "", validate=True) if encoded is not None else None
    except binascii.Error:
        raw = None
    if raw is None or digest(raw) != placeholder.digest:
        state = "has no such value" if encoded is None else "holds a value whose digest does not match"
        raise ToolError(
            f"{leaf.where}: holding {where} {state} sha256:{placeholder.digest[:SHORT_DIGEST]}: it was "
            "changed after the value was sealed, so nothing ran; ask for the change again (a new proposal) "
            "rather than run a value nobody approved"
        )
    if leaf.binary:
        return base64.b64encode(raw).decode()
    try:
        return raw.decode()
    except UnicodeDecodeError:
        raise ToolError(
            f"{leaf.where}: the sealed value in {where} is binary and this field takes text; use the "
            "placeholder only where its value was sealed"
        ) from None


async def _store(
    kube: KubeClient, task: TaskRef, name: str, tool: str, data: dict[str, str], who: str, wheres: str
) -> None:
    """Create the holding Secret, or accept the one a previous preview of the same call created."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SEALED_TYPE,
        "immutable": True,
        "metadata": {
            "name": name,
            "namespace": task.namespace,
            "labels": {SEALED_FOR: task.uid, "app.kubernetes.io/managed-by": "bosun"},
            "annotations": {"bosun.dev/task": task.name, "bosun.dev/sealed-by": tool},
            "ownerReferences": [
                {"apiVersion": TASK_API_VERSION, "kind": "AgentTask", "name": task.name, "uid": task.uid}
            ],
        },
        "data": data,
    }
    info = await kube.resolve("secrets", "v1")
    try:
        await kube.create(info, body, task.namespace)
        return
    except KubeError as exc:
        if exc.status == 403:
            raise ToolError(
                f"Forbidden: {who} may not create Secrets in namespace {task.namespace}, where Bosun holds "
                f"the new secret values of {tool} ({wheres}) until the approved call runs (Secret {name}, "
                f"owned by AgentTask {task.name}); grant create, get and delete on secrets there"
            ) from None
        if exc.status != 409:
            raise
    existing = await _holder(kube, task.namespace, name, who)
    if (existing.get("data") or {}) != data:
        raise ToolError(
            f"holding Secret {task.namespace}/{name} already exists with other values (someone changed it); "
            "delete it and plan again"
        )


async def delete_holders(kube: KubeClient, namespace: str, task_uid: str, *, who: str) -> list[str]:
    """Delete the holding Secrets of task ``task_uid`` in ``namespace`` (a dry run with a previewing
    ``kube``); returns their names."""
    info = await kube.resolve("secrets", "v1")
    try:
        listing = await kube.list(info, namespace, label_selector=f"{SEALED_FOR}={task_uid}")
        names = [
            item["metadata"]["name"] for item in listing.get("items", []) if item.get("type") == SEALED_TYPE
        ]
        for name in names:
            try:
                await kube.delete(info, name, namespace)
            except KubeError as exc:
                if exc.status != 404:
                    raise
    except KubeError as exc:
        if exc.status == 403:
            raise ToolError(
                f"Forbidden: {who} may not list and delete Secrets in namespace {namespace}, so the holding "
                f"Secrets of task {task_uid} stay until the task is deleted (they are owned by it); grant "
                "list and delete on secrets there to remove them when the task ends"
            ) from None
        raise
    return names


def compare(live: Mapping[str, Any], wanted: Mapping[str, str]) -> dict[str, str]:
    """For each key of ``wanted`` (a Secret data key and the SHA-256 digest of the value a change set, as
    its placeholder carries it), whether the live Secret holds that value: ``same``, ``different`` or
    ``absent``. Only digests are compared, so no value is ever shown."""
    data = live.get("data") or {}
    states: dict[str, str] = {}
    for key, wanted_digest in wanted.items():
        encoded = data.get(key)
        if encoded is None:
            states[key] = "absent"
            continue
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raw = b""
        states[key] = "same" if hmac.compare_digest(digest(raw), wanted_digest) else "different"
    return states


Call = Callable[..., Awaitable[ToolOutput]]


async def run_sealed(
    tool: str,
    fn: Call,
    kwargs: Mapping[str, Any],
    secrets: CallSecrets,
    *,
    kube: KubeClient,
    who: str,
    seal_for: TaskRef | None,
    sealing: bool,
) -> ToolOutput:
    """Run a tool with its placeholders resolved; when ``sealing`` (a mutating call in preview), seal its
    secret values for ``seal_for`` afterwards and return the sealed arguments with the (scrubbed) output."""
    real = await secrets.resolve(kwargs, kube, who, seal_for)
    out = await fn(**real)
    sealed = await secrets.seal(tool, kube, seal_for, who) if sealing else None
    out = secrets.scrub_output(out)
    return out if sealed is None else out.model_copy(update={"sealed_args": sealed})
