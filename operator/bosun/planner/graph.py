"""The planning loop as a LangGraph graph: model turn → tool calls → model turn … → answer or proposal.

One graph run is one planning pass inside one reconcile; nothing is checkpointed (the task's ``.status`` is
the durable record and the next pass rebuilds the conversation from it). Read-only calls run at once, in
parallel, as the requester; mutating calls are validated, scope-checked and previewed (server-side dry-run,
as the identity that would execute them) and collected as the proposal, never executed; whatever is refused
goes back to the model as a tool error.

Whole plans only (safety rule 9). The proposal is the set of mutating calls of the model's final plan, each
with a preview:

- A turn in which any mutating call cannot be previewed (the gate refused it, or its dry-run failed)
  proposes nothing: it withdraws every step collected so far, this turn's previewed calls included, and
  tells the model which calls failed and why, and that it must issue the whole plan again. A call of a
  tool the server does not offer is refused too, but it names no change, so it voids nothing.
- A later turn whose mutating calls all preview is the model's new plan; the failures are then resolved.
- A pass that ends with a failure unresolved is "failed" with an error naming each failed call and why,
  and a pass that stops before the model finished (budget, turns, refusals) proposes nothing either: an
  unfinished plan is not known to be whole.
- A dry-run sees the cluster as it is now, not after the plan's earlier steps, so a step that touches an
  object an earlier step touches carries a ``preview_note`` naming those steps.

Secret values (safety rule 4). A previewed change is proposed with the arguments the tool server returns,
each secret value sealed into a placeholder (``bosun_tools.sealing``); a preview that comes back with a
secret value still in it is not proposed. Every other call is recorded, and echoed to the model in its own
tool-call message, with its secret values redacted (``bosun_tools.secrets``), refusals are scrubbed of them,
and so is every text of the result (summary, rationale, previews, investigation), since a model may repeat
a value in its own words.

Bounds. The pass makes at most ``min(ctx.model_calls_left, max_turns)`` model calls. Every tool result fed
back is capped in UTF-8 bytes with a visible marker, so are the model's own text and tool-call arguments
when they are sent again, and when a request would exceed ``REQUEST_BUDGET`` the oldest turns are compacted
until it fits; a request that cannot fit is never sent.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypedDict, cast

import yaml
from bosun_tools.output import cap_text
from bosun_tools.secrets import Found, scrub, values_of
from langgraph.graph import END, START, StateGraph

from bosun.api.models import MAX_PROPOSAL_STEPS
from bosun.planner.llm import ModelError, ModelReply, RawToolCall, complete
from bosun.planner.prompts import SYSTEM, request_message
from bosun.planner.types import (
    Failure,
    InvestigationRecord,
    ModelSettings,
    PlannedCall,
    PlanningContext,
    PlanResult,
    Usage,
)
from bosun.ports.gateway import DEFAULT_TOOLSETS, LOAD_TOOLSET, ToolGateway

log = logging.getLogger(__name__)

MAX_REFUSED_TURNS = 3
"""Model turns with refused calls (unknown tool, bad arguments, out of scope) before the pass gives up."""
MAX_CALLS_PER_TURN = 16
"""Tool calls handled from one model turn; more are refused, so one reply cannot fan out without bound."""
PARALLEL_CALLS = 6
"""Read-only calls and previews in flight at once (they share the tool server and the API server)."""
TOOL_RESULT_CAP = 6 * 1024
"""UTF-8 bytes of one tool result fed back to the model: read output, dry-run preview, refusal (which may
echo the arguments), load_toolset answer. The tool server caps its output too, but refusals and previews
are written here, and a model can send arguments of any size."""
TOOL_ARGUMENTS_CAP = 4 * 1024
"""UTF-8 bytes of one tool call's arguments sent back to the model in its own assistant message; the call
itself (and its proposal) keeps them whole, only the conversation is cut."""
ASSISTANT_TEXT_CAP = 8 * 1024
"""UTF-8 bytes of the model's own text sent back to it in later turns."""
COMPACTED_CAP = 256
"""UTF-8 bytes an older tool result, assistant text or tool-call arguments keep once compacted."""
REQUEST_BUDGET = 256 * 1024
"""Bytes of JSON (messages and tool definitions) one model request may carry. Caps alone do not bound a
conversation that grows turn by turn, so older turns are compacted, oldest first, to stay within it."""
RATIONALE_CAP = 1000
"""UTF-8 bytes of the model's text kept as a step's rationale (the status field holds 1024 characters)."""
FAILED_CALL_CAP = 1024
"""UTF-8 bytes describing one call that could not be previewed, in the error that names it."""
_ARGS_SHOWN = 300
"""UTF-8 bytes of a failed call's arguments shown in that description."""
_TRUNCATED_ARGUMENTS = "truncated_arguments"
_NAME_KEYS = ("name", "release", "cronjob", "job_name")
"""Arguments that name the object a call touches (the rest of a call's target is its namespace)."""


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


@dataclass
class _Feedback:
    """What one tool call produced for the conversation and for the record; the turn that gathers the
    feedback of all its calls completes it (what the plan as a whole means for each call) before use."""

    call: RawToolCall
    content: str
    """What the model reads, not yet capped: the reply around it is assembled and capped in one place."""
    record: InvestigationRecord | None = None
    step: PlannedCall | None = None
    refused: bool = False
    load: str | None = None
    failed: str | None = None
    """Why a mutating call cannot be previewed (it was refused, or its dry-run failed)."""
    echo: dict[str, Any] | None = None
    """The call's arguments as the conversation keeps them, when they differ from what the model sent:
    secret values sealed (a proposed step) or redacted."""


def _capped(text: str, cap: int) -> str:
    return cap_text(text, cap)[0]


def _reply(content: str, prefix: str = "", suffix: str = "") -> str:
    """One tool message: Bosun's own words around the tool's content, at most ``TOOL_RESULT_CAP`` bytes
    and a truncation marker; the content is what gets cut, so the words about the plan always arrive."""
    room = TOOL_RESULT_CAP - len(prefix.encode()) - len(suffix.encode())
    return prefix + _capped(content, room) + suffix


def _json_size(value: Any) -> int:
    """Bytes of ``value`` as JSON with non-ASCII escaped: never less than what an HTTP client sends."""
    return len(json.dumps(value))


def _shortened_arguments(arguments: str, cap: int) -> str:
    """Tool-call arguments as sent back to the model: longer than ``cap`` bytes, they become a JSON object
    holding their head and a truncation marker, so providers that parse arguments can still parse them."""
    if len(arguments.encode()) <= cap:
        return arguments
    return json.dumps({_TRUNCATED_ARGUMENTS: _capped(arguments, cap)})


def _shortened(message: dict[str, Any], text_cap: int, arguments_cap: int) -> dict[str, Any]:
    """A copy of a conversation message with its content and tool-call arguments capped."""
    shortened = dict(message)
    if isinstance(message.get("content"), str):
        shortened["content"] = _capped(message["content"], text_cap)
    if message.get("tool_calls"):
        shortened["tool_calls"] = [
            {
                **c,
                "function": {
                    **c["function"],
                    "arguments": _shortened_arguments(c["function"]["arguments"], arguments_cap),
                },
            }
            for c in message["tool_calls"]
        ]
    return shortened


def _echoed(
    message: dict[str, Any], arguments: Mapping[str, dict[str, Any]], values: Mapping[str, str]
) -> dict[str, Any]:
    """The model's tool-call message with the arguments of the calls in ``arguments`` replaced and its text
    scrubbed of ``values``, so that no secret value travels back to the model, not even in its own words."""
    calls = [
        {
            **c,
            "function": {
                **c["function"],
                "arguments": _shortened_arguments(json.dumps(arguments[c["id"]]), TOOL_ARGUMENTS_CAP),
            },
        }
        if c.get("id") in arguments
        else c
        for c in message.get("tool_calls") or []
    ]
    content = message.get("content")
    return {**message, "content": scrub(content, values) if content else content, "tool_calls": calls}


def _fit(
    messages: list[dict[str, Any]], compacted: int, budget: int
) -> tuple[list[dict[str, Any]], int] | None:
    """``messages`` with the oldest from index ``compacted`` on compacted until their JSON fits ``budget``
    bytes, and the index of the first message left whole; None when compacting every turn is not enough."""
    size = _json_size(messages)
    fitted = list(messages)
    index = compacted
    while size > budget and index < len(fitted):
        smaller = _shortened(fitted[index], COMPACTED_CAP, COMPACTED_CAP)
        # The separators between messages do not change, so the size changes by the message's alone.
        size -= _json_size(fitted[index]) - _json_size(smaller)
        fitted[index] = smaller
        index += 1
    return (fitted, index) if size <= budget else None


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


def _with_preview_notes(steps: list[PlannedCall]) -> list[PlannedCall]:
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
    shown = _capped(json.dumps(args, sort_keys=True), _ARGS_SHOWN)
    return _capped(f"{tool} {shown}: {why}", FAILED_CALL_CAP)


def _replan(failed: list[str], withdrawn: list[str]) -> str:
    """What the model reads after a turn whose plan could not be previewed whole."""
    earlier = f" Steps {', '.join(withdrawn)} proposed earlier are withdrawn as well." if withdrawn else ""
    return (
        f"\nNothing of your plan is proposed: {len(failed)} of its changes could not be previewed, and a "
        f"plan is proposed whole or not at all.{earlier} Fix or replace the failed call(s), then call EVERY "
        "mutating tool of the plan again, or finish and explain why it cannot be done."
    )


class Planner:
    """Holds what one planning pass needs; ``run`` builds and runs the graph."""

    def __init__(self, ctx: PlanningContext, gateway: ToolGateway, model: ModelSettings) -> None:
        self.ctx = ctx
        self.gateway = gateway
        self.model = model
        self.turn_limit = max(0, min(ctx.model_calls_left, model.max_turns))
        """Model calls this pass may make: the task's remaining budget, at most ``max_turns``."""
        self.values: dict[str, str] = {}
        """Every form of every secret value the model put in a call this pass (``secrets.values_of``), to
        scrub from the texts of the result."""

    async def _is_change(self, tool: str) -> bool:
        """Whether a call is one of the plan's changes: a mutating tool the tool server offers. A made-up
        tool name is refused and fed back like bad arguments, but it names no change that could be
        proposed, so it does not void the plan (load_toolset is no served tool either)."""
        return tool in await self.gateway.input_schemas() and not self.gateway.is_read_only(tool)

    async def model_turn(self, state: PlanState) -> dict[str, Any]:
        tools = await self.gateway.openai_tools(state["loaded"])
        fitted = _fit(state["messages"], state["compacted"], REQUEST_BUDGET - _json_size(tools))
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
                _shortened(reply.as_message(), ASSISTANT_TEXT_CAP, TOOL_ARGUMENTS_CAP),
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
        failed = self._failures(results, state["steps"])
        if failed:
            steps: list[PlannedCall] = []
            unresolved = failed
            replies = self._withdrawn(results, failed, [s.id for s in state["steps"]])
            full = False
        else:
            steps, replies, full = self._collected(results, state["steps"])
            unresolved = [] if any(r.step is not None for r in results) else state["unresolved"]
        investigation = list(state["investigation"])
        loaded = list(state["loaded"])
        messages = list(state["messages"])
        echoes = {r.call.id: r.echo for r in results if r.echo is not None}
        if echoes:
            messages[-1] = _echoed(messages[-1], echoes, self.values)
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

    def _failures(self, results: list[_Feedback], earlier: list[PlannedCall]) -> list[str]:
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

    def _withdrawn(self, results: list[_Feedback], failed: list[str], withdrawn: list[str]) -> list[str]:
        """Replies for a turn whose plan could not be previewed whole: nothing of it is proposed."""
        replan = _replan(failed, withdrawn)
        replies = []
        for result in results:
            if result.failed is not None:
                replies.append(_reply(result.content, suffix=replan))
            elif result.step is not None:
                replies.append(
                    _reply(
                        result.content,
                        prefix="Previewed, but NOT proposed: another change of this plan could not be "
                        "previewed (see its reply); issue this call again with the whole plan. ",
                    )
                )
            else:
                replies.append(_reply(result.content))
        return replies

    def _collected(
        self, results: list[_Feedback], earlier: list[PlannedCall]
    ) -> tuple[list[PlannedCall], list[str], bool]:
        """The plan with this turn's previewed calls added, the replies, and whether the plan was full."""
        steps = list(earlier)
        proposed = {(s.tool, json.dumps(s.args, sort_keys=True)): s.id for s in steps}
        replies = []
        full = False
        for result in results:
            if result.step is None:
                replies.append(_reply(result.content))
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
                _reply(
                    result.content,
                    prefix=f"Proposed as step {step.id}. It has NOT run: it runs only after a human approves "
                    "it. ",
                )
            )
        return steps, replies, full

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
            problem = await self.gateway.scope_error(
                call.name, args, self.ctx.target_namespaces, cluster_scope=self.ctx.cluster_scope
            )
        if problem is not None:
            return await self._refuse(call, args if isinstance(args, dict) else {}, problem)
        found = self._found(args)
        recorded = found.redacted(args)
        echo = recorded if found.leaves else None
        if self.gateway.is_read_only(call.name):
            outcome = await self.gateway.read(call.name, args, identity=self.ctx.identity)
            text = found.scrub(outcome.text if outcome.ok else f"error: {outcome.error}")
            record = InvestigationRecord(call.name, recorded, outcome.ok, _reply(text))
            return _Feedback(call, text, record=record, echo=echo)
        preview = await self.gateway.preview(call.name, args, identity=self.ctx.acting, task=self.ctx.task)
        sealed = preview.sealed_args or args
        unsealed = unsealed_values(sealed) if preview.ok else None
        if not preview.ok or unsealed is not None:
            why = unsealed or found.scrub(preview.error or "the tool gave no reason")
            message = f"dry-run of {call.name} failed, so it was not proposed: {why}"
            return _Feedback(
                call,
                message,
                record=InvestigationRecord(call.name, recorded, False, _reply(message)),
                failed=f"dry-run failed: {why}",
                echo=echo,
            )
        return _Feedback(
            call,
            f"Dry-run preview:\n{preview.diff or preview.text}",
            step=PlannedCall(
                id="",
                tool=call.name,
                args=sealed,
                rationale=_capped(rationale, RATIONALE_CAP),
                preview=preview.text,
                diff=preview.diff,
            ),
            echo=sealed if sealed != args else None,
        )

    def _found(self, args: dict[str, Any]) -> Found:
        """The secret values of a call the model made, remembered to scrub them from the pass's texts."""
        found = Found.of(args)
        self.values.update(values_of(found.leaves))
        return found

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
        found = self._found(args)
        problem = found.scrub(problem)
        message = f"refused, nothing ran: {problem}"
        shown = _reply(message)
        log.info("planner refused %s for %s: %s", call.name, self.ctx.identity.user, shown)
        failed = f"refused: {problem}" if await self._is_change(call.name) else None
        recorded = found.redacted(args)
        return _Feedback(
            call,
            message,
            record=InvestigationRecord(call.name, recorded, False, shown),
            refused=True,
            failed=failed,
            echo=recorded if found.leaves else None,
        )

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
        return scrubbed(self._result(cast(PlanState, final)), self.values)

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
            rationale = _capped(summary, RATIONALE_CAP)
            steps = [s if s.rationale else replace(s, rationale=rationale) for s in steps]
            return PlanResult("proposal", summary, _with_preview_notes(steps), investigation, usage)
        return PlanResult("answer", summary or "(the model gave no answer)", [], investigation, usage)


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
