"""Traces leave the process over OTLP/HTTP exactly as configured by OpenTelemetry's variables, and not at all
without them. Needs no cluster: the operator's spans are made through ``bosun.tracing`` in a child process
(so each run installs its own global provider from its own environment), and what it exports is received
by ``OtlpReceiver`` on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys
    from bosun import tracing
    from bosun_tools.tracing import exporting

    task = {"metadata": {"namespace": "shop", "name": "scale-web", "uid": "uid-1"}, "status": {}}
    with exporting("bosun-operator") as provider:
        with tracing.task_pass(task), tracing.phase_step("Planning"):
            with tracing.tool_call("k8s_get", "read") as call:
                tracing.tool_outcome(call, "ok")
    print("sdk" if "opentelemetry.sdk" in sys.modules else "no-sdk", provider is not None)
    """
)


class OtlpReceiver:
    """A test double of an OpenTelemetry collector's OTLP/HTTP receiver: accepts ``POST /v1/traces`` with a
    protobuf ``ExportTraceServiceRequest``, keeps each request and its headers, and answers as a collector
    does (200, an empty ``ExportTraceServiceResponse``)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], ExportTraceServiceRequest]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces" or self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.append(({k.lower(): v for k, v in self.headers.items()}, request))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def run_operator_spans(otel: dict[str, str]) -> str:
    """Run ``SCRIPT`` with ``otel`` as the only OpenTelemetry variables; what it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | otel
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def value(any_value: AnyValue) -> Any:
    return getattr(any_value, any_value.WhichOneof("value") or "string_value")


def test_spans_are_exported_over_otlp_http_as_the_variables_say(receiver: OtlpReceiver) -> None:
    printed = run_operator_spans(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=ops",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
        }
    )
    assert printed == "sdk True"
    assert receiver.requests, "the exporter flushed nothing when the process ended"
    assert {headers.get("x-tenant") for headers, _ in receiver.requests} == {"ops"}
    spans: dict[str, Any] = {}
    for _, request in receiver.requests:
        for resource_spans in request.resource_spans:
            resource = {a.key: value(a.value) for a in resource_spans.resource.attributes}
            assert resource["service.name"] == "bosun-operator"
            assert resource["deployment.environment.name"] == "test"
            for scope_spans in resource_spans.scope_spans:
                spans.update({s.name: s for s in scope_spans.spans})
    assert set(spans) == {"reconcile AgentTask", "phase Planning", "execute_tool k8s_get"}
    root, phase, call = spans["reconcile AgentTask"], spans["phase Planning"], spans["execute_tool k8s_get"]
    assert root.parent_span_id == b""
    assert phase.parent_span_id == root.span_id
    assert call.parent_span_id == phase.span_id
    assert {a.key: value(a.value) for a in root.attributes}["k8s.namespace.name"] == "shop"
    assert {a.key: value(a.value) for a in call.attributes} == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "k8s_get",
        "bosun.tool.mode": "read",
        "bosun.tool.mutating": False,
        "bosun.tool.outcome": "ok",
    }


def test_the_service_name_variable_wins_over_the_default(receiver: OtlpReceiver) -> None:
    run_operator_spans(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{receiver.url}/v1/traces", "OTEL_SERVICE_NAME": "bosun-prod"}
    )
    names = {
        value(a.value)
        for _, request in receiver.requests
        for resource_spans in request.resource_spans
        for a in resource_spans.resource.attributes
        if a.key == "service.name"
    }
    assert names == {"bosun-prod"}


def test_without_an_endpoint_nothing_is_set_up_and_the_sdk_is_not_loaded() -> None:
    assert run_operator_spans({"OTEL_SERVICE_NAME": "bosun-prod"}) == "no-sdk False"
