"""The short "does this satisfy the request?" check that follows the objective verification.

It is asked only after the objective checks passed (a failed check replans without asking anyone), so the
objective facts are the fallback: with no model, when the task's model-call budget is spent, or when the
model cannot be reached or answers nonsense, they decide, and the reason says so.
"""

from __future__ import annotations

import json
import re

from bosun.planner.llm import ModelError, complete
from bosun.planner.prompts import JUDGE_SYSTEM, judge_message
from bosun.planner.types import Judgement, ModelSettings, PlanningContext

_REASON_CAP = 400


def parse_verdict(text: str) -> tuple[bool, str] | None:
    """(satisfied, reason) from a JSON verdict or a plain yes/no sentence; None when it is unclear."""
    match = re.search(r"\{.*\}", text, re.DOTALL)
    if match:
        try:
            verdict = json.loads(match.group(0))
        except json.JSONDecodeError:
            verdict = None
        if isinstance(verdict, dict) and isinstance(verdict.get("satisfied"), bool):
            return verdict["satisfied"], str(verdict.get("reason") or "").strip()[:_REASON_CAP]
    head = text.strip().lower()
    if re.match(r"(yes|satisfied)\b", head):
        return True, text.strip()[:_REASON_CAP]
    if re.match(r"(no|not satisfied|unsatisfied)\b", head):
        return False, text.strip()[:_REASON_CAP]
    return None


async def judge_outcome(ctx: PlanningContext, facts: str, model: ModelSettings | None) -> Judgement:
    """Whether the request is satisfied; ``facts`` are the objective checks' findings (which passed)."""
    if model is None:
        return Judgement(True, f"objective checks passed: {facts}")
    if ctx.model_calls_left <= 0:
        return Judgement(
            True,
            f"objective checks passed: {facts}; no model judgement, the objective checks alone decide: "
            f"the task's model-call budget is spent ({ctx.model_budget})",
        )
    messages = [
        {"role": "system", "content": JUDGE_SYSTEM},
        {"role": "user", "content": judge_message(ctx, facts)},
    ]
    try:
        reply = await complete(model, messages)
    except ModelError as exc:
        return Judgement(True, f"objective checks passed: {facts}; model judgement unavailable: {exc}")
    verdict = parse_verdict(reply.content)
    if verdict is None:
        reason = (
            f"objective checks passed: {facts}; the model's judgement was unreadable: {reply.content[:200]!r}"
        )
        return Judgement(True, reason, reply.usage)
    satisfied, reason = verdict
    return Judgement(satisfied, reason or ("satisfied" if satisfied else "not satisfied"), reply.usage)
