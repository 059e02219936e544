"""The payload boundary: everything that crosses a deployment handle passes here.

On the gateway's side, a turn or a prompt is sealed, sent with the current span's
traceparent, and what comes back is opened; on a replica's side, the request is opened,
handed to the engine, and the result sealed. Sealing and opening run off the event loop
(a KMS provider may make a network call). Errors are translated in one place,
`translate`, class to class as httpx maps httpcore's: whatever Ray, the KMS or an engine
raises becomes one Confide error with a fixed message, so a remote traceback, which can
quote model input, never travels on. The gateway's in-flight gauge is kept here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from enum import Enum
from typing import TYPE_CHECKING

from ray.exceptions import RayError
from ray.serve.exceptions import BackPressureError

from serve.audit.events import AuditEvent
from serve.core.allowlist import Plain, confide_logger, plain_type
from serve.core.envelope import EnvelopeError
from serve.core.errors import ConfideError, EngineUnavailable, ResourceExhausted
from serve.messages import (
    DialogueRequest,
    ReplyRequest,
    Sealed,
    TurnAudio,
    TurnRequest,
    TurnTranscript,
)
from serve.records.codec import RecordCodec
from serve.records.model import Entry, PlainWrite, RecordWrite
from serve.replica_loss import Resubmission
from serve.sealed import PayloadCodec
from serve.telemetry import current_trace_context

if TYPE_CHECKING:
    from serve.metrics import GatewayMetrics

logger = confide_logger("confide.boundary")

TranscriberRemote = Callable[[TurnRequest], Awaitable[Sealed]]
"""Sends a sealed turn to a transcriber replica (a DeploymentHandle method in Serve)."""
DialogueRemote = Callable[[ReplyRequest], AsyncIterator[Sealed]]
"""Streams sealed reply deltas from a dialogue replica; closing it cancels the request."""
RecorderRemote = Callable[[RecordWrite], Awaitable[object]]
"""Hands a sealed record write to the recorder deployment."""
Decode = Callable[[TurnAudio], Awaitable[TurnTranscript]]
Generate = Callable[[DialogueRequest], AsyncIterator[str]]


class Stage(Enum):
    TRANSCRIPTION = "transcription"
    DIALOGUE = "dialogue"
    RECORDS = "records"


# Checked in order: the first class an exception is an instance of decides. A Confide
# error raised here in the gateway (a turn's replicas lost, serve/replica_loss.py) keeps
# its own fixed message; one raised in a replica arrives as a RayTaskError that is also
# an instance of it, and whose text is the remote traceback: that one is translated.
_TRANSLATIONS: tuple[tuple[type[BaseException], type[ConfideError]], ...] = (
    (BackPressureError, ResourceExhausted),  # Serve's queue for the deployment is full
    (RayError, EngineUnavailable),  # a replica raised, died, or Ray lost the request
    (EnvelopeError, EngineUnavailable),  # sealing or opening failed closed (KMS, key state)
    (Exception, EngineUnavailable),  # an engine's own error; its message may quote input
)
_MESSAGES: dict[tuple[Stage, type[ConfideError]], str] = {
    (Stage.TRANSCRIPTION, ResourceExhausted): "the transcriber is at capacity",
    (Stage.TRANSCRIPTION, EngineUnavailable): "the transcriber failed",
    (Stage.DIALOGUE, ResourceExhausted): "the dialogue model is at capacity; reply skipped",
    (Stage.DIALOGUE, EngineUnavailable): "the dialogue model failed",
    (Stage.RECORDS, ResourceExhausted): "the recorder is at capacity; the record was not stored",
    (Stage.RECORDS, EngineUnavailable): "the record could not be stored",
}


def translate(error: Exception, stage: Stage) -> ConfideError:
    """The Confide error for a failure at `stage`; its message is fixed, never the
    original's (only the original's type name is logged)."""
    if isinstance(error, ConfideError) and not isinstance(error, RayError):
        return error
    for source, target in _TRANSLATIONS:
        if isinstance(error, source):
            return target(_MESSAGES[stage, target])
    raise AssertionError("unreachable: Exception is the last translation")


@contextlib.contextmanager
def _translated(stage: Stage) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        logger.warning("%s failed: %s", Plain(stage.value), plain_type(exc))
        raise translate(exc, stage) from None


class PayloadBoundary:
    """Both sides of every deployment handle. The gateway builds it with the remotes
    and its metrics; a replica with its codec alone."""

    def __init__(
        self,
        codec: PayloadCodec,
        metrics: GatewayMetrics | None = None,
        transcriber: TranscriberRemote | None = None,
        dialogue: DialogueRemote | None = None,
        recorder: RecorderRemote | None = None,
        records: RecordCodec | None = None,
        forget: Callable[[str, str], None] | None = None,
        resubmission: Resubmission | None = None,
    ) -> None:
        self._forget = forget
        self._resubmission = resubmission or Resubmission()
        self.turns_resent = 0
        """Final turns sent again because their replica died (serve/replica_loss.py)."""
        self.transcriptions_in_flight = 0
        self._codec = codec
        self._metrics = metrics
        self._transcriber = transcriber
        self._dialogue = dialogue
        self._recorder = recorder
        self._records = records
        if (recorder is None) != (records is None):
            raise ValueError("recording needs both the recorder and the record codec")

    @property
    def dialogue_enabled(self) -> bool:
        return self._dialogue is not None

    @property
    def records_enabled(self) -> bool:
        return self._recorder is not None

    @contextlib.contextmanager
    def _in_flight(self, stage: Stage) -> Iterator[None]:
        if self._metrics is None:
            yield
            return
        self._metrics.request_started(stage.value)
        try:
            yield
        finally:
            self._metrics.request_ended(stage.value)

    # -- the gateway's side ---------------------------------------------------------

    async def transcribe(self, turn: TurnAudio, final: bool = True) -> TurnTranscript:
        """A turn's transcript; raises only ConfideError. A final turn is sent again
        when its replica dies under it; an interim is not (the next one supersedes it)."""
        assert self._transcriber is not None, "a replica's boundary sends nothing"
        trace_context = current_trace_context()
        resubmission = self._resubmission if final else Resubmission()
        self.transcriptions_in_flight += 1
        try:
            with self._in_flight(Stage.TRANSCRIPTION), _translated(Stage.TRANSCRIPTION):
                request = await asyncio.to_thread(self._codec.seal_turn, turn, trace_context)
                sealed = await resubmission.send(self._transcriber, request, self._resent)
                return await asyncio.to_thread(self._codec.open_transcript, sealed)
        finally:
            self.transcriptions_in_flight -= 1

    def _resent(self) -> None:
        self.turns_resent += 1
        logger.warning("a transcriber replica died under a turn; sending it again")
        if self._metrics is not None:
            self._metrics.turn_resent()

    async def reply(self, request: DialogueRequest) -> AsyncIterator[str]:
        """The agent's reply as text deltas; raises only ConfideError. Closing the
        iterator (barge-in, hang-up) cancels the request in the dialogue replica."""
        if self._dialogue is None:
            raise EngineUnavailable("the dialogue model is not enabled on this gateway")
        trace_context = current_trace_context()
        with self._in_flight(Stage.DIALOGUE), _translated(Stage.DIALOGUE):
            sealed = await asyncio.to_thread(self._codec.seal_prompt, request, trace_context)
            async with contextlib.aclosing(self._dialogue(sealed)) as deltas:
                async for payload in deltas:
                    yield await asyncio.to_thread(self._codec.open_reply, payload)

    async def record(self, write: PlainWrite) -> bytes:
        """Seal a record write here and hand it to the recorder; returns the call's
        sealed details, for its later writes. Raises only ConfideError (the recorder's
        spool is full, or the recorder failed)."""
        assert self._recorder is not None and self._records is not None
        with self._in_flight(Stage.RECORDS), _translated(Stage.RECORDS):
            sealed = await asyncio.to_thread(_seal_write, self._records, write)
            await self._recorder(sealed)
            assert sealed.call is not None
            return sealed.call.details

    async def audit(self, *events: AuditEvent) -> None:
        """Hand audit events to the recorder, which chains them into the audit log (or
        spools them with the records while the store is down). Raises only
        ConfideError: then the audited action must not go ahead."""
        assert self._recorder is not None
        with self._in_flight(Stage.RECORDS), _translated(Stage.RECORDS):
            await self._recorder(RecordWrite(audit=events, write_id=uuid.uuid4().hex))

    def call_ended(self, tenant: str, call_key: str) -> None:
        """Drop the call's cached data keys: payloads and records alike are bound to its
        HMAC'd key (serve/sealed.py)."""
        if self._forget is not None:
            self._forget(tenant, call_key)

    # -- a replica's side -----------------------------------------------------------

    async def serve_turn(self, request: TurnRequest, decode: Decode) -> Sealed:
        """Open a sealed turn, decode it, seal the transcript."""
        with _translated(Stage.TRANSCRIPTION):
            turn = await asyncio.to_thread(self._codec.open_turn, request)
            result = await decode(turn)
            return await asyncio.to_thread(
                self._codec.seal_transcript, result, turn.tenant, turn.call_id
            )

    async def serve_reply(self, request: ReplyRequest, generate: Generate) -> AsyncIterator[Sealed]:
        """Open a sealed prompt and stream the sealed deltas that `generate` yields."""
        with _translated(Stage.DIALOGUE):
            prompt = await asyncio.to_thread(self._codec.open_prompt, request)
            async with contextlib.aclosing(generate(prompt)) as deltas:
                async for delta in deltas:
                    yield await asyncio.to_thread(
                        self._codec.seal_reply, delta, prompt.tenant, prompt.call_id
                    )


def _seal_write(codec: RecordCodec, write: PlainWrite) -> RecordWrite:
    row = write.row
    entries = tuple(
        Entry(
            row.tenant,
            row.call_key,
            entry.kind,
            entry.channel,
            entry.turn,
            codec.seal(row.tenant, row.call_key, row.started_at, entry.content, entry.kind),
        )
        for entry in write.entries
    )
    if row.details:  # sealed by an earlier write of this call
        return RecordWrite(entries, row)
    details = codec.seal(row.tenant, row.call_key, row.started_at, write.details)
    return RecordWrite(entries, dataclasses.replace(row, details=details))
