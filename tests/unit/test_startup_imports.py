"""An operator without a model never loads LangGraph or LiteLLM: they would cost every offline
installation about 1.5 s of start-up and 140 MiB (``make bench`` shows start time and idle RSS). Nor, with
traces off (no ``OTEL_EXPORTER_OTLP_*ENDPOINT``), OpenTelemetry's SDK and exporter. Nor, with its tools in
process (no ``BOSUN_TOOLS_URL``), FastMCP and the MCP SDK: about half a second and 30 MiB more."""

from __future__ import annotations

import subprocess
import sys
import textwrap

MODEL_LIBRARIES = ("langgraph", "litellm", "langchain_core")
TRACING_LIBRARIES = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.proto")
MCP_LIBRARIES = ("fastmcp", "mcp", "mcp_types")


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


def test_the_operator_with_tools_in_process_loads_no_mcp_library_even_once_it_has_called_a_tool() -> None:
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        import bosun.__main__
        from bosun.handlers import _gateway
        from bosun.config import OperatorConfig
        from bosun_tools.client.kube import KubeClient
        from bosun_tools.identity import Identity
        from kubernetes.client import Configuration

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
        loaded = [name for name in {MCP_LIBRARIES!r} if name in sys.modules]
        print(",".join(loaded))
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"loaded by the operator with in-process tools: {proc.stdout.strip()}"
