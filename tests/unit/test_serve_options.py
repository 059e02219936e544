"""Serve options derive from the one typed config (no cluster needed)."""

from serve import dialogue, gateway, transcriber
from serve.core.config import ConfideConfig, DialogueConfig
from serve.vllm_engine import cpu_flags, engine_dtype


def test_fixed_replicas_or_autoscaling_never_both():
    config = ConfideConfig()
    fixed = transcriber.serve_options(config.transcriber)
    assert fixed["num_replicas"] == 1 and "autoscaling_config" not in fixed
    scaled = config.with_overrides(transcriber={"autoscaling": {"max_replicas": 4}})
    options = transcriber.serve_options(scaled.transcriber)
    assert "num_replicas" not in options
    assert options["autoscaling_config"]["max_replicas"] == 4


def test_gpu_transcriber_reserves_gpus():
    config = ConfideConfig().with_overrides(transcriber={"device": "cuda", "num_gpus": 1})
    options = transcriber.serve_options(config.transcriber)
    assert options["ray_actor_options"]["num_gpus"] == 1
    assert config.transcriber.effective_compute_type == "float16"


def test_dialogue_replicas_run_offline_with_bounded_queues(tmp_path):
    config = ConfideConfig(state_dir=tmp_path).with_overrides(
        dialogue={"max_queued_requests": 3, "cpu_kv_cache_gib": 2}
    )
    options = dialogue.serve_options(config)
    env = options["ray_actor_options"]["runtime_env"]["env_vars"]
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["VLLM_CACHE_ROOT"] == str(tmp_path / "vllm-cache")
    assert options["max_queued_requests"] == 3


def test_gateway_replicas_follow_config():
    config = ConfideConfig().with_overrides(gateway={"num_replicas": 2, "num_cpus": 0.5})
    options = gateway.serve_options(config.gateway)
    assert options["num_replicas"] == 2
    assert options["ray_actor_options"]["num_cpus"] == 0.5


X86_AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n\nprocessor\t: 1\nflags\t\t: avx2\n"
X86_SAPPHIRE_RAPIDS = "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ARM_NEOVERSE_V1 = "Features\t: fp asimd sve bf16 i8mm\n"


def test_auto_dtype_is_float32_on_a_cpu_without_bfloat16_instructions(tmp_path):
    def flags(text: str) -> frozenset[str]:
        (tmp_path / "cpuinfo").write_text(text)
        return cpu_flags(tmp_path / "cpuinfo")

    cpu = DialogueConfig()
    assert engine_dtype(cpu, flags(X86_AVX2)) == "float32"
    assert engine_dtype(cpu, flags(X86_SAPPHIRE_RAPIDS)) == "auto"
    assert engine_dtype(cpu, flags(ARM_NEOVERSE_V1)) == "auto"
    assert engine_dtype(cpu, cpu_flags(tmp_path / "absent")) == "float32"
    # A GPU replica and an explicit choice are left to vLLM and the operator.
    assert engine_dtype(DialogueConfig(num_gpus=1), flags(X86_AVX2)) == "auto"
    assert engine_dtype(DialogueConfig(dtype="bfloat16"), flags(X86_AVX2)) == "bfloat16"
