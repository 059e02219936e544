"""Two Ray nodes on one machine, as separate `ray start` processes with Ray's TLS and
token auth on: the transcriber replica is placed on the worker node (the GPU pool's
role in infra/terraform) and a real call is served through it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from cluster import lifecycle
from cluster.client import ClientTls, aio_channel, stream_call
from cluster.config import ConfideConfig
from cluster.pki import DevPki
from cluster.scoring import word_error_rate
from confide.v1 import call_pb2_grpc
from tests.conftest import EXAMPLES
from tests.integration.probes import answers_plaintext_http2

pytestmark = pytest.mark.integration

WORKER_RESOURCE = "confide_worker_node"


def _ray(*args: str) -> None:
    subprocess.run([lifecycle._ray_cli(), *args], check=True, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    config = ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path_factory.mktemp("state")),
            "tenants": [{"name": "acme"}],
            "gateway": {"host": "127.0.0.1", "port": 0},
            "transcriber": {"ray_resources": {WORKER_RESOURCE: 1}},
            "dialogue": {"enabled": False},
            "ray": {"tls": "on"},
        }
    )
    environment = {**lifecycle.use_ray_token_auth(config), **lifecycle.use_ray_tls(config, True)}
    port = lifecycle._free_port()
    head = f"127.0.0.1:{port}"
    _ray(
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=1",
        "--include-dashboard=false",
        "--disable-usage-stats",
    )
    try:
        _ray(
            "start",
            f"--address={head}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            f"--resources={json.dumps({WORKER_RESOURCE: 1})}",
            "--disable-usage-stats",
        )
        state = lifecycle.up(config, head)
        yield config, head, state.gateway_port, environment
    finally:
        subprocess.run(
            [lifecycle._ray_cli(), "stop", "--force"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def test_both_nodes_run_with_tls_and_token_auth(two_nodes):
    _, head, _, environment = two_nodes
    assert environment["RAY_USE_TLS"] == "1" and environment["RAY_AUTH_MODE"] == "token"
    assert os.stat(environment["RAY_AUTH_TOKEN_PATH"]).st_mode & 0o077 == 0
    host, port = head.split(":")
    assert not answers_plaintext_http2(host, int(port)), "Ray's GCS must refuse plaintext"


def test_transcriber_runs_on_the_worker_node_and_serves_a_call(two_nodes, two_channel_call):
    import ray
    from ray import serve

    from serve.app import APP_NAME

    config, head, gateway_port, _ = two_nodes
    pki = DevPki(config.state_path / "pki")
    tls = ClientTls(pki.ca_cert, pki.client_cert("acme"), pki.client_key("acme"))

    async def call():
        async with aio_channel(f"localhost:{gateway_port}", tls) as channel:
            stub = call_pb2_grpc.CallServiceStub(channel)
            return await stream_call(stub, two_channel_call, ["customer", "agent"], realtime=False)

    result = asyncio.run(call())
    reference = json.loads((EXAMPLES / "two_channel_mulaw_8k.json").read_text())["reference"]
    text = " ".join(turn["text"] for turn in reference["customer"])
    assert word_error_rate(text, result.text(0)) <= 0.05

    ray.init(address=head, log_to_driver=False, logging_level="WARNING")
    try:
        nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
        assert len(nodes) == 2
        stats = serve.get_deployment_handle("Transcriber", APP_NAME).stats.remote().result()
        assert WORKER_RESOURCE in nodes[stats["node_id"]]["Resources"]
        assert stats["turns"] >= len(result.finals) > 0
    finally:
        ray.shutdown()
