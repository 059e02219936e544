"""Batched decoding across calls (serve/whisper_batch.py) with the real tiny.en model:
several turns in one encode and generate give each turn what decoding it alone gives."""

from __future__ import annotations

import asyncio

import pytest

from loadtests.batching import sample_turns
from serve.core.config import TranscriberConfig
from serve.core.scoring import normalize, word_error_rate
from serve.messages import TurnAudio
from serve.whisper_batch import BatchDecoder
from serve.whisper_engine import WhisperEngine


@pytest.fixture(scope="module")
def engine() -> WhisperEngine:
    # Full 30 s windows: these tests compare with WhisperModel.transcribe, which uses them.
    config = TranscriberConfig(
        num_workers=1, batch_max_size=4, batch_max_wait_ms=200, window_step_seconds=30
    )
    return WhisperEngine(config)


@pytest.fixture(scope="module")
def turns() -> list[TurnAudio]:
    """Turns of three different sample calls, cut by the gateway's VAD."""
    return [t for channel in sample_turns() for t in channel.turns][:6]


def test_a_batch_transcribes_each_turn_as_decoding_it_alone_does(engine, turns):
    alone = [engine.transcribe_blocking(t) for t in turns]
    batched = BatchDecoder(engine.model, beam_size=1).decode(turns)
    for one, together in zip(alone, batched, strict=True):
        assert together is not None, "a clean sample turn was handed back to the slow path"
        assert normalize(together.text) == normalize(one.text)
        assert [w.word for w in together.words] == [w.word for w in one.words]
        for mine, theirs in zip(together.words, one.words, strict=True):
            assert abs(mine.start - theirs.start) < 0.05 and abs(mine.end - theirs.end) < 0.05


def test_interims_come_back_without_word_timings(engine, turns):
    interims = [TurnAudio(t.pcm16, "en", word_timestamps=False) for t in turns[:2]]
    for result in BatchDecoder(engine.model, beam_size=1).decode(interims):
        assert result is not None and result.text and result.words == ()


def test_silence_in_a_batch_is_an_empty_transcript_not_a_hallucination(engine, turns):
    silence = TurnAudio(bytes(2 * 16000 * 2), "en")
    speech, quiet = BatchDecoder(engine.model, beam_size=1).decode([turns[0], silence])
    assert speech is not None and speech.text
    assert quiet is None or quiet.text == ""


def test_concurrent_turns_of_several_calls_share_batches(engine, turns, monkeypatch):
    sizes: list[int] = []
    decode = engine._batched.decode

    def counted(batch):
        sizes.append(len(batch))
        return decode(batch)

    monkeypatch.setattr(engine._batched, "decode", counted)

    async def all_at_once():
        return await asyncio.gather(*(engine.transcribe(t) for t in turns))

    results = asyncio.run(all_at_once())
    alone = [engine.transcribe_blocking(t) for t in turns]
    assert [normalize(r.text) for r in results] == [normalize(a.text) for a in alone]
    assert all(r.decode_seconds > 0 for r in results)
    assert max(sizes) > 1 and sum(sizes) == len(turns)


def test_audio_longer_than_one_window_is_decoded_whole_not_cut_at_30_s(engine, turns):
    """A Transcribe request carries a whole recording: speech after the first 30 s must
    not be lost to the one-window batch."""
    late = TurnAudio(bytes(2 * 16000 * 32) + turns[0].pcm16, "en")
    assert BatchDecoder(engine.model, beam_size=1).decode([late]) == [None]
    whole = asyncio.run(engine.transcribe(late))
    alone = engine.transcribe_blocking(turns[0])
    assert normalize(alone.text)[0] in normalize(whole.text)


def test_a_short_window_keeps_the_words(engine, turns):
    """transcriber.window_step_seconds: the sample turns in 10 s windows (what that saves
    is measured by loadtests/batching.py, not here)."""
    full = BatchDecoder(engine.model, beam_size=1).decode(turns)
    short = BatchDecoder(engine.model, beam_size=1, window_seconds=10).decode(turns)
    reference = " ".join(normalize(" ".join(r.text for r in full if r)))
    hypothesis = " ".join(normalize(" ".join(r.text for r in short if r)))
    assert word_error_rate(reference, hypothesis) <= 0.1


def test_an_interim_is_taken_from_the_first_pass_never_decoded_twice():
    """The clinic call's growing turns, as the gateway sends them for interims: as finals
    some would go back to `transcribe` (cut mid-word, the first pass is unsure), which
    retries with up to five more full-window decodes; as interims every one comes back
    from the one batched pass, with text."""
    from serve.core.audio import StreamDecoder, float_to_pcm16
    from serve.core.config import ConfideConfig
    from serve.core.wavfile import read_wav
    from serve.pipeline import ChannelPipeline
    from tests.conftest import EXAMPLES

    recording = read_wav(EXAMPLES / "clinic_call_mulaw_8k.wav")
    decoder = StreamDecoder(recording.encoding, recording.sample_rate, recording.channels)
    growing = []
    for index, audio in enumerate(decoder.decode(recording.data)):
        channel = ChannelPipeline(index, 1, ConfideConfig(), interims=True)
        for start in range(0, len(audio), 320):
            step = channel.feed(audio[start : start + 320])
            if step.interim is not None:
                growing.append(float_to_pcm16(step.interim.audio))
                channel.interim_done()
    assert len(growing) >= 5
    model = WhisperEngine(TranscriberConfig(num_workers=1)).model
    batch = BatchDecoder(model, beam_size=1, window_seconds=10)
    as_finals = [batch.decode([TurnAudio(pcm, "en", word_timestamps=True)])[0] for pcm in growing]
    as_interims = [
        batch.decode([TurnAudio(pcm, "en", word_timestamps=False)])[0] for pcm in growing
    ]
    assert any(r is None for r in as_finals)
    assert all(r is not None for r in as_interims)
    for final, interim in zip(as_finals, as_interims, strict=True):
        assert interim.text  # speech, so some text, unsure or not
        if final is not None:  # accepted either way: the same words
            assert normalize(interim.text) == normalize(final.text)
