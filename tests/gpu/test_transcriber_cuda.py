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


def test_cuda_batches_the_sample_calls_turns_as_accurately_as_one_at_a_time():
    """serve/whisper_batch.py on the GPU, where batching is the point: every sample-call
    turn in one batch (10 s windows, the default) against `transcribe` one at a time
    (30 s windows): the WER of all channels together no more than half a point worse;
    prints both rates (on 2 CPU cores, 12 turns: 1.2 and 3.5 turns/s, WER 2.88 % both)."""
    from loadtests.batching import sample_turns
    from serve.whisper_batch import BatchDecoder
    from serve.whisper_engine import WhisperEngine

    engine = WhisperEngine(TranscriberConfig(device="cuda", num_gpus=1))
    channels = sample_turns()
    turns = [t for channel in channels for t in channel.turns]
    decoder = BatchDecoder(engine.model, beam_size=1, window_seconds=10)
    decoder.decode(turns[:2])  # warm-up
    started = time.perf_counter()
    alone = [engine.transcribe_blocking(t) for t in turns]
    alone_seconds = time.perf_counter() - started
    started = time.perf_counter()
    batched = decoder.decode(turns)
    batch_seconds = time.perf_counter() - started
    # A turn handed back (None) is decoded alone in the product: count it so.
    together = [b or a for b, a in zip(batched, alone, strict=True)]
    references, one_at_a_time, in_a_batch, position = [], [], [], 0
    for channel in channels:
        count = len(channel.turns)
        references.append(channel.reference)
        one_at_a_time.append(" ".join(a.text for a in alone[position : position + count]))
        in_a_batch.append(" ".join(b.text for b in together[position : position + count]))
        position += count
    reference = " ".join(references)
    alone_wer = word_error_rate(reference, " ".join(one_at_a_time))
    batch_wer = word_error_rate(reference, " ".join(in_a_batch))
    print(
        f"\n{len(turns)} turns: transcribe one at a time {len(turns) / alone_seconds:.1f} turns/s, "
        f"WER {alone_wer:.2%}; one batch {len(turns) / batch_seconds:.1f} turns/s, "
        f"WER {batch_wer:.2%}"
    )
    assert batch_wer <= alone_wer + 0.005
