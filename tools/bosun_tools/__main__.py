"""``python -m bosun_tools``: serve the tool server over Streamable HTTP (path ``/mcp``).

Settings come from the environment (see ``ToolSettings.from_env``). The server refuses to start without an
operator token: an HTTP tool server that anyone on the network could call would hand out the server's
Kubernetes rights. ``GET /healthz`` answers without a token (the chart's probes). Logs follow
``BOSUN_LOG_FORMAT`` and ``BOSUN_LOG_LEVEL`` like the operator's (``bosun_tools.logs``), uvicorn's included.
With ``BOSUN_METRICS_PORT`` set it serves Prometheus metrics there (``bosun_tools.metrics``); with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set it exports FastMCP's spans of each request (``bosun_tools.tracing``).
"""

from __future__ import annotations

import contextlib
import os
import sys

from prometheus_client import CollectorRegistry

from bosun_tools import logs
from bosun_tools.metrics import MetricsEndpoint, ToolServerMetrics, activated
from bosun_tools.server import build_server
from bosun_tools.settings import ToolSettings
from bosun_tools.tracing import exporting


def main() -> None:
    try:
        settings = ToolSettings.from_env()
        endpoint = MetricsEndpoint.from_env(os.environ)
        logs.configure(
            os.environ.get("BOSUN_LOG_FORMAT", "text").strip().lower() or "text",
            os.environ.get("BOSUN_LOG_LEVEL", "info").strip().lower() or "info",
        )
    except ValueError as exc:
        sys.exit(f"bosun-tools: bad configuration: {exc}")
    if not settings.operator_token:
        sys.exit(
            "bosun-tools: BOSUN_TOOLS_OPERATOR_TOKEN is not set. Set it (and optionally "
            "BOSUN_TOOLS_EXTERNAL_TOKEN for read-only MCP clients) to a long random string, e.g. "
            "`openssl rand -hex 32`, and give the same value to the operator."
        )
    if settings.external_token and settings.external_token == settings.operator_token:
        sys.exit("bosun-tools: BOSUN_TOOLS_EXTERNAL_TOKEN must differ from BOSUN_TOOLS_OPERATOR_TOKEN")
    server = build_server(settings)
    with contextlib.ExitStack() as serving:
        if endpoint is not None:
            registry = CollectorRegistry()
            serving.enter_context(activated(ToolServerMetrics(registry)))
            serving.enter_context(endpoint.serving(registry))
        serving.enter_context(exporting("bosun-tools"))
        # log_config None: uvicorn keeps its hands off logging, so its lines go through the handler set above.
        server.run(
            transport="http",
            host=settings.host,
            port=settings.port,
            show_banner=False,
            uvicorn_config={"log_config": None},
        )


if __name__ == "__main__":
    main()
