"""Serve options derive from the one typed config (no cluster needed)."""

from serve import dialogue, gateway, transcriber
from serve.core.config import ConfideConfig


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
