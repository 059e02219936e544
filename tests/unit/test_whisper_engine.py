"""The transcription engine under load: finals first, stale interims skipped
(serve/whisper_engine.py over serve/decode_queue.py), with the real tiny.en model."""

from __future__ import annotations

import asyncio

import pytest

from serve.core.config import TranscriberConfig
from serve.messages import TurnAudio
from serve.whisper_engine import WhisperEngine


@pytest.mark.parametrize("finals_first", [True, False])
def test_an_interim_queued_behind_finals_is_skipped_not_decoded_late(mono_recording, finals_first):
    config = TranscriberConfig(
        num_workers=1, interim_interval_seconds=0.2, finals_first=finals_first
    )
    engine = WhisperEngine(config)
    final = TurnAudio(mono_recording.data, "en", word_timestamps=True)
    interim = TurnAudio(mono_recording.data, "en", word_timestamps=False)

    async def scenario():
        return await asyncio.gather(
            engine.transcribe(final), engine.transcribe(interim), engine.transcribe(final)
        )

    first, late_interim, second = asyncio.run(scenario())
    assert first.text and second.text and first.words
    if finals_first:
        assert late_interim.text == "" and late_interim.decode_seconds == 0
    else:
        assert late_interim.text and late_interim.decode_seconds > 0
