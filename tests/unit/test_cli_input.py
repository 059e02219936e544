"""Every `confide` command fed something unexpected answers with one line and a non-zero
status, never a traceback (no cluster is running; nothing here needs one)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES


def _confide(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONFIDE_STATE_DIR": str(tmp_path / "state")}
    env.pop("CONFIDE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "cluster.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


@pytest.fixture
def not_a_wav(tmp_path):
    path = tmp_path / "call.wav"
    path.write_text("this is not audio")
    return str(path)


SAMPLE = str(EXAMPLES / "mono_linear16_16k.wav")
CASES = {
    "up: a config file that does not exist": ("--config", "missing.yaml", "up"),
    "down: a cluster record that is not one": ("down",),
    "call: a missing file": ("call", "missing.wav", "--target", "localhost:1"),
    "call: a file that is not a WAV": ("call", "{not_a_wav}", "--target", "localhost:1"),
    "call: an unsupported rate": ("call", SAMPLE, "--rate", "11025"),
    "call: no cluster and no target": ("call", SAMPLE),
    "demo: a file that is not a WAV": ("demo", "{not_a_wav}"),
    "certs: a role that does not exist": ("certs", "issue", "--tenant", "demo", "--role", "root"),
    "certs: revoking what was never issued": ("certs", "revoke", "--tenant", "nobody"),
    "keys: a period that is no month": ("keys", "rotate", "--tenant", "demo", "--period", "13"),
    "keys: rewrapping a missing file": (
        "keys", "rewrap", "missing.sealed", "--tenant", "demo", "--call-id", "c", "--purpose", "p",
    ),
    "records: no cluster and no target": ("records", "list"),
    "records: a date that is no date": ("records", "list", "--since", "May", "--target", "x:1"),
    "redaction: cases that are not JSON lines": ("redaction", "eval", "--cases", "{not_a_wav}"),
    "redaction: an unknown tenant": ("redaction", "text", "my card", "--tenant", "nobody"),
    "config: an unknown subcommand": ("config", "everything"),
    "serve-config: a config that does not exist": ("--config", "missing.yaml", "serve-config"),
    "telemetry: no value": ("telemetry", "hash"),
    "audit-log: a config that does not exist": ("--config", "missing.yaml", "audit-log", "verify"),
}  # fmt: skip


@pytest.mark.parametrize("args", CASES.values(), ids=CASES.keys())
def test_unexpected_input_gets_one_line_and_a_failing_status(tmp_path, not_a_wav, args):
    args = [a.format(not_a_wav=not_a_wav) for a in args]
    if args == ["down"]:
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "cluster.json").write_text("{ half a record")
    result = _confide(tmp_path, *args)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert result.stderr.strip(), "say what was wrong"
