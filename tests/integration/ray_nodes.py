"""Two Ray nodes on one machine, as an operator starts them: separate `ray start`
processes (head, then a worker that joins it) with Ray's TLS and token auth on, then
`confide up --address` deploys; `confide down` and `ray stop` end them. Every Ray call
runs in a subprocess; the test process itself only makes gRPC calls."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

RAY = str(Path(sys.executable).with_name("ray"))

# Prints the environment Ray needs for this config (token auth and TLS on, nodes may join).
_RAY_ENVIRONMENT = """
import json, sys
from cluster import lifecycle
from serve.core.config import load_config
config = load_config(sys.argv[1])
print(json.dumps({
    **lifecycle.use_ray_token_auth(config),
    **lifecycle.use_ray_tls(config),
    **lifecycle.use_single_machine(False),  # nodes that join each other
}))
"""


@dataclass(frozen=True)
class TwoNodes:
    root: Path
    head: str
    """The head's GCS address."""
    gateway_port: int
    env: dict[str, str]
    """What a Ray driver here needs (RAY_ADDRESS, TLS, token)."""


def run(command: list[str], env: dict, timeout: float = 300) -> str:
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def run_python(script: str, env: dict) -> dict:
    """The JSON object that `script` prints last. Ray may print its own lines after it
    (a node-loss run once ended with "raylet has lagging heartbeats ..."), so the last
    line that is a JSON object counts, not the last line."""
    stdout = run([sys.executable, "-c", script], env)
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(line)
    raise AssertionError(f"no JSON object in the script's output: {stdout[-2000:]!r}")


@contextlib.contextmanager
def two_nodes(
    root: Path,
    config: dict,
    head_options: tuple[str, ...],
    worker_options: tuple[str, ...],
) -> Iterator[TwoNodes]:
    """Start the head and a worker (with their `ray start` options), deploy `config`."""
    config_file = root / "confide.yaml"
    config_file.write_text(yaml.safe_dump({"state_dir": str(root / "state"), **config}))
    ray_env = json.loads(
        run([sys.executable, "-c", _RAY_ENVIRONMENT, str(config_file)], dict(os.environ))
    )
    env = {**os.environ, **ray_env, "CONFIDE_CONFIG": str(config_file)}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    head = f"127.0.0.1:{port}"
    common = ("--node-ip-address=127.0.0.1", "--disable-usage-stats")
    try:
        start_head = [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false"]
        run([*start_head, *head_options, *common], env)
        run([RAY, "start", f"--address={head}", *worker_options, *common], env)
        run([sys.executable, "-m", "cluster.cli", "up", "--address", head], env)
        state = json.loads((root / "state" / "cluster.json").read_text())
        yield TwoNodes(root, head, state["gateway_port"], {**env, "RAY_ADDRESS": head})
    finally:
        subprocess.run(
            [sys.executable, "-m", "cluster.cli", "down"], env=env, capture_output=True, timeout=120
        )
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)
