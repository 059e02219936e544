"""The streaming call path end to end: real Ray Serve, real grpc.aio over mutual TLS,
the real tiny.en model on real recorded speech."""

from __future__ import annotations

import asyncio
import json
import socket

import grpc
import numpy as np
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cluster import lifecycle
from cluster.client import aio_channel, audio_format, call_requests, stream_call
from confide.v1 import call_pb2 as pb
from confide.v1 import call_pb2_grpc
from serve.core.audio import Encoding, encode
from serve.core.scoring import word_error_rate
from serve.core.wavfile import Recording
from tests.conftest import EXAMPLES
from tests.integration.conftest import call_path_config
from tests.integration.probes import (
    answers_plaintext_http2,
    exposed_listeners,
    plaintext_listeners,
    ray_processes,
)

pytestmark = pytest.mark.integration

ROLES = ["customer", "agent"]


@pytest.fixture(scope="module")
def gateway(test_pki, tmp_path_factory):
    """(target, Gateway handle) of a deployed Confide on an embedded Ray cluster."""
    config = call_path_config(tmp_path_factory.mktemp("state"))
    with lifecycle.embedded(config, test_pki.server) as port:
        from ray import serve

        from serve.app import APP_NAME

        yield f"localhost:{port}", serve.get_app_handle(APP_NAME)


def _stub(test_pki, target, client="acme"):
    channel = aio_channel(target, test_pki.clients[client])
    return channel, call_pb2_grpc.CallServiceStub(channel)


def _run(coroutine):
    return asyncio.run(coroutine)


async def _call(test_pki, target, recording, roles, client="acme", **options):
    channel, stub = _stub(test_pki, target, client)
    async with channel:
        return await stream_call(stub, recording, roles, **options)


def test_two_channel_mulaw_call_in_real_time_meets_wer(gateway, test_pki, two_channel_call):
    target, _ = gateway
    result = _run(_call(test_pki, target, two_channel_call, ROLES, call_id="wer-call"))
    reference = json.loads((EXAMPLES / "two_channel_mulaw_8k.json").read_text())["reference"]
    for channel, role in enumerate(ROLES):
        expected = " ".join(turn["text"] for turn in reference[role])
        assert word_error_rate(expected, result.text(channel)) <= 0.05, role
        assert all(
            s.role == pb.SPEAKER_ROLE_CUSTOMER + channel
            for s in result.finals
            if s.channel == channel
        )
    assert all(event.call_id == "wer-call" for event in result.events)
    summary = result.events[-1]
    assert summary.WhichOneof("event") == "summary"
    assert summary.summary.final_segments == len(result.finals) == 6
    # Finals arrive in turn order, with word timings inside their turn.
    starts = [s.start_seconds for s in result.finals]
    assert starts == sorted(starts)
    for segment in result.finals:
        assert segment.words
        assert segment.start_seconds <= segment.words[0].start_seconds
        assert segment.words[-1].end_seconds <= segment.end_seconds + 0.05


def test_interim_results_carry_stability_and_precede_finals(gateway, test_pki, mono_recording):
    target, _ = gateway
    result = _run(_call(test_pki, target, mono_recording, ["customer"], interim_results=True))
    kinds = [
        ("final" if e.transcript.is_final else "interim")
        for e in result.events
        if e.WhichOneof("event") == "transcript"
    ]
    assert "interim" in kinds and kinds[-1] == "final"
    assert kinds.index("interim") < kinds.index("final")
    interims = [
        e.transcript
        for e in result.events
        if e.WhichOneof("event") == "transcript" and not e.transcript.is_final
    ]
    assert all(0.0 <= s.stability <= 1.0 for s in interims)


def test_silence_yields_no_transcript(gateway, test_pki):
    target, _ = gateway
    rng = np.random.default_rng(3)
    hiss = rng.normal(0, 30, 8000 * 6).clip(-32768, 32767).astype(np.int16)
    silence = Recording(Encoding.MULAW, 8000, 1, encode(hiss, Encoding.MULAW))
    result = _run(_call(test_pki, target, silence, ["customer"], realtime=False))
    assert [e.WhichOneof("event") for e in result.events] == ["summary"]
    assert result.events[0].summary.turns == 0


async def _transcribe(test_pki, target, recording, call_id):
    channel, stub = _stub(test_pki, target)
    async with channel:
        return await stub.Transcribe(
            pb.TranscribeRequest(
                call_id=call_id,
                audio=audio_format(recording, ["customer"]),
                data=recording.data,
            )
        )


def test_transcribe_a_whole_recording(gateway, test_pki, mono_recording):
    target, _ = gateway
    response = _run(_transcribe(test_pki, target, mono_recording, "rec-1"))
    reference = json.loads((EXAMPLES / "mono_linear16_16k.json").read_text())["reference"]
    text = " ".join(s.text for s in response.segments)
    assert word_error_rate(reference["customer"][0]["text"], text) <= 0.25
    assert response.summary.audio_seconds == pytest.approx(mono_recording.seconds, abs=0.01)


def test_health_service_reports_serving(gateway, test_pki):
    target, handle = gateway
    assert handle.check_health.remote().result() is None  # Serve's check: the port accepts

    async def check():
        async with aio_channel(target, test_pki.clients["acme"]) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            return await stub.Check(health_pb2.HealthCheckRequest(service="confide.v1.CallService"))

    assert _run(check()).status == health_pb2.HealthCheckResponse.SERVING


# -- who may call ------------------------------------------------------------------


@pytest.mark.parametrize("client", ["rogue", "expired", "no-certificate"])
def test_peers_without_a_valid_client_certificate_never_reach_a_handler(
    gateway, test_pki, mono_recording, client
):
    target, handle = gateway
    handled_before = handle.calls_handled.remote().result()

    async def attempt():
        if client == "no-certificate":
            credentials = grpc.ssl_channel_credentials(
                root_certificates=test_pki.server.ca.read_bytes()
            )
            channel = grpc.aio.secure_channel(target, credentials)
        else:
            channel = aio_channel(target, test_pki.clients[client])
        async with channel:
            stub = call_pb2_grpc.CallServiceStub(channel)
            await stream_call(stub, mono_recording, ["customer"], realtime=False)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        _run(attempt())
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake failed
    assert handle.calls_handled.remote().result() == handled_before


def test_unknown_tenant_is_permission_denied(gateway, test_pki, mono_recording):
    target, _ = gateway
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        _run(_call(test_pki, target, mono_recording, ["customer"], client="initech"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED


# -- bad input ----------------------------------------------------------------------


CANARY_AUDIO = b"CANARY-AUDIO-0xC0FFEE" * 8


def _config_request(**changes) -> pb.StreamCallRequest:
    audio = pb.AudioFormat(
        encoding=pb.AUDIO_ENCODING_MULAW,
        sample_rate_hertz=8000,
        channels=[pb.ChannelConfig(role=pb.SPEAKER_ROLE_CUSTOMER)],
        language_code="en-US",
    )
    for key, value in changes.items():
        setattr(audio, key, value)
    return pb.StreamCallRequest(config=pb.CallConfig(call_id="bad-1", audio=audio))


AUDIO = pb.StreamCallRequest(audio=pb.AudioChunk(data=CANARY_AUDIO))


@pytest.mark.parametrize(
    "requests",
    [
        pytest.param([AUDIO], id="audio-before-config"),
        pytest.param([pb.StreamCallRequest(end=pb.EndOfCall())], id="end-first"),
        pytest.param([_config_request(encoding=pb.AUDIO_ENCODING_UNSPECIFIED)], id="encoding"),
        pytest.param([_config_request(sample_rate_hertz=44100)], id="rate"),
        pytest.param(
            [_config_request(), pb.StreamCallRequest(audio=pb.AudioChunk(data=CANARY_AUDIO * 400))],
            id="oversized-chunk",
        ),
        pytest.param([_config_request(), _config_request()], id="second-config"),
    ],
)
def test_bad_input_is_invalid_argument_without_payload(gateway, test_pki, requests):
    target, _ = gateway

    async def send():
        channel, stub = _stub(test_pki, target)
        async with channel:
            return [event async for event in stub.StreamCall(iter(requests))]

    with pytest.raises(grpc.aio.AioRpcError) as rejected:
        _run(send())
    assert rejected.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "CANARY" not in (rejected.value.details() or "")
    assert rejected.value.details()


def test_a_bad_chunk_loses_nothing_already_accepted(gateway, test_pki, two_channel_call):
    """Turns accepted before the oversized chunk still get their finals, then the error."""
    target, _ = gateway
    requests = [r for _, r in call_requests(two_channel_call, ROLES, call_id="partial")][:-1]
    half = len(requests) // 2  # about 16 s of the call: three finished turns
    bad = pb.StreamCallRequest(audio=pb.AudioChunk(data=b"\x7f" * 70_000))

    async def send():
        channel, stub = _stub(test_pki, target)
        events = []
        async with channel:
            try:
                async for event in stub.StreamCall(iter([*requests[:half], bad])):
                    events.append(event)
            except grpc.aio.AioRpcError as error:
                return events, error
        return events, None

    events, error = _run(send())
    assert error is not None and error.code() == grpc.StatusCode.INVALID_ARGUMENT
    finals = [e.transcript for e in events if e.WhichOneof("event") == "transcript"]
    assert len(finals) >= 3 and all(f.text for f in finals)


def test_server_keeps_serving_after_bad_calls(gateway, test_pki, mono_recording):
    target, _ = gateway
    result = _run(_call(test_pki, target, mono_recording, ["customer"], realtime=False))
    assert result.finals


def test_oversized_recording_is_refused(gateway, test_pki):
    target, _ = gateway
    recording = Recording(Encoding.MULAW, 8000, 1, b"\xff" * (2 * 1024 * 1024 + 1))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        _run(_transcribe(test_pki, target, recording, "big"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_calls_beyond_the_limit_are_resource_exhausted(gateway, test_pki, mono_recording):
    target, handle = gateway
    limit = 6  # call_path_config's max_concurrent_calls

    async def hold_calls():
        channel, stub = _stub(test_pki, target)
        async with channel:
            release = asyncio.Event()

            async def requests():
                yield _config_request()
                await release.wait()

            held = [stub.StreamCall(requests()) for _ in range(limit)]
            for _ in range(100):
                if await asyncio.to_thread(lambda: handle.active_calls.remote().result()) >= limit:
                    break
                await asyncio.sleep(0.05)
            extra = stub.StreamCall(iter([_config_request()]))
            try:
                with pytest.raises(grpc.aio.AioRpcError) as exhausted:
                    async for _ in extra:
                        pass
                return exhausted.value.code()
            finally:
                release.set()
                for call in held:
                    call.cancel()

    assert _run(hold_calls()) == grpc.StatusCode.RESOURCE_EXHAUSTED


# -- what is exposed ------------------------------------------------------------------


def _non_loopback_ipv4() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return address.address
    return None


def test_serve_proxies_are_not_reachable_beyond_loopback(gateway):
    from ray import serve

    target, _ = gateway
    assert serve.status().proxies == {}, "Serve's plaintext proxies must be disabled"
    address = _non_loopback_ipv4()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    for port in (8000, 9000):  # Serve's default HTTP and gRPC proxy ports
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex((address, port)) != 0, f"{address}:{port} is open"
    # The gateway itself is the one way in, and it speaks only TLS.
    gateway_port = int(target.rsplit(":", 1)[1])
    assert not answers_plaintext_http2(address, gateway_port), "gateway speaks plaintext"


def test_nothing_but_tls_listens_beyond_loopback(gateway):
    """Ray's GCS, raylet, agents and Prometheus exporters (plain HTTP) stay on loopback;
    beyond it listen only the gateway (bound to 0.0.0.0 here) and Serve's replica ports,
    which Ray binds to all interfaces and which speak only TLS."""
    target, _ = gateway
    gateway_port = target.rsplit(":", 1)[1]
    processes = [psutil.Process(), *ray_processes()]  # this driver is a Ray worker too
    exposed = exposed_listeners(processes)
    # A worker's title names the method it is running ("...:Recorder.handle_request").
    assert {listener.split()[1].split(".")[0] for listener in exposed} <= {
        f"ray::ServeReplica:confide:{name}"
        for name in ("Gateway", "Transcriber", "Recorder", "PurgeLoop")
    }, "\n".join(exposed)
    assert any(listener.split()[0].endswith(f":{gateway_port}") for listener in exposed)
    assert plaintext_listeners(processes) == []
