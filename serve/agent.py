"""The dialogue side of one call: the conversation so far, and the agent's replies.

Final transcripts arrive here in event order (`heard`). A reply to a customer turn is an
async iterator of events: AgentReply deltas and one final, or an error. The session runs
at most one at a time; if the customer speaks before it ends (barge-in), the session
cancels it, which closes the request to the dialogue deployment (aborting the engine's
generation), and the reply ends with a final marked interrupted. The conversation lives
only as long as the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from confide.v1 import call_pb2 as pb
from serve.conversation import Conversation
from serve.core.errors import ConfideError
from serve.messages import DialogueRequest

ReplyStream = Callable[[DialogueRequest], AsyncIterator[str]]
"""Text deltas of the agent's reply; raises only ConfideError (see serve/boundary.py)."""
Event = pb.StreamCallResponse | ConfideError

_SENTENCE_END = re.compile(r"(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)[.!?]+(?=\s|$)")
"""A sentence ends at . ! or ? before a space or the end (not after a title: "Dr. Lee")."""


def _cut_after(text: str, sentences: int) -> int | None:
    """Where `text` reaches the end of its `sentences`-th sentence, once a space after it
    shows the sentence is over; None before."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text) if m.end() < len(text)]
    return ends[sentences - 1] if len(ends) >= sentences else None


class AgentReplies:
    def __init__(
        self,
        tenant: str,
        call_id: str,
        system_prompt: str,
        max_tokens: int,
        reply_stream: ReplyStream,
        tracer: trace.Tracer,
        max_sentences: int = 2,
    ) -> None:
        self._tenant = tenant
        self._call_id = call_id
        self._system_prompt = system_prompt
        self._max_tokens = max_tokens
        self._max_sentences = max_sentences
        self._reply_stream = reply_stream
        self._tracer = tracer
        self._conversation = Conversation()
        self._replies = 0

    def heard(self, role: int, text: str) -> None:
        """A final transcript, in the order the client sees them."""
        speaker = "agent" if role == pb.SPEAKER_ROLE_AGENT else "customer"
        self._conversation.add(speaker, text)

    def reply(self, turn_index: int) -> AsyncIterator[Event]:
        """The agent's reply to the conversation so far (the customer just spoke)."""
        self._replies += 1
        request = DialogueRequest(
            request_id=f"{self._call_id}-{self._replies}",
            system_prompt=self._system_prompt,
            turns=self._conversation.turns,
            max_tokens=self._max_tokens,
            tenant=self._tenant,
            call_id=self._call_id,
        )
        return self._events(request, turn_index)

    async def _events(self, request: DialogueRequest, turn_index: int) -> AsyncIterator[Event]:
        text = ""
        interrupted = limited = False
        with self._tracer.start_as_current_span(
            "confide.reply",
            kind=SpanKind.CLIENT,
            record_exception=False,
            attributes={"confide.turn_index": turn_index},
        ) as span:
            try:
                async with contextlib.aclosing(self._reply_stream(request)) as deltas:
                    async for delta in deltas:
                        cut = _cut_after(text + delta, self._max_sentences)
                        if cut is not None:  # closing the stream aborts the generation
                            delta, limited = (text + delta)[len(text) : cut], True
                        text += delta
                        if delta:
                            yield self._event(pb.AgentReply(turn_index=turn_index, delta=delta))
                        if limited:
                            break
            except asyncio.CancelledError:
                interrupted = True  # barge-in: the reply so far is what the caller heard
            except ConfideError as error:
                span.set_status(trace.StatusCode.ERROR)
                yield error
                return
            finally:
                span.set_attributes(
                    {"confide.interrupted": interrupted, "confide.text_chars": len(text)}
                )
        self._conversation.add("agent", text.strip())
        final = pb.AgentReply(
            turn_index=turn_index,
            is_final=True,
            text=text.strip(),
            interrupted=interrupted,
            sentences=len(_SENTENCE_END.findall(text.strip())),
            sentence_limit=limited,
        )
        yield self._event(final)

    def _event(self, reply: pb.AgentReply) -> pb.StreamCallResponse:
        return pb.StreamCallResponse(call_id=self._call_id, agent_reply=reply)
