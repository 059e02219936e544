"""`confide up`, `confide call`, `confide down` as an operator runs them: a detached Ray
head started by `ray start`, the gateway on a real port, the demo client over mTLS."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration


def _confide(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cluster.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_up_call_down(tmp_path):
    import os
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "confide.yaml"
    config.write_text(f"gateway:\n  host: 127.0.0.1\n  port: {port}\nray:\n  num_cpus: 2\n")
    env = {
        **os.environ,
        "CONFIDE_STATE_DIR": str(tmp_path / "state"),
        "CONFIDE_CONFIG": str(config),
    }
    try:
        up = _confide("up", env=env)
        assert up.returncode == 0, up.stderr[-2000:]
        assert f"127.0.0.1:{port}" in up.stdout

        call = _confide(
            "call",
            str(EXAMPLES / "mono_linear16_16k.wav"),
            "--fast",
            "--encoding",
            "mulaw",
            "--rate",
            "8000",
            env=env,
        )
        assert call.returncode == 0, call.stderr[-2000:]
        assert "final" in call.stdout and "summary:" in call.stdout

        issued = _confide("certs", "issue", "--tenant", "globex", env=env)
        assert issued.returncode == 0 and "not" not in issued.stdout.split("note:")[0]
        denied = _confide(
            "call", str(EXAMPLES / "mono_linear16_16k.wav"), "--fast", "--tenant", "globex", env=env
        )
        assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    finally:
        down = _confide("down", env=env)
    assert down.returncode == 0 and "down" in down.stdout
