"""The planning loop as a LangGraph graph: model turn → tool calls → model turn … → answer or proposal.

One graph run is one planning pass inside one reconcile; nothing is checkpointed (the task's ``.status`` is
the durable record and the next pass rebuilds the conversation from it). The calls of each model turn are
handled by ``bosun.planner.tool_calls``; what they mean for the proposal (a plan is proposed whole or not
at all) by ``bosun.planner.whole_plan``; the conversation stays within ``bosun.planner.bounds``; and every
text of the result is scrubbed of the secret values the model's calls carried
(``bosun.planner.secret_values``).

The pass makes at most ``min(ctx.model_calls_left, max_turns)`` model calls, and gives up after
``MAX_REFUSED_TURNS`` turns with refused calls. A pass that stops before the model finished proposes
nothing: an unfinished plan is not known to be whole.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, TypedDict, cast

from langgraph.graph import END, START, StateGraph

from bosun.api.models import RATIONALE_CAP
from bosun.planner.bounds import (
    ASSISTANT_TEXT_CAP,
    REQUEST_BUDGET,
    TOOL_ARGUMENTS_CAP,
    capped,
    echoed,
    fit,
    json_size,
    shortened,
)
from bosun.planner.llm import ModelError, ModelReply, RawToolCall, complete
from bosun.planner.prompts import SYSTEM, request_message
from bosun.planner.secret_values import scrubbed
from bosun.planner.tool_calls import ToolCalls
from bosun.planner.toolsets import DEFAULT_TOOLSETS, openai_tools
from bosun.planner.types import (
    Failure,
    InvestigationRecord,
    ModelSettings,
    PlannedCall,
    PlanningContext,
    PlanResult,
    Usage,
)
from bosun.planner.whole_plan import extended_plan, failed_changes, with_preview_notes, withdrawal_replies
from bosun.ports.gateway import ToolGateway

log = logging.getLogger(__name__)

MAX_REFUSED_TURNS = 3
"""Model turns with refused calls (unknown tool, bad arguments, out of scope) before the pass gives up."""


class PlanState(TypedDict):
    messages: list[dict[str, Any]]
    compacted: int
    """Messages before this index are never compacted (again): the system prompt and the request, then
    the turns compacted already, since compaction goes oldest first."""
    loaded: list[str]
    pending: list[RawToolCall]
    rationale: str
    steps: list[PlannedCall]
    unresolved: list[str]
    """Mutating calls of the model's latest plan that could not be previewed, each with why."""
    investigation: list[InvestigationRecord]
    usage: Usage
    turns: int
    refused: int
    final: str | None
    error: str | None
    failure: Failure | None


class Planner:
    """Holds what one planning pass needs; ``run`` builds and runs the graph."""

    def __init__(self, ctx: PlanningContext, gateway: ToolGateway, model: ModelSettings) -> None:
        self.ctx = ctx
        self.gateway = gateway
        self.model = model
        self.turn_limit = max(0, min(ctx.model_calls_left, model.max_turns))
        """Model calls this pass may make: the task's remaining budget, at most ``max_turns``."""
        self.calls = ToolCalls(ctx, gateway)
        """Handles the pass's tool calls; keeps the secret values they carried, to scrub from the result."""

    async def model_turn(self, state: PlanState) -> dict[str, Any]:
        tools = await openai_tools(self.gateway, state["loaded"])
        fitted = fit(state["messages"], state["compacted"], REQUEST_BUDGET - json_size(tools))
        if fitted is None:
            error = (
                f"the next model request would exceed {REQUEST_BUDGET} bytes even with every earlier turn "
                "compacted"
            )
            return {"error": error, "failure": "planning", "pending": []}
        messages, compacted = fitted
        try:
            reply: ModelReply = await complete(self.model, messages, tools)
        except ModelError as exc:
            log.warning("planning for %s stopped: %s", self.ctx.identity.user, exc)
            return {"error": str(exc), "failure": "model", "pending": []}
        usage = replace(state["usage"])
        usage.add(reply.usage)
        update: dict[str, Any] = {
            "messages": [
                *messages,
                shortened(reply.as_message(), ASSISTANT_TEXT_CAP, TOOL_ARGUMENTS_CAP),
            ],
            "compacted": compacted,
            "pending": reply.tool_calls,
            "rationale": reply.content.strip(),
            "usage": usage,
            "turns": state["turns"] + 1,
        }
        if not reply.tool_calls:
            update["final"] = reply.content.strip()
        return update

    async def tool_turn(self, state: PlanState) -> dict[str, Any]:
        results = await self.calls.handle_turn(state["pending"], state["rationale"])
        failed = failed_changes(results, state["steps"])
        if failed:
            steps: list[PlannedCall] = []
            unresolved = failed
            replies = withdrawal_replies(results, failed, [s.id for s in state["steps"]])
            full = False
        else:
            steps, replies, full = extended_plan(results, state["steps"])
            unresolved = [] if any(r.step is not None for r in results) else state["unresolved"]
        investigation = list(state["investigation"])
        loaded = list(state["loaded"])
        messages = list(state["messages"])
        echoes = {r.call.id: r.echo for r in results if r.echo is not None}
        if echoes:
            messages[-1] = echoed(messages[-1], echoes, self.calls.values)
        for result, reply in zip(results, replies, strict=True):
            messages.append({"role": "tool", "tool_call_id": result.call.id, "content": reply})
            if result.record is not None:
                investigation.append(result.record)
            if result.load is not None and result.load not in loaded:
                loaded.append(result.load)
        refused_here = full or any(r.refused for r in results)
        return {
            "messages": messages,
            "steps": steps,
            "unresolved": unresolved,
            "investigation": investigation,
            "loaded": loaded,
            "refused": state["refused"] + int(refused_here),
            "pending": [],
        }

    def after_model(self, state: PlanState) -> str:
        return "tools" if state["pending"] and state["error"] is None else END

    def after_tools(self, state: PlanState) -> str:
        if state["refused"] >= MAX_REFUSED_TURNS or state["turns"] >= self.turn_limit:
            return END
        return "model"

    async def run(self) -> PlanResult:
        if self.turn_limit == 0:
            error = f"the task's model-call budget is spent ({self.ctx.model_budget}); no model call was made"
            return PlanResult("failed", f"Planning failed: {error}", error=error, failure="planning")
        graph = StateGraph(PlanState)
        graph.add_node("model", self.model_turn)
        graph.add_node("tools", self.tool_turn)
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", self.after_model, ["tools", END])
        graph.add_conditional_edges("tools", self.after_tools, ["model", END])
        initial: PlanState = {
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": request_message(self.ctx)},
            ],
            "compacted": 2,
            "loaded": list(DEFAULT_TOOLSETS),
            "pending": [],
            "rationale": "",
            "steps": [],
            "unresolved": [],
            "investigation": [],
            "usage": Usage(),
            "turns": 0,
            "refused": 0,
            "final": None,
            "error": None,
            "failure": None,
        }
        final = await graph.compile().ainvoke(initial, config={"recursion_limit": 2 * self.turn_limit + 4})
        return scrubbed(self._result(cast(PlanState, final)), self.calls.values)

    def _stopped_because(self, state: PlanState) -> str:
        if state["refused"] >= MAX_REFUSED_TURNS:
            return f"the model's tool calls were refused in {state['refused']} turns"
        if state["turns"] >= self.ctx.model_calls_left:
            return (
                f"the task's model-call budget ran out after {state['turns']} model call(s) in this pass "
                f"({self.ctx.model_budget})"
            )
        return f"the model did not finish within {self.model.max_turns} turns"

    def _result(self, state: PlanState) -> PlanResult:
        steps, unresolved = state["steps"], state["unresolved"]
        investigation, usage = state["investigation"], state["usage"]
        problems = []
        if state["error"] is not None:
            problems.append(state["error"])
        elif state["final"] is None:
            problems.append(self._stopped_because(state))
        if unresolved:
            problems.append(
                f"{len(unresolved)} change(s) of the model's plan could not be previewed, so nothing of it "
                "is proposed: " + "; ".join(unresolved)
            )
        if problems:
            if steps:
                problems.append(
                    f"the {len(steps)} step(s) collected before planning stopped are not proposed: a plan is "
                    "proposed whole or not at all"
                )
            elif not unresolved and state["error"] is None:
                problems.append("see the refused calls in the investigation, or rephrase the request")
            error = "; ".join(problems)
            summary = f"Planning failed: {error}"
            if state["final"]:
                summary += f"\nThe model's last answer: {state['final']}"
            failure = state["failure"] or "planning"
            return PlanResult("failed", summary, [], investigation, usage, error, failure)
        summary = state["final"] or ""
        if steps:
            rationale = capped(summary, RATIONALE_CAP)
            steps = [s if s.rationale else replace(s, rationale=rationale) for s in steps]
            return PlanResult("proposal", summary, with_preview_notes(steps), investigation, usage)
        return PlanResult("answer", summary or "(the model gave no answer)", [], investigation, usage)
