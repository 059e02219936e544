"""The CallService servicer: tenant authorization, admission, and the RPCs.

Every handler runs inside `_handling`, which opens the call's span, turns Confide errors
into their status code and any other exception into INTERNAL, and gives each failure
an error id that the client, the log line and the span share. No exception text
reaches any of the three.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from opentelemetry import trace

from confide.v1 import call_pb2 as pb
from confide.v1 import call_pb2_grpc
from serve.access.identity import Identity, peer_identity
from serve.audit import Actor, AuditEvent, events
from serve.boundary import PayloadBoundary
from serve.call_resume import CALL_START, CallProgress, ResumeTokens
from serve.call_session import CallSession, Record
from serve.call_setup import CallSetup, parse_setup
from serve.core.allowlist import Plain, confide_logger
from serve.core.config import ConfideConfig, RedactionPolicy
from serve.core.errors import (
    Cancelled,
    ConfideError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from serve.messages import DialogueRequest
from serve.records.recording import CallCounts, CallRecording
from serve.redaction import CallRedaction, Redactor
from serve.rpc_errors import RpcOutcome, status_on_error
from serve.telemetry import GatewayTelemetry
from serve.whisper_engine import model_name
from serve.wire import SPEAKER_ROLES, role_name

MAX_CONVERSE_TURNS = 64
TRANSCRIBE_TURNS_IN_FLIGHT = 4
"""A Transcribe request's turns decoding at once: a long recording must not queue all
its turns ahead of live calls' finals."""
MAX_TURN_CHARACTERS = 4000
# A Converse turn must say who spoke.
_CONVERSE_ROLES = {role: name for name, role in SPEAKER_ROLES.items()}

logger = confide_logger("confide.gateway")


@dataclass
class _Rpc:
    """One RPC's telemetry: its span, and whether it got past admission."""

    span: trace.Span
    tenant: str = ""
    admitted: bool = False

    def identify(self, tenant: str = "", call_id: str = "") -> None:
        if tenant:
            self.tenant = tenant
            self.span.set_attribute("confide.tenant", tenant)
        if call_id:
            self.span.set_attribute("confide.call_id", call_id)


class CallService(call_pb2_grpc.CallServiceServicer):
    def __init__(
        self,
        config: ConfideConfig,
        boundary: PayloadBoundary,
        telemetry: GatewayTelemetry | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        if config.redaction.enabled and redactor is None:
            raise ValueError("redaction is on (config redaction.enabled): pass a Redactor")
        self._config = config
        self._boundary = boundary
        self._redactor = redactor if config.redaction.enabled else None
        self._telemetry = telemetry or GatewayTelemetry.disabled()
        self._english_only = model_name(config.transcriber).endswith(".en")
        self._active_calls = 0
        self._calls_by_tenant: Counter[str] = Counter()
        self._resume_tokens = ResumeTokens(self._telemetry.hasher)
        self._live: dict[CallSession, asyncio.Task] = {}
        """Each live StreamCall's session and the task reading its audio."""
        self._no_live_calls = asyncio.Event()
        self._no_live_calls.set()
        self._draining = False
        self.calls_handled = 0
        """Calls that passed authorization (tests prove refused peers never get here)."""

    @property
    def active_calls(self) -> int:
        return self._active_calls

    async def drain(self, grace: float, finalise: float) -> None:
        """Take no new calls; let live StreamCalls run for `grace` seconds, then end
        each: stop reading its audio, finalise its open turns, send everything, and end
        it UNAVAILABLE after a CallResume (for up to `finalise` seconds more)."""
        self._draining = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_live_calls.wait(), grace)
        for session, reader in list(self._live.items()):
            if not reader.done():  # a call whose audio has all come in just finishes
                reader.cancel()
                session.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_live_calls.wait(), finalise)

    @contextlib.contextmanager
    def _admit(self, rpc: _Rpc):
        if self._draining:
            raise Unavailable("the gateway is restarting; reconnect")
        tenant_limit = self._config.tenant(rpc.tenant).max_concurrent_calls
        if self._active_calls >= self._config.gateway.max_concurrent_calls:
            raise ResourceExhausted("gateway is at its concurrent call limit; retry later")
        if tenant_limit is not None and self._calls_by_tenant[rpc.tenant] >= tenant_limit:
            raise ResourceExhausted(
                f"tenant {rpc.tenant!r} is at its limit of {tenant_limit} concurrent calls; "
                "retry later"
            )
        self._active_calls += 1
        self._calls_by_tenant[rpc.tenant] += 1
        self._telemetry.metrics.active_calls(self._active_calls)
        rpc.admitted = True
        try:
            yield
        finally:
            self._active_calls -= 1
            self._calls_by_tenant[rpc.tenant] -= 1
            self._telemetry.metrics.active_calls(self._active_calls)

    def _authorize(self, context: grpc.aio.ServicerContext, rpc: _Rpc) -> Identity:
        # The interceptor (serve/access/policy.py) has admitted this tenant and role.
        gateway = self._config.gateway
        identity = peer_identity(context, self._config.trust_domain, gateway.common_name_identity)
        self.calls_handled += 1
        rpc.identify(tenant=identity.tenant)
        return identity

    @contextlib.asynccontextmanager
    async def _audited(self, identity: Identity, method: str, call_id: str):
        """The call's start and end in the audit log (through the recorder). The start
        is written before any audio is taken: when it cannot be, the call is refused.
        When the call ends its cached data keys go too."""
        try:
            async with self._audit_log_entries(identity, method, call_id):
                yield
        finally:
            self._boundary.call_ended(identity.tenant, self._telemetry.hasher(call_id))

    @contextlib.asynccontextmanager
    async def _audit_log_entries(self, identity: Identity, method: str, call_id: str):
        if not self._boundary.records_enabled:
            yield
            return
        actor = Actor(identity.fingerprint, identity.tenant, identity.role)
        target = self._telemetry.hasher(call_id)
        await self._boundary.audit(
            AuditEvent(actor, events.CALL_START, identity.tenant, target, detail={"rpc": method})
        )
        status = "INTERNAL"
        try:
            yield
            status = "OK"
        except ConfideError as error:
            status = error.code.name
            raise
        except (asyncio.CancelledError, GeneratorExit):
            status = "CANCELLED"
            raise
        finally:
            end = AuditEvent(
                actor,
                events.CALL_END,
                identity.tenant,
                target,
                outcome="ok" if status == "OK" else "failed",
                detail={"rpc": method, "status": status},
            )
            try:
                await asyncio.shield(self._boundary.audit(end))
            except ConfideError as error:
                logger.warning("call end not audited: %s", Plain(error.code.name))

    @contextlib.asynccontextmanager
    async def _handling(self, context: grpc.aio.ServicerContext, method: str):
        """The handler wrapper: one span per RPC (current while it runs, so turn,
        transcription and reply spans nest under it), errors as status + error id."""
        span = self._telemetry.tracer.start_span(
            "confide.call", attributes={"rpc.method": method}, record_exception=False
        )
        rpc = _Rpc(span)
        outcome = RpcOutcome()
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                async with status_on_error(context, span, method) as outcome:
                    yield rpc
        finally:
            status = outcome.status
            span.set_attribute("confide.status", status.name)
            if status != grpc.StatusCode.OK:
                span.set_status(trace.StatusCode.ERROR)
                if not rpc.admitted and status != grpc.StatusCode.CANCELLED:
                    self._telemetry.metrics.refused(status.name)  # a hang-up is no refusal
            self._telemetry.metrics.call_ended(rpc.tenant, status.name)
            span.end()

    async def StreamCall(
        self,
        request_iterator: AsyncIterator[pb.StreamCallRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamCallResponse]:
        async with self._handling(context, "StreamCall") as rpc:
            # The config is read before anything is refused, and headers then say the
            # call was accepted: a client that waits for them never writes into a call
            # the gateway ended, which grpcio reports as INTERNAL (grpc#36066).
            first = await anext(aiter(request_iterator), None)
            if first is None:
                # A client that hangs up before its config reaches here as an empty
                # stream (grpcio reports no cancellation yet): it left, it did no wrong.
                raise Cancelled("the stream ended before its CallConfig")
            identity = self._authorize(context, rpc)
            with self._admit(rpc):
                session = self._open(first, identity.tenant, rpc)
                async with (
                    self._audited(identity, "StreamCall", session.setup.call_id),
                    contextlib.aclosing(
                        self._stream(session, request_iterator, rpc, context)
                    ) as stream,
                ):
                    async for event in stream:
                        yield event

    async def _stream(
        self,
        session: CallSession,
        request_iterator: AsyncIterator[pb.StreamCallRequest],
        rpc: _Rpc,
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamCallResponse]:
        await context.send_initial_metadata(())
        reader = asyncio.create_task(self._read(session, request_iterator))
        limit = self._config.gateway.max_call_seconds
        overlong = asyncio.get_running_loop().call_later(limit, _end_overlong, session, reader)
        self._live[session] = reader
        self._no_live_calls.clear()
        async with _recording_end(session):
            try:
                async with contextlib.aclosing(session.events()) as events:
                    async for event in events:
                        yield event
                await asyncio.wait({reader})
                if not reader.cancelled():  # cancelled: too long, or drained (see above)
                    reader.result()  # raises what broke the reader, after the backlog
            finally:
                overlong.cancel()
                reader.cancel()
                del self._live[session]
                if not self._live:
                    self._no_live_calls.set()
            if session.drained:
                token = self._resume_tokens.issue(
                    rpc.tenant, session.setup.call_id, session.progress()
                )
                yield session.resume_event(token)
            if session.rejected is not None:
                raise session.rejected
        summary = session.summary()
        _record_summary(rpc.span, summary.summary)
        session.report_redaction()
        yield summary

    def _open(self, first: pb.StreamCallRequest | None, tenant: str, rpc: _Rpc) -> CallSession:
        if first is None or first.WhichOneof("request") != "config":
            raise InvalidArgument("the first StreamCallRequest must carry a CallConfig")
        config = first.config
        setup = parse_setup(
            config.call_id,
            config.audio,
            config.interim_results,
            config.agent_replies,
            self._english_only,
        )
        _record_setup(rpc, setup)
        progress = CALL_START
        if config.resume_token:
            progress = self._resume_tokens.read(
                config.resume_token, tenant, setup.call_id, len(setup.roles)
            )
        rpc.span.set_attribute("confide.segment", progress.segment)
        return CallSession(
            setup,
            self._config,
            self._boundary.transcribe,
            self._telemetry,
            self._boundary.reply if self._boundary.dialogue_enabled else None,
            self._config.system_prompt(tenant),
            tenant,
            self._recording(
                tenant,
                setup,
                config.record if config.HasField("record") else None,
                config.training_consent,
                progress=progress,
            ),
            self._call_redaction(tenant),
            progress,
        )

    def _call_redaction(self, tenant: str) -> tuple[CallRedaction, RedactionPolicy]:
        policy = self._config.tenant(tenant).redaction
        entities = frozenset(policy.entities)
        hold = self._config.redaction.hold_seconds
        return CallRedaction(self._redactor, entities, hold), policy

    def _recording(
        self,
        tenant: str,
        setup: CallSetup,
        asked: bool | None,
        consent: bool,
        rpc_method: str = "StreamCall",
        progress: CallProgress = CALL_START,
    ) -> tuple[CallRecording, Record] | None:
        """The call's record, when the tenant records calls, the client did not turn it
        off, and sealing is on (records are only ever stored sealed)."""
        wanted = asked is not False and self._config.tenant(tenant).records.enabled
        if not (wanted and self._boundary.records_enabled and self._config.keys.sealing):
            return None
        details = {
            "call_id": setup.call_id,
            "rpc": rpc_method,
            "roles": [role_name(role) for role in setup.roles],
            "language": setup.language,
            "encoding": setup.encoding.value,
            "sample_rate_hz": setup.sample_rate,
            "transcriber_model": model_name(self._config.transcriber),
            "dialogue_model": self._config.dialogue_model_dir.name if setup.agent_replies else None,
        }
        call_key = self._telemetry.hasher(setup.call_id)
        counts = CallCounts(
            progress.turns,
            progress.final_segments,
            progress.agent_replies,
            progress.audio_offset_seconds,
        )
        recording = CallRecording(
            tenant, call_key, details, consent, started_at=progress.started_at, counts=counts
        )
        return recording, self._boundary.record

    @staticmethod
    async def _read(
        session: CallSession, request_iterator: AsyncIterator[pb.StreamCallRequest]
    ) -> None:
        """Feed the session until the client ends the call. Whatever stops the reading,
        the session is finished, so its events end after what was already accepted."""
        try:
            async for request in request_iterator:
                kind = request.WhichOneof("request")
                if kind == "audio":
                    await session.wait_for_room()  # a client that does not read waits
                    session.feed(request.audio.data)
                elif kind == "pause":
                    session.pause()
                elif kind == "resume":
                    session.resume()
                elif kind == "dtmf":
                    session.dtmf(request.dtmf.digit)
                elif kind == "end":
                    break
                elif kind == "config":
                    raise InvalidArgument("CallConfig may only be sent once, first")
                else:
                    raise InvalidArgument(
                        "a StreamCallRequest must set one of audio, pause, resume, dtmf, end"
                    )
        except ConfideError as error:
            session.fail(error)
        finally:
            session.finish()

    async def Transcribe(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TranscribeResponse:
        async with self._handling(context, "Transcribe") as rpc:
            identity = self._authorize(context, rpc)
            tenant = identity.tenant
            with self._admit(rpc):
                if len(request.data) > self._config.gateway.max_recording_bytes:
                    raise InvalidArgument(
                        f"recording exceeds {self._config.gateway.max_recording_bytes} bytes"
                    )
                setup = parse_setup(
                    request.call_id, request.audio, False, english_only=self._english_only
                )
                _record_setup(rpc, setup)
                asked = request.record if request.HasField("record") else None
                recording = self._recording(
                    tenant, setup, asked, request.training_consent, "Transcribe"
                )
                async with self._audited(identity, "Transcribe", setup.call_id):
                    session = CallSession(
                        setup,
                        self._config,
                        self._boundary.transcribe,
                        self._telemetry,
                        tenant=tenant,
                        recording=recording,
                        redaction=self._call_redaction(tenant),
                    )
                    return await self._transcribe(session, request.data, rpc)
        raise AssertionError("unreachable: _handling aborts")

    async def _transcribe(
        self, session: CallSession, data: bytes, rpc: _Rpc
    ) -> pb.TranscribeResponse:
        step = self._config.gateway.max_chunk_bytes
        for start in range(0, len(data), step):
            session.feed(data[start : start + step])
            # Paced: the VAD over a long recording yields to live calls between chunks,
            # and its turns go to the transcriber a few at a time, not all at once.
            await asyncio.sleep(0)
            await session.wait_for_turns_below(TRANSCRIBE_TURNS_IN_FLIGHT)
        session.finish()
        segments = []
        async with (
            _recording_end(session),
            contextlib.aclosing(session.results()) as results,
        ):
            async for event in results:
                if isinstance(event, ConfideError):
                    raise event
                segments.append(event.transcript)
        summary = session.summary().summary
        _record_summary(rpc.span, summary)
        session.report_redaction()
        return pb.TranscribeResponse(
            call_id=session.setup.call_id, segments=segments, summary=summary
        )

    async def Converse(
        self, request: pb.ConverseRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ConverseResponse]:
        async with self._handling(context, "Converse") as rpc:
            identity = self._authorize(context, rpc)
            tenant = identity.tenant
            if not self._boundary.dialogue_enabled:
                raise FailedPrecondition("the dialogue model is not enabled on this gateway")
            dialogue_request = await self._redacted_prompt(
                _dialogue_request(
                    request,
                    tenant,
                    self._config.system_prompt(tenant),
                    self._config.dialogue.max_reply_tokens,
                )
            )
            rpc.identify(call_id=request.conversation_id)
            with self._admit(rpc):
                async with (
                    self._audited(identity, "Converse", request.conversation_id),
                    contextlib.aclosing(self._converse(request, dialogue_request)) as responses,
                ):
                    async for response in responses:
                        yield response

    async def _converse(
        self, request: pb.ConverseRequest, dialogue_request: DialogueRequest
    ) -> AsyncIterator[pb.ConverseResponse]:
        text = ""
        with self._telemetry.tracer.start_as_current_span(
            "confide.reply", record_exception=False
        ) as span:
            async for delta in self._boundary.reply(dialogue_request):
                text += delta
                yield pb.ConverseResponse(conversation_id=request.conversation_id, delta=delta)
            span.set_attribute("confide.text_chars", len(text))
        yield pb.ConverseResponse(
            conversation_id=request.conversation_id, is_final=True, text=text.strip()
        )

    async def _redacted_prompt(self, request: DialogueRequest) -> DialogueRequest:
        """The model only ever sees redacted text, whatever a Converse client sends."""
        if self._redactor is None:
            return request
        entities = frozenset(self._config.tenant(request.tenant).redaction.entities)
        redaction = CallRedaction(self._redactor, entities, hold_seconds=0)
        turns = []
        for role, text in request.turns:
            redacted = await redaction.alone(text.split())
            turns.append((role, text if not any(redacted.masks) else redacted.text))
        return dataclasses.replace(request, turns=tuple(turns))


def _end_overlong(session: CallSession, reader: asyncio.Task) -> None:
    """gateway.max_call_seconds is up: stop reading, finalise the open turns, and end
    the call with DEADLINE_EXCEEDED after what was already accepted."""
    reader.cancel()
    session.fail(DeadlineExceeded("the call reached gateway.max_call_seconds; reconnect"))


@contextlib.asynccontextmanager
async def _recording_end(session: CallSession):
    """Store the call's end with the status it ends with (a hang-up is CANCELLED)."""
    status = "INTERNAL"
    try:
        yield
        status = "OK"
    except ConfideError as error:
        status = error.code.name
        raise
    except (asyncio.CancelledError, GeneratorExit):  # the client hung up
        status = "CANCELLED"
        raise
    finally:
        failure = await asyncio.shield(session.record_end(status))
        if failure is not None:
            logger.warning("call end not recorded: %s", Plain(failure.code.name))


def _record_setup(rpc: _Rpc, setup: CallSetup) -> None:
    rpc.identify(call_id=setup.call_id)
    rpc.span.set_attributes(
        {
            "confide.encoding": setup.encoding.name,
            "confide.sample_rate_hz": setup.sample_rate,
            "confide.channels": len(setup.roles),
        }
    )


def _record_summary(span: trace.Span, summary: pb.CallSummary) -> None:
    span.set_attributes(
        {
            "confide.audio_seconds": summary.audio_seconds,
            "confide.turns": summary.turns,
            "confide.final_segments": summary.final_segments,
            "confide.redacted_entities": summary.redacted_entities,
            "confide.paused_seconds": summary.paused_seconds,
            "confide.dtmf_events": summary.dtmf_events,
        }
    )


def _dialogue_request(
    request: pb.ConverseRequest, tenant: str, system_prompt: str, max_tokens: int
) -> DialogueRequest:
    if not 1 <= len(request.conversation_id) <= 128:
        raise InvalidArgument("conversation_id must be 1-128 characters")
    if not 1 <= len(request.turns) <= MAX_CONVERSE_TURNS:
        raise InvalidArgument(f"turns must hold 1 to {MAX_CONVERSE_TURNS} turns")
    turns = []
    for index, turn in enumerate(request.turns):
        if turn.role not in _CONVERSE_ROLES:
            raise InvalidArgument(f"turn {index}: role must be CUSTOMER or AGENT")
        if not turn.text.strip() or len(turn.text) > MAX_TURN_CHARACTERS:
            raise InvalidArgument(f"turn {index}: text must be 1-{MAX_TURN_CHARACTERS} characters")
        turns.append((_CONVERSE_ROLES[turn.role], turn.text.strip()))
    return DialogueRequest(
        request_id=f"converse-{uuid.uuid4().hex[:12]}",
        system_prompt=system_prompt,
        turns=tuple(turns),
        max_tokens=max_tokens,
        tenant=tenant,
        call_id=request.conversation_id,
    )
