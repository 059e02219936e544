"""A contact-center client for Confide: streams a recording over mutual TLS.

Used by `confide call`, the demo, the tests and the Locust load test.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import grpc
import numpy as np

from confide.v1 import call_pb2 as pb
from confide.v1 import call_pb2_grpc
from serve.core.audio import Encoding, Upsampler2x, decode_pcm16, downsample_2x, encode
from serve.core.config import TlsFiles
from serve.core.wavfile import Recording
from serve.wire import PROTO_ENCODINGS, SPEAKER_ROLES


def aio_channel(
    target: str, tls: TlsFiles, options: Sequence[tuple[str, str | int]] = ()
) -> grpc.aio.Channel:
    """An mTLS channel; options are gRPC channel arguments (e.g. the user agent)."""
    return grpc.aio.secure_channel(target, tls.channel_credentials(), options=list(options))


def audio_format(recording: Recording, roles: list[str], language: str = "en-US") -> pb.AudioFormat:
    if len(roles) != recording.channels:
        raise ValueError(f"{recording.channels} channels need {recording.channels} roles")
    return pb.AudioFormat(
        encoding=PROTO_ENCODINGS[recording.encoding],
        sample_rate_hertz=recording.sample_rate,
        channels=[pb.ChannelConfig(role=SPEAKER_ROLES[role]) for role in roles],
        language_code=language,
    )


def transcode(recording: Recording, encoding: Encoding, sample_rate: int) -> Recording:
    """Re-encode a recording (e.g. PCM to mu-law, 8 to 16 kHz) as a client would send it."""
    if (encoding, sample_rate) == (recording.encoding, recording.sample_rate):
        return recording
    pcm = decode_pcm16(recording.data, recording.encoding).reshape(-1, recording.channels)
    channels = [pcm[:, i].astype(np.float32) for i in range(recording.channels)]
    if sample_rate != recording.sample_rate:
        if (recording.sample_rate, sample_rate) == (8000, 16000):
            channels = [Upsampler2x().process(c / 32768) * 32768 for c in channels]
        elif (recording.sample_rate, sample_rate) == (16000, 8000):
            channels = [downsample_2x(c) for c in channels]
        else:
            raise ValueError(f"cannot resample {recording.sample_rate} Hz to {sample_rate} Hz")
    stacked = np.clip(np.stack(channels, axis=1), -32768, 32767).astype(np.int16)
    return Recording(
        encoding, sample_rate, recording.channels, encode(stacked.reshape(-1), encoding)
    )


CHUNK_MS = 20
"""Call audio per StreamCall message by default: how telephony frames it (RTP's 20 ms)."""


def call_requests(
    recording: Recording,
    roles: list[str],
    call_id: str | None = None,
    interim_results: bool = False,
    chunk_ms: int = CHUNK_MS,
    agent_replies: bool = False,
    record: bool | None = None,
    resume: pb.CallResume | None = None,
) -> Iterator[tuple[float, pb.StreamCallRequest]]:
    """(call time at which the request is ready, request): config, chunks, end.

    A live source has a chunk only once its last sample is captured, so each chunk is
    ready at its end offset. With `resume` (a drained call's CallResume), the config
    carries its token and the audio starts at its offset."""
    config = pb.CallConfig(
        call_id=call_id or uuid.uuid4().hex,
        audio=audio_format(recording, roles),
        interim_results=interim_results,
        agent_replies=agent_replies,
        record=record,
        resume_token=resume.token if resume is not None else b"",
    )
    first = 0
    if resume is not None:
        first = round(resume.audio_offset_seconds * recording.sample_rate) * recording.frame_bytes
    yield first / recording.frame_bytes / recording.sample_rate, pb.StreamCallRequest(config=config)
    step = recording.frame_bytes * recording.sample_rate * chunk_ms // 1000
    for start in range(first, len(recording.data), step):
        chunk = recording.data[start : start + step]
        ready = (start + len(chunk)) / recording.frame_bytes / recording.sample_rate
        yield ready, pb.StreamCallRequest(audio=pb.AudioChunk(data=chunk))
    yield recording.seconds, pb.StreamCallRequest(end=pb.EndOfCall())


@dataclass
class CallResult:
    call_id: str
    events: list[pb.StreamCallResponse] = field(default_factory=list)

    @property
    def finals(self) -> list[pb.TranscriptSegment]:
        return [
            e.transcript
            for e in self.events
            if e.WhichOneof("event") == "transcript" and e.transcript.is_final
        ]

    def text(self, channel: int) -> str:
        return " ".join(s.text for s in self.finals if s.channel == channel)

    @property
    def agent_replies(self) -> list[pb.AgentReply]:
        """Final agent replies (deltas are in `events`)."""
        return [
            e.agent_reply
            for e in self.events
            if e.WhichOneof("event") == "agent_reply" and e.agent_reply.is_final
        ]


RESUME_ATTEMPTS = 5
"""Tries to resume a drained call while no gateway takes it yet (each waits for one)."""


async def stream_call(
    stub: call_pb2_grpc.CallServiceStub,
    recording: Recording,
    roles: list[str],
    call_id: str | None = None,
    interim_results: bool = False,
    realtime: bool = True,
    on_event: Callable[[pb.StreamCallResponse, float], None] | None = None,
    chunk_ms: int = CHUNK_MS,
    agent_replies: bool = False,
    record: bool | None = None,
) -> CallResult:
    """Stream a recording (paced in real time unless told otherwise); collect events.

    When a draining gateway ends the call with a CallResume, the call is resumed: a new
    StreamCall (it waits for a gateway to take it) with the token, sending the audio
    from the resume offset on, paced on the call's clock. `result.events` holds every
    segment's events. on_event gets each event and the seconds of call audio sent when
    it arrived.
    """
    call_id = call_id or uuid.uuid4().hex
    result = CallResult(call_id=call_id)
    pacer = _Pacer(time.monotonic(), realtime)
    resume: pb.CallResume | None = None
    attempts = 0
    while True:
        requests = call_requests(
            recording, roles, call_id, interim_results, chunk_ms, agent_replies, record, resume
        )
        pacer.call = stub.StreamCall(pacer.paced(requests), wait_for_ready=resume is not None)
        received = 0
        try:
            async for event in pacer.call:
                received += 1
                result.events.append(event)
                if event.HasField("resume"):
                    resume, attempts = event.resume, 0
                if on_event is not None:
                    on_event(event, pacer.sent_seconds)
            return result
        except grpc.aio.AioRpcError as error:
            ended_by_drain = received and result.events[-1].HasField("resume")
            resumable = resume is not None and ended_by_status(error.code(), ended_by_drain)
            attempts += 1
            if not resumable or (received and not ended_by_drain) or attempts > RESUME_ATTEMPTS:
                raise
            if not received:  # no gateway took the resumed call yet (one was draining)
                await asyncio.sleep(0.5 * attempts)


def ended_by_status(code: grpc.StatusCode, ended_by_drain: bool) -> bool:
    """Whether a call's final status is the drain's UNAVAILABLE. A chunk written while
    the gateway ends the call makes grpcio report "INTERNAL: Internal error from Core"
    instead of the server's status (grpc#36066); after a CallResume event, that is the
    drain too."""
    return code == grpc.StatusCode.UNAVAILABLE or (
        ended_by_drain and code == grpc.StatusCode.INTERNAL
    )


@dataclass
class _Pacer:
    """Writes a call's requests on the call's clock, across its segments."""

    started: float
    realtime: bool
    call: grpc.aio.StreamStreamCall | None = None
    sent_seconds: float = 0.0

    async def paced(
        self, requests: Iterator[tuple[float, pb.StreamCallRequest]]
    ) -> AsyncIterator[pb.StreamCallRequest]:
        for index, (seconds, request) in enumerate(requests):
            delay = self.started + seconds - time.monotonic() if self.realtime else 0
            await asyncio.sleep(max(delay, 0))
            assert self.call is not None
            if self.call.done():
                # The server ended the call (e.g. refused it). Writing on would make
                # grpcio report INTERNAL instead of the server's status (grpc#36066).
                return
            self.sent_seconds = seconds
            yield request
            if index == 0:
                await self.call.initial_metadata()  # the gateway accepted the call config
