"""One call's life inside the gateway: config, audio in, ordered transcript events out.

Audio is decoded and cut into turns on the event loop (measured: well under a
millisecond per 20 ms chunk); each finished turn goes to the transcriber through the
injected `transcribe` coroutine (a DeploymentHandle in Serve). Events leave in the
order their turns ended, whatever order the transcriptions finish in.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from opentelemetry.trace import SpanKind

from cluster.allowlist import Plain, confide_logger, plain_type
from cluster.config import ConfideConfig
from confide.v1 import call_pb2 as pb
from serve.agent import AgentReplies, ReplyStream
from serve.audio import SUPPORTED_RATES, Encoding, StreamDecoder, float_to_pcm16
from serve.errors import ConfideError, EngineUnavailable, FailedPrecondition, InvalidArgument
from serve.local_agreement import InterimTracker
from serve.messages import TurnAudio, TurnTranscript
from serve.telemetry import GatewayTelemetry
from serve.turns import Turn, TurnSegmenter

logger = confide_logger("confide.gateway")

Transcribe = Callable[[TurnAudio], Awaitable[TurnTranscript]]

_ENCODINGS = {
    pb.AUDIO_ENCODING_LINEAR16: Encoding.LINEAR16,
    pb.AUDIO_ENCODING_MULAW: Encoding.MULAW,
    pb.AUDIO_ENCODING_ALAW: Encoding.ALAW,
}
ROLE_NAMES = {
    pb.SPEAKER_ROLE_CUSTOMER: "customer",
    pb.SPEAKER_ROLE_AGENT: "agent",
    pb.SPEAKER_ROLE_UNSPECIFIED: "unspecified",
}
_CALL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_LANGUAGE = re.compile(r"^([a-z]{2,3})(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class CallSetup:
    """A validated AudioFormat (and call id)."""

    call_id: str
    encoding: Encoding
    sample_rate: int
    roles: tuple[int, ...]
    language: str
    interim_results: bool
    agent_replies: bool = False


def parse_setup(
    call_id: str, audio: pb.AudioFormat, interim_results: bool, agent_replies: bool = False
) -> CallSetup:
    """Validate what the client asked for; messages name fields, never echo payloads."""
    if not _CALL_ID.match(call_id):
        raise InvalidArgument("call_id must be 1-128 characters of [A-Za-z0-9._:-]")
    if audio.encoding not in _ENCODINGS:
        raise InvalidArgument("unsupported encoding: use LINEAR16, MULAW or ALAW")
    if audio.sample_rate_hertz not in SUPPORTED_RATES:
        raise InvalidArgument("unsupported sample rate: use 8000 or 16000")
    if len(audio.channels) not in (1, 2):
        raise InvalidArgument("channels must list 1 or 2 channel configs")
    language = audio.language_code or "en"
    match = _LANGUAGE.match(language)
    if not match:
        raise InvalidArgument("language_code must be a BCP-47 tag such as en-US")
    return CallSetup(
        call_id=call_id,
        encoding=_ENCODINGS[audio.encoding],
        sample_rate=audio.sample_rate_hertz,
        roles=tuple(channel.role for channel in audio.channels),
        language=match.group(1),
        interim_results=interim_results,
        agent_replies=agent_replies,
    )


def error_event(call_id: str, error: ConfideError) -> pb.StreamCallResponse:
    error_id = uuid.uuid4().hex[:16]
    logger.warning("call error %s: %s", Plain(error_id), Plain(error.code.name))
    return pb.StreamCallResponse(
        call_id=call_id,
        error=pb.CallError(code=error.code.name, message=str(error), error_id=error_id),
    )


class _Channel:
    def __init__(self, index: int, role: int, config: ConfideConfig) -> None:
        self.index = index
        self.role = role
        self.segmenter = TurnSegmenter(config.vad)
        self.interims = InterimTracker()
        self.interim_in_flight = False
        self.interim_at_samples = 0
        self.speech_started_ns: int | None = None
        """Wall clock when the VAD heard this turn's first speech (the VAD span's start)."""
        self.vad_cpu_ns = 0
        """Time spent in the VAD for this turn so far."""

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, "unspecified")


class CallSession:
    """Feeds audio in, yields StreamCallResponse events out: transcripts in turn order,
    agent replies as they stream."""

    def __init__(
        self,
        setup: CallSetup,
        config: ConfideConfig,
        transcribe: Transcribe,
        telemetry: GatewayTelemetry,
        dialogue: ReplyStream | None = None,
        system_prompt: str = "",
        tenant: str = "",
    ) -> None:
        self.setup = setup
        self._tenant = tenant
        self._config = config
        self._transcribe = transcribe
        self._telemetry = telemetry
        self._decoder = StreamDecoder(setup.encoding, setup.sample_rate, len(setup.roles))
        self._channels = [_Channel(i, role, config) for i, role in enumerate(setup.roles)]
        self._interim_samples = int(config.transcriber.interim_interval_seconds * 16000)
        # Tasks whose results are emitted strictly in this order; None closes the stream.
        self._ordered: asyncio.Queue[asyncio.Task[pb.StreamCallResponse | None] | None] = (
            asyncio.Queue()
        )
        self._tasks: set[asyncio.Task] = set()
        self._out: asyncio.Queue[pb.StreamCallResponse | None] = asyncio.Queue()
        self.agent: AgentReplies | None = None
        if setup.agent_replies:
            if dialogue is None:
                raise FailedPrecondition("agent replies are not enabled on this gateway")
            self.agent = AgentReplies(
                tenant,
                setup.call_id,
                system_prompt,
                config.dialogue.max_reply_tokens,
                dialogue,
                self._out.put_nowait,
                lambda error: error_event(setup.call_id, error),
                telemetry.tracer,
            )
        self.final_segments = 0
        self.turns = 0
        self.rejected: ConfideError | None = None
        """Set when input was refused; the call ends with its status after the backlog."""

    # -- input ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Accept one chunk of interleaved audio."""
        if len(data) > self._config.gateway.max_chunk_bytes:
            raise InvalidArgument(
                f"audio chunk of {len(data)} bytes exceeds "
                f"{self._config.gateway.max_chunk_bytes} bytes"
            )
        for channel, audio in zip(self._channels, self._decoder.decode(data), strict=True):
            speech_starts = channel.segmenter.speech_starts
            started = time.perf_counter_ns()
            turns = channel.segmenter.feed(audio)
            channel.vad_cpu_ns += time.perf_counter_ns() - started
            barged_in = channel.segmenter.speech_starts > speech_starts
            if barged_in and channel.speech_started_ns is None:
                channel.speech_started_ns = time.time_ns()
            for turn in turns:
                self._schedule_final(channel, turn)
            if barged_in and self.agent is not None and channel.role == pb.SPEAKER_ROLE_CUSTOMER:
                self.agent.barge_in()
            if self.setup.interim_results:
                self._maybe_schedule_interim(channel)

    def finish(self) -> None:
        """No more audio: close open turns, then the event stream after them."""
        for channel in self._channels:
            turn = channel.segmenter.flush()
            if turn is not None:
                self._schedule_final(channel, turn)
        self._ordered.put_nowait(None)

    def fail(self, error: ConfideError) -> None:
        """Reject further input, but deliver everything already accepted first."""
        self.rejected = error
        self.finish()

    # -- output --------------------------------------------------------------

    async def events(self) -> AsyncIterator[pb.StreamCallResponse]:
        drainer = asyncio.create_task(self._drain())
        try:
            while (event := await self._out.get()) is not None:
                yield event
        finally:
            drainer.cancel()

    async def _drain(self) -> None:
        """Move ordered results to the output; feed finals to the agent in that order."""
        while (task := await self._ordered.get()) is not None:
            event = await task
            if event is None:
                continue
            self._out.put_nowait(event)
            if self.agent is not None and event.WhichOneof("event") == "transcript":
                segment = event.transcript
                if segment.is_final:
                    self.agent.heard(segment.role, segment.text, segment.turn_index)
        if self.agent is not None:
            await self.agent.wait()
        self._out.put_nowait(None)

    def summary(self) -> pb.StreamCallResponse:
        return pb.StreamCallResponse(
            call_id=self.setup.call_id,
            summary=pb.CallSummary(
                audio_seconds=round(self._decoder.seconds_decoded, 3),
                final_segments=self.final_segments,
                turns=self.turns,
            ),
        )

    async def close(self) -> None:
        """Cancel work for a call that is gone (client hung up)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.agent is not None:
            await self.agent.close()

    # -- scheduling ----------------------------------------------------------

    def _spawn(self, coroutine) -> asyncio.Task:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._ordered.put_nowait(task)
        return task

    def _schedule_final(self, channel: _Channel, turn: Turn) -> None:
        self.turns += 1
        channel.interims.reset()
        channel.interim_at_samples = 0
        self._record_vad(channel, turn)
        self._telemetry.metrics.turn(self._tenant, channel.role_name)
        self._spawn(self._final(channel, turn, time.perf_counter()))

    def _record_vad(self, channel: _Channel, turn: Turn) -> None:
        """One span per turn, from its first speech to the VAD cutting it."""
        span = self._telemetry.tracer.start_span(
            "confide.vad",
            start_time=channel.speech_started_ns or time.time_ns(),
            attributes={
                "confide.channel": channel.index,
                "confide.role": channel.role_name,
                "confide.turn_index": turn.index,
                "confide.speech_seconds": round(turn.end_seconds - turn.start_seconds, 3),
                "confide.vad_cpu_ms": round(channel.vad_cpu_ns / 1e6, 3),
            },
        )
        span.end()
        channel.speech_started_ns = None
        channel.vad_cpu_ns = 0

    def _maybe_schedule_interim(self, channel: _Channel) -> None:
        speech = channel.segmenter.speech_samples
        if channel.interim_in_flight or speech - channel.interim_at_samples < self._interim_samples:
            return
        turn = channel.segmenter.growing_turn()
        if turn is None:
            return
        channel.interim_in_flight = True
        channel.interim_at_samples = speech
        self._spawn(self._interim(channel, turn))

    def _turn_audio(self, turn: Turn, word_timestamps: bool) -> TurnAudio:
        return TurnAudio(
            float_to_pcm16(turn.audio),
            self.setup.language,
            word_timestamps,
            self._tenant,
            self.setup.call_id,
        )

    async def _transcribe_traced(
        self, channel: _Channel, turn: Turn, word_timestamps: bool
    ) -> TurnTranscript:
        """The transcription, in a span that the request carries to the transcriber."""
        with self._telemetry.tracer.start_as_current_span(
            "confide.transcribe",
            kind=SpanKind.CLIENT,
            record_exception=False,
            attributes={
                "confide.channel": channel.index,
                "confide.turn_index": turn.index,
                "confide.audio_seconds": round(turn.end_seconds - turn.start_seconds, 3),
                "confide.interim": not word_timestamps,
            },
        ) as span:
            result = await self._transcribe(self._turn_audio(turn, word_timestamps))
            span.set_attributes(
                {"confide.words": len(result.words), "confide.text_chars": len(result.text)}
            )
            return result

    async def _final(
        self, channel: _Channel, turn: Turn, ended_at: float
    ) -> pb.StreamCallResponse | None:
        try:
            result = await self._transcribe_traced(channel, turn, word_timestamps=True)
        except ConfideError as error:
            return error_event(self.setup.call_id, error)
        except Exception as exc:
            logger.warning("turn transcription failed: %s", plain_type(exc))
            failure = EngineUnavailable(
                f"transcription failed for turn {turn.index} on channel {channel.index}"
            )
            return error_event(self.setup.call_id, failure)
        self._telemetry.metrics.final_latency(self._tenant, time.perf_counter() - ended_at)
        if not result.text:
            return None
        self.final_segments += 1
        return self._segment(channel, turn, result, is_final=True, stability=1.0)

    async def _interim(self, channel: _Channel, turn: Turn) -> pb.StreamCallResponse | None:
        try:
            result = await self._transcribe_traced(channel, turn, word_timestamps=False)
        except Exception:
            return None  # an interim is an optimisation; the final reports failures
        finally:
            channel.interim_in_flight = False
        if not result.text or turn.index != channel.segmenter.turns_ended:
            return None  # silence, or the turn already ended and its final is queued
        stability = channel.interims.update(result.text)
        return self._segment(channel, turn, result, is_final=False, stability=stability)

    def _segment(
        self,
        channel: _Channel,
        turn: Turn,
        result: TurnTranscript,
        is_final: bool,
        stability: float,
    ) -> pb.StreamCallResponse:
        offset = turn.start_seconds
        return pb.StreamCallResponse(
            call_id=self.setup.call_id,
            transcript=pb.TranscriptSegment(
                channel=channel.index,
                role=channel.role,
                text=result.text,
                start_seconds=round(offset, 3),
                end_seconds=round(turn.end_seconds, 3),
                words=[
                    pb.WordInfo(
                        word=w.word,
                        start_seconds=round(offset + w.start, 3),
                        end_seconds=round(offset + w.end, 3),
                        probability=w.probability,
                    )
                    for w in result.words
                ],
                is_final=is_final,
                stability=stability,
                turn_index=turn.index,
            ),
        )
