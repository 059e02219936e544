"""A worker node lost in the middle of a call: two Ray nodes on one machine (separate
`ray start` processes, TLS and token auth on), one transcriber replica on each
(`transcriber.max_replicas_per_node: 1`), the gateway pinned to the head. The worker
node's raylet is SIGKILLed while the call's turns are out: the turns its replica held
are sent again to the head's replica (serve/replica_loss.py) and no final is lost."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import psutil
import pytest

from cluster.client import aio_channel, stream_call
from cluster.pki import DevPki
from confide.v1 import call_pb2_grpc
from serve.core.scoring import word_error_rate
from tests.conftest import EXAMPLES
from tests.integration import ray_nodes

pytestmark = pytest.mark.integration

HEAD_RESOURCE, WORKER_RESOURCE = "confide_head", "confide_node_b"

# Prints the node of each Transcriber replica and the turns the gateway resent.
_PROBE = """
import json, ray
from ray import serve
ray.init(log_to_driver=False, logging_level="ERROR")
handle = serve.get_deployment_handle("Transcriber", "confide")
nodes = {}
for _ in range(20):
    stats = handle.stats.remote().result()
    nodes[stats["replica"]] = stats["node_id"]
alive = {n["NodeID"]: n["Resources"] for n in ray.nodes() if n["Alive"]}
resent = serve.get_app_handle("confide").turns_resent.remote().result()
print(json.dumps({"replica_nodes": nodes, "alive": alive, "resent": resent}))
"""


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    config = {
        "tenants": [{"name": "acme", "redaction": {"client_text": "raw"}}],
        "gateway": {"host": "127.0.0.1", "port": 0, "ray_resources": {HEAD_RESOURCE: 1}},
        "transcriber": {"num_replicas": 2, "max_replicas_per_node": 1},
        "dialogue": {"enabled": False},
        "records": {"enabled": False},
        "ray": {"tls": "on"},
    }
    with ray_nodes.two_nodes(
        tmp_path_factory.mktemp("node-loss"),
        config,
        ("--num-cpus=2", f"--resources={json.dumps({HEAD_RESOURCE: 1})}"),
        ("--num-cpus=2", f"--resources={json.dumps({WORKER_RESOURCE: 1})}"),
    ) as nodes:
        yield nodes.root, nodes.gateway_port, nodes.env


def _worker_raylet() -> psutil.Process:
    for process in psutil.process_iter(["name", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.info["name"] == "raylet" and WORKER_RESOURCE in command:
            return process
    raise AssertionError("no raylet of the worker node")


def test_losing_a_worker_node_mid_call_loses_no_final(two_nodes, two_channel_call):
    root, gateway_port, env = two_nodes
    before = ray_nodes.run_python(_PROBE, env)
    assert len(set(before["replica_nodes"].values())) == 2, "one replica per node"
    raylet = _worker_raylet()
    tls = DevPki(root / "state" / "pki").client_tls("acme")

    async def call_losing_the_node():
        async with aio_channel(f"localhost:{gateway_port}", tls) as channel:
            stub = call_pb2_grpc.CallServiceStub(channel)
            # Streamed faster than real time: all six turns go out within a second and
            # take seconds to decode on two replicas, so the worker's replica holds some.
            call = asyncio.create_task(
                stream_call(stub, two_channel_call, ["customer", "agent"], realtime=False)
            )
            await asyncio.sleep(1.0)
            raylet.send_signal(signal.SIGKILL)
            killed = time.perf_counter()
            result = await call
            return result, time.perf_counter() - killed

    result, recovered_after = asyncio.run(call_losing_the_node())
    assert not [e for e in result.events if e.HasField("error")]
    assert len(result.finals) == 6
    reference = json.loads((EXAMPLES / "two_channel_mulaw_8k.json").read_text())["reference"]
    for channel, role in enumerate(["customer", "agent"]):
        expected = " ".join(turn["text"] for turn in reference[role])
        assert word_error_rate(expected, result.text(channel)) <= 0.05, role
    for _ in range(30):  # the GCS marks the node dead after its missed health checks
        after = ray_nodes.run_python(_PROBE, env)
        if len(after["alive"]) == 1:
            break
        time.sleep(2)
    assert len(after["alive"]) == 1, "the worker node is gone"
    assert set(after["replica_nodes"].values()) <= set(after["alive"])
    print(
        f"\nworker node lost: {after['resent'] - before['resent']} turns resent, the call's "
        f"last final {recovered_after:.1f} s after the kill"
    )
