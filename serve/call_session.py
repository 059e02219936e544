"""One call's life inside the gateway: audio in, ordered transcript events out.

The synchronous pipeline (serve/pipeline.py) cuts turns; each finished turn goes to the
transcriber through the payload boundary, and its result is emitted in the order the
turns ended, whatever order the transcriptions finish in (serve/emitter.py). Final
customer turns start agent replies, which stream alongside.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from confide.v1 import call_pb2 as pb
from serve.agent import AgentReplies, Event, ReplyStream
from serve.call_resume import CALL_START, CallProgress
from serve.call_setup import CallSetup
from serve.core.allowlist import Plain, confide_logger
from serve.core.audio import float_to_pcm16
from serve.core.config import ConfideConfig, RedactionPolicy
from serve.core.errors import ConfideError, FailedPrecondition, InvalidArgument, Unavailable
from serve.emitter import OrderedEmitter
from serve.messages import TurnAudio, TurnTranscript
from serve.pipeline import CallAudio, ChannelPipeline, ChannelStep, FinalTurn
from serve.records.model import PlainWrite
from serve.records.recording import CallRecording
from serve.redaction import CallRedaction, Redaction, Ticket
from serve.telemetry import GatewayTelemetry
from serve.turn_taking import TurnTaking
from serve.turns import Turn

logger = confide_logger("confide.gateway")

DTMF_DIGITS = frozenset("0123456789*#ABCD")
SECURITY_CODES = ("CARD_SECURITY_CODE",)
"""Masked even in text stored raw (PCI DSS 3.3.1.2)."""
INTERIM_SKIP_BACKLOG = 4
"""While this much submitted work (turns, interims) waits to go out, new interims are
skipped (the next one supersedes them anyway): interims never delay finals."""
MAX_BACKLOG = 32
"""Beyond this much waiting work the gateway stops reading the client's audio; HTTP/2
flow control then stops the client. Finals are never skipped."""
MAX_BUFFERED_EVENTS = 64
"""Events that may wait for a client that does not read them (serve/emitter.py)."""

Transcribe = Callable[[TurnAudio, bool], Awaitable[TurnTranscript]]
"""A turn's transcript (the flag: a final, not an interim); raises only ConfideError
(see serve/boundary.py)."""
Record = Callable[[PlainWrite], Awaitable[bytes]]
"""Seals and stores a record write, returning the call's sealed details; raises only
ConfideError (see serve/boundary.py)."""


def error_event(call_id: str, error: ConfideError) -> pb.StreamCallResponse:
    error_id = uuid.uuid4().hex[:16]
    logger.warning("call error %s: %s", Plain(error_id), Plain(error.code.name))
    failure = pb.CallError(code=error.code.name, message=str(error), error_id=error_id)
    if error.turn is not None:
        failure.channel, failure.turn_index = error.turn
    return pb.StreamCallResponse(call_id=call_id, error=failure)


class CallSession:
    """Feeds audio in; yields transcripts in turn order, agent replies as they stream,
    and errors (as ConfideError) where a turn or a reply failed."""

    def __init__(
        self,
        setup: CallSetup,
        config: ConfideConfig,
        transcribe: Transcribe,
        telemetry: GatewayTelemetry,
        reply_stream: ReplyStream | None = None,
        system_prompt: str = "",
        tenant: str = "",
        recording: tuple[CallRecording, Record] | None = None,
        redaction: tuple[CallRedaction, RedactionPolicy] | None = None,
        progress: CallProgress = CALL_START,
    ) -> None:
        self.setup = setup
        self._progress = progress
        """Where the call stood when this segment began (serve/call_resume.py)."""
        self._tenant = tenant
        self._max_chunk_bytes = config.gateway.max_chunk_bytes
        self._transcribe = transcribe
        self._telemetry = telemetry
        self._audio = CallAudio(setup, config)
        self._emitter: OrderedEmitter[Event] = OrderedEmitter(MAX_BUFFERED_EVENTS)
        self._agent: AgentReplies | None = None
        self._reply: asyncio.Task | None = None
        if setup.agent_replies:
            if reply_stream is None:
                raise FailedPrecondition("agent replies are not enabled on this gateway")
            self._agent = AgentReplies(
                tenant,
                setup.call_id,
                system_prompt,
                config.dialogue.max_reply_tokens,
                reply_stream,
                telemetry.tracer,
                config.dialogue.max_reply_sentences,
            )
        self._recording = recording
        """The call's record and how to store it; None when the call is not recorded.
        A final leaves only once its record is stored (or spooled by the recorder)."""
        self._redaction, self._policy = redaction or (
            CallRedaction(None, frozenset(), 0.0),
            RedactionPolicy(),
        )
        self._turn_taking = TurnTaking()
        self._prompt_texts: dict[tuple[int, int], str] = {}
        """Redacted finals, by (channel, turn), for the dialogue prompt: the client may
        get raw text, the model never does."""
        self._paused = progress.paused
        self.paused_seconds = progress.paused_seconds
        self._started = time.monotonic()
        """When this segment's first audio could have arrived: its real-time clock."""
        self._final_spans: dict[tuple[int, int], Span] = {}
        """Each final's confide.final span, from its cut until the client is sent it."""
        self.dtmf_events = progress.dtmf_events
        self.final_segments = progress.final_segments
        self.turns = progress.turns
        self.rejected: ConfideError | None = None
        """Set when input was refused; the call ends with its status after the backlog."""
        self.drained = False
        """Ended by a draining gateway: the client gets a CallResume before the status."""

    # -- input ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Accept one chunk of interleaved audio."""
        if len(data) > self._max_chunk_bytes:
            raise InvalidArgument(
                f"audio chunk of {len(data)} bytes exceeds {self._max_chunk_bytes} bytes"
            )
        if self._paused:
            self.paused_seconds += self._audio.skip(data)
            return
        self._take(self._audio.feed(data))

    def _take(self, steps: list[tuple[ChannelPipeline, ChannelStep]]) -> None:
        for channel, step in steps:
            for final in step.finals:
                self._submit_final(channel, final)
            if step.speech_started:
                self._redaction.speech_started(channel.index)
            if step.blip:
                self._redaction.blip(channel.index)
            if _customer(channel.role) and step.speech_started:
                self._turn_taking.speech_started(channel.index)
                self._barge_in()
            if _customer(channel.role) and step.blip:
                self._reply_to(self._turn_taking.speech_stopped(channel.index))
            if step.interim is not None and self._emitter.backlog < INTERIM_SKIP_BACKLOG:
                interim = self._interim(channel, step.interim)
                self._emitter.submit(interim, provisional=channel.index)  # newest wins

    def pause(self) -> None:
        """PCI pause: finalise the open turns, then drop audio unheard until resume."""
        if not self._paused:
            self._flush_turns()
            self._paused = True

    def resume(self) -> None:
        self._paused = False

    def dtmf(self, digit: str) -> None:
        """A keypad digit: counted, never kept (its value could be a card digit)."""
        if digit not in DTMF_DIGITS:
            raise InvalidArgument("a DTMF digit is one of 0-9, *, #, A-D")
        self.dtmf_events += 1

    def finish(self) -> None:
        """No more audio: close open turns, then the event stream after them. Idempotent."""
        if self._emitter.closed:
            return
        self._flush_turns()
        self._redaction.close()
        self._emitter.close()

    def _flush_turns(self) -> None:
        self._take(self._audio.drain())
        for channel in self._audio.channels:
            final = channel.flush()
            if final is not None:
                self._submit_final(channel, final)
            if _customer(channel.role):  # no speech is under way across a pause
                self._reply_to(self._turn_taking.speech_stopped(channel.index))

    async def wait_for_room(self) -> None:
        """Until the call's backlog of work to send is below MAX_BACKLOG."""
        await self._emitter.wait_for_backlog_below(MAX_BACKLOG)

    async def wait_for_turns_below(self, limit: int) -> None:
        """Until fewer than `limit` of its turns are being transcribed."""
        await self._emitter.wait_below(limit)

    def fail(self, error: ConfideError) -> None:
        """Reject further input, but deliver everything already accepted first."""
        self.rejected = error
        self.finish()

    def drain(self) -> None:
        """The gateway is going away: finalise the open turns, deliver everything, then
        end UNAVAILABLE after a CallResume (the caller stops reading audio first)."""
        self.drained = True
        self.fail(Unavailable("the gateway is restarting; reconnect and resume the call"))

    def progress(self) -> CallProgress:
        """Where the call stands now: what its next segment starts from."""
        recorded = self._recording[0].counts.agent_replies if self._recording else 0
        return CallProgress(
            segment=self._progress.segment + 1,
            audio_offset_seconds=round(self.audio_seconds, 6),
            next_turn_index=tuple(
                self._progress.first_turn_index(channel.index) + channel.turns_ended
                for channel in self._audio.channels
            ),
            turns=self.turns,
            final_segments=self.final_segments,
            agent_replies=recorded,
            dtmf_events=self.dtmf_events,
            paused_seconds=round(self.paused_seconds, 6),
            redacted_entities=self._redacted_entities,
            paused=self._paused,
            started_at=self._recording[0].started_at if self._recording else None,
        )

    def resume_event(self, token: bytes) -> pb.StreamCallResponse:
        return pb.StreamCallResponse(
            call_id=self.setup.call_id,
            resume=pb.CallResume(
                token=token,
                audio_offset_seconds=round(self.audio_seconds, 6),
                segment=self._progress.segment,
            ),
        )

    @property
    def audio_seconds(self) -> float:
        """Call audio read so far, this segment and the earlier ones."""
        return self._progress.audio_offset_seconds + self._audio.seconds_received

    @property
    def _redacted_entities(self) -> int:
        return self._progress.redacted_entities + sum(self._redaction.tally.entities.values())

    def _turn_index(self, channel: ChannelPipeline, turn: Turn) -> int:
        """The turn's index in the call (segments go on from the earlier ones')."""
        return self._progress.first_turn_index(channel.index) + turn.index

    # -- output --------------------------------------------------------------

    @property
    def recorded(self) -> bool:
        return self._recording is not None

    async def results(self) -> AsyncIterator[Event]:
        """Every event of the call; failures of single turns or replies as ConfideError."""
        try:
            async for event in self._emitter.events():
                if _final_reply(event) and self._recording is not None:
                    failure = await self._record(self._counted().reply(event.agent_reply))
                    yield event
                    if failure is not None:
                        yield failure
                    continue
                yield event
                if isinstance(event, pb.StreamCallResponse) and event.HasField("transcript"):
                    self._sent(event.transcript)
                    self._heard(event.transcript)
        finally:  # finals that came to nothing, or the call ended before they were sent
            for span in self._final_spans.values():
                span.end()
            self._final_spans.clear()

    def _sent(self, segment: pb.TranscriptSegment) -> None:
        """The client was handed a final: its confide.final span ends."""
        if segment.is_final:
            span = self._final_spans.pop((segment.channel, segment.turn_index), None)
            if span is not None:
                span.end()

    async def record_end(self, status: str) -> ConfideError | None:
        """Store the call's final row (its end, counts and status)."""
        if self._recording is None:
            return None
        return await self._record(self._counted().ended(status))

    def _counted(self) -> CallRecording:
        """The call's record, its counts brought up to date for the next write's row."""
        assert self._recording is not None
        counts = self._recording[0].counts
        counts.turns, counts.final_segments = self.turns, self.final_segments
        counts.audio_seconds = self.audio_seconds
        return self._recording[0]

    async def _record(self, write: PlainWrite) -> ConfideError | None:
        assert self._recording is not None
        with self._telemetry.tracer.start_as_current_span("confide.record", record_exception=False):
            try:
                self._recording[0].sealed_details = await self._recording[1](write)
            except ConfideError as error:
                return error
            return None

    async def events(self) -> AsyncIterator[pb.StreamCallResponse]:
        """The call's events as the client receives them: failures become error events."""
        async for event in self.results():
            if isinstance(event, ConfideError):
                yield error_event(self.setup.call_id, event)
            else:
                yield event

    def summary(self) -> pb.StreamCallResponse:
        return pb.StreamCallResponse(
            call_id=self.setup.call_id,
            summary=pb.CallSummary(
                audio_seconds=round(self.audio_seconds, 3),
                final_segments=self.final_segments,
                turns=self.turns,
                recorded=self.recorded,
                paused_seconds=round(self.paused_seconds, 3),
                dtmf_events=self.dtmf_events,
                redacted_entities=self._redacted_entities,
            ),
        )

    def report_redaction(self) -> None:
        """Counts of what was redacted, for metrics (never what it was)."""
        tally = self._redaction.tally
        self._telemetry.metrics.redacted(self._tenant, tally.entities, tally.failures)

    # -- agent replies ---------------------------------------------------------

    def _heard(self, segment: pb.TranscriptSegment) -> None:
        if not segment.is_final:
            return
        if self._agent is not None:
            text = self._prompt_texts.pop((segment.channel, segment.turn_index), segment.text)
            self._agent.heard(segment.role, text)
        if _customer(segment.role):
            self._reply_to(self._turn_taking.final_heard(segment.turn_index))

    def _reply_to(self, turn_index: int | None) -> None:
        """Start the agent's reply to the customer's turn (serve/turn_taking.py says when)."""
        if self._agent is None or turn_index is None:
            return
        self._barge_in()
        self._reply = self._emitter.stream(self._agent.reply(turn_index))

    def _barge_in(self) -> None:
        """The customer speaks: cut the reply that is streaming, if any."""
        if self._reply is not None and not self._reply.done():
            self._reply.cancel()

    # -- transcription ---------------------------------------------------------

    def _submit_final(self, channel: ChannelPipeline, final: FinalTurn) -> None:
        self.turns += 1
        self._record_vad(channel, final)
        self._telemetry.metrics.turn(self._tenant, channel.role_name)
        if _customer(channel.role):
            self._turn_taking.final_cut(channel.index)
        ticket = self._redaction.reserve(channel.index)
        key = (channel.index, self._turn_index(channel, final.turn))
        span = self._telemetry.tracer.start_span(
            "confide.final",
            attributes={"confide.channel": key[0], "confide.turn_index": key[1]},
        )
        self._final_spans[key] = span
        self._emitter.submit(
            self._final(channel, final.turn, time.perf_counter(), ticket, (key, span))
        )

    def _record_vad(self, channel: ChannelPipeline, final: FinalTurn) -> None:
        """One span per turn, from its first speech to the VAD cutting it. Its audio lag
        is how far the gateway's reading of the call trails the call's own clock at the
        cut (the client's sending, the network and the gateway's backlog together): a
        final's latency as the caller sees it includes it."""
        turn = final.turn
        lag = time.monotonic() - self._started - self._audio.seconds_received
        span = self._telemetry.tracer.start_span(
            "confide.vad",
            start_time=final.speech_started_ns,
            attributes={
                "confide.channel": channel.index,
                "confide.role": channel.role_name,
                "confide.turn_index": self._turn_index(channel, turn),
                "confide.speech_seconds": round(turn.end_seconds - turn.start_seconds, 3),
                "confide.vad_cpu_ms": round(final.vad_cpu_ns / 1e6, 3),
                "confide.audio_lag_ms": round(lag * 1000, 1),
            },
        )
        span.end()

    async def _transcribe_traced(
        self, channel: ChannelPipeline, turn: Turn, final: bool
    ) -> TurnTranscript:
        """The transcription, in a span that the request carries to the transcriber."""
        with self._telemetry.tracer.start_as_current_span(
            "confide.transcribe",
            kind=SpanKind.CLIENT,
            record_exception=False,
            attributes={
                "confide.channel": channel.index,
                "confide.turn_index": self._turn_index(channel, turn),
                "confide.audio_seconds": round(turn.end_seconds - turn.start_seconds, 3),
                "confide.interim": not final,
            },
        ) as span:
            audio = TurnAudio(
                float_to_pcm16(turn.audio),
                self.setup.language,
                final,  # word timings for finals only
                self._tenant,
                self.setup.call_id,
            )
            result = await self._transcribe(audio, final)
            span.set_attributes(
                {"confide.words": len(result.words), "confide.text_chars": len(result.text)}
            )
            return result

    async def _final(
        self,
        channel: ChannelPipeline,
        turn: Turn,
        ended_at: float,
        ticket: Ticket,
        traced: tuple[tuple[int, int], Span],
    ) -> tuple[Event, ...]:
        """The final's events; its transcription, redaction and record writes are
        spans under its confide.final span, which `results` ends once it is sent."""
        key, span = traced
        with trace.use_span(span, end_on_exit=False):
            events = await self._final_events(channel, turn, ended_at, ticket)
        nothing_to_send = not any(isinstance(e, pb.StreamCallResponse) for e in events)
        if nothing_to_send and self._final_spans.pop(key, None) is not None:
            span.end()  # silence, or a failure (unless the call's end already ended it)
        return events

    async def _final_events(
        self, channel: ChannelPipeline, turn: Turn, ended_at: float, ticket: Ticket
    ) -> tuple[Event, ...]:
        try:
            result = await self._transcribe_traced(channel, turn, final=True)
        except ConfideError as error:
            await self._redaction.final(ticket, ())  # keeps the channel's order
            error.turn = (channel.index, self._turn_index(channel, turn))
            self._came_to_nothing(channel)
            return (error,)
        redaction = await self._redacted(channel, turn, ticket, result)
        if not result.text:
            self._came_to_nothing(channel)
            return ()
        self.final_segments += 1
        redacted = self._segment(channel, turn, _masked(result, redaction), True, 1.0)
        if self._agent is not None:
            self._prompt_texts[(channel.index, self._turn_index(channel, turn))] = (
                redacted.transcript.text
            )
        failure = None
        if self._recording is not None:
            failure = await self._record(self._counted().segment(redacted.transcript))
            if failure is None and self._policy.store_raw and self._redaction.enabled:
                raw = _masked(result, redaction.only(SECURITY_CODES))
                raw_segment = self._segment(channel, turn, raw, True, 1.0).transcript
                failure = await self._record(self._counted().raw_segment(raw_segment))
        segment = redacted
        if self._policy.client_text == "raw":
            segment = self._segment(channel, turn, result, is_final=True, stability=1.0)
        self._telemetry.metrics.final_latency(self._tenant, time.perf_counter() - ended_at)
        return (segment,) if failure is None else (segment, failure)

    async def _redacted(
        self, channel: ChannelPipeline, turn: Turn, ticket: Ticket, result: TurnTranscript
    ) -> Redaction:
        """The final's redaction, in a span that times it: the engine, and the wait when
        the final ends in digits and is held for the channel's next one."""
        with self._telemetry.tracer.start_as_current_span(
            "confide.redact",
            record_exception=False,
            attributes={
                "confide.channel": channel.index,
                "confide.turn_index": self._turn_index(channel, turn),
            },
        ) as span:
            redaction = await self._redaction.final(ticket, _words(result))
            span.set_attributes(
                {
                    "confide.redacted_entities": len(redaction.findings),
                    "confide.redaction_failures": int(redaction.failed),
                    "confide.held": ticket.held,
                }
            )
            return redaction

    def _came_to_nothing(self, channel: ChannelPipeline) -> None:
        """A customer final that yields no segment is no longer awaited for a reply."""
        if _customer(channel.role):
            self._reply_to(self._turn_taking.final_heard(None))

    async def _interim(self, channel: ChannelPipeline, turn: Turn) -> tuple[Event, ...]:
        try:
            result = await self._transcribe_traced(channel, turn, final=False)
        except ConfideError:
            return ()  # an interim is an optimisation; the final reports failures
        finally:
            channel.interim_done()
        if not result.text or not channel.is_growing(turn):
            return ()  # silence, or the turn already ended and its final is queued
        stability = channel.stability(result.text)
        if self._policy.client_text != "raw":
            result = _masked(result, await self._redaction.interim(_words(result)))
        return (self._segment(channel, turn, result, is_final=False, stability=stability),)

    def _segment(
        self,
        channel: ChannelPipeline,
        turn: Turn,
        result: TurnTranscript,
        is_final: bool,
        stability: float,
    ) -> pb.StreamCallResponse:
        earlier = self._progress.audio_offset_seconds  # the call's timeline, all segments
        offset = earlier + turn.start_seconds
        return pb.StreamCallResponse(
            call_id=self.setup.call_id,
            transcript=pb.TranscriptSegment(
                channel=channel.index,
                role=channel.role,
                text=result.text,
                start_seconds=round(offset, 3),
                end_seconds=round(earlier + turn.end_seconds, 3),
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
                turn_index=self._turn_index(channel, turn),
            ),
        )


def _words(result: TurnTranscript) -> list[str]:
    """The hypothesis as words: the ASR's own (finals), else the text split."""
    return [w.word for w in result.words] if result.words else result.text.split()


def _masked(result: TurnTranscript, redaction: Redaction) -> TurnTranscript:
    """The transcript with masked words; each word keeps its timing."""
    if not any(redaction.masks):
        return result
    if not result.words:
        return dataclasses.replace(result, text=redaction.text)
    words = tuple(
        dataclasses.replace(word, word=masked)
        for word, masked in zip(result.words, redaction.masked_words, strict=True)
    )
    return dataclasses.replace(result, text=redaction.text, words=words)


def _final_reply(event: Event) -> bool:
    return (
        isinstance(event, pb.StreamCallResponse)
        and event.HasField("agent_reply")
        and event.agent_reply.is_final
    )


def _customer(role: int) -> bool:
    """Any speaker but the agent: their finals get replies, their speech barges in."""
    return role != pb.SPEAKER_ROLE_AGENT
