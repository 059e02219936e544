"""vLLM as the dialogue engine: an async engine that streams token deltas.

vllm, torch and transformers are imported only when an engine is built. The engine's
arguments come from DialogueConfig; the environment vLLM reads (KV cache size on CPU,
thread binding, cache root, offline hub) is derived from it in `vllm_environment` and
handed to the replica's runtime environment.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

from serve.conversation import chat_messages, fit_to_context
from serve.core.config import DialogueConfig
from serve.messages import DialogueRequest


def vllm_environment(config: DialogueConfig, state_dir: Path) -> dict[str, str]:
    return {
        "VLLM_CPU_KVCACHE_SPACE": str(config.cpu_kv_cache_gib),
        "VLLM_CPU_OMP_THREADS_BIND": config.cpu_omp_threads_bind,
        "VLLM_CACHE_ROOT": str(state_dir / "vllm-cache"),
        "HF_HUB_OFFLINE": "1",  # a private cluster never reaches a model hub
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
    }


BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
"""/proc/cpuinfo flags of CPUs that compute in bfloat16 (x86: AVX512-BF16, AMX; Arm: BF16)."""


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (x86 "flags", Arm "Features"); none if unreadable."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            flags.update(value.split())
    return frozenset(flags)


def engine_dtype(config: DialogueConfig, flags: frozenset[str]) -> str:
    """The dtype handed to vLLM. Its "auto" takes bfloat16 on every CPU, and a CPU without
    bfloat16 instructions emulates it: on this AVX2 machine a reply's first token came
    4-6x later than in float32, decoding no faster (loadtests/dialogue_speed.py).
    PyTorch's AMP notes advise float32 there too; GPUs and bfloat16 CPUs keep "auto"."""
    if config.dtype != "auto" or config.num_gpus > 0 or flags & BFLOAT16_CPU_FLAGS:
        return config.dtype
    return "float32"


def cache_salt(tenant: str) -> str:
    """The tenant's prefix-cache salt: the same prompt of two tenants hashes to
    different blocks (vLLM's cache_salt)."""
    return hashlib.sha256(f"confide-tenant:{tenant}".encode()).hexdigest()


def render_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def count_prompt_tokens(tokenizer, messages: list[dict[str, str]]) -> int:
    """Tokens of the rendered chat prompt (the template already holds special tokens)."""
    return len(tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False).input_ids)


class DialogueEngine(Protocol):
    def stream(self, request: DialogueRequest) -> AsyncIterator[str]: ...

    async def check_health(self) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def shutdown(self) -> None: ...


class VllmEngine:
    def __init__(self, config: DialogueConfig, model_dir: str) -> None:
        from transformers import AutoTokenizer
        from vllm import AsyncEngineArgs, AsyncLLMEngine

        self._config = config
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._engine = AsyncLLMEngine.from_engine_args(
            AsyncEngineArgs(
                model=model_dir,
                max_model_len=config.max_model_len,
                dtype=engine_dtype(config, cpu_flags()),
                enforce_eager=config.enforce_eager,
                tensor_parallel_size=config.tensor_parallel_size,
                gpu_memory_utilization=config.gpu_memory_utilization,
                disable_log_stats=True,
                enable_log_requests=False,  # prompts never reach a log
            )
        )
        self._started = self._finished = self._aborted = 0
        self._cached_prompt_tokens = 0

    def prompt(self, request: DialogueRequest) -> str:
        """The chat prompt, with the oldest turns dropped until the reply fits."""
        budget = self._config.max_model_len - request.max_tokens
        turns = fit_to_context(
            request.system_prompt,
            request.turns,
            lambda messages: count_prompt_tokens(self._tokenizer, messages),
            budget,
        )
        return render_prompt(self._tokenizer, chat_messages(request.system_prompt, turns))

    async def stream(self, request: DialogueRequest) -> AsyncIterator[str]:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        params = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=self._config.temperature,
            output_kind=RequestOutputKind.DELTA,
        )
        request_id = f"{request.request_id}-{uuid.uuid4().hex[:8]}"
        # Tokenizing to fit the context is CPU work: off the event loop.
        prompt = await asyncio.to_thread(self.prompt, request)
        # Tenants never share prefix-cache blocks: with a shared cache, one tenant could
        # time replies to learn how another tenant's prompts begin.
        engine_prompt = {"prompt": prompt, "cache_salt": cache_salt(request.tenant)}
        self._started += 1
        finished = first = False
        try:
            async for output in self._engine.generate(engine_prompt, params, request_id):
                if not first:
                    first = True
                    self._cached_prompt_tokens += output.num_cached_tokens or 0
                delta = output.outputs[0].text
                if delta:
                    yield delta
                finished = output.finished
        finally:
            if finished:
                self._finished += 1
            else:  # cancelled (barge-in, hang-up) or failed: free the engine's slot now
                self._aborted += 1
                await self._engine.abort(request_id)

    async def check_health(self) -> None:
        await self._engine.check_health()

    def shutdown(self) -> None:
        """Stop the engine's processes; they unlink the shared memory they pass prompt
        token ids through (cluster/shared_memory.py sweeps what a killed one leaves)."""
        self._engine.shutdown()

    def stats(self) -> dict[str, int]:
        return {
            "started": self._started,
            "finished": self._finished,
            "aborted": self._aborted,
            "cached_prompt_tokens": self._cached_prompt_tokens,
            "unfinished_in_engine": self._engine.output_processor.get_num_unfinished_requests(),
        }
