"""Keeping secret values out of what planning proposes and says, for the model and the offline planner.

A proposal is stored in the task's status and shown to whoever approves it, and the investigation and the
summary are printed there too, so none of them may hold a secret value. A previewed change is proposed with
the arguments the tool server returns, each secret value sealed into a placeholder (``bosun_tools.sealing``);
a preview that comes back with a secret value still in it is not proposed (``unsealed_values``). Every text
of a result is scrubbed of the secret values the calls carried (``scrubbed``), since a model may repeat a
value in its own words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from bosun_tools.secrets import Found, scrub

from bosun.planner.types import PlanResult


def unsealed_values(args: Mapping[str, Any]) -> str | None:
    """Why a previewed call may not be proposed with ``args`` (the arguments its preview returned): a
    secret value in them is not sealed. None when none is."""
    wheres = Found.of(args).wheres
    if not wheres:
        return None
    return (
        f"the tool server returned it with secret values unsealed ({', '.join(wheres)}), and a secret value "
        "is never proposed; the tool server must be as recent as the operator"
    )


def scrubbed(result: PlanResult, values: Mapping[str, str]) -> PlanResult:
    """``result`` with every form of the secret ``values`` removed from its texts: summary, error, the
    steps' rationale, preview, diff and note, and the investigation's outputs. Arguments are left alone:
    they are sealed or redacted already, and scrubbing could change a call."""
    if not values:
        return result

    def text(value: str | None) -> str | None:
        return scrub(value, values) if value is not None else None

    steps = [
        replace(
            s,
            rationale=scrub(s.rationale, values),
            preview=text(s.preview),
            diff=text(s.diff),
            preview_note=text(s.preview_note),
        )
        for s in result.steps
    ]
    investigation = [replace(r, text=scrub(r.text, values)) for r in result.investigation]
    return replace(
        result,
        summary=scrub(result.summary, values),
        error=text(result.error),
        steps=steps,
        investigation=investigation,
    )
