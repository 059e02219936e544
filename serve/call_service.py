"""The CallService servicer: tenant authorization, admission, and the two RPCs.

Every handler runs inside `_guard`, which turns Confide errors into their status code
and any other exception into INTERNAL with an error id, so no exception text reaches a
client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

import grpc

from cluster.config import ConfideConfig
from confide.v1 import call_pb2 as pb
from confide.v1 import call_pb2_grpc
from serve.agent import ReplyStream
from serve.call_session import CallSession, Transcribe, parse_setup
from serve.errors import ConfideError, FailedPrecondition, InvalidArgument, ResourceExhausted
from serve.messages import DialogueRequest
from serve.tenancy import authorize

MAX_CONVERSE_TURNS = 64
MAX_TURN_CHARACTERS = 4000
_ROLE_NAMES = {pb.SPEAKER_ROLE_CUSTOMER: "customer", pb.SPEAKER_ROLE_AGENT: "agent"}

logger = logging.getLogger("confide.gateway")


class CallService(call_pb2_grpc.CallServiceServicer):
    def __init__(
        self, config: ConfideConfig, transcribe: Transcribe, dialogue: ReplyStream | None = None
    ) -> None:
        self._config = config
        self._transcribe = transcribe
        self._dialogue = dialogue
        self._active_calls = 0
        self.calls_handled = 0
        """Calls that passed authorization (tests prove refused peers never get here)."""

    @property
    def active_calls(self) -> int:
        return self._active_calls

    @contextlib.contextmanager
    def _admit(self):
        if self._active_calls >= self._config.gateway.max_concurrent_calls:
            raise ResourceExhausted("gateway is at its concurrent call limit; retry later")
        self._active_calls += 1
        try:
            yield
        finally:
            self._active_calls -= 1

    def _authorize(self, context: grpc.aio.ServicerContext) -> str:
        tenant = authorize(context, self._config.trust_domain, self._config.tenant_names)
        self.calls_handled += 1
        return tenant

    async def StreamCall(
        self,
        request_iterator: AsyncIterator[pb.StreamCallRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.StreamCallResponse]:
        try:
            tenant = self._authorize(context)
            with self._admit():
                session = await self._open(request_iterator, tenant)
                reader = asyncio.create_task(self._read(session, request_iterator))
                try:
                    async for event in session.events():
                        yield event
                    await reader
                    if session.rejected is not None:
                        raise session.rejected
                    yield session.summary()
                finally:
                    reader.cancel()
                    await session.close()
        except ConfideError as error:
            await _abort(context, error)
        except Exception as exc:  # never let exception text reach the client
            await _abort_internal(context, exc)

    async def _open(
        self, request_iterator: AsyncIterator[pb.StreamCallRequest], tenant: str
    ) -> CallSession:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("request") != "config":
            raise InvalidArgument("the first StreamCallRequest must carry a CallConfig")
        config = first.config
        setup = parse_setup(
            config.call_id, config.audio, config.interim_results, config.agent_replies
        )
        return CallSession(
            setup,
            self._config,
            self._transcribe,
            self._dialogue,
            self._config.system_prompt(tenant),
            tenant,
        )

    @staticmethod
    async def _read(
        session: CallSession, request_iterator: AsyncIterator[pb.StreamCallRequest]
    ) -> None:
        try:
            async for request in request_iterator:
                kind = request.WhichOneof("request")
                if kind == "audio":
                    session.feed(request.audio.data)
                elif kind == "end":
                    break
                else:
                    raise InvalidArgument("CallConfig may only be sent once, first")
        except ConfideError as error:
            session.fail(error)
            return
        session.finish()

    async def Transcribe(
        self, request: pb.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.TranscribeResponse:
        try:
            tenant = self._authorize(context)
            with self._admit():
                if len(request.data) > self._config.gateway.max_recording_bytes:
                    raise InvalidArgument(
                        f"recording exceeds {self._config.gateway.max_recording_bytes} bytes"
                    )
                setup = parse_setup(request.call_id, request.audio, interim_results=False)
                session = CallSession(setup, self._config, self._transcribe, tenant=tenant)
                step = self._config.gateway.max_chunk_bytes
                for start in range(0, len(request.data), step):
                    session.feed(request.data[start : start + step])
                session.finish()
                segments = []
                async for event in session.events():
                    if event.WhichOneof("event") == "error":
                        raise _error_from_event(event.error)
                    segments.append(event.transcript)
                return pb.TranscribeResponse(
                    call_id=setup.call_id,
                    segments=segments,
                    summary=session.summary().summary,
                )
        except ConfideError as error:
            await _abort(context, error)
        except Exception as exc:
            await _abort_internal(context, exc)
        raise AssertionError("unreachable: abort raises")

    async def Converse(
        self, request: pb.ConverseRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ConverseResponse]:
        try:
            tenant = self._authorize(context)
            if self._dialogue is None:
                raise FailedPrecondition("the dialogue model is not enabled on this gateway")
            dialogue_request = _dialogue_request(
                request,
                tenant,
                self._config.system_prompt(tenant),
                self._config.dialogue.max_reply_tokens,
            )
            with self._admit():
                text = ""
                async for delta in self._dialogue(dialogue_request):
                    text += delta
                    yield pb.ConverseResponse(conversation_id=request.conversation_id, delta=delta)
                yield pb.ConverseResponse(
                    conversation_id=request.conversation_id, is_final=True, text=text.strip()
                )
        except ConfideError as error:
            await _abort(context, error)
        except Exception as exc:
            await _abort_internal(context, exc)


def _dialogue_request(
    request: pb.ConverseRequest, tenant: str, system_prompt: str, max_tokens: int
) -> DialogueRequest:
    if not 1 <= len(request.conversation_id) <= 128:
        raise InvalidArgument("conversation_id must be 1-128 characters")
    if not 1 <= len(request.turns) <= MAX_CONVERSE_TURNS:
        raise InvalidArgument(f"turns must hold 1 to {MAX_CONVERSE_TURNS} turns")
    turns = []
    for index, turn in enumerate(request.turns):
        if turn.role not in _ROLE_NAMES:
            raise InvalidArgument(f"turn {index}: role must be CUSTOMER or AGENT")
        if not turn.text.strip() or len(turn.text) > MAX_TURN_CHARACTERS:
            raise InvalidArgument(f"turn {index}: text must be 1-{MAX_TURN_CHARACTERS} characters")
        turns.append((_ROLE_NAMES[turn.role], turn.text.strip()))
    return DialogueRequest(
        request_id=f"converse-{uuid.uuid4().hex[:12]}",
        system_prompt=system_prompt,
        turns=tuple(turns),
        max_tokens=max_tokens,
        tenant=tenant,
        call_id=request.conversation_id,
    )


def _error_from_event(error: pb.CallError) -> ConfideError:
    failure = ConfideError(f"{error.message} (error id {error.error_id})")
    failure.code = getattr(grpc.StatusCode, error.code, grpc.StatusCode.INTERNAL)
    return failure


async def _abort(context: grpc.aio.ServicerContext, error: ConfideError) -> None:
    await context.abort(error.code, str(error))


async def _abort_internal(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    error_id = uuid.uuid4().hex[:16]
    logger.error("internal error %s: %s", error_id, type(exc).__name__)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error (error id {error_id})")
