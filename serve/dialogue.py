"""The dialogue deployment: a plain class around an injected engine (vLLM by default);
Serve options, including the environment vLLM reads, derive from DialogueConfig."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

from ray import serve

from cluster.config import ConfideConfig, DialogueConfig, KeysConfig
from cluster.envelope import EnvelopeError
from serve.errors import EngineUnavailable
from serve.messages import ReplyRequest, Sealed
from serve.sealed import PayloadCodec, sealing_failure_counter
from serve.vllm_engine import DialogueEngine, VllmEngine, vllm_environment


@serve.deployment
class Dialogue:
    def __init__(
        self,
        config: DialogueConfig,
        model_dir: str,
        keys: KeysConfig,
        state_dir: Path,
        engine_factory: Callable[[DialogueConfig, str], DialogueEngine] = VllmEngine,
    ) -> None:
        self._codec = PayloadCodec.build(keys, state_dir, sealing_failure_counter())
        self._engine = engine_factory(config, model_dir)

    async def reply(self, request: ReplyRequest) -> AsyncIterator[Sealed]:
        """Open the sealed prompt here and stream sealed text deltas back. Cancelling the
        caller aborts the engine request."""
        try:
            dialogue_request = self._codec.open_prompt(request)
            async for delta in self._engine.stream(dialogue_request):
                yield self._codec.seal_reply(
                    delta, dialogue_request.tenant, dialogue_request.call_id
                )
        except EnvelopeError as exc:
            raise EngineUnavailable(f"sealing failed ({type(exc).__name__})") from None
        except Exception as exc:
            # vLLM errors can quote the prompt; only the type travels on.
            raise EngineUnavailable(f"dialogue engine failed ({type(exc).__name__})") from None

    async def stats(self) -> dict[str, int]:
        return self._engine.stats()

    async def check_health(self) -> None:
        await self._engine.check_health()


def serve_options(config: ConfideConfig) -> dict:
    """Ray Serve options for the dialogue deployment, derived from the typed config."""
    dialogue = config.dialogue
    options: dict = {
        "ray_actor_options": {
            "num_cpus": dialogue.num_cpus,
            "num_gpus": dialogue.num_gpus,
            "runtime_env": {"env_vars": vllm_environment(dialogue, config.state_path)},
        },
        "max_ongoing_requests": dialogue.max_ongoing_requests,
        "max_queued_requests": dialogue.max_queued_requests,
        "health_check_period_s": 10,
    }
    return {**options, **dialogue.replica_options()}
