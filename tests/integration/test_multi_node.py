"""Two Ray nodes on one machine, as separate `ray start` processes with Ray's TLS and
token auth on: the transcriber replica is placed on the worker node (the GPU pool's
role in infra/terraform) and a real call is served through it.

Everything that talks to Ray runs in subprocesses (`ray start`, `confide up --address`,
`confide down`, a placement probe), as an operator would run it; the test process
itself only makes the gRPC call."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from cluster.client import aio_channel, stream_call
from cluster.pki import DevPki
from confide.v1 import call_pb2_grpc
from serve.core.scoring import word_error_rate
from tests.conftest import EXAMPLES
from tests.integration import ray_nodes
from tests.integration.probes import answers_plaintext_http2

pytestmark = pytest.mark.integration

WORKER_RESOURCE = "confide_worker_node"

# Prints the alive nodes' resources and the node of the Transcriber replica.
_PLACEMENT = """
import json, ray
from ray import serve
ray.init(log_to_driver=False, logging_level="ERROR")
nodes = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
stats = serve.get_deployment_handle("Transcriber", "confide").stats.remote().result()
print(json.dumps({"nodes": nodes, "transcriber": stats}))
"""


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    config = {
        "tenants": [{"name": "acme", "redaction": {"client_text": "raw"}}],  # WER is scored
        "gateway": {"host": "127.0.0.1", "port": 0},
        "transcriber": {"ray_resources": {WORKER_RESOURCE: 1}},
        "dialogue": {"enabled": False},
        "ray": {"tls": "on"},
    }
    with ray_nodes.two_nodes(
        tmp_path_factory.mktemp("multi-node"),
        config,
        ("--num-cpus=1",),
        ("--num-cpus=2", f"--resources={json.dumps({WORKER_RESOURCE: 1})}"),
    ) as nodes:
        yield nodes.root, nodes.head, nodes.gateway_port, nodes.env


def test_both_nodes_run_with_tls_and_token_auth(two_nodes):
    _, head, _, env = two_nodes
    assert env["RAY_USE_TLS"] == "1" and env["RAY_AUTH_MODE"] == "token"
    assert os.stat(env["RAY_AUTH_TOKEN_PATH"]).st_mode & 0o077 == 0
    host, port = head.split(":")
    assert not answers_plaintext_http2(host, int(port)), "Ray's GCS must refuse plaintext"


def test_transcriber_runs_on_the_worker_node_and_serves_a_call(two_nodes, two_channel_call):
    root, _, gateway_port, env = two_nodes
    pki = DevPki(root / "state" / "pki")
    tls = pki.client_tls("acme")

    async def call():
        async with aio_channel(f"localhost:{gateway_port}", tls) as channel:
            stub = call_pb2_grpc.CallServiceStub(channel)
            return await stream_call(stub, two_channel_call, ["customer", "agent"], realtime=False)

    result = asyncio.run(call())
    reference = json.loads((EXAMPLES / "two_channel_mulaw_8k.json").read_text())["reference"]
    text = " ".join(turn["text"] for turn in reference["customer"])
    assert word_error_rate(text, result.text(0)) <= 0.05

    placement = ray_nodes.run_python(_PLACEMENT, env)
    assert len(placement["nodes"]) == 2
    transcriber = placement["transcriber"]
    assert WORKER_RESOURCE in placement["nodes"][transcriber["node_id"]]
    assert transcriber["turns"] >= len(result.finals) > 0
