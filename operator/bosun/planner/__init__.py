"""Planning for Bosun: what the operator core calls to turn a request into an answer or a proposal.

``propose_plan`` runs the LangGraph/LiteLLM loop when a model is configured and the offline planner when
not; ``judge_outcome`` is the short model check after objective verification. LangGraph and LiteLLM are
imported on the first model call, never by an operator without a model: together they cost about 1.5 s of
start-up and 140 MiB of memory.
"""

from __future__ import annotations

from bosun.planner.judge import judge_outcome
from bosun.planner.offline import NEEDS_MODEL, plan_offline
from bosun.planner.types import (
    MODEL_CALLS_PER_ITERATION,
    InvestigationRecord,
    Judgement,
    ModelSettings,
    Outcome,
    PlannedCall,
    PlanningContext,
    PlanResult,
    Usage,
)
from bosun.ports.gateway import ToolGateway

__all__ = [
    "MODEL_CALLS_PER_ITERATION",
    "NEEDS_MODEL",
    "InvestigationRecord",
    "Judgement",
    "ModelSettings",
    "Outcome",
    "PlanResult",
    "PlannedCall",
    "PlanningContext",
    "Usage",
    "judge_outcome",
    "propose_plan",
]


async def propose_plan(ctx: PlanningContext, gateway: ToolGateway, model: ModelSettings | None) -> PlanResult:
    """Plan one iteration of ``ctx``; raises ``ToolServerUnavailable`` (``bosun.ports.gateway``) if tools
    are down."""
    if model is None:
        return await plan_offline(ctx, gateway)
    from bosun.planner.graph import Planner  # LangGraph, only once a model is configured

    return await Planner(ctx, gateway, model).run()
