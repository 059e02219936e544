"""The transcriber deployment: a plain class around an injected transcription engine
(faster-whisper by default), with Serve options derived from TranscriberConfig."""

from __future__ import annotations

from collections.abc import Callable

from opentelemetry.trace import SpanKind
from ray import serve

from serve.autoscaling import BUSY, FINAL_WAIT
from serve.boundary import PayloadBoundary
from serve.core.config import ConfideConfig, TranscriberConfig
from serve.messages import Sealed, TurnAudio, TurnRequest, TurnTranscript
from serve.metrics import TranscriberMetrics, sealing_failure_counter
from serve.sealed import PayloadCodec
from serve.telemetry import configure_process, remote_parent
from serve.whisper_engine import TranscriptionEngine, WhisperEngine, model_name


@serve.deployment
class Transcriber:
    """Serve deployment: one engine per replica; options come from TranscriberConfig."""

    def __init__(
        self,
        config: ConfideConfig,
        engine_factory: Callable[[TranscriberConfig], TranscriptionEngine] = WhisperEngine,
    ) -> None:
        self._tracing = configure_process(config, "confide-transcriber")
        codec = PayloadCodec.build(
            config.keys, config.state_path, sealing_failure_counter(), self._tracing.hasher
        )
        self._boundary = PayloadBoundary(codec)
        self._model = model_name(config.transcriber)
        self._metrics = TranscriberMetrics(self._tracing.hasher, self._model)
        self._engine = engine_factory(config.transcriber)
        self._failures_in_a_row = 0
        self._turns = 0
        self._audio_seconds = 0.0
        self._decode_seconds = 0.0

    async def transcribe(self, request: TurnRequest) -> Sealed:
        """Open the sealed turn here, transcribe it, and seal the transcript."""
        with self._tracing.tracer.start_as_current_span(
            "confide.transcriber.decode",
            context=remote_parent(request.trace_context),
            kind=SpanKind.SERVER,
            record_exception=False,
            attributes={"confide.model": self._model},
        ) as span:

            async def decode(turn: TurnAudio) -> TurnTranscript:
                try:
                    result = await self._engine.transcribe(turn)
                except Exception:
                    self._failures_in_a_row += 1  # the health check counts; the boundary translates
                    raise
                self._failures_in_a_row = 0
                self._record(result, span)
                return result

            return await self._boundary.serve_turn(request, decode)

    def _record(self, result: TurnTranscript, span) -> None:
        self._turns += 1
        self._audio_seconds += result.audio_seconds
        self._decode_seconds += result.decode_seconds
        self._metrics.decoded(result.audio_seconds, result.decode_seconds)
        span.set_attributes(
            {
                "confide.audio_seconds": round(result.audio_seconds, 3),
                "confide.decode_ms": round(result.decode_seconds * 1000, 1),
                "confide.rtf": round(result.decode_seconds / max(result.audio_seconds, 1e-6), 4),
                "confide.words": len(result.words),
            }
        )

    async def stats(self) -> dict[str, float | str]:
        """Counters for benchmarks and placement checks: this replica, its Ray node, turns,
        audio seconds, decode seconds."""
        import ray

        return {
            "replica": serve.get_replica_context().replica_id.unique_id,
            "node_id": ray.get_runtime_context().get_node_id(),
            "turns": self._turns,
            "audio_seconds": self._audio_seconds,
            "decode_seconds": self._decode_seconds,
        }

    def record_autoscaling_stats(self) -> dict[str, float]:
        """Serve's custom autoscaling metrics (serve/autoscaling.py), when the engine
        reports its queue."""
        load = getattr(self._engine, "load", None)
        if load is None:
            return {}
        queue = load()
        return {FINAL_WAIT: queue.final_wait_seconds, BUSY: queue.busy_fraction}

    def check_health(self) -> None:
        if self._failures_in_a_row >= 3:
            raise RuntimeError("transcription engine failed 3 times in a row")

    def __del__(self) -> None:
        self._tracing.shutdown()


def serve_options(config: TranscriberConfig) -> dict:
    """Ray Serve options for the transcriber, derived from the typed config."""
    options: dict = {
        "ray_actor_options": {
            "num_cpus": config.num_cpus,
            "num_gpus": config.num_gpus,
            "resources": config.ray_resources,
        },
        "max_ongoing_requests": config.max_ongoing_requests,
        "health_check_period_s": 10,
    }
    return {**options, **config.replica_options()}
