"""What a probe is, and how one reads the world to reach its verdict.

A ``Probe`` reads the world only through read-only tools (``k8s_get``, ``k8s_rollout_status``,
``helm_get``, ``rollouts_get``, ``jenkins_get``), as the identity that
executed; what it may use of the executed call is its arguments and the small ``data`` the tool returned
(recorded with the step, dropped when over 1 KiB). Nothing passes on the tool's word or the model's.

A probe answers with a ``Verdict``:

- ``passed``: the check holds;
- ``pending``: not yet (a rollout in progress, an object still finalizing): ask again until the deadline;
- ``failed``: it does not hold, and waiting would not change that (a field the API server dropped, a
  patch reverted since): fail at once rather than sit out the deadline;
- ``unsure``: the tools cannot tell (the output lacks the data, an object too large to read back whole,
  Secret values the read tools redact): fail, saying what could not be confirmed, so a person checks.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import yaml
from bosun_tools.output import cap_text

from bosun.ports.gateway import ToolCallOutcome

Status = Literal["passed", "pending", "failed", "unsure"]
Verdict = tuple[Status, str]

SHOW_CAP = 120
"""Bytes of a field value quoted in a message."""
LISTED = 10
"""Differences named in one message; the rest are counted."""


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
"""Makes the probes of one executed call from its arguments and its recorded output data."""


def show(value: Any) -> str:
    """A value as a message quotes it: JSON, capped, so a large field cannot crowd out the rest."""
    return cap_text(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str), SHOW_CAP)[0]


def where(name: str, namespace: str | None) -> str:
    """``namespace/name``, or just the name of a cluster-scoped object."""
    return f"{namespace}/{name}" if namespace else name


def k8s_get_args(kind: str, name: str, namespace: str | None) -> dict[str, Any]:
    """The ``k8s_get`` arguments that read one object whole, as YAML, so it can be compared."""
    args: dict[str, Any] = {"kind": kind, "name": name, "output": "yaml"}
    if namespace:
        args["namespace"] = namespace
    return args


def not_found(outcome: ToolCallOutcome) -> bool:
    """Whether a read failed because the object does not exist (which may be the expected answer)."""
    return (outcome.error or "").startswith("NotFound")


def live_object(outcome: ToolCallOutcome) -> dict[str, Any] | Verdict:
    """The object a ``k8s_get`` with ``output=yaml`` returned, or the verdict when there is none: failed
    when it does not exist, unsure when it cannot be read whole."""
    if not outcome.ok:
        if not_found(outcome):
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


def read_and_judge(
    tool: str, args: dict[str, Any], judge: Callable[[ToolCallOutcome], Verdict]
) -> Callable[[Reader], Awaitable[Verdict]]:
    """How a probe looks when one read decides it."""

    async def look(read: Reader) -> Verdict:
        return judge(await read(tool, args))

    return look


def object_probe(
    name: str, kind: str, obj: str, namespace: str | None, judge: Callable[[dict[str, Any]], Verdict]
) -> Probe:
    """A probe that reads one object with ``k8s_get`` and judges it."""

    def on_outcome(outcome: ToolCallOutcome) -> Verdict:
        live = live_object(outcome)
        return live if isinstance(live, tuple) else judge(live)

    return Probe(name, read_and_judge("k8s_get", k8s_get_args(kind, obj, namespace), on_outcome))


def decided(name: str, verdict: Verdict) -> Probe:
    """A check decided from the executed call's recorded data alone."""

    async def look(read: Reader) -> Verdict:
        return verdict

    return Probe(name, look)


def unrecorded(name: str, what: str) -> Probe:
    """A check that needs a fact the executed call did not record: a person has to confirm it."""
    return decided(
        name,
        (
            "unsure",
            f"{what} was not recorded with the step (the tool's output data was missing or over 1 KiB)",
        ),
    )
