"""Whole plans only: what a turn's previewed and failed changes mean for the proposal.

A human approves a proposal as one change, and the steps of a plan depend on each other (delete the old
claim, then create the new one): a part of a plan is a change nobody asked for. So the proposal is the set
of mutating calls of the model's final plan, each with a preview, or nothing:

- A turn in which any mutating call cannot be previewed (the gate refused it, or its dry-run failed)
  proposes nothing: it withdraws every step collected so far, this turn's previewed calls included, and
  tells the model which calls failed and why, and that it must issue the whole plan again. A call of a
  tool the server does not offer is refused too, but it names no change, so it voids nothing.
- A later turn whose mutating calls all preview is the model's new plan; the failures are then resolved.
- A pass that ends with a failure unresolved is "failed" with an error naming each failed call and why,
  and a pass that stops before the model finished (budget, turns, refusals) proposes nothing either: an
  unfinished plan is not known to be whole (``bosun.planner.graph``).
- A dry-run sees the cluster as it is now, not after the plan's earlier steps, so a step that touches an
  object an earlier step touches carries a ``preview_note`` naming those steps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import yaml

from bosun.api.models import MAX_PROPOSAL_STEPS
from bosun.planner.bounds import capped, tool_reply
from bosun.planner.tool_calls import Feedback
from bosun.planner.types import InvestigationRecord, PlannedCall

FAILED_CALL_CAP = 1024
"""UTF-8 bytes describing one call that could not be previewed, in the error that names it."""
_ARGS_SHOWN = 300
"""UTF-8 bytes of a failed call's arguments shown in that description."""
_NAME_KEYS = ("name", "release", "cronjob", "job_name")
"""Arguments that name the object a call touches (the rest of a call's target is its namespace)."""


def _objects(args: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (namespace, name) pairs a call's arguments name, manifests included ("" when cluster-scoped).

    Kinds are left out on purpose: without API discovery "pvc" and "persistentvolumeclaim" differ, and the
    same name in the same namespace is reason enough to warn that a preview may not hold."""
    namespace = str(args.get("namespace") or "")
    found = {(namespace, args[key]) for key in _NAME_KEYS if isinstance(args.get(key), str)}
    manifest = args.get("manifest")
    if isinstance(manifest, str):
        try:
            documents = list(yaml.safe_load_all(manifest))
        except yaml.YAMLError:
            documents = []
        for document in documents:
            metadata = document.get("metadata") if isinstance(document, dict) else None
            if isinstance(metadata, dict) and isinstance(metadata.get("name"), str):
                found.add((str(metadata.get("namespace") or namespace), metadata["name"]))
    return found


def _touching(args: Mapping[str, Any], earlier: list[PlannedCall]) -> tuple[str, str]:
    """The earlier calls of a plan that touch an object ``args`` name, and those objects, in words (two
    empty strings when there are none). Calls collected this turn have no step id yet: named by tool."""
    mine = _objects(args)
    touching = [s for s in earlier if mine & _objects(s.args)]
    shared = sorted({obj for s in touching for obj in mine & _objects(s.args)})
    calls = ", ".join(f"{s.id} ({s.tool})" if s.id else s.tool for s in touching)
    return calls, ", ".join(f"{name} in {ns}" if ns else name for ns, name in shared)


def with_preview_notes(steps: list[PlannedCall]) -> list[PlannedCall]:
    """Mark each step whose preview could not see earlier steps of the plan touching the same object."""
    marked = []
    for index, step in enumerate(steps):
        calls, where = _touching(step.args, steps[:index])
        note = None
        if calls:
            note = (
                f"preview made before the plan's earlier step(s) {calls} on {where} ran: a dry-run sees the "
                "cluster as it is now, not after earlier steps, so the real result may differ"
            )
        marked.append(replace(step, preview_note=note))
    return marked


def _unseen(args: Mapping[str, Any], earlier: list[PlannedCall]) -> str:
    """Why a failed dry-run may be the plan's own doing (empty when no earlier call touches its object)."""
    calls, where = _touching(args, earlier)
    if not calls:
        return ""
    return (
        f"; its dry-run could not see the plan's earlier {calls} on {where}: a dry-run sees the cluster as "
        "it is now, so a plan whose step needs an earlier one done cannot be previewed whole (split it into "
        "separate tasks)"
    )


def _failed_call(tool: str, args: Any, why: str) -> str:
    shown = capped(json.dumps(args, sort_keys=True), _ARGS_SHOWN)
    return capped(f"{tool} {shown}: {why}", FAILED_CALL_CAP)


def _replan(failed: list[str], withdrawn: list[str]) -> str:
    """What the model reads after a turn whose plan could not be previewed whole."""
    earlier = f" Steps {', '.join(withdrawn)} proposed earlier are withdrawn as well." if withdrawn else ""
    return (
        f"\nNothing of your plan is proposed: {len(failed)} of its changes could not be previewed, and a "
        f"plan is proposed whole or not at all.{earlier} Fix or replace the failed call(s), then call EVERY "
        "mutating tool of the plan again, or finish and explain why it cannot be done."
    )


def failed_changes(results: list[Feedback], earlier: list[PlannedCall]) -> list[str]:
    """Each mutating call of this turn that cannot be previewed, named with why. A failed dry-run also
    says which earlier calls of the plan touch the same object, since it could not see them."""
    plan = list(earlier)
    failed = []
    for result in results:
        if result.step is not None:
            plan.append(result.step)
        if result.failed is None:
            continue
        args = result.record.args if result.record is not None else {}
        why = result.failed
        if not result.refused:
            unseen = _unseen(args, plan)
            why += unseen
            result.content += unseen
        failed.append(_failed_call(result.call.name, args, why))
    return failed


def withdrawal_replies(results: list[Feedback], failed: list[str], withdrawn_ids: list[str]) -> list[str]:
    """Replies for a turn whose plan could not be previewed whole: nothing of it is proposed, and the
    steps ``withdrawn_ids`` collected in earlier turns are withdrawn."""
    replan = _replan(failed, withdrawn_ids)
    replies = []
    for result in results:
        if result.failed is not None:
            replies.append(tool_reply(result.content, suffix=replan))
        elif result.step is not None:
            replies.append(
                tool_reply(
                    result.content,
                    prefix="Previewed, but NOT proposed: another change of this plan could not be "
                    "previewed (see its reply); issue this call again with the whole plan. ",
                )
            )
        else:
            replies.append(tool_reply(result.content))
    return replies


def extended_plan(
    results: list[Feedback], earlier: list[PlannedCall]
) -> tuple[list[PlannedCall], list[str], bool]:
    """The plan with this turn's previewed calls added, the replies, and whether the plan was full."""
    steps = list(earlier)
    proposed = {(s.tool, json.dumps(s.args, sort_keys=True)): s.id for s in steps}
    replies = []
    full = False
    for result in results:
        if result.step is None:
            replies.append(tool_reply(result.content))
            continue
        key = (result.step.tool, json.dumps(result.step.args, sort_keys=True))
        if key in proposed:
            replies.append(f"Already proposed as step {proposed[key]}; not added again.")
            continue
        if len(steps) >= MAX_PROPOSAL_STEPS:
            refusal = (
                f"refused, nothing ran: the proposal already holds {len(steps)} steps, the most one "
                "proposal may hold; finish now and propose further changes once these have run"
            )
            replies.append(refusal)
            result.record = InvestigationRecord(result.step.tool, result.step.args, False, refusal)
            full = True
            continue
        step = replace(result.step, id=f"s{len(steps) + 1}")
        proposed[key] = step.id
        steps.append(step)
        replies.append(
            tool_reply(
                result.content,
                prefix=f"Proposed as step {step.id}. It has NOT run: it runs only after a human approves "
                "it. ",
            )
        )
    return steps, replies, full
