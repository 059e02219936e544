import numpy as np
from faster_whisper.vad import get_vad_model

from serve.core.audio import StreamDecoder
from serve.core.config import VadConfig
from serve.turns import TurnSegmenter
from serve.vad import WINDOW_SAMPLES, VadStream


def _channels(recording):
    decoder = StreamDecoder(recording.encoding, recording.sample_rate, recording.channels)
    return decoder.decode(recording.data)


def test_streaming_vad_equals_faster_whispers_batched_vad(two_channel_call):
    audio = _channels(two_channel_call)[0][: 200 * WINDOW_SAMPLES]
    batched = get_vad_model()(audio).reshape(-1)
    stream = VadStream()
    streamed = np.concatenate(
        [stream.process(audio[i : i + 777]) for i in range(0, len(audio), 777)]
    )
    assert len(streamed) == len(batched) == 200
    assert np.allclose(streamed, batched, atol=1e-5)


def test_vad_runs_every_few_windows_with_the_same_probabilities(two_channel_call):
    audio = _channels(two_channel_call)[0][: 100 * WINDOW_SAMPLES]
    chunks = [audio[i : i + 320] for i in range(0, len(audio), 320)]  # 20 ms each
    every_window, every_third = VadStream(1), VadStream(3)
    one = [every_window.process(chunk) for chunk in chunks]
    three = [every_third.process(chunk) for chunk in chunks]
    assert {len(run) for run in one} == {0, 1}
    assert {len(run) for run in three} == {0, 3}  # the model waits for three windows
    expected, got = np.concatenate(one), np.concatenate(three)
    assert len(expected) - len(got) < 3  # at most two windows still wait
    assert np.allclose(expected[: len(got)], got, atol=1e-5)


def test_turns_follow_the_reference_timeline(two_channel_call):
    import json

    from tests.conftest import EXAMPLES

    reference = json.loads((EXAMPLES / "two_channel_mulaw_8k.json").read_text())["reference"]
    for index, role in enumerate(["customer", "agent"]):
        segmenter = TurnSegmenter(VadConfig())
        audio = _channels(two_channel_call)[index]
        turns = []
        for start in range(0, len(audio), 320):  # 20 ms chunks, as a live call sends
            turns += segmenter.feed(audio[start : start + 320])
        assert segmenter.flush() is None
        starts = [turn["start_seconds"] for turn in reference[role]]
        assert [t.index for t in turns] == list(range(len(starts)))
        for turn, start in zip(turns, starts, strict=True):
            # The turn opens within a pad (plus one VAD window) before the speech.
            assert start - 0.35 - 0.032 <= turn.start_seconds <= start + 0.4


def test_silence_and_noise_make_no_turns():
    rng = np.random.default_rng(7)
    segmenter = TurnSegmenter(VadConfig())
    audio = rng.normal(0, 0.003, 16000 * 5).astype(np.float32)
    assert segmenter.feed(audio) == []
    assert segmenter.flush() is None


def test_max_turn_length_cuts_long_speech(two_channel_call):
    customer = _channels(two_channel_call)[0]
    segmenter = TurnSegmenter(VadConfig(max_turn_seconds=2.0))
    turns = segmenter.feed(customer)
    assert turns and all(t.end_seconds - t.start_seconds <= 2.0 + 2 * 0.3 + 0.05 for t in turns)
