"""The transcriber's CUDA path: CTranslate2 float16 on an NVIDIA GPU, on the sample call.

Skipped with a reason where CTranslate2 sees no CUDA device (every CPU machine, CI)."""

from __future__ import annotations

import json
import time

import pytest

from serve.core.audio import StreamDecoder, float_to_pcm16
from serve.core.config import TranscriberConfig, VadConfig
from serve.core.scoring import word_error_rate
from serve.messages import TurnAudio
from serve.turns import TurnSegmenter
from tests.conftest import EXAMPLES


def _cuda_devices() -> int:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count()
    except Exception:  # a CUDA runtime that cannot load counts as no device
        return 0


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(_cuda_devices() == 0, reason="no CUDA device visible to CTranslate2"),
]


def test_cuda_float16_transcribes_the_sample_call(two_channel_call):
    from serve.whisper_engine import WhisperEngine

    config = TranscriberConfig(device="cuda", num_gpus=1)
    assert config.effective_compute_type == "float16"
    engine = WhisperEngine(config)
    decoder = StreamDecoder(
        two_channel_call.encoding, two_channel_call.sample_rate, two_channel_call.channels
    )
    channels = decoder.decode(two_channel_call.data)
    reference = json.loads((EXAMPLES / "two_channel_mulaw_8k.json").read_text())["reference"]
    decode_seconds = audio_seconds = 0.0
    for index, role in enumerate(["customer", "agent"]):
        turns = TurnSegmenter(VadConfig()).feed(channels[index])
        texts = []
        for turn in turns:
            pcm = float_to_pcm16(turn.audio)
            started = time.perf_counter()
            result = engine.transcribe_blocking(TurnAudio(pcm, "en"))
            decode_seconds += time.perf_counter() - started
            audio_seconds += result.audio_seconds
            texts.append(result.text)
        expected = " ".join(t["text"] for t in reference[role])
        assert word_error_rate(expected, " ".join(texts)) <= 0.05, role
    print(f"\nCUDA real-time factor: {decode_seconds / audio_seconds:.4f}")
