"""Redaction end to end: a two-channel mu-law call in which the customer reads a card
number (Allison's recorded digits, examples/card_call_mulaw_8k.wav) in two turns,
streamed in real time over mTLS through an embedded cluster with the real tiny.en model,
the real redaction engine, records on and traces exported. No run of six or more of the
card's digits may appear in any client event (interim or final, text or words), the
stored record, any exported span, any log file or the spill directory. (The dialogue
prompt is checked in-process, where the prompt can be observed:
tests/unit/test_call_service.py.)"""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

import pytest

from cluster import lifecycle
from cluster.client import aio_channel, stream_call
from cluster.trace_receiver import TraceReceiver
from confide.v1 import call_pb2_grpc
from serve.core.config import ConfideConfig
from serve.core.wavfile import read_wav
from serve.records import open_reader
from tests.conftest import TRUST_DOMAIN

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).parents[2] / "examples"
CARD = json.loads((EXAMPLES / "card_call_mulaw_8k.json").read_text())["card_number"]
PIECES = {CARD[i : i + 6] for i in range(len(CARD) - 5)}


_DIGIT_RUN = re.compile(r"\d(?:[ ,.\-]{0,2}\d)*")


def _leaks(text: str) -> bool:
    """Six card digits in a row, however they are written ("4 5 3 9 1 4", "4539-14",
    "4, 5, 3")."""
    for run in _DIGIT_RUN.finditer(text):
        digits = re.sub(r"\D", "", run.group())
        if any(piece in digits for piece in PIECES):
            return True
    return False


def _leaking_files(directory: Path) -> list[str]:
    leaking = []
    for path in directory.rglob("*"):
        if path.is_file() and _leaks(path.read_bytes().decode("latin-1")):
            leaking.append(str(path))
    return leaking


@pytest.fixture(scope="module")
def card_call(test_pki, tmp_path_factory):
    spill = tmp_path_factory.mktemp("spill")
    with TraceReceiver() as receiver:
        config = ConfideConfig.model_validate(
            {
                "state_dir": str(tmp_path_factory.mktemp("state")),
                "trust_domain": TRUST_DOMAIN,
                "tenants": [{"name": "acme"}],
                "gateway": {"host": "127.0.0.1", "port": 0},
                "dialogue": {"enabled": False},
                "ray": {"num_cpus": 4, "object_spilling_directory": str(spill)},
                "telemetry": {
                    "traces": "otlp-http",
                    "otlp_endpoint": receiver.http_endpoint,
                    "export_delay_ms": 200,
                },
            }
        )
        with lifecycle.embedded(config, test_pki.server) as port:
            import ray

            logs = Path(ray._private.worker._global_node.get_logs_dir_path())
            result = asyncio.run(_call(test_pki, f"localhost:{port}"))
            time.sleep(3)  # the replicas' last span batches
            yield {
                "config": config,
                "result": result,
                "spans": b"".join(receiver.raw_requests),
                "logs": logs,
                "spill": spill,
            }


async def _call(test_pki, target):
    recording = read_wav(EXAMPLES / "card_call_mulaw_8k.wav")
    async with aio_channel(target, test_pki.clients["acme"]) as channel:
        stub = call_pb2_grpc.CallServiceStub(channel)
        return await stream_call(
            stub, recording, ["customer", "agent"], "card-call", interim_results=True
        )


def test_the_card_was_heard_and_redacted_across_two_turns(card_call):
    result = card_call["result"]
    customer = [s for s in result.finals if s.channel == 0]
    assert len(customer) >= 2  # the number was read in two turns
    assert all("[CARD_NUMBER]" in s.text for s in customer), [s.text for s in result.finals]
    assert result.events[-1].summary.redacted_entities >= 1


def test_no_client_event_shows_the_card(card_call):
    segments = [e.transcript for e in card_call["result"].events if e.HasField("transcript")]
    assert any(not s.is_final for s in segments)  # interims were on
    for segment in segments:
        assert not _leaks(segment.text)
        assert not _leaks(" ".join(w.word for w in segment.words))


def test_the_stored_record_holds_no_card(card_call):
    transcript = open_reader(card_call["config"]).transcript("acme", "card-call", raw=True)
    assert transcript.segments and transcript.raw_segments == []
    assert not _leaks(json.dumps(transcript.segments))


def test_no_span_log_or_spill_file_holds_the_card(card_call):
    assert card_call["spans"]  # spans were exported
    assert not _leaks(card_call["spans"].decode("latin-1"))
    assert _leaking_files(card_call["logs"]) == []
    assert _leaking_files(card_call["spill"]) == []
