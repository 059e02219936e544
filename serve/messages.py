"""What crosses a DeploymentHandle between the gateway and the transcriber.

Plain frozen dataclasses: cheap to pickle, no heavy imports, no protobuf.
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
