"""OpenTelemetry tracing of the Temporal calls, on when a collector is configured.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, ``start_tracing`` builds a tracer provider that
sends spans in batches by OTLP over HTTP (protobuf) to ``{endpoint}/v1/traces`` and installs
it for this process. ``connect_temporal`` then gives every Temporal client Temporal's
``TracingInterceptor``, and workers inherit it from their client: the dispatcher's
signal-with-start, the run of the journey workflow, and each activity it starts and runs are
spans of one trace. The rest of the exporter's configuration is OpenTelemetry's own standard
variables (``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``, ...), read by its SDK.

Without the endpoint nothing is imported or started: no interceptor, no exporter thread.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.contrib.opentelemetry import TracingInterceptor

    from journeyman.orchestrator.config import Settings

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"
INSTRUMENTATION = "journeyman"


@dataclass
class Tracing:
    """A tracer provider exporting to one collector, and the interceptor built on it."""

    endpoint: str
    provider: TracerProvider
    interceptor: TracingInterceptor

    def shutdown(self) -> None:
        """Send the spans still buffered, then stop the exporter."""
        self.provider.shutdown()


_installed: Tracing | None = None


def traces_url(endpoint: str) -> str:
    """Where spans go for a collector's base URL (the OTLP/HTTP convention)."""
    return endpoint.rstrip("/") + TRACES_PATH


def build_tracing(endpoint: str, *, role: str) -> Tracing:
    """A tracer provider exporting to the collector at ``endpoint``; installs nothing."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from temporalio.contrib.opentelemetry import TracingInterceptor

    resource = Resource.create({"journeyman.role": role})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        # Neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES named the service.
        resource = resource.merge(Resource({SERVICE_NAME: f"journeyman-{role}"}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(traces_url(endpoint))))
    # A tracer of our own provider rather than OpenTelemetry's global one, so that nothing
    # else in the process (or a test run) is changed by turning tracing on.
    interceptor = TracingInterceptor(provider.get_tracer(INSTRUMENTATION))
    return Tracing(endpoint=endpoint, provider=provider, interceptor=interceptor)


def install(tracing: Tracing | None) -> None:
    """Make ``tracing`` the one Temporal clients of this process get (None: no tracing)."""
    global _installed
    _installed = tracing


def installed() -> Tracing | None:
    """The tracing installed in this process, if any."""
    return _installed


@contextlib.contextmanager
def tracing_for(settings: Settings, *, role: str) -> Iterator[Tracing | None]:
    """Tracing installed for the duration, when ``settings`` name a collector.

    On the way out the buffered spans are sent and the exporter stops.
    """
    if settings.otel_endpoint is None:
        yield None
        return
    tracing = build_tracing(settings.otel_endpoint, role=role)
    previous = installed()
    install(tracing)
    # The address only: credentials for a collector go in OTEL_EXPORTER_OTLP_HEADERS.
    log.info("tracing: spans go to %s", traces_url(settings.otel_endpoint))
    try:
        yield tracing
    finally:
        install(previous)
        tracing.shutdown()
