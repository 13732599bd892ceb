"""The operator's spans: a reconcile pass of a task, its phase steps, its tool and model calls (README,
"Metrics"; docs/observability.md, "Traces").

Made through ``bosun_tools.tracing.span``, so they record nothing unless an OTLP endpoint turned traces on
where the operator started. A pass is the root of its trace (its children: one span per phase step, and
below those each tool and model call). Unlike metric labels, attributes may name the task (namespace,
name, UID): a trace is about one task. They never hold a tool's arguments or output, nor a prompt or a
reply: those can carry secret values. Names follow OpenTelemetry's semantic conventions where there are
some (``k8s.*``, ``gen_ai.*``); Bosun's own are ``bosun.*``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Final

from bosun_tools.registry import safety_of
from bosun_tools.tracing import span
from opentelemetry.trace import Span, Status, StatusCode, get_current_span
from opentelemetry.util.types import AttributeValue

from bosun.api.models import AgentTaskStatus

PHASE: Final = "bosun.task.phase"
TOOL_OUTCOME: Final = "bosun.tool.outcome"


def task_pass(body: Mapping[str, Any]) -> AbstractContextManager[Span]:
    """One reconcile pass of the task ``body`` (the object as read), in the phase it starts in."""
    meta = body["metadata"]
    return span(
        "reconcile AgentTask",
        {
            "k8s.namespace.name": str(meta["namespace"]),
            "bosun.task.name": str(meta["name"]),
            "bosun.task.uid": str(meta["uid"]),
            PHASE: str((body.get("status") or {}).get("phase") or "Pending"),
        },
    )


def phase_step(phase: str) -> AbstractContextManager[Span]:
    """One step of a pass: planning, awaiting approval, executing or verifying."""
    return span(f"phase {phase}", {PHASE: phase})


def observe_phase(body: Mapping[str, Any], status: AgentTaskStatus) -> None:
    """A ``bosun.steps.task.PhaseObserver``: marks a phase change on the span of the step that wrote it."""
    get_current_span().add_event("phase changed", {PHASE: status.phase or "Pending"})


def tool_call(tool: str, mode: str) -> AbstractContextManager[Span]:
    """A call of ``tool`` in ``mode`` (read, preview, execute); ``tool_outcome`` says how it ended."""
    return span(
        f"execute_tool {tool}",
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": tool,
            "bosun.tool.mode": mode,
            "bosun.tool.mutating": not safety_of(tool).read_only,
        },
    )


def tool_outcome(current: Span, outcome: str) -> None:
    """``outcome``: ok, error (the tool failed: the span's status is error, without the tool's message),
    unavailable (the tool server was not reached)."""
    current.set_attribute(TOOL_OUTCOME, outcome)
    if outcome != "ok":
        current.set_status(Status(StatusCode.ERROR))


def model_call(model: str) -> AbstractContextManager[Span]:
    """A chat completion with ``model`` (LiteLLM's name: its provider before the first ``/``, when
    named), retries included; ``model_usage`` adds what it used."""
    attributes: dict[str, AttributeValue] = {"gen_ai.operation.name": "chat", "gen_ai.request.model": model}
    provider, slash, _ = model.partition("/")
    if slash:
        attributes["gen_ai.system"] = provider
    return span(f"chat {model}", attributes)


def model_usage(current: Span, *, prompt: int, completion: int, cost: float) -> None:
    current.set_attributes(
        {
            "gen_ai.usage.input_tokens": prompt,
            "gen_ai.usage.output_tokens": completion,
            "bosun.model.cost_usd": cost,
        }
    )
