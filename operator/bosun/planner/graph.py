"""The planning loop as a LangGraph graph: model turn → tool calls → model turn … → answer or proposal.

One graph run is one planning pass inside one reconcile; nothing is checkpointed (the task's ``.status`` is
the durable record and the next pass rebuilds the conversation from it). Read-only calls run at once, in
parallel, as the requester; mutating calls are validated, scope-checked and previewed (server-side dry-run,
as the identity that would execute them) and collected as the proposal, never executed; whatever is refused
goes back to the model as a tool error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace
from typing import Any, TypedDict, cast

from langgraph.graph import END, START, StateGraph

from bosun.gateway import DEFAULT_TOOLSETS, LOAD_TOOLSET, ToolGateway
from bosun.models import MAX_PROPOSAL_STEPS
from bosun.planner.llm import ModelError, ModelReply, RawToolCall, complete
from bosun.planner.prompts import SYSTEM, request_message
from bosun.planner.types import (
    InvestigationRecord,
    ModelSettings,
    PlannedCall,
    PlanningContext,
    PlanResult,
    Usage,
)

log = logging.getLogger(__name__)

MAX_REFUSED_TURNS = 3
"""Model turns with refused calls (unknown tool, bad arguments, out of scope) before the pass gives up."""
MAX_CALLS_PER_TURN = 16
"""Tool calls handled from one model turn; more are refused, so one reply cannot fan out without bound."""
PARALLEL_CALLS = 6
"""Read-only calls and previews in flight at once (they share the tool server and the API server)."""
TOOL_TEXT_CAP = 6_000
"""Characters of one tool result fed back to the model; the server caps too, this bounds the context."""
RATIONALE_CAP = 1000
"""Characters of the model's text kept as a step's rationale (the status field holds 1024)."""


class PlanState(TypedDict):
    messages: list[dict[str, Any]]
    loaded: list[str]
    pending: list[RawToolCall]
    rationale: str
    steps: list[PlannedCall]
    investigation: list[InvestigationRecord]
    usage: Usage
    turns: int
    refused: int
    final: str | None
    error: str | None


@dataclass
class _Feedback:
    """What one tool call produced for the conversation and for the record."""

    call: RawToolCall
    content: str
    record: InvestigationRecord | None = None
    step: PlannedCall | None = None
    refused: bool = False
    load: str | None = None


def _cap(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap] + f"\n…[truncated {len(text) - cap} characters]"


class Planner:
    """Holds what one planning pass needs; ``run`` builds and runs the graph."""

    def __init__(self, ctx: PlanningContext, gateway: ToolGateway, model: ModelSettings) -> None:
        self.ctx = ctx
        self.gateway = gateway
        self.model = model

    async def model_turn(self, state: PlanState) -> dict[str, Any]:
        tools = await self.gateway.openai_tools(state["loaded"])
        try:
            reply: ModelReply = await complete(self.model, state["messages"], tools)
        except ModelError as exc:
            log.warning("planning for %s stopped: %s", self.ctx.identity.user, exc)
            return {"error": str(exc), "pending": []}
        usage = replace(state["usage"])
        usage.add(reply.usage)
        update: dict[str, Any] = {
            "messages": [*state["messages"], reply.as_message()],
            "pending": reply.tool_calls,
            "rationale": reply.content.strip(),
            "usage": usage,
            "turns": state["turns"] + 1,
        }
        if not reply.tool_calls:
            update["final"] = reply.content.strip()
        return update

    async def tool_turn(self, state: PlanState) -> dict[str, Any]:
        proposed = {(s.tool, json.dumps(s.args, sort_keys=True)): s.id for s in state["steps"]}
        limit = asyncio.Semaphore(PARALLEL_CALLS)
        results = await asyncio.gather(
            *(
                self._handle(call, state["rationale"], limit)
                if index < MAX_CALLS_PER_TURN
                else self._refuse(
                    call, {}, f"more than {MAX_CALLS_PER_TURN} tool calls in one turn; ask for fewer"
                )
                for index, call in enumerate(state["pending"])
            )
        )
        messages = list(state["messages"])
        steps = list(state["steps"])
        investigation = list(state["investigation"])
        loaded = list(state["loaded"])
        refused_here = False
        for result in results:
            messages.append({"role": "tool", "tool_call_id": result.call.id, "content": result.content})
            if result.record is not None:
                investigation.append(result.record)
            if result.step is not None:
                key = (result.step.tool, json.dumps(result.step.args, sort_keys=True))
                if key in proposed:
                    messages[-1]["content"] = f"Already proposed as step {proposed[key]}; not added again."
                    continue
                if len(steps) >= MAX_PROPOSAL_STEPS:
                    full = (
                        f"refused, nothing ran: the proposal already holds {len(steps)} steps, the most one "
                        "proposal may hold; finish now and propose further changes once these have run"
                    )
                    messages[-1]["content"] = full
                    investigation.append(InvestigationRecord(result.step.tool, result.step.args, False, full))
                    refused_here = True
                    continue
                step = replace(result.step, id=f"s{len(steps) + 1}")
                proposed[key] = step.id
                steps.append(step)
                messages[-1]["content"] = (
                    f"Proposed as step {step.id}. It has NOT run: it runs only after a human approves it. "
                    + result.content
                )
            if result.load is not None and result.load not in loaded:
                loaded.append(result.load)
            refused_here = refused_here or result.refused
        return {
            "messages": messages,
            "steps": steps,
            "investigation": investigation,
            "loaded": loaded,
            "refused": state["refused"] + int(refused_here),
            "pending": [],
        }

    async def _handle(self, call: RawToolCall, rationale: str, limit: asyncio.Semaphore) -> _Feedback:
        async with limit:
            return await self._check_and_run(call, rationale)

    async def _check_and_run(self, call: RawToolCall, rationale: str) -> _Feedback:
        try:
            args = json.loads(call.arguments or "{}")
        except json.JSONDecodeError as exc:
            return await self._refuse(
                call, {}, f"arguments of {call.name} are not valid JSON ({exc}); send a JSON object"
            )
        if call.name == LOAD_TOOLSET:
            return await self._load(call, args)
        problem = await self.gateway.validation_error(call.name, args)
        if problem is None:
            problem = self.gateway.scope_error(call.name, args, self.ctx.target_namespaces)
        if problem is not None:
            return await self._refuse(call, args if isinstance(args, dict) else {}, problem)
        if self.gateway.is_read_only(call.name):
            outcome = await self.gateway.call(call.name, args, identity=self.ctx.identity)
            text = outcome.text if outcome.ok else f"error: {outcome.error}"
            return _Feedback(
                call,
                _cap(text, TOOL_TEXT_CAP),
                record=InvestigationRecord(call.name, args, outcome.ok, _cap(text, TOOL_TEXT_CAP)),
            )
        preview = await self.gateway.call(call.name, args, identity=self.ctx.acting, preview=True)
        if not preview.ok:
            message = f"dry-run of {call.name} failed, so it was not proposed: {preview.error}"
            return _Feedback(call, message, record=InvestigationRecord(call.name, args, False, message))
        shown = preview.diff or preview.text
        return _Feedback(
            call,
            f"Dry-run preview:\n{_cap(shown, TOOL_TEXT_CAP)}",
            step=PlannedCall(
                id="",
                tool=call.name,
                args=args,
                rationale=_cap(rationale, RATIONALE_CAP),
                preview=preview.text,
                diff=preview.diff,
            ),
        )

    async def _load(self, call: RawToolCall, args: Any) -> _Feedback:
        available = await self.gateway.toolsets()
        wanted = args.get("toolset") if isinstance(args, dict) else None
        if wanted not in available:
            return await self._refuse(
                call,
                args if isinstance(args, dict) else {},
                f"unknown toolset {wanted!r}; choose one of {available}",
            )
        return _Feedback(call, f"Toolset {wanted} is available from your next turn.", load=str(wanted))

    async def _refuse(self, call: RawToolCall, args: dict[str, Any], problem: str) -> _Feedback:
        message = f"refused, nothing ran: {problem}"
        log.info("planner refused %s for %s: %s", call.name, self.ctx.identity.user, problem)
        return _Feedback(
            call, message, record=InvestigationRecord(call.name, args, False, message), refused=True
        )

    def after_model(self, state: PlanState) -> str:
        return "tools" if state["pending"] and state["error"] is None else END

    def after_tools(self, state: PlanState) -> str:
        if state["refused"] >= MAX_REFUSED_TURNS or state["turns"] >= self.model.max_turns:
            return END
        return "model"

    async def run(self) -> PlanResult:
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
            "loaded": list(DEFAULT_TOOLSETS),
            "pending": [],
            "rationale": "",
            "steps": [],
            "investigation": [],
            "usage": Usage(),
            "turns": 0,
            "refused": 0,
            "final": None,
            "error": None,
        }
        final = await graph.compile().ainvoke(
            initial, config={"recursion_limit": 2 * self.model.max_turns + 4}
        )
        return self._result(cast(PlanState, final))

    def _result(self, state: PlanState) -> PlanResult:
        steps = state["steps"]
        summary = state["final"] or ""
        investigation, usage = state["investigation"], state["usage"]
        if state["error"] is not None:
            error = state["error"]
            return PlanResult("failed", f"Planning failed: {error}", [], investigation, usage, error, "model")
        if state["final"] is None:
            why = (
                f"the model's tool calls were refused in {state['refused']} turns"
                if state["refused"] >= MAX_REFUSED_TURNS
                else f"the model did not finish within {self.model.max_turns} turns"
            )
            if not steps:
                error = f"{why}; see the refused calls in the investigation, or rephrase the request"
                return PlanResult(
                    "failed", f"Planning failed: {error}", [], investigation, usage, error, "planning"
                )
            summary = f"Proposed {len(steps)} step(s); planning stopped early because {why}."
        if steps:
            steps = [s if s.rationale else replace(s, rationale=_cap(summary, RATIONALE_CAP)) for s in steps]
            return PlanResult("proposal", summary, steps, investigation, usage)
        return PlanResult("answer", summary or "(the model gave no answer)", [], investigation, usage)
