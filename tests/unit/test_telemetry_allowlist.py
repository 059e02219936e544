"""The telemetry allowlist: spans, metric labels and log lines keep only what is listed."""

from __future__ import annotations

import logging
import os
import stat

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from serve.core.allowlist import (
    HMAC_PREFIX,
    REDACTED,
    RESOURCE_ATTRIBUTES,
    SPAN_ATTRIBUTES,
    IdentifierHasher,
    Plain,
    confide_logger,
    metric_labels,
)
from serve.core.config import ConfideConfig, KeysConfig, TelemetryConfig
from serve.core.telemetry_key import telemetry_key
from serve.telemetry import build_tracing, current_trace_context, remote_parent

CANARY = "CANARY-7f3a-customer-said-account-4417"
HASHER = IdentifierHasher(b"k" * 32)


def _traced(exporter: InMemorySpanExporter):
    return build_tracing(TelemetryConfig(export_delay_ms=50), HASHER, "confide-test", exporter)


def test_span_keeps_only_allowlisted_attributes_and_hashes_identifiers():
    exporter = InMemorySpanExporter()
    tracing = _traced(exporter)
    remote = SpanContext(
        trace_id=0x1234,
        span_id=0x5678,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "canary7f3a")]),
    )
    parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    call_span = tracing.tracer.start_as_current_span("confide.call", context=parent)
    with pytest.raises(RuntimeError), call_span as span:
        span.set_attributes(
            {
                "confide.call_id": CANARY,
                "confide.tenant": "acme",
                "confide.turns": 3,
                "confide.turns_text": CANARY,  # not listed
                "confide.encoding": CANARY,  # listed, but not one of its values
                "confide.channels": "2",  # listed as a number; a string is dropped
                "confide.interrupted": True,
                "rpc.user_agent": CANARY,
                "rpc.method": "StreamCall",
            }
        )
        span.add_event("transcript", {"text": CANARY})
        raise RuntimeError(f"decoder failed on {CANARY}")
    with tracing.tracer.start_as_current_span(f"library span about {CANARY}"):
        pass
    tracing.provider.force_flush()
    call, library = exporter.get_finished_spans()

    assert dict(call.attributes) == {
        "confide.call_id": HASHER(CANARY),
        "confide.tenant": HASHER("acme"),
        "confide.turns": 3,
        "confide.interrupted": True,
        "rpc.method": "StreamCall",
    }
    assert call.attributes["confide.call_id"].startswith(HMAC_PREFIX)
    assert call.events == () and call.links == ()
    assert call.status.status_code == trace.StatusCode.ERROR
    assert call.status.description is None
    assert len(call.context.trace_state) == 0 and call.parent.span_id == 0x5678
    assert call.end_time > call.start_time
    assert library.name == "unlisted"
    assert set(call.resource.attributes) <= RESOURCE_ATTRIBUTES
    assert CANARY not in repr([s.to_json() for s in (call, library)])


def test_tracing_off_is_a_no_op_tracer():
    tracing = build_tracing(TelemetryConfig(), HASHER, "confide-test")
    assert not tracing.enabled
    with tracing.tracer.start_as_current_span("confide.call") as span:
        assert not span.is_recording()


def test_traceparent_round_trips_and_carries_nothing_else():
    exporter = InMemorySpanExporter()
    tracing = _traced(exporter)
    with tracing.tracer.start_as_current_span("confide.transcribe") as span:
        carrier = current_trace_context()
    assert set(carrier) == {"traceparent"}
    with tracing.tracer.start_as_current_span(
        "confide.transcriber.decode", context=remote_parent(carrier | {"baggage": CANARY})
    ) as child:
        pass
    assert child.parent.span_id == span.get_span_context().span_id
    assert child.context.trace_id == span.get_span_context().trace_id


def test_otlp_needs_an_endpoint():
    with pytest.raises(ValueError, match="otlp_endpoint"):
        TelemetryConfig(traces="otlp-grpc")


def test_metric_labels_are_allowlisted_and_tenants_hashed():
    assert metric_labels({"tenant": "acme", "reason": "ok"}, HASHER) == {
        "tenant": HASHER("acme"),
        "reason": "ok",
    }
    assert metric_labels({"role": CANARY}, HASHER) == {"role": "other"}
    with pytest.raises(KeyError):
        metric_labels({"call_id": "x"}, HASHER)
    with pytest.raises(ValueError, match="HMAC key"):
        metric_labels({"tenant": "acme"})


def test_log_filter_redacts_unlisted_arguments_and_exception_text(caplog):
    logger = confide_logger("confide.test")
    with caplog.at_level(logging.INFO, logger="confide.test"):
        logger.info("turn text %s, id %s, count %d", CANARY, Plain("3f2a"), 7)
        try:
            raise ValueError(CANARY)
        except ValueError:
            logger.exception("engine failed: %s", CANARY)
        logger.info({"text": CANARY})
    text = caplog.text
    assert CANARY not in text
    assert f"turn text {REDACTED}, id 3f2a, count 7" in text
    assert "engine failed: [redacted] [ValueError]" in text
    assert "Traceback" not in text
    with pytest.raises(ValueError):
        confide_logger("vllm.engine")


def test_no_opentelemetry_handler_on_the_root_logger(tmp_path):
    from serve.telemetry import configure_process

    config = ConfideConfig(state_dir=tmp_path, telemetry={"traces": "console"})
    tracing = configure_process(config, "confide-test")
    try:
        handlers = logging.getLogger().handlers
        assert not [h for h in handlers if type(h).__module__.startswith("opentelemetry")]
    finally:
        tracing.shutdown()


def test_telemetry_key_is_sealed_stable_and_private(tmp_path):
    keys = KeysConfig()
    first = telemetry_key(keys, tmp_path)
    assert len(first) == 32 and telemetry_key(keys, tmp_path) == first
    path = tmp_path / "keys" / "telemetry-hmac.sealed"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first not in path.read_bytes()  # sealed by the KMS provider, not stored raw
    with pytest.raises(ValueError):
        IdentifierHasher(b"short")


def test_every_listed_attribute_has_a_confide_or_rpc_name():
    assert all(key.startswith(("confide.", "rpc.")) for key in SPAN_ATTRIBUTES)


@pytest.mark.parametrize(
    ("traces", "endpoint", "exporter_module"),
    [
        ("otlp-grpc", "http://127.0.0.1:4317", "opentelemetry.exporter.otlp.proto.grpc"),
        ("otlp-http", "http://127.0.0.1:4318/v1/traces", "opentelemetry.exporter.otlp.proto.http"),
        ("console", None, "opentelemetry.sdk.trace.export"),
    ],
)
def test_the_configured_exporter_is_built(traces, endpoint, exporter_module):
    from serve.telemetry import span_exporter

    config = TelemetryConfig(traces=traces, otlp_endpoint=endpoint, otlp_insecure=True)
    exporter = span_exporter(config)
    assert type(exporter).__module__.startswith(exporter_module)
    exporter.shutdown()
    assert span_exporter(TelemetryConfig()) is None


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_spans_reach_an_otlp_receiver_sanitised(protocol):
    from cluster.trace_receiver import TraceReceiver

    with TraceReceiver() as receiver:
        endpoint = receiver.http_endpoint if protocol == "http" else receiver.endpoint
        config = TelemetryConfig(
            traces=f"otlp-{protocol}", otlp_endpoint=endpoint, otlp_insecure=True
        )
        tracing = build_tracing(config, HASHER, "confide-test")
        with tracing.tracer.start_as_current_span("confide.call") as span:
            span.set_attributes({"confide.call_id": CANARY, "confide.turns": 2})
            span.add_event("text", {"text": CANARY})
        tracing.provider.force_flush()
        tracing.shutdown()
        (received,) = receiver.spans
    assert received.name == "confide.call" and received.service == "confide-test"
    assert received.attributes == {"confide.call_id": HASHER(CANARY), "confide.turns": 2}
    assert received.events == 0 and CANARY.encode() not in b"".join(receiver.raw_requests)
