"""The tool calls of a model turn: each checked, then run, previewed or refused, and what it produced.

Read-only calls run at once, in parallel, as the requester; mutating calls are validated, scope-checked and
previewed (server-side dry-run, as the identity that would execute them), never executed: what becomes of
them is decided for the turn as a whole (``bosun.planner.whole_plan``). Whatever is refused goes back to
the model as a tool error. A previewed change keeps the arguments the tool server returned, its secret
values sealed; every other call is recorded, and echoed to the model, with its secret values redacted
(``bosun_tools.secrets``), and refusals and read output are scrubbed of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from bosun_tools.secrets import Found, values_of

from bosun.api.models import RATIONALE_CAP
from bosun.planner.bounds import capped, tool_reply
from bosun.planner.llm import RawToolCall
from bosun.planner.secret_values import unsealed_values
from bosun.planner.toolsets import LOAD_TOOLSET, offered_toolsets
from bosun.planner.types import InvestigationRecord, PlannedCall, PlanningContext
from bosun.ports.gateway import ToolGateway

log = logging.getLogger(__name__)

MAX_CALLS_PER_TURN = 16
"""Tool calls handled from one model turn; more are refused, so one reply cannot fan out without bound."""
PARALLEL_CALLS = 6
"""Read-only calls and previews in flight at once (they share the tool server and the API server)."""


@dataclass
class Feedback:
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


class ToolCalls:
    """Handles the tool calls of one planning pass, as the task's requester (and executor for previews)."""

    def __init__(self, ctx: PlanningContext, gateway: ToolGateway) -> None:
        self.ctx = ctx
        self.gateway = gateway
        self.values: dict[str, str] = {}
        """Every form of every secret value the model put in a call this pass (``secrets.values_of``), to
        scrub from the texts of the result."""

    async def handle_turn(self, calls: list[RawToolCall], rationale: str) -> list[Feedback]:
        """The feedback of each call of one model turn, in order; ``rationale`` is the turn's text."""
        limit = asyncio.Semaphore(PARALLEL_CALLS)
        return await asyncio.gather(
            *(
                self._handle(call, rationale, limit)
                if index < MAX_CALLS_PER_TURN
                else self._refuse(
                    call, {}, f"more than {MAX_CALLS_PER_TURN} tool calls in one turn; ask for fewer"
                )
                for index, call in enumerate(calls)
            )
        )

    async def _is_change(self, tool: str) -> bool:
        """Whether a call is one of the plan's changes: a mutating tool the tool server offers. A made-up
        tool name is refused and fed back like bad arguments, but it names no change that could be
        proposed, so it does not void the plan (load_toolset is no served tool either)."""
        return tool in await self.gateway.input_schemas() and not self.gateway.is_read_only(tool)

    async def _handle(self, call: RawToolCall, rationale: str, limit: asyncio.Semaphore) -> Feedback:
        async with limit:
            return await self._check_and_run(call, rationale)

    async def _check_and_run(self, call: RawToolCall, rationale: str) -> Feedback:
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
            record = InvestigationRecord(call.name, recorded, outcome.ok, tool_reply(text))
            return Feedback(call, text, record=record, echo=echo)
        preview = await self.gateway.preview(call.name, args, identity=self.ctx.acting, task=self.ctx.task)
        sealed = preview.sealed_args or args
        unsealed = unsealed_values(sealed) if preview.ok else None
        if not preview.ok or unsealed is not None:
            why = unsealed or found.scrub(preview.error or "the tool gave no reason")
            message = f"dry-run of {call.name} failed, so it was not proposed: {why}"
            return Feedback(
                call,
                message,
                record=InvestigationRecord(call.name, recorded, False, tool_reply(message)),
                failed=f"dry-run failed: {why}",
                echo=echo,
            )
        return Feedback(
            call,
            f"Dry-run preview:\n{preview.diff or preview.text}",
            step=PlannedCall(
                id="",
                tool=call.name,
                args=sealed,
                rationale=capped(rationale, RATIONALE_CAP),
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

    async def _load(self, call: RawToolCall, args: Any) -> Feedback:
        available = await offered_toolsets(self.gateway)
        wanted = args.get("toolset") if isinstance(args, dict) else None
        if wanted not in available:
            return await self._refuse(
                call,
                args if isinstance(args, dict) else {},
                f"unknown toolset {wanted!r}; choose one of {available}",
            )
        return Feedback(call, f"Toolset {wanted} is available from your next turn.", load=str(wanted))

    async def _refuse(self, call: RawToolCall, args: dict[str, Any], problem: str) -> Feedback:
        found = self._found(args)
        problem = found.scrub(problem)
        message = f"refused, nothing ran: {problem}"
        shown = tool_reply(message)
        log.info("planner refused %s for %s: %s", call.name, self.ctx.identity.user, shown)
        failed = f"refused: {problem}" if await self._is_change(call.name) else None
        recorded = found.redacted(args)
        return Feedback(
            call,
            message,
            record=InvestigationRecord(call.name, recorded, False, shown),
            refused=True,
            failed=failed,
            echo=recorded if found.leaves else None,
        )
