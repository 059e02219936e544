"""A Serve redeploy in the middle of a call, on a real embedded Ray cluster: the
gateway replica being replaced drains (serve/server.py), the call's client reconnects to
the same port, where the new replica listens, and resumes (serve/call_resume.py)."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from cluster import lifecycle
from cluster.client import aio_channel, stream_call
from confide.v1 import call_pb2_grpc
from serve.core.scoring import word_error_rate
from tests.conftest import EXAMPLES
from tests.integration.conftest import call_path_config

pytestmark = pytest.mark.integration

ROLES = ["customer", "agent"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(test_pki, tmp_path_factory):
    config = call_path_config(tmp_path_factory.mktemp("state")).with_overrides(
        gateway={"port": _free_port(), "shutdown_grace_seconds": 1}
    )
    with lifecycle.embedded(config, test_pki.server) as port:
        yield config, port


def test_a_redeploy_mid_call_drains_the_gateway_and_the_call_resumes(
    cluster, test_pki, two_channel_call
):
    """10 s into the 33 s call the application is deployed again with a changed config
    (every deployment is replaced): the call's finals all arrive, once, in order."""
    config, port = cluster
    changed = config.with_overrides(gateway={"shutdown_grace_seconds": 1.5})

    async def scenario():
        async with aio_channel(f"localhost:{port}", test_pki.clients["acme"]) as channel:
            stub = call_pb2_grpc.CallServiceStub(channel)
            call = asyncio.create_task(stream_call(stub, two_channel_call, ROLES))
            await asyncio.sleep(10)
            new_port = await asyncio.to_thread(lifecycle.deploy, changed, test_pki.server)
            return await call, new_port

    result, new_port = asyncio.run(scenario())
    assert new_port == port
    kinds = [e.WhichOneof("event") for e in result.events]
    assert "error" not in kinds and kinds[-1] == "summary"
    assert kinds.count("resume") == 1
    finals = result.finals
    assert [s.end_seconds for s in finals] == sorted(s.end_seconds for s in finals)
    for channel in range(2):
        indexes = [s.turn_index for s in finals if s.channel == channel]
        assert indexes == list(range(len(indexes)))
    reference = json.loads((EXAMPLES / "two_channel_mulaw_8k.json").read_text())["reference"]
    for channel, role in enumerate(ROLES):
        expected = " ".join(turn["text"] for turn in reference[role])
        # a turn cut in two at the drain may lose a word at the cut
        assert word_error_rate(expected, result.text(channel)) <= 0.1, role
    summary = result.events[-1].summary
    assert summary.final_segments == len(finals)
    assert summary.audio_seconds == pytest.approx(two_channel_call.seconds, abs=0.05)
