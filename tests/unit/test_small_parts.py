import subprocess
import sys

import pytest

from confide.v1 import call_pb2 as pb
from serve.call_setup import parse_setup
from serve.core.audio import Encoding
from serve.core.errors import InvalidArgument
from serve.core.scoring import normalize, word_error_rate
from serve.core.wavfile import Recording, WavError, read_wav, write_wav
from serve.local_agreement import InterimTracker, agreed_prefix
from tests.conftest import ROOT


def test_word_error_rate_normalises_case_punctuation_and_titles():
    assert normalize("Mr. Dashwood, cold-hearted!") == ["mister", "dashwood", "cold", "hearted"]
    assert word_error_rate("a b c d", "a x c") == pytest.approx(0.5)
    assert word_error_rate("hello world", "Hello, world.") == 0.0
    assert word_error_rate("4 1 7 2 at 10 a m", "Four, one, seven, two at ten a.m.") == 0.0
    assert word_error_rate("at 10 a m", "At 10 AM.") == 0.0  # Whisper writes both
    assert normalize("a man, a map") == ["a", "man", "a", "map"]


def test_local_agreement_confirms_the_common_prefix():
    assert agreed_prefix(["Please", "hold"], ["please", "hold,", "while"]) == 2
    tracker = InterimTracker()
    assert tracker.update("Please hold") == 0.0
    assert tracker.update("Please hold while we") == pytest.approx(0.5)
    tracker.reset()
    assert tracker.update("Please") == 0.0


@pytest.mark.parametrize("encoding", list(Encoding))
def test_wav_round_trip(tmp_path, encoding):
    width = encoding.sample_width
    recording = Recording(encoding, 8000, 2, bytes(range(256)) * width * 2)
    write_wav(tmp_path / "x.wav", recording)
    assert read_wav(tmp_path / "x.wav") == recording


@pytest.mark.parametrize("blob", [b"", b"RIFF\0\0\0\0WAVE", b"not a wav at all", b"RIFF" * 10])
def test_malformed_wav_is_a_clear_error(tmp_path, blob):
    (tmp_path / "bad.wav").write_bytes(blob)
    with pytest.raises(WavError):
        read_wav(tmp_path / "bad.wav")


def _format(**changes) -> pb.AudioFormat:
    fields = {
        "encoding": pb.AUDIO_ENCODING_MULAW,
        "sample_rate_hertz": 8000,
        "channels": [pb.ChannelConfig(role=pb.SPEAKER_ROLE_CUSTOMER)],
        "language_code": "en-US",
    }
    return pb.AudioFormat(**{**fields, **changes})


@pytest.mark.parametrize(
    ("call_id", "changes", "field"),
    [
        ("call-1", {"encoding": pb.AUDIO_ENCODING_UNSPECIFIED}, "encoding"),
        ("call-1", {"sample_rate_hertz": 44100}, "sample rate"),
        ("call-1", {"channels": []}, "channels"),
        ("call-1", {"channels": [pb.ChannelConfig()] * 3}, "channels"),
        ("call-1", {"language_code": "English please"}, "language_code"),
        ("", {}, "call_id"),
        ("x" * 129, {}, "call_id"),
    ],
)
def test_parse_setup_rejects_bad_config(call_id, changes, field):
    with pytest.raises(InvalidArgument, match=field):
        parse_setup(call_id, _format(**changes), interim_results=False)


def test_parse_setup_accepts_a_contact_center_call():
    setup = parse_setup("c-1", _format(), interim_results=True)
    assert (setup.encoding, setup.sample_rate, setup.language) == (Encoding.MULAW, 8000, "en")


def test_generated_stubs_are_fresh():
    result = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_buf_lint_passes():
    buf = ROOT / "protos" / "node_modules" / ".bin" / "buf"
    assert buf.exists(), "buf is missing: run `make setup` (npm install)"
    result = subprocess.run([str(buf), "lint"], cwd=ROOT / "protos", capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_and_protos_import_without_heavy_engines():
    code = (
        "import sys, cluster.cli, confide.v1.call_pb2_grpc, serve.call_session;"
        "heavy = {'ray', 'faster_whisper', 'ctranslate2', 'torch', 'vllm'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_cli_prints_documented_defaults():
    result = subprocess.run(
        [sys.executable, "-m", "cluster.cli", "config", "defaults"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "max_chunk_bytes: 65536" in result.stdout


def test_a_stray_json_beside_a_recording_is_not_a_reference(tmp_path):
    from cluster.cli import _reference

    recording = tmp_path / "call.wav"
    for stray in ['{"platform": "x"}', "[1, 2]", "not json", '{"reference": {"customer": 3}}']:
        recording.with_suffix(".json").write_text(stray)
        assert _reference(recording) == {}
    recording.with_suffix(".json").write_text(
        '{"reference": {"customer": [{"start_seconds": 0, "text": "hello"}]}}'
    )
    assert _reference(recording) == {"customer": [{"text": "hello"}]}
    assert _reference(tmp_path / "no-such.wav") == {}


def test_a_model_name_is_refused_unless_downloads_are_allowed(tmp_path):
    from serve.core.config import TranscriberConfig
    from serve.whisper_engine import resolve_model

    with pytest.raises(ValueError, match="not a local directory"):
        resolve_model(TranscriberConfig(model_dir="large-v3"))
    assert resolve_model(TranscriberConfig(model_dir=str(tmp_path))) == str(tmp_path)
    allowed = TranscriberConfig(model_dir="large-v3", allow_model_download=True)
    assert resolve_model(allowed) == "large-v3"


def test_local_keys_on_a_public_gateway_warn():
    from serve.core.config import ConfideConfig

    assert ConfideConfig().security_warnings()  # 0.0.0.0 with local keys
    loopback = ConfideConfig.model_validate({"gateway": {"host": "127.0.0.1"}})
    assert loopback.security_warnings() == []
    plaintext_ray = loopback.with_overrides(ray={"tls": "off"})
    assert ["ray.tls is off" in w for w in plaintext_ray.security_warnings()] == [True]


def test_the_demo_latency_summary_has_one_line_per_stage_that_ran():
    from cluster.trace_receiver import ReceivedSpan, stage_summary

    def span(name, ms, trace="t1", **attributes):
        return ReceivedSpan(
            "svc", "scope", name, trace, name, "", 0, int(ms * 1e6), 0, "", attributes, {}, 0, 0
        )

    spans = [
        span("confide.transcriber.decode", 100),
        span("confide.transcriber.decode", 300),
        span("confide.transcriber.decode", 200),
        span("confide.dialogue.generate", 900, **{"confide.first_delta_ms": 250.0}),
        span("confide.transcriber.decode", 5000, trace="another call"),
    ]
    header, decode, first_token = stage_summary(spans, "t1")
    assert header.split() == ["stage", "count", "p50", "ms", "max", "ms"]
    assert decode.split()[-3:] == ["3", "200.0", "300.0"]
    assert first_token.startswith("reply first token") and first_token.split()[-1] == "250.0"


def test_a_write_race_after_a_resume_event_still_counts_as_the_drain():
    """grpc#36066: a chunk written while the gateway ends the call turns its UNAVAILABLE
    into the client's INTERNAL; only after a CallResume is that the drain."""
    import grpc

    from cluster.client import ended_by_status

    assert ended_by_status(grpc.StatusCode.UNAVAILABLE, ended_by_drain=False)
    assert ended_by_status(grpc.StatusCode.INTERNAL, ended_by_drain=True)
    assert not ended_by_status(grpc.StatusCode.INTERNAL, ended_by_drain=False)
    assert not ended_by_status(grpc.StatusCode.PERMISSION_DENIED, ended_by_drain=True)
