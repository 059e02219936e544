"""A gateway that drains (a stop, a redeploy) hands its live calls to another: two real
grpc.aio servers over mutual TLS on one port (gRPC binds with SO_REUSEPORT, as two
gateway replicas on one node do), the client's own resume logic (cluster/client.py)."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2

from cluster.client import aio_channel, call_requests, stream_call
from confide.v1 import call_pb2 as pb
from confide.v1 import call_pb2_grpc
from serve.boundary import PayloadBoundary
from serve.call_resume import CallProgress, ResumeTokens
from serve.core.errors import InvalidArgument
from serve.server import start_server
from serve.telemetry import GatewayTelemetry
from tests.unit.test_call_service import (
    HASHER,
    Transcriber,
    _stream_status,
    finals,
    run,
    speech_then_silence,
)

TURNS = 5


async def _gateway(config, test_pki, transcriber, port=0):
    config = config.with_overrides(gateway={"port": port}, redaction={"enabled": False})
    boundary = PayloadBoundary(transcriber.codec, transcriber=transcriber)
    return await start_server(config, test_pki.server, boundary, GatewayTelemetry.disabled(HASHER))


def test_a_drained_call_resumes_on_another_gateway_and_loses_no_turn(
    config, test_pki, codec, mono_recording
):
    """Gateway A drains 6 s into a real-time call: the open turn is finalised and sent,
    then a CallResume and UNAVAILABLE; the client reconnects to the same address, where
    only gateway B listens now, and resumes. Every turn arrives once, on one timeline."""
    recording = speech_then_silence(mono_recording, TURNS)
    transcriber = Transcriber(codec)

    async def scenario():
        first = await _gateway(config, test_pki, transcriber)
        second = None
        try:
            async with aio_channel(f"localhost:{first.port}", test_pki.clients["acme"]) as channel:
                stub = call_pb2_grpc.CallServiceStub(channel)
                call = asyncio.create_task(stream_call(stub, recording, ["customer"]))
                await asyncio.sleep(6)
                second = await _gateway(config, test_pki, transcriber, first.port)
                serving = await first.health.Check(health_pb2.HealthCheckRequest(), None)
                stopping = asyncio.create_task(first.stop(grace=0.5, finalise=5))
                await asyncio.sleep(0.2)
                draining = await first.health.Check(health_pb2.HealthCheckRequest(), None)
                await stopping
                result = await call
            return result, second.service.calls_handled, serving.status, draining.status
        finally:
            await first.stop(0)
            if second is not None:
                await second.stop(0)

    result, handled_by_second, serving, draining = run(scenario())
    assert (serving, draining) == (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    kinds = [e.WhichOneof("event") for e in result.events]
    assert kinds.count("resume") == 1 and kinds[-1] == "summary" and "error" not in kinds
    resume = result.events[kinds.index("resume")].resume
    assert resume.segment == 1 and 5 < resume.audio_offset_seconds < 7
    assert handled_by_second == 1
    segments = finals(result.events)
    assert [s.turn_index for s in segments] == list(range(len(segments)))
    assert len(segments) in (TURNS, TURNS + 1)  # the turn open at the drain may be cut in two
    ends = [s.end_seconds for s in segments]
    assert ends == sorted(ends) and ends[-1] <= recording.seconds
    summary = result.events[-1].summary
    assert summary.turns == summary.final_segments == len(segments)
    assert summary.audio_seconds == pytest.approx(recording.seconds, abs=0.05)


def _config_request(recording, token: bytes, call_id="c1") -> list[pb.StreamCallRequest]:
    requests = [r for _, r in call_requests(recording, ["customer"], call_id)]
    requests[0].config.resume_token = token
    return requests


@pytest.mark.parametrize(
    ("issued_to", "call_id", "age", "channels"),
    [
        pytest.param("acme", "c1", 0, 1, id="its-own"),
        pytest.param("globex", "c1", 0, 1, id="another-tenant"),
        pytest.param("acme", "c2", 0, 1, id="another-call"),
        pytest.param("acme", "c1", 601, 1, id="expired"),
        pytest.param("acme", "c1", 0, 2, id="other-channels"),
    ],
)
def test_a_resume_token_resumes_only_its_own_call(issued_to, call_id, age, channels):
    progress = CallProgress(segment=2, next_turn_index=(3,) * channels, turns=3)
    token = ResumeTokens(HASHER, clock=lambda: 1000.0 - age).issue(issued_to, call_id, progress)
    tokens = ResumeTokens(HASHER, clock=lambda: 1000.0)
    if (issued_to, call_id, age, channels) == ("acme", "c1", 0, 1):
        assert tokens.read(token, "acme", "c1", 1) == progress
        return
    with pytest.raises(InvalidArgument, match="resume_token is not one"):
        tokens.read(token, "acme", "c1", 1)


def test_a_tampered_resume_token_is_invalid_argument(config, test_pki, codec, mono_recording):
    token = bytearray(ResumeTokens(HASHER).issue("acme", "c1", CallProgress(turns=1)))
    token[-3] ^= 1

    async def scenario():
        gateway = await _gateway(config, test_pki, Transcriber(codec))
        try:
            async with aio_channel(f"localhost:{gateway.port}", test_pki.clients["acme"]) as ch:
                stub = call_pb2_grpc.CallServiceStub(ch)
                return await _stream_status(stub, _config_request(mono_recording, bytes(token)))
        finally:
            await gateway.stop(0)

    code, events = run(scenario())
    assert code == grpc.StatusCode.INVALID_ARGUMENT and events == []
