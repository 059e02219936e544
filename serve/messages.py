"""The payload types of the call path, and their sealed wire forms.

Plain frozen dataclasses: cheap to pickle, no heavy imports, no protobuf. TurnAudio,
TurnTranscript and DialogueRequest are plaintext and never leave the process that holds
them; what crosses a DeploymentHandle is Sealed (see serve/sealed.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TurnAudio:
    pcm16: bytes
    """Mono 16-bit little-endian PCM at 16 kHz."""
    language: str
    """ISO 639-1 code, e.g. "en"."""
    word_timestamps: bool = True
    tenant: str = ""
    call_id: str = ""


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    """Seconds from the start of the turn's audio."""
    end: float
    probability: float


@dataclass(frozen=True)
class TurnTranscript:
    text: str
    words: tuple[Word, ...] = field(default_factory=tuple)
    audio_seconds: float = 0.0
    decode_seconds: float = 0.0


@dataclass(frozen=True)
class DialogueRequest:
    """A conversation for the dialogue model to continue as the agent."""

    request_id: str
    system_prompt: str
    turns: tuple[tuple[str, str], ...]
    """(role, text) oldest first; role is "customer" or "agent"."""
    max_tokens: int
    tenant: str = ""
    call_id: str = ""


@dataclass(frozen=True)
class Sealed:
    """A payload as it crosses Ray: ids in the clear (they bind it), content sealed."""

    tenant: str
    call_id: str
    purpose: str
    blob: bytes
    sealed: bool = True
    """False only when sealing is switched off (to measure its cost)."""


@dataclass(frozen=True)
class TurnRequest:
    """Wire form of TurnAudio."""

    audio: Sealed
    language: str
    word_timestamps: bool
    trace_context: dict[str, str] = field(default_factory=dict)
    """W3C traceparent of the caller's span (ids only), so the trace continues here."""


@dataclass(frozen=True)
class ReplyRequest:
    """Wire form of DialogueRequest."""

    prompt: Sealed
    request_id: str
    max_tokens: int
    trace_context: dict[str, str] = field(default_factory=dict)
    """W3C traceparent of the caller's span (ids only)."""
