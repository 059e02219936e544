"""A call that outlives its gateway replica: segments joined by a resume token.

When a gateway drains (a restart, a redeploy), each live call's open turns are finalised
and sent, and the call's last event is a CallResume: a token and the audio offset the
gateway had read up to. The client reconnects (another replica answers on the same
address) and sends a new StreamCall with the same call_id and the token; the call then
goes on where it stopped: transcript times and turn indexes continue, the summary's
counts add up, and the record (keyed by the call's HMAC'd id) gets the later finals.

The token is signed (serve/core/signed_tokens.py), not encrypted: it holds counts and
offsets, never text. The agent's conversation is not carried over (that would put
transcript text in the client's hands): a resumed segment's replies see its own turns.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from serve.core.allowlist import IdentifierHasher
from serve.core.errors import InvalidArgument

RESUME_TOKEN_SECONDS = 600
"""How long a client has to reconnect and resume."""


@dataclass(frozen=True)
class CallProgress:
    """Where a call stands when one of its segments starts."""

    segment: int = 1
    """This segment's number: 1 for a call's first."""
    audio_offset_seconds: float = 0.0
    """Call audio read by the earlier segments."""
    next_turn_index: tuple[int, ...] = ()
    """Per channel, the index of this segment's first turn."""
    turns: int = 0
    final_segments: int = 0
    agent_replies: int = 0
    dtmf_events: int = 0
    paused_seconds: float = 0.0
    redacted_entities: int = 0
    paused: bool = False
    """The call was in a PCI pause: the new segment drops audio until ResumeRecording."""
    started_at: float | None = None
    """When the call's first segment began (its record's start); None: now."""

    def first_turn_index(self, channel: int) -> int:
        return self.next_turn_index[channel] if self.next_turn_index else 0


CALL_START = CallProgress()
"""A call's first segment."""


class ResumeTokens:
    def __init__(self, hasher: IdentifierHasher, clock=time.time) -> None:
        self._tokens = hasher.signed_tokens("call-resume-token")
        self._clock = clock

    def issue(self, tenant: str, call_id: str, progress: CallProgress) -> bytes:
        fields = dataclasses.asdict(progress)
        fields["next_turn_index"] = list(progress.next_turn_index)
        return self._tokens.issue([tenant, call_id, self._clock(), fields]).encode()

    def read(self, token: bytes, tenant: str, call_id: str, channels: int) -> CallProgress:
        """The progress the token carries, if this tenant was given it for this call
        within RESUME_TOKEN_SECONDS; otherwise INVALID_ARGUMENT."""
        try:
            body = self._tokens.read(token.decode("ascii"))
            owner, owner_call, issued_at, fields = body  # type: ignore[misc]
            fields["next_turn_index"] = tuple(fields["next_turn_index"])
            progress = CallProgress(**fields)
            valid = (
                owner == tenant
                and owner_call == call_id
                and 0 <= self._clock() - issued_at <= RESUME_TOKEN_SECONDS
                and len(progress.next_turn_index) == channels
            )
        except (UnicodeDecodeError, TypeError, ValueError, KeyError):
            valid = False
        if not valid:
            raise InvalidArgument(
                "resume_token is not one this tenant was given for this call, "
                f"within {RESUME_TOKEN_SECONDS} s, with the same channels"
            )
        return progress
