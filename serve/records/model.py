"""What a call record is: plaintext metadata for retention and listing, and sealed rows.

Everything a person said (segments, replies) and everything that identifies the call
beyond its tenant (the call id, roles, models) is sealed in the gateway before it
leaves; the store holds it as ciphertext. The plaintext columns are exactly the fields
of `CallRow` and `Entry` below, less their `sealed` blobs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from serve.audit.events import AuditEvent

SEGMENT = "segment"
REPLY = "reply"
RAW_SEGMENT = "raw_segment"
"""A final as said (security codes still masked), kept only where the tenant's
redaction policy sets store_raw."""
RECORD_PURPOSE = "transcript"
"""The key purpose of everything recorded (the envelope's binding)."""
RAW_PURPOSE = "transcript.raw"
"""The purpose raw segments are sealed under, so that opening them is its own grant."""


def purpose_of(kind: str | None) -> str:
    return RAW_PURPOSE if kind == RAW_SEGMENT else RECORD_PURPOSE


@dataclass(frozen=True)
class CallRow:
    tenant: str
    call_key: str
    """The call id as a keyed HMAC (the same one traces and metrics show)."""
    period: str
    """YYYY-MM of the tenant key that seals this call's records (the month it began)."""
    started_at: float
    """Epoch seconds."""
    ended_at: float | None = None
    audio_seconds: float = 0.0
    turns: int = 0
    final_segments: int = 0
    agent_replies: int = 0
    status: str = ""
    """The call's final gRPC status name; empty while the call goes on."""
    legal_hold: bool = False
    text_purged_at: float | None = None
    """When retention deleted the call's text (its aggregates may stay)."""
    details: bytes = b""
    """Sealed: the call id, channel roles, language, model names."""
    training_consent: bool = False
    """The caller consented to this call's redacted text being used for training
    (CallConfig.training_consent); exported only if the tenant also opted in."""


@dataclass(frozen=True)
class Entry:
    """One sealed final: a transcript segment (per channel and turn) or an agent reply.
    (tenant, call_key, kind, channel, turn) is unique, so a retried write is a no-op."""

    tenant: str
    call_key: str
    kind: str
    channel: int
    turn: int
    sealed: bytes


@dataclass(frozen=True)
class RecordWrite:
    """What the gateway sends the recorder: ciphertext and plaintext metadata only."""

    entries: tuple[Entry, ...] = ()
    call: CallRow | None = None
    """The call's row, when it starts or ends."""
    write_id: str = ""
    audit: tuple[AuditEvent, ...] = ()
    """Audit events of the call (its start and end), chained when the write is stored:
    spooled with it while the store is down, so none is lost."""


@dataclass(frozen=True)
class Transcript:
    """A call's record, opened: what `confide records show` prints."""

    row: CallRow
    details: dict
    segments: list[dict] = field(default_factory=list)
    replies: list[dict] = field(default_factory=list)
    unreadable: int = 0
    raw_segments: list[dict] = field(default_factory=list)
    """Only when asked for raw text, and the tenant stores it."""


@dataclass(frozen=True)
class PlainEntry:
    """An entry before sealing: it never leaves the gateway."""

    kind: str
    channel: int
    turn: int
    content: dict


@dataclass(frozen=True)
class PlainWrite:
    """A record write before sealing: the boundary seals `details` and each entry's
    content into a RecordWrite; this object never leaves the gateway."""

    row: CallRow
    details: dict
    entries: tuple[PlainEntry, ...] = ()
