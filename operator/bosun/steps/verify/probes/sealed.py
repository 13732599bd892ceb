"""Sealed Secret values: a change carries placeholders with the approved value's digest, never the value,
so the live Secret is compared by the tool server, by digest, as the identity that executed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bosun_tools.sealing import COMPARE_TOOL
from bosun_tools.secrets import Placeholder

from bosun.ports.gateway import ToolCallOutcome
from bosun.steps.verify.probes.base import Probe, Verdict, not_found, read_and_judge


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
            if not_found(outcome):
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
    return Probe(f"{what} holds the sealed values", read_and_judge(COMPARE_TOOL, args, on_outcome))
