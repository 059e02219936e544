"""The call benchmark's levels (loadtests/bench.py): each chunk size its own Locust CSVs,
and the chunks a live call sends (cluster/client.py) as long as asked."""

from __future__ import annotations

import pytest

from cluster.client import call_requests
from loadtests.bench import DEFAULT_RECORDING, Level
from serve.core.wavfile import read_wav


def test_each_chunk_size_and_interim_mode_writes_its_own_locust_files():
    levels = [Level(16, False), Level(16, False, 100), Level(16, True), Level(16, True, 100)]
    assert len({level.name for level in levels}) == 4
    # 20 ms chunks keep the names that earlier results and the published table use.
    assert Level(16, False).name == "16"
    assert Level(12, True).name == "12_interims"


def test_a_breakdown_names_a_level_by_everything_that_sets_it_apart():
    assert Level(16, False).label == "16 calls"
    assert Level(12, True).label == "12 calls with interims"
    assert Level(16, False, 100).label == "16 calls, 100 ms chunks"


@pytest.mark.parametrize("chunk_ms", [20, 100])
def test_a_live_call_sends_its_audio_in_chunks_of_the_asked_length_ready_at_their_end(
    chunk_ms: int,
):
    recording = read_wav(DEFAULT_RECORDING)
    requests = list(call_requests(recording, ["customer", "agent"], "c1", chunk_ms=chunk_ms))
    chunks = [(ready, r.audio.data) for ready, r in requests if r.WhichOneof("request") == "audio"]
    step = recording.frame_bytes * recording.sample_rate * chunk_ms // 1000
    assert all(len(data) == step for _, data in chunks[:-1])
    assert 0 < len(chunks[-1][1]) <= step
    assert b"".join(data for _, data in chunks) == recording.data
    assert chunks[0][0] == pytest.approx(chunk_ms / 1000)
    assert chunks[-1][0] == pytest.approx(recording.seconds)
