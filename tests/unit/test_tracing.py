"""The operator's spans (``bosun.tracing``), captured with the SDK's in-memory exporter: a task's pass, its
phase step, a model call (through the fake OpenAI-compatible server) and tool calls (through a real
in-process FastMCP server), with their attributes and parent links, and never an argument, a tool's output
or a prompt. Exported over OTLP: ``test_tracing_otlp.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bosun import tracing
from bosun.api.models import AgentTaskStatus
from bosun.planner.llm import complete
from bosun.planner.types import ModelSettings
from bosun.ports.gateway import ToolGateway, ToolServerUnavailable
from bosun.ports.mcp_tools import McpTools
from bosun_tools.identity import Identity
from bosun_tools.tracing import activated, span
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from tests.fakes.llm import FakeLLM, text

SECRET = "s3cr3t-value-never-traced"
PROMPT = "scale web in shop to 5, the password is " + SECRET
TASK = {
    "metadata": {"namespace": "shop", "name": "scale-web", "uid": "uid-1"},
    "status": {"phase": "Planning"},
}
ALICE = Identity("alice", ("sre",))


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with activated(provider):
        yield exporter
    provider.shutdown()


def tool_server() -> FastMCP[Any]:
    """Two registered tool names (one read-only, one mutating), answering with the secret they were given."""
    server: FastMCP[Any] = FastMCP("traced")

    @server.tool
    def k8s_get(kind: str, name: str) -> str:
        return f"{kind}/{name}: {SECRET}"

    @server.tool
    def k8s_scale(kind: str, name: str, replicas: int) -> str:
        raise ToolError(f"cannot scale {name}: {SECRET}")

    return server


async def discover_nothing(kind: str, api_version: str | None) -> None:
    return None


def by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def parent_of(child: ReadableSpan) -> int | None:
    return child.parent.span_id if child.parent is not None else None


def everything_recorded(spans: tuple[ReadableSpan, ...]) -> str:
    """Every attribute and event of every span, as one text to search for what must not be there."""
    parts = []
    for s in spans:
        parts.append(repr(dict(s.attributes or {})))
        parts.extend(f"{e.name} {dict(e.attributes or {})!r}" for e in s.events)
        parts.append(s.status.description or "")
    return "\n".join(parts)


async def test_a_pass_traces_its_phase_its_model_call_and_its_tool_calls(
    exported: InMemorySpanExporter,
) -> None:
    gateway = ToolGateway(
        McpTools(Client(tool_server()), "a test server"), discover=discover_nothing, operator_namespace=None
    )
    with FakeLLM() as fake:
        fake.script(text("done", usage={"prompt_tokens": 11, "completion_tokens": 7}))
        model = ModelSettings(model="openai/fake-model", api_base=fake.url, retry_backoff=0.01)
        with tracing.task_pass(TASK), tracing.phase_step("Planning"):
            await complete(model, [{"role": "user", "content": PROMPT}])
            read = await gateway.read("k8s_get", {"kind": "secret", "name": SECRET}, identity=ALICE)
            preview = await gateway.preview(
                "k8s_scale", {"kind": "deployment", "name": "web", "replicas": 5}, identity=ALICE
            )
            tracing.observe_phase(TASK, AgentTaskStatus(phase="AwaitingApproval"))
    await gateway.aclose()
    assert read.ok
    assert not preview.ok
    spans = exported.get_finished_spans()
    named = by_name(spans)
    assert set(named) == {
        "reconcile AgentTask",
        "phase Planning",
        "chat openai/fake-model",
        "execute_tool k8s_get",
        "execute_tool k8s_scale",
    }
    root, phase = named["reconcile AgentTask"], named["phase Planning"]
    assert root.parent is None
    assert dict(root.attributes or {}) == {
        "k8s.namespace.name": "shop",
        "bosun.task.name": "scale-web",
        "bosun.task.uid": "uid-1",
        "bosun.task.phase": "Planning",
    }
    assert parent_of(phase) == root.context.span_id
    assert [(e.name, dict(e.attributes or {})) for e in phase.events] == [
        ("phase changed", {"bosun.task.phase": "AwaitingApproval"})
    ]
    for child in ("chat openai/fake-model", "execute_tool k8s_get", "execute_tool k8s_scale"):
        assert parent_of(named[child]) == phase.context.span_id, child
        assert named[child].context.trace_id == root.context.trace_id
    assert dict(named["chat openai/fake-model"].attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "openai/fake-model",
        "gen_ai.usage.input_tokens": 11,
        "gen_ai.usage.output_tokens": 7,
        "bosun.model.cost_usd": 0.0,
    }
    get, scale = named["execute_tool k8s_get"], named["execute_tool k8s_scale"]
    assert dict(get.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "k8s_get",
        "bosun.tool.mode": "read",
        "bosun.tool.mutating": False,
        "bosun.tool.outcome": "ok",
    }
    assert get.status.status_code is StatusCode.UNSET
    assert dict(scale.attributes or {})["bosun.tool.mode"] == "preview"
    assert dict(scale.attributes or {})["bosun.tool.mutating"] is True
    assert dict(scale.attributes or {})["bosun.tool.outcome"] == "error"
    assert scale.status.status_code is StatusCode.ERROR
    assert SECRET not in everything_recorded(spans)
    assert "password" not in everything_recorded(spans)


async def test_an_unreachable_tool_server_is_recorded_as_the_exception_it_raised(
    exported: InMemorySpanExporter,
) -> None:
    gateway = ToolGateway(
        McpTools(Client("http://127.0.0.1:9/mcp"), "a server nobody runs"),
        discover=discover_nothing,
        operator_namespace=None,
    )
    with pytest.raises(ToolServerUnavailable):
        await gateway.read("k8s_get", {"kind": "pod", "name": "web"}, identity=ALICE)
    await gateway.aclose()
    (call,) = exported.get_finished_spans()
    assert dict(call.attributes or {})["bosun.tool.outcome"] == "unavailable"
    assert call.status.status_code is StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in call.events if e.attributes] == [
        "bosun.ports.gateway.ToolServerUnavailable"
    ]


def test_without_an_activated_provider_spans_record_nothing() -> None:
    with span("not traced", {"a": 1}) as current:
        current.set_attribute("b", 2)
        assert not current.is_recording()
    with tracing.task_pass(TASK) as current:
        assert not current.is_recording()
