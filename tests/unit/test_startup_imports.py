"""An operator without a model never loads LangGraph or LiteLLM: they would cost every offline
installation about 1.5 s of start-up and 140 MiB (``make bench`` shows start time and idle RSS). Nor, with
traces off (no ``OTEL_EXPORTER_OTLP_*ENDPOINT``), OpenTelemetry's SDK and exporter. Nor, with its tools in
process (no ``BOSUN_TOOLS_URL``), FastMCP and the MCP SDK: about half a second and 30 MiB more; nor
httpx (with its command-line client: about 40 ms and 5 MiB), since every tool speaks HTTP through aiohttp.
And with a model, a call that offers tools does not load LiteLLM's MCP gateway (the MCP SDK, Starlette,
uvicorn): about 19 MiB of an operator's RSS with a model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL_LIBRARIES = ("langgraph", "litellm", "langchain_core")
TRACING_LIBRARIES = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto")
MCP_LIBRARIES = ("fastmcp", "mcp", "mcp_types")
MCP_GATEWAY_LIBRARIES = (*MCP_LIBRARIES, "starlette", "uvicorn", "sse_starlette")


def test_the_operator_and_the_offline_planner_import_no_model_library() -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import bosun.__main__
        from bosun.planner import offline  # the planner used without a model
        loaded = [name for name in {MODEL_LIBRARIES!r} if name in sys.modules]
        print(",".join(loaded))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at start without a model: {proc.stdout.strip()}"


def test_the_operator_and_the_tool_server_with_traces_off_import_no_tracing_sdk() -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        import bosun.__main__, bosun_tools.__main__
        from bosun_tools.tracing import exporting
        for name in [n for n in os.environ if n.startswith("OTEL_")]:
            del os.environ[name]
        with exporting("bosun-operator") as provider:
            assert provider is None
        loaded = [name for name in {TRACING_LIBRARIES!r} if name in sys.modules]
        print(",".join(loaded))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"imported at start with traces off: {proc.stdout.strip()}"


def test_the_operator_with_in_process_tools_loads_no_mcp_library_nor_httpx_once_it_has_called_one() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import bosun.__main__
        from bosun.__main__ import _prepare_tools
        from bosun.handlers import _gateway
        from bosun.config import OperatorConfig
        from bosun_tools.client.kube import KubeClient
        from bosun_tools.identity import Identity
        from kubernetes.client import Configuration

        _prepare_tools()  # every toolset imported, as at the operator's start

        async def main():
            # The operator's own client, to an address where nothing listens: the call goes all the way
            # to the API request.
            kube = KubeClient.from_configuration(Configuration(host="http://127.0.0.1:9"))
            gateway = _gateway(OperatorConfig.from_env({{}}), kube)
            assert await gateway.input_schemas()
            outcome = await gateway.read(
                "k8s_get", {{"kind": "pods", "namespace": "shop"}}, identity=Identity("a", ())
            )
            assert not outcome.ok and "127.0.0.1:9" in outcome.text, outcome
            await gateway.aclose()
            await kube.aclose()

        asyncio.run(main())
        loaded = [name for name in {(*MCP_LIBRARIES, "httpx")!r} if name in sys.modules]
        print(",".join(loaded))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"loaded by the operator with in-process tools: {proc.stdout.strip()}"


def test_a_model_call_offering_tools_loads_no_mcp_gateway_and_sends_only_openai_fields() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, json, sys
        import bosun.__main__
        from bosun.planner.llm import complete
        from bosun.planner.types import ModelSettings
        from tests.fakes.llm import FakeLLM, call, text, tool_calls

        scale = {{"name": "k8s_scale", "parameters": {{"type": "object"}}}}
        tools = [{{"type": "function", "function": scale}}]
        with FakeLLM([tool_calls(call("k8s_scale", {{"name": "web"}})), text("done")]) as fake:
            settings = ModelSettings(model="openai/gpt-4.1-mini", api_base=fake.url, api_key="test")
            messages = [{{"role": "user", "content": "scale web"}}]
            first, second = (asyncio.run(complete(settings, messages, tools)) for _ in range(2))
            assert [c.name for c in first.tool_calls] == ["k8s_scale"] and second.content == "done"
            sent = sorted({{key for request in fake.requests for key in request}})
        loaded = [name for name in {MCP_GATEWAY_LIBRARIES!r} if name in sys.modules]
        print(json.dumps({{"loaded": loaded, "sent": sent}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["loaded"] == [], f"a model call with tools loaded LiteLLM's MCP gateway: {seen['loaded']}"
    assert set(seen["sent"]) <= {"model", "messages", "tools", "stream", "tool_choice"}, seen["sent"]
