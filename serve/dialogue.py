"""The dialogue deployment: a plain class around an injected engine (vLLM by default);
Serve options, including the environment vLLM reads, derive from DialogueConfig."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from opentelemetry.trace import SpanKind, StatusCode
from ray import serve

from serve.boundary import PayloadBoundary
from serve.core.config import ConfideConfig, DialogueConfig
from serve.core.errors import ConfideError
from serve.messages import DialogueRequest, ReplyRequest, Sealed
from serve.metrics import sealing_failure_counter
from serve.sealed import PayloadCodec
from serve.telemetry import configure_process, remote_parent
from serve.vllm_engine import DialogueEngine, VllmEngine, vllm_environment


@serve.deployment
class Dialogue:
    def __init__(
        self,
        config: ConfideConfig,
        engine_factory: Callable[[DialogueConfig, str], DialogueEngine] = VllmEngine,
    ) -> None:
        self._tracing = configure_process(config, "confide-dialogue")
        codec = PayloadCodec.build(
            config.keys, config.state_path, sealing_failure_counter(), self._tracing.hasher
        )
        self._boundary = PayloadBoundary(codec)
        self._model = Path(config.dialogue_model_dir).name
        self._engine = engine_factory(config.dialogue, str(config.dialogue_model_dir))

    async def reply(self, request: ReplyRequest) -> AsyncIterator[Sealed]:
        """Open the sealed prompt here and stream sealed text deltas back. Cancelling the
        caller aborts the engine request."""
        started = time.perf_counter()
        deltas = 0
        # Not made current: a span context attached inside an async generator would be
        # detached from another context when the caller cancels (barge-in).
        span = self._tracing.tracer.start_span(
            "confide.dialogue.generate",
            context=remote_parent(request.trace_context),
            kind=SpanKind.SERVER,
            attributes={"confide.model": self._model},
        )

        async def generate(prompt: DialogueRequest) -> AsyncIterator[str]:
            nonlocal deltas
            span.set_attribute("confide.prompt_turns", len(prompt.turns))
            async with contextlib.aclosing(self._engine.stream(prompt)) as stream:
                async for delta in stream:
                    if deltas == 0:
                        first_ms = round((time.perf_counter() - started) * 1000, 1)
                        span.set_attribute("confide.first_delta_ms", first_ms)
                    deltas += 1
                    yield delta

        try:
            async for sealed in self._boundary.serve_reply(request, generate):
                yield sealed
        except ConfideError:  # translated by the boundary: no engine text travels on
            span.set_status(StatusCode.ERROR)
            raise
        except BaseException:  # cancelled by the caller: barge-in or hang-up
            span.set_attribute("confide.interrupted", True)
            raise
        finally:
            span.set_attribute("confide.deltas", deltas)
            span.end()

    async def stats(self) -> dict[str, int]:
        return self._engine.stats()

    async def check_health(self) -> None:
        await self._engine.check_health()

    def __del__(self) -> None:
        # Serve calls this when it stops the replica gracefully (scale-down, redeploy);
        # a replica whose engine never started has nothing to stop.
        if hasattr(self, "_engine"):
            self._engine.shutdown()
        self._tracing.shutdown()


HEALTH_CHECK_PERIOD_S = 2
"""Serve replaces a replica after three failed checks in a row. The check only asks the
engine whether its core process is alive (no generation), so it can run often: at 10 s
a dead engine core left the replica in place for about 30 s, answering every reply with
an error, before its replacement started (at 2 s: about 15 s; README, Reliability)."""


def serve_options(config: ConfideConfig) -> dict:
    """Ray Serve options for the dialogue deployment, derived from the typed config."""
    dialogue = config.dialogue
    options: dict = {
        "ray_actor_options": {
            "num_cpus": dialogue.num_cpus,
            "num_gpus": dialogue.num_gpus,
            "resources": dialogue.ray_resources,
            "runtime_env": {"env_vars": vllm_environment(dialogue, config.state_path)},
        },
        "max_ongoing_requests": dialogue.max_ongoing_requests,
        "max_queued_requests": dialogue.max_queued_requests,
        "health_check_period_s": HEALTH_CHECK_PERIOD_S,
    }
    return {**options, **dialogue.replica_options()}
