"""The dialogue side of one call: the conversation so far, and at most one agent reply
streaming at a time.

Final transcripts arrive here in event order. A final customer turn starts a reply from
the dialogue deployment, streamed as AgentReply deltas and one final. If the customer
speaks again before the reply ends (barge-in), the reply is cancelled, which cancels the
Serve request and aborts the engine's generation. The conversation lives only as long
as the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from cluster.allowlist import confide_logger, plain_type
from confide.v1 import call_pb2 as pb
from serve.conversation import Conversation
from serve.errors import ConfideError, EngineUnavailable
from serve.messages import DialogueRequest

logger = confide_logger("confide.gateway")

ReplyStream = Callable[[DialogueRequest], AsyncIterator[str]]
Emit = Callable[[pb.StreamCallResponse], None]
ErrorEvent = Callable[[ConfideError], pb.StreamCallResponse]


class AgentReplies:
    def __init__(
        self,
        tenant: str,
        call_id: str,
        system_prompt: str,
        max_tokens: int,
        reply_stream: ReplyStream,
        emit: Emit,
        error_event: ErrorEvent,
        tracer: trace.Tracer,
    ) -> None:
        self._tenant = tenant
        self._call_id = call_id
        self._system_prompt = system_prompt
        self._max_tokens = max_tokens
        self._reply_stream = reply_stream
        self._emit = emit
        self._error_event = error_event
        self._tracer = tracer
        self._conversation = Conversation()
        self._active: asyncio.Task | None = None
        self._replies = 0
        self.interrupted = 0

    def heard(self, role: int, text: str, turn_index: int) -> None:
        """A final transcript, in the order the client sees them."""
        if role == pb.SPEAKER_ROLE_AGENT:
            self._conversation.add("agent", text)
            return
        self.barge_in()
        self._conversation.add("customer", text)
        self._replies += 1
        request = DialogueRequest(
            request_id=f"{self._call_id}-{self._replies}",
            system_prompt=self._system_prompt,
            turns=self._conversation.turns,
            max_tokens=self._max_tokens,
            tenant=self._tenant,
            call_id=self._call_id,
        )
        self._active = asyncio.create_task(self._reply(request, turn_index))

    def barge_in(self) -> None:
        """The customer speaks: cut the reply that is streaming, if any."""
        if self._active is not None and not self._active.done():
            self._active.cancel()
            self.interrupted += 1

    async def wait(self) -> None:
        """Let the reply in flight finish (end of call)."""
        if self._active is not None:
            await asyncio.gather(self._active, return_exceptions=True)

    async def close(self) -> None:
        if self._active is not None:
            self._active.cancel()
            await asyncio.gather(self._active, return_exceptions=True)

    async def _reply(self, request: DialogueRequest, turn_index: int) -> None:
        text = ""
        interrupted = False
        with self._tracer.start_as_current_span(
            "confide.reply",
            kind=SpanKind.CLIENT,
            record_exception=False,
            attributes={"confide.turn_index": turn_index},
        ) as span:
            try:
                async for delta in self._reply_stream(request):
                    text += delta
                    self._emit(self._event(pb.AgentReply(turn_index=turn_index, delta=delta)))
            except asyncio.CancelledError:
                interrupted = True
            except ConfideError as error:
                span.set_status(trace.StatusCode.ERROR)
                self._emit(self._error_event(error))
                return
            except Exception as exc:
                span.set_status(trace.StatusCode.ERROR)
                logger.warning("agent reply failed: %s", plain_type(exc))
                self._emit(self._error_event(EngineUnavailable("the agent reply failed")))
                return
            finally:
                span.set_attributes(
                    {"confide.interrupted": interrupted, "confide.text_chars": len(text)}
                )
        self._conversation.add("agent", text.strip())
        final = pb.AgentReply(
            turn_index=turn_index, is_final=True, text=text.strip(), interrupted=interrupted
        )
        self._emit(self._event(final))

    def _event(self, reply: pb.AgentReply) -> pb.StreamCallResponse:
        return pb.StreamCallResponse(call_id=self._call_id, agent_reply=reply)
