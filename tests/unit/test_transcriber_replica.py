"""The transcriber deployment's class without Ray: its health check counts failed
decodes only, never decodes that are merely in flight."""

from __future__ import annotations

import asyncio

import pytest

from serve.core.config import ConfideConfig
from serve.messages import TurnAudio, TurnTranscript
from serve.sealed import PayloadCodec
from serve.transcriber import Transcriber


class SlowEngine:
    """Decodes take a while; `failing` makes them raise instead."""

    def __init__(self, config) -> None:
        self.failing = False
        self.release = asyncio.Event()

    async def transcribe(self, turn: TurnAudio) -> TurnTranscript:
        await self.release.wait()
        if self.failing:
            raise RuntimeError("decoder broke on: he was not an ill disposed young man")
        return TurnTranscript("ok", audio_seconds=1.0, decode_seconds=0.1)


def test_health_counts_failed_decodes_not_decodes_in_flight(tmp_path):
    config = ConfideConfig(state_dir=tmp_path)
    replica = Transcriber.func_or_class(config, SlowEngine)
    codec = PayloadCodec.build(config.keys, config.state_path)
    requests = [codec.seal_turn(TurnAudio(b"\0\0" * 1600, "en", True, "demo", "c")) for _ in "abcd"]

    async def scenario():
        engine = replica._engine
        in_flight = [asyncio.ensure_future(replica.transcribe(r)) for r in requests]
        await asyncio.sleep(0.1)
        replica.check_health()  # four decodes running: healthy
        engine.release.set()
        sealed = await asyncio.gather(*in_flight)
        assert codec.open_transcript(sealed[0]).text == "ok"
        engine.failing = True
        for request in requests[:3]:
            with pytest.raises(Exception, match="the transcriber failed") as failure:
                await replica.transcribe(request)
            assert "ill disposed" not in str(failure.value)
        with pytest.raises(RuntimeError, match="3 times"):
            replica.check_health()

    asyncio.run(scenario())
