"""`confide up`, `confide call`, `confide down` as an operator runs them: a detached Ray
head started by `ray start`, the gateway on a real port, the demo client over mTLS."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES
from tests.integration.probes import (
    answers_plaintext_http2,
    exposed_listeners,
    plaintext_listeners,
    ray_processes,
)

pytestmark = pytest.mark.integration


def _confide(*args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cluster.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def up_state(tmp_path) -> dict:
    return json.loads((tmp_path / "state" / "cluster.json").read_text())


def _wait_until_running(ray_env: dict[str, str]) -> None:
    """Until Serve reports the application RUNNING again, as an operator would check
    after `serve run --non-blocking` (in a subprocess: this process keeps no Ray
    connection)."""
    script = (
        "import time, ray\n"
        "from ray import serve\n"
        "ray.init(log_to_driver=False, logging_level='WARNING')\n"
        "for _ in range(240):\n"
        "    app = serve.status().applications.get('confide')\n"
        "    if app is not None and app.status == 'RUNNING':\n"
        "        raise SystemExit(0)\n"
        "    time.sleep(0.5)\n"
        "raise SystemExit(1)\n"
    )
    waited = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=ray_env, timeout=300
    )
    assert waited.returncode == 0, waited.stderr[-2000:]


def _records_verbs(env: dict[str, str]) -> None:
    """The calls above were recorded; an operator acting as a role of the tenant lists,
    reads, holds, erases and purges them, and each access is audited."""
    listed = _confide("records", "list", "--tenant", "demo", env=env)
    assert listed.returncode == 0, listed.stderr[-2000:]
    call_id = listed.stdout.split()[0]  # the first call's id (sealed; opened via the KMS)
    assert "calls" in listed.stdout.splitlines()[-1]
    shown = _confide("records", "show", call_id, "--tenant", "demo", env=env)
    assert shown.returncode == 0 and "customer" in shown.stdout, shown.stderr[-2000:]
    stats = _confide("records", "stats", env=env)
    assert stats.returncode == 0 and "calls," in stats.stdout, stats.stderr[-2000:]
    analyst = _confide("records", "show", call_id, "--as", "analyst", env=env)
    assert analyst.returncode == 1 and "PERMISSION_DENIED" in analyst.stderr
    no_purpose = _confide("records", "hold", call_id, env=env)
    assert no_purpose.returncode == 1 and "purpose" in no_purpose.stderr
    held = _confide("records", "hold", call_id, "--purpose", "matter 12", env=env)
    assert held.returncode == 0 and "legal hold" in held.stdout, held.stderr[-2000:]
    assert "legal hold" in _confide("records", "list", env=env).stdout
    released = _confide("records", "release", call_id, "--purpose", "matter 12", env=env)
    assert released.returncode == 0
    dry_run = _confide("records", "purge", "--dry-run", env=env)
    assert dry_run.returncode == 0 and "on legal hold are kept" in dry_run.stdout
    erased = _confide("records", "delete", call_id, "--purpose", "erasure request 3", env=env)
    assert erased.returncode == 0 and "erased" in erased.stdout, erased.stderr[-2000:]
    unknown = _confide("records", "show", call_id, "--tenant", "demo", env=env)
    assert unknown.returncode == 1 and "no call" in unknown.stderr
    assert "Traceback" not in unknown.stderr + analyst.stderr + no_purpose.stderr
    log = _confide("audit-log", "show", "--last", "50", env=env)
    for action in ("call.start", "records.list", "record.read", "hold.set", "record.delete"):
        assert action in log.stdout, action
    assert "access.denied" in log.stdout  # the analyst
    verified = _confide("audit-log", "verify", env=env)
    assert verified.returncode == 0 and "verified" in verified.stdout, verified.stdout


def _audit(env: dict[str, str]) -> None:
    """`confide audit` on the default `confide up` configuration: every control that
    applies to one machine passes, on evidence measured from the running cluster."""
    audited = _confide("audit", "--json", "--min-score", "100", env=env)
    assert audited.returncode == 0, audited.stdout[-3000:] + audited.stderr[-2000:]
    report = json.loads(audited.stdout)
    controls = {c["id"]: c for c in report["controls"]}
    assert report["score"] == 100
    assert {c["status"] for c in controls.values()} <= {"pass", "n/a"}
    assert "refused" in controls["transmission.mtls_required"]["evidence"]
    assert (
        "TLS 1.2 was refused (UNAUTHENTICATED)" in controls["transmission.tls_version"]["evidence"]
    )
    assert "never became ready" in controls["hosting.ray_ports"]["evidence"]  # GCS: TLS
    assert "purge ran" in controls["retention.purge_loop"]["evidence"]
    assert "chain verified" in controls["access.audit_log"]["evidence"]
    assert "hmac-sha256:" in controls["logging.metrics_hmac"]["evidence"]
    text = _confide("audit", env=env)
    assert text.returncode == 0 and "not a certification" in text.stdout
    assert "Traceback" not in text.stderr


def test_up_call_down(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "confide.yaml"
    # The dialogue model has its own module (test_dialogue.py); this one is about the CLI.
    config.write_text(
        f"gateway:\n  host: 127.0.0.1\n  port: {port}\nray:\n  num_cpus: 2\n"
        "dialogue:\n  enabled: false\n"
    )
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

        # The same application redeploys from a Serve config file with Serve's own CLI.
        serve_yaml = tmp_path / "serve.yaml"
        printed = _confide("--config", str(config), "serve-config", env=env)
        assert printed.returncode == 0 and "proxy_location: Disabled" in printed.stdout
        serve_yaml.write_text(printed.stdout)
        # Ray's control plane speaks TLS: a plaintext HTTP/2 preface gets no HTTP/2 answer.
        gcs_host, gcs_port = up_state(tmp_path)["ray_address"].rsplit(":", 1)
        assert not answers_plaintext_http2(gcs_host, int(gcs_port)), "Ray's GCS is plaintext"
        # The head `up` starts is confined to this machine: beyond loopback listen only
        # Serve's replica ports (Ray binds them to all interfaces), and only in TLS.
        exposed = exposed_listeners(ray_processes())
        assert all("ServeReplica" in listener for listener in exposed), exposed
        assert plaintext_listeners(ray_processes()) == []

        exported = _confide("ray-env", env=env)
        assert exported.returncode == 0 and "RAY_USE_TLS=1" in exported.stdout  # TLS: auto
        ray_env = dict(env)
        for line in exported.stdout.splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            ray_env[name] = shlex.split(value)[0]
        # The README's `eval "$(confide ray-env)"; ray status` works as documented.
        status = subprocess.run(
            [str(Path(sys.executable).with_name("ray")), "status"],
            capture_output=True,
            text=True,
            env=ray_env,
            timeout=120,
        )
        assert status.returncode == 0 and "Resources" in status.stdout, status.stderr[-2000:]
        deployed = subprocess.run(
            [
                str(Path(sys.executable).with_name("serve")),
                "run",
                "--non-blocking",
                str(serve_yaml),
            ],
            capture_output=True,
            text=True,
            env=ray_env,
            timeout=300,
        )
        assert deployed.returncode == 0, deployed.stderr[-2000:]
        _wait_until_running(ray_env)  # the rollout replaces the gateway replica
        again = _confide("call", str(EXAMPLES / "mono_linear16_16k.wav"), "--fast", env=env)
        assert again.returncode == 0 and "final" in again.stdout, again.stderr[-2000:]

        _records_verbs(env)
        _audit(env)

        issued = _confide("certs", "issue", "--tenant", "globex", env=env)
        assert issued.returncode == 0 and "not" not in issued.stdout.split("note:")[0]
        denied = _confide(
            "call", str(EXAMPLES / "mono_linear16_16k.wav"), "--fast", "--tenant", "globex", env=env
        )
        assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    finally:
        down = _confide("down", env=env)
    assert down.returncode == 0 and "down" in down.stdout
    assert not (tmp_path / "state" / "cluster.json").exists()

    # A joined cluster that no longer answers: `down` says so and keeps the record.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"
    record = tmp_path / "state" / "cluster.json"
    record.write_text(json.dumps({"ray_address": dead, "gateway_port": port, "started_ray": False}))
    unreachable = _confide("down", env=env)
    assert unreachable.returncode == 1 and "could not reach" in unreachable.stderr
    assert "down" not in unreachable.stdout and record.exists()
