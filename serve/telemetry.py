"""Tracing for one Confide process (a gateway, transcriber or dialogue replica).

Every span leaves through `AllowlistSpanProcessor`, whoever made it: Confide's code,
opentelemetry-instrumentation-grpc, or any other library using the global provider. A
call's trace starts at the gateway; its W3C `traceparent` (ids only, never baggage or
tracestate) rides inside each request to the transcriber and dialogue replicas.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanContext, Status, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from serve.core.allowlist import (
    RESOURCE_ATTRIBUTES,
    SPAN_ATTRIBUTES,
    SPAN_NAMES,
    UNLISTED_SPAN_NAME,
    IdentifierHasher,
    filter_attributes,
)
from serve.core.config import ConfideConfig, TelemetryConfig
from serve.core.telemetry_key import telemetry_key

if TYPE_CHECKING:
    from serve.metrics import GatewayMetrics

SERVICE_NAMESPACE = "confide"
TRACER_NAME = "confide"
_PROPAGATOR = TraceContextTextMapPropagator()


class AllowlistSpanProcessor(SpanProcessor):
    """Passes a sanitised copy of each finished span to the exporting processor: only
    allowlisted attributes (identifiers HMAC'd), no events, no links, no status
    description (it holds exception messages), no tracestate, a fixed resource."""

    def __init__(self, exporting: SpanProcessor, hasher: IdentifierHasher, resource: Resource):
        self._exporting = exporting
        self._hasher = hasher
        self._resource = resource

    def on_start(self, span, parent_context=None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        self._exporting.on_end(self.sanitize(span))

    def sanitize(self, span: ReadableSpan) -> ReadableSpan:
        return ReadableSpan(
            name=span.name if span.name in SPAN_NAMES else UNLISTED_SPAN_NAME,
            context=_without_state(span.context),
            parent=_without_state(span.parent),
            resource=self._resource,
            attributes=filter_attributes(
                dict(span.attributes or {}), SPAN_ATTRIBUTES, self._hasher
            ),
            kind=span.kind,
            status=Status(span.status.status_code),
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )

    def shutdown(self) -> None:
        self._exporting.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._exporting.force_flush(timeout_millis)


def _without_state(context: SpanContext | None) -> SpanContext | None:
    if context is None:
        return None
    return SpanContext(
        context.trace_id, context.span_id, context.is_remote, context.trace_flags, TraceState()
    )


def span_exporter(config: TelemetryConfig) -> SpanExporter | None:
    """The exporter the config names (OTLP clients are imported only when chosen)."""
    if config.traces == "off":
        return None
    if config.traces == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if config.traces == "otlp-grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        credentials = None
        if config.otlp_ca_cert is not None:
            import grpc

            credentials = grpc.ssl_channel_credentials(config.otlp_ca_cert.read_bytes())
        return OTLPSpanExporter(
            endpoint=config.otlp_endpoint, insecure=config.otlp_insecure, credentials=credentials
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    certificate = str(config.otlp_ca_cert) if config.otlp_ca_cert else None
    return OTLPSpanExporter(endpoint=config.otlp_endpoint, certificate_file=certificate)


@dataclass
class Tracing:
    """One process's tracing: a tracer (no-op when off) and the identifier hasher."""

    tracer: trace.Tracer
    hasher: IdentifierHasher
    provider: TracerProvider | None = None

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def build_tracing(
    config: TelemetryConfig,
    hasher: IdentifierHasher,
    service: str,
    exporter: SpanExporter | None = None,
) -> Tracing:
    """A provider whose only processor is the allowlist in front of a batch exporter.
    `exporter` overrides the configured one (tests pass an in-memory exporter)."""
    exporter = exporter or span_exporter(config)
    if exporter is None:
        return Tracing(trace.NoOpTracer(), hasher)
    detected = Resource.create({"service.name": service, "service.namespace": SERVICE_NAMESPACE})
    resource = Resource({k: v for k, v in detected.attributes.items() if k in RESOURCE_ATTRIBUTES})
    provider = TracerProvider(
        resource=resource,
        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)),
        shutdown_on_exit=True,
    )
    exporting = BatchSpanProcessor(exporter, schedule_delay_millis=config.export_delay_ms)
    provider.add_span_processor(AllowlistSpanProcessor(exporting, hasher, resource))
    return Tracing(provider.get_tracer(TRACER_NAME), hasher, provider)


def configure_process(config: ConfideConfig, service: str) -> Tracing:
    """Tracing for this replica process; also installed as the global provider, so that
    instrumentation libraries in the process go through the same allowlist."""
    hasher = IdentifierHasher(telemetry_key(config.keys, config.state_path))
    tracing = build_tracing(config.telemetry, hasher, service)
    if tracing.provider is not None:
        trace.set_tracer_provider(tracing.provider)
    return tracing


# -- propagation across deployment handles --------------------------------------------


def current_trace_context() -> dict[str, str]:
    """The current span's traceparent, to send along with a request."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return {"traceparent": carrier["traceparent"]} if "traceparent" in carrier else {}


def remote_parent(carrier: Mapping[str, str]) -> otel_context.Context:
    """The caller's span as parent context (tracestate is not accepted)."""
    return _PROPAGATOR.extract({"traceparent": carrier.get("traceparent", "")})


@dataclass(frozen=True)
class GatewayTelemetry:
    """What the gateway's call handling records: spans and Prometheus metrics."""

    tracer: trace.Tracer
    metrics: GatewayMetrics
    hasher: IdentifierHasher
    """Call ids as keyed HMACs: in spans, metric labels and call records alike."""

    @classmethod
    def of(cls, tracing: Tracing) -> GatewayTelemetry:
        from serve.metrics import GatewayMetrics  # imports Ray

        return cls(tracing.tracer, GatewayMetrics(tracing.hasher), tracing.hasher)

    @classmethod
    def disabled(cls, hasher: IdentifierHasher | None = None) -> GatewayTelemetry:
        """No spans; metrics go nowhere outside a Ray worker (in-process servers)."""
        hasher = hasher or IdentifierHasher(os.urandom(32))
        return cls.of(Tracing(trace.NoOpTracer(), hasher))
