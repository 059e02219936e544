"""Turn detection for one channel: VAD probabilities in, speaker turns out.

A turn starts when a 32 ms window crosses the speech threshold and ends after
`min_silence_ms` below the lower (hysteresis) threshold, or when it reaches
`max_turn_seconds`. Turns keep `speech_pad_ms` of audio on both sides so word onsets
survive; bursts shorter than `min_speech_ms` are dropped, never transcribed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from serve.core.audio import MODEL_RATE
from serve.core.config import VadConfig
from serve.vad import WINDOW_SAMPLES, VadStream


@dataclass(frozen=True)
class Turn:
    """A finished (or, for interims, growing) stretch of one channel's speech."""

    index: int
    start_sample: int
    """Offset of audio[0] from the start of the call, in 16 kHz samples."""
    audio: np.ndarray
    """float32 mono at 16 kHz."""

    @property
    def start_seconds(self) -> float:
        return self.start_sample / MODEL_RATE

    @property
    def end_seconds(self) -> float:
        return (self.start_sample + len(self.audio)) / MODEL_RATE


class _AudioBuffer:
    """The channel's recent audio as a list of chunks, addressed by call offset.

    Appending a 20 ms chunk costs O(1); audio is copied only when a turn is sliced out
    (once per turn, and once per interim), never per chunk. (A growing numpy array
    re-copied the whole open turn on every chunk: quadratic in the turn's length.)
    """

    def __init__(self) -> None:
        self._chunks: deque[np.ndarray] = deque()
        self.start = 0  # call offset of the first kept sample
        self.end = 0  # call offset after the last sample

    def append(self, audio: np.ndarray) -> None:
        if len(audio):
            self._chunks.append(audio)
            self.end += len(audio)

    def slice(self, start: int, end: int) -> np.ndarray:
        """A copy of the samples [start, end) that are still kept."""
        start, end = max(start, self.start), min(end, self.end)
        pieces, offset = [], self.start
        for chunk in self._chunks:
            chunk_end = offset + len(chunk)
            if chunk_end > start and offset < end:
                pieces.append(chunk[max(start - offset, 0) : end - offset])
            offset = chunk_end
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)

    def drop_before(self, offset: int) -> None:
        """Forget whole chunks that end at or before `offset`."""
        while self._chunks and self.start + len(self._chunks[0]) <= offset:
            self.start += len(self._chunks.popleft())


class TurnSegmenter:
    def __init__(self, config: VadConfig) -> None:
        ms = MODEL_RATE // 1000
        self._threshold = config.threshold
        self._negative_threshold = max(config.threshold - 0.15, 0.01)
        self._min_silence = config.min_silence_ms * ms
        self._pad = config.speech_pad_ms * ms
        self._min_speech = config.min_speech_ms * ms
        self._max_turn = int(config.max_turn_seconds * MODEL_RATE)
        self._vad = VadStream(config.windows_per_run)
        self._buffer = _AudioBuffer()
        self._position = 0  # call offset of the next VAD window
        self._speech_start: int | None = None
        self._speech_end = 0
        self.turns_ended = 0
        self.speech_starts = 0
        """Times speech began (barge-in detection watches it)."""
        self.blips = 0
        """Speech too short to be a turn, dropped (no final follows its start)."""

    @property
    def speech_samples(self) -> int:
        """Length of the current turn's speech so far (0 outside a turn)."""
        return 0 if self._speech_start is None else self._position - self._speech_start

    @property
    def samples_until_vad_run(self) -> int:
        """16 kHz samples still to come before the VAD next decides anything."""
        return self._vad.samples_until_run

    def feed(self, audio: np.ndarray) -> list[Turn]:
        """Add 16 kHz audio; return the turns it completed."""
        self._buffer.append(audio)
        turns = []
        for probability in self._vad.process(audio):
            window_start = self._position
            self._position += WINDOW_SAMPLES
            turn = self._step(float(probability), window_start)
            if turn is not None:
                turns.append(turn)
        self._trim()
        return turns

    def growing_turn(self) -> Turn | None:
        """The current turn's audio so far, for interim results."""
        if self._speech_start is None:
            return None
        start = max(self._speech_start - self._pad, self._buffer.start)
        return Turn(self.turns_ended, start, self._buffer.slice(start, self._position))

    def flush(self) -> Turn | None:
        """End of call: close the open turn, if any."""
        if self._speech_start is None:
            return None
        return self._close(self._position)

    def _step(self, probability: float, window_start: int) -> Turn | None:
        if self._speech_start is None:
            if probability >= self._threshold:
                self._speech_start = window_start
                self._speech_end = self._position
                self.speech_starts += 1
            return None
        if probability >= self._negative_threshold:
            self._speech_end = self._position
        if self._position - self._speech_start >= self._max_turn:
            return self._close(self._position)
        if self._position - self._speech_end >= self._min_silence:
            return self._close(self._speech_end)
        return None

    def _close(self, speech_end: int) -> Turn | None:
        speech_start, self._speech_start = self._speech_start, None
        assert speech_start is not None
        if speech_end - speech_start < self._min_speech:
            self.blips += 1
            return None
        start = max(speech_start - self._pad, self._buffer.start)
        end = min(speech_end + self._pad, self._buffer.end)
        turn = Turn(self.turns_ended, start, self._buffer.slice(start, end))
        self.turns_ended += 1
        return turn

    def _trim(self) -> None:
        """Keep only audio a turn may still need: the open turn, or the last pad."""
        keep_from = self._position - self._pad
        if self._speech_start is not None:
            keep_from = self._speech_start - self._pad
        self._buffer.drop_before(keep_from)
