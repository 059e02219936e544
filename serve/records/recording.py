"""One call's record as the gateway builds it: plaintext, until the boundary seals it.

The session reports finals, replies and the call's end; this turns them into writes
whose row carries the counts so far, so the store's row is current after every write
(a gateway that dies mid-call leaves a row without an end, which retention treats as
ended when it began).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confide.v1 import call_pb2 as pb
from serve.records.model import RAW_SEGMENT, REPLY, SEGMENT, CallRow, PlainEntry, PlainWrite
from serve.wire import role_name


@dataclass
class CallCounts:
    turns: int = 0
    final_segments: int = 0
    agent_replies: int = 0
    audio_seconds: float = 0.0


class CallRecording:
    def __init__(
        self,
        tenant: str,
        call_key: str,
        details: dict,
        consent: bool = False,
        clock=time.time,
        started_at: float | None = None,
        counts: CallCounts | None = None,
    ) -> None:
        """`started_at` and `counts`: a resumed call's, from its earlier segments."""
        self._tenant = tenant
        self._consent = consent
        self._call_key = call_key
        self._details = details
        self.sealed_details = b""
        """The details as the first write sealed them: later writes reuse them."""
        self._clock = clock
        self.started_at = clock() if started_at is None else started_at
        self.counts = counts or CallCounts()

    def segment(self, segment: pb.TranscriptSegment, kind: str = SEGMENT) -> PlainWrite:
        """A redacted final; or (kind RAW_SEGMENT) the same final as said."""
        content = {
            "channel": segment.channel,
            "role": role_name(segment.role),
            "turn_index": segment.turn_index,
            "text": segment.text,
            "start_seconds": segment.start_seconds,
            "end_seconds": segment.end_seconds,
            "words": [
                [w.word, w.start_seconds, w.end_seconds, round(w.probability, 3)]
                for w in segment.words
            ],
        }
        entry = PlainEntry(kind, segment.channel, segment.turn_index, content)
        return self._write((entry,))

    def raw_segment(self, segment: pb.TranscriptSegment) -> PlainWrite:
        return self.segment(segment, RAW_SEGMENT)

    def reply(self, reply: pb.AgentReply) -> PlainWrite:
        self.counts.agent_replies += 1
        content = {
            "turn_index": reply.turn_index,
            "text": reply.text,
            "interrupted": reply.interrupted,
        }
        return self._write((PlainEntry(REPLY, 0, reply.turn_index, content),))

    def ended(self, status: str) -> PlainWrite:
        return self._write((), ended_at=self._clock(), status=status)

    def _write(
        self, entries: tuple[PlainEntry, ...], ended_at: float | None = None, status: str = ""
    ) -> PlainWrite:
        row = CallRow(
            tenant=self._tenant,
            call_key=self._call_key,
            period=time.strftime("%Y-%m", time.gmtime(self.started_at)),
            started_at=self.started_at,
            ended_at=ended_at,
            audio_seconds=round(self.counts.audio_seconds, 3),
            turns=self.counts.turns,
            final_segments=self.counts.final_segments,
            agent_replies=self.counts.agent_replies,
            status=status,
            details=self.sealed_details,
            training_consent=self._consent,
        )
        return PlainWrite(row, self._details, entries)
