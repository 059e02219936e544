"""A minimal OTLP/gRPC trace receiver on loopback, and a console view of one trace.

`confide demo` uses it to show a call's trace without a collector; the tests use it to
capture exactly what Confide's exporters put on the wire; the benchmark uses it as the
collector when it measures tracing overhead. Production sends to a real collector.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    scope: str
    """The instrumentation scope: which library made the span."""
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    attributes: dict[str, object]
    resource: dict[str, object]
    events: int
    links: int

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind) if kind else None


@dataclass
class _Store:
    raw: list[bytes] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, store: _Store) -> None:
        self._store = store

    def Export(self, request, context):
        _receive(self._store, request)
        return trace_service_pb2.ExportTraceServiceResponse()


def _http_handler(store: _Store) -> type[BaseHTTPRequestHandler]:
    class OtlpHttp(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/v1/traces":
                self.send_error(404)
                return
            request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
            _receive(store, request)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:  # no access log on stderr
            return None

    return OtlpHttp


def _receive(store: _Store, request) -> None:
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        scope=scope_spans.scope.name,
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        start_ns=span.start_time_unix_nano,
                        end_ns=span.end_time_unix_nano,
                        status_code=span.status.code,
                        status_message=span.status.message,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                        resource=resource,
                        events=len(span.events),
                        links=len(span.links),
                    )
                )
    with store.lock:
        store.raw.append(request.SerializeToString())
        store.spans.extend(spans)


class TraceReceiver:
    """`with TraceReceiver() as receiver:` serves OTLP/gRPC at receiver.endpoint and
    OTLP/HTTP (protobuf) at receiver.http_endpoint, both on loopback."""

    def __init__(self) -> None:
        self._store = _Store()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(self._store), self._server
        )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _http_handler(self._store))

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}/v1/traces"

    def __enter__(self) -> TraceReceiver:
        self._server.start()
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._server.stop(grace=1)

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._store.lock:
            return list(self._store.spans)

    @property
    def raw_requests(self) -> list[bytes]:
        with self._store.lock:
            return list(self._store.raw)


def trace_tree(spans: list[ReceivedSpan], trace_id: str) -> list[str]:
    """One line per span of a trace, children indented under their parents."""
    members = sorted((s for s in spans if s.trace_id == trace_id), key=lambda s: s.start_ns)
    if not members:
        return []
    ids = {s.span_id for s in members}
    children: dict[str, list[ReceivedSpan]] = {}
    for span in members:
        parent = span.parent_span_id if span.parent_span_id in ids else ""
        children.setdefault(parent, []).append(span)
    origin = members[0].start_ns
    lines: list[str] = []

    def emit(parent: str, depth: int) -> None:
        for span in children.get(parent, []):
            shown = {k: _short(v) for k, v in span.attributes.items() if not k.startswith("rpc.")}
            details = " ".join(f"{k.removeprefix('confide.')}={v}" for k, v in shown.items())
            lines.append(
                f"{(span.start_ns - origin) / 1e6:8.1f} ms {span.duration_ms:8.1f} ms  "
                f"{'  ' * depth}{span.name} [{span.service}] {details}".rstrip()
            )
            emit(span.span_id, depth + 1)

    emit("", 0)
    return lines


# (label, span name, attribute timed instead of the span's duration)
STAGES = (
    ("VAD CPU per turn", "confide.vad", "confide.vad_cpu_ms"),
    ("transcription (gateway)", "confide.transcribe", None),
    ("decode (replica)", "confide.transcriber.decode", None),
    ("redaction", "confide.redact", None),
    ("record write", "confide.record", None),
    ("final: cut to sent", "confide.final", None),
    ("reply first token", "confide.dialogue.generate", "confide.first_delta_ms"),
    ("reply", "confide.reply", None),
)


def stage_summary(spans: list[ReceivedSpan], trace_id: str) -> list[str]:
    """Per pipeline stage of a trace: how often it ran, median and slowest, in ms."""
    members = [s for s in spans if s.trace_id == trace_id]
    lines = [f"{'stage':<24}{'count':>6}{'p50 ms':>9}{'max ms':>9}"]
    for label, name, attribute in STAGES:
        timings = sorted(
            float(s.attributes[attribute]) if attribute else s.duration_ms
            for s in members
            if s.name == name and (attribute is None or attribute in s.attributes)
        )
        if timings:
            median = timings[len(timings) // 2]
            lines.append(f"{label:<24}{len(timings):>6}{median:>9.1f}{timings[-1]:>9.1f}")
    return lines


def _short(value: object) -> object:
    """HMACs shortened for the console (a collector gets them whole)."""
    if isinstance(value, str) and value.startswith("hmac-sha256:"):
        return value[:24] + "…"
    return value
