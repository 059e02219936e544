"""A call's audio path, synchronous: interleaved bytes in, turns out. No asyncio, no I/O.

The decoder splits the stream into 16 kHz channels. Per channel, the VAD segmenter cuts
turns, and the interim policy says when a growing turn is due for an interim transcript
(every `interim_interval_seconds` of new speech, one at a time). Measured: well under a
millisecond per 20 ms chunk, so the gateway runs this on its event loop.

Nothing downstream of the decoder changes until the VAD runs (every `vad.windows_per_run`
windows of 32 ms), so a call's bytes are held until they complete the VAD's next run and
then decoded in one go: the same turns at the same chunks, with a third of the decoding,
resampling and VAD bookkeeping calls at 20 ms chunks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from serve.call_setup import CallSetup
from serve.core.audio import MODEL_RATE, StreamDecoder, encode
from serve.core.config import ConfideConfig
from serve.local_agreement import InterimTracker
from serve.turns import Turn, TurnSegmenter
from serve.wire import role_name


@dataclass(frozen=True)
class FinalTurn:
    """A turn the VAD ended, with what its VAD span records."""

    turn: Turn
    speech_started_ns: int
    """Wall clock when the VAD heard the turn's first speech."""
    vad_cpu_ns: int
    """Time spent in the VAD for this turn."""


@dataclass
class ChannelStep:
    """What one chunk of audio did on one channel."""

    finals: list[FinalTurn] = field(default_factory=list)
    speech_started: bool = False
    """Speech began in this chunk (a customer barging in)."""
    blip: bool = False
    """Speech that began ended too short to be a turn: no final will follow it."""
    interim: Turn | None = None
    """The growing turn, when an interim transcript is due."""


class ChannelPipeline:
    def __init__(self, index: int, role: int, config: ConfideConfig, interims: bool) -> None:
        self.index = index
        self.role = role
        self.role_name = role_name(role)
        self._segmenter = TurnSegmenter(config.vad)
        self._interim_samples = (
            int(config.transcriber.interim_interval_seconds * MODEL_RATE) if interims else None
        )
        self._interim_in_flight = False
        self._interim_at_samples = 0
        self._hypotheses = InterimTracker()
        self._speech_started_ns: int | None = None
        self._vad_cpu_ns = 0

    def feed(self, audio) -> ChannelStep:
        step = ChannelStep()
        speech_starts, blips = self._segmenter.speech_starts, self._segmenter.blips
        started = time.perf_counter_ns()
        turns = self._segmenter.feed(audio)
        self._vad_cpu_ns += time.perf_counter_ns() - started
        step.speech_started = self._segmenter.speech_starts > speech_starts
        step.blip = self._segmenter.blips > blips
        if step.speech_started and self._speech_started_ns is None:
            self._speech_started_ns = time.time_ns()
        step.finals = [self._final(turn) for turn in turns]
        step.interim = self._due_interim()
        return step

    def idle_step(self) -> ChannelStep:
        """A chunk held before the VAD's next run: only an interim can fall due (the
        previous one has come back)."""
        return ChannelStep(interim=self._due_interim())

    @property
    def samples_until_vad_run(self) -> int:
        return self._segmenter.samples_until_vad_run

    def flush(self) -> FinalTurn | None:
        """End of call: close the open turn, if any."""
        turn = self._segmenter.flush()
        return None if turn is None else self._final(turn)

    @property
    def turns_ended(self) -> int:
        """Turns the VAD has ended on this channel (the next turn's index)."""
        return self._segmenter.turns_ended

    def interim_done(self) -> None:
        self._interim_in_flight = False

    def stability(self, text: str) -> float:
        """How much of an interim hypothesis the previous one confirmed (LocalAgreement)."""
        return self._hypotheses.update(text)

    def is_growing(self, turn: Turn) -> bool:
        """Whether `turn` is still the open turn (its final is not queued yet)."""
        return turn.index == self._segmenter.turns_ended

    def _final(self, turn: Turn) -> FinalTurn:
        final = FinalTurn(turn, self._speech_started_ns or time.time_ns(), self._vad_cpu_ns)
        self._speech_started_ns = None
        self._vad_cpu_ns = 0
        self._interim_at_samples = 0
        self._hypotheses.reset()
        return final

    def _due_interim(self) -> Turn | None:
        if self._interim_samples is None or self._interim_in_flight:
            return None
        speech = self._segmenter.speech_samples
        if speech - self._interim_at_samples < self._interim_samples:
            return None
        turn = self._segmenter.growing_turn()
        if turn is not None:
            self._interim_in_flight = True
            self._interim_at_samples = speech
        return turn


class CallAudio:
    """The decoder and one pipeline per channel."""

    def __init__(self, setup: CallSetup, config: ConfideConfig) -> None:
        self._decoder = StreamDecoder(setup.encoding, setup.sample_rate, len(setup.roles))
        self._frame_bytes = setup.encoding.sample_width * len(setup.roles)
        self._model_samples_per_frame = MODEL_RATE // setup.sample_rate
        self._held = bytearray()
        self._bytes_received = 0
        self.channels = [
            ChannelPipeline(i, role, config, setup.interim_results)
            for i, role in enumerate(setup.roles)
        ]

    @property
    def seconds_received(self) -> float:
        """Call audio received so far: decoded, held and skipped (paused) alike."""
        return self._bytes_received // self._frame_bytes / self._decoder.sample_rate

    def feed(self, data: bytes) -> list[tuple[ChannelPipeline, ChannelStep]]:
        self._bytes_received += len(data)
        self._held += data
        # Every channel has had the same samples, so one channel's VAD says when.
        samples = self.channels[0].samples_until_vad_run
        frames_needed = math.ceil(samples / self._model_samples_per_frame)
        if len(self._held) < frames_needed * self._frame_bytes:
            return [(ch, ch.idle_step()) for ch in self.channels]
        return self.drain()

    def drain(self) -> list[tuple[ChannelPipeline, ChannelStep]]:
        """Decode the held bytes now (before a pause or the call's end closes turns)."""
        if not self._held:
            return []
        decoded = self._decoder.decode(bytes(self._held))
        self._held.clear()
        return [(ch, ch.feed(audio)) for ch, audio in zip(self.channels, decoded, strict=True)]

    def skip(self, data: bytes) -> float:
        """Drop `data` unheard (a PCI pause), keeping the call's clock: the VAD sees as
        much silence instead, so later turns keep their true offsets. Returns seconds."""
        if self._held:
            raise RuntimeError("drain() the held audio before skipping")
        self._bytes_received += len(data)
        encoding = self._decoder.encoding
        # Byte for byte as long as `data`: a chunk that ends inside a frame keeps the
        # stream's frame alignment for whatever follows the pause.
        samples = -(-len(data) // encoding.sample_width)
        silence = encode(np.zeros(samples, np.int16), encoding)[: len(data)]
        frames = self._decoder.frames_decoded
        for channel, audio in zip(self.channels, self._decoder.decode(silence), strict=True):
            channel.feed(audio)  # silence ends no turn: the open ones were flushed
        return (self._decoder.frames_decoded - frames) / self._decoder.sample_rate
