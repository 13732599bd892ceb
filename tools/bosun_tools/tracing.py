"""OpenTelemetry traces, off unless an OTLP endpoint is configured (docs/observability.md, "Traces").

``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` turns them on: ``exporting`` then
installs the SDK's tracer provider with a batching OTLP/HTTP exporter, configured by the SDK from its own
variables (``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ...), and
flushes it when the process ends. Without either variable nothing is set up: no exporter thread, and the
SDK is never imported (it would cost every start for nothing; ``tests/unit/test_startup_imports.py``).

Spans are made through ``span``, into the provider ``activated`` for the running context: like the metrics
(``bosun_tools.metrics``), a context variable set once where the process starts reaches calls deep below
without a parameter threaded through every layer, and a test activates a provider of its own. Where none
is, ``span`` is a no-op. The provider is also made OpenTelemetry's global one, so FastMCP's own spans (its
client's in an operator using a separate tool server, the tool server's, joined through the trace context
FastMCP passes in each request's ``_meta``) land in the same traces.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Final

from opentelemetry.trace import INVALID_SPAN, Span, TracerProvider
from opentelemetry.util.types import AttributeValue

from bosun_tools.scoped import Scoped

ENDPOINT_VARIABLES: Final = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
"""Either one turns traces on (the SDK reads them, the traces-specific one first)."""
TRACER: Final = "bosun"

_SCOPE: Final[Scoped[TracerProvider]] = Scoped("bosun_tracing")
activated = _SCOPE.activated
"""Make spans with the given provider within this block and every task started in it."""
active = _SCOPE.active


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether an OTLP endpoint for traces is configured."""
    env = os.environ if env is None else env
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


@contextlib.contextmanager
def exporting(default_service: str) -> Iterator[TracerProvider | None]:
    """Export this process's spans over OTLP/HTTP within this block when ``wanted`` (yields the provider,
    else None), and flush them at its end. ``default_service`` is the ``service.name`` unless
    ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` names one."""
    if not wanted():
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    named = OTELResourceDetector().detect().attributes.get(SERVICE_NAME)
    provider = SdkTracerProvider(resource=Resource.create({} if named else {SERVICE_NAME: default_service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    try:
        with activated(provider):
            yield provider
    finally:
        provider.shutdown()


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[Span]:
    """A span named ``name``, current within the block (its parent: the span current where it starts). An
    exception leaving the block is recorded on it and sets its status to error. Without an activated
    provider, a span that records nothing."""
    provider = active()
    if provider is None:
        yield INVALID_SPAN
        return
    with provider.get_tracer(TRACER).start_as_current_span(name, attributes=attributes) as current:
        yield current
