"""Faults in the middle of a call, on one real embedded Ray cluster with two transcriber
replicas: a transcriber replica killed (SIGKILL of its worker process), whose turns the
gateway sends again (serve/replica_loss.py); then a Serve redeploy, whose gateway replica
drains (serve/server.py) and whose call the client resumes on the new one, listening on
the same port (serve/call_resume.py). No final is lost."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time

import pytest

from cluster import lifecycle
from cluster.client import aio_channel, stream_call
from confide.v1 import call_pb2_grpc
from loadtests.load import replica_processes
from serve.core.scoring import word_error_rate
from tests.conftest import EXAMPLES
from tests.integration.conftest import call_path_config

pytestmark = pytest.mark.integration

ROLES = ["customer", "agent"]
FINALS = 6  # the two-channel sample call's turns


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(test_pki, tmp_path_factory):
    """(config, port): a fixed port, which a redeployed gateway binds again."""
    config = call_path_config(tmp_path_factory.mktemp("state")).with_overrides(
        gateway={"port": _free_port(), "shutdown_grace_seconds": 1},
        # Full 30 s encoder windows: a turn then stays out long enough (about 0.8 s a
        # decode here) for the kill to land while several are in flight.
        transcriber={"num_replicas": 2, "window_step_seconds": 30},
    )
    with lifecycle.embedded(config, test_pki.server) as port:
        yield config, port


@pytest.fixture(scope="module")
def gateway(cluster):
    from ray import serve

    from serve.app import APP_NAME

    _, port = cluster
    return f"localhost:{port}", serve.get_app_handle(APP_NAME)


async def _kill_when_busy(handle, replicas: int, in_flight: int) -> float:
    """SIGKILL `replicas` transcriber replicas once the gateway has `in_flight` turns out;
    returns when (perf_counter)."""

    def busy() -> bool:
        return handle.transcriptions_in_flight.remote().result() >= in_flight

    for _ in range(3000):  # a poll of the gateway's counter: no event to wait on
        if await asyncio.to_thread(busy):
            break
        await asyncio.sleep(0.02)
    for process in replica_processes("Transcriber")[:replicas]:
        process.send_signal(signal.SIGKILL)
    return time.perf_counter()


async def _call_with_kills(test_pki, target, handle, recording, replicas, in_flight):
    async with aio_channel(target, test_pki.clients["acme"]) as channel:
        stub = call_pb2_grpc.CallServiceStub(channel)
        killer = asyncio.create_task(_kill_when_busy(handle, replicas, in_flight))
        result = await stream_call(stub, recording, ROLES, realtime=False)
        done = time.perf_counter()
        return result, await killer, done


def _assert_nothing_lost(result) -> None:
    assert not [e for e in result.events if e.HasField("error")]
    assert len(result.finals) == FINALS
    assert [s.end_seconds for s in result.finals] == sorted(s.end_seconds for s in result.finals)
    reference = json.loads((EXAMPLES / "two_channel_mulaw_8k.json").read_text())["reference"]
    for channel, role in enumerate(ROLES):
        expected = " ".join(turn["text"] for turn in reference[role])
        assert word_error_rate(expected, result.text(channel)) <= 0.05, role


def test_killing_one_of_two_replicas_mid_call_loses_no_final(gateway, test_pki, two_channel_call):
    """All six turns go out at once (the call is streamed faster than real time), so each
    replica holds some; one replica is killed while four are out."""
    target, handle = gateway
    resent = handle.turns_resent.remote().result()
    result, _killed, _done = asyncio.run(
        _call_with_kills(test_pki, target, handle, two_channel_call, 1, 4)
    )
    _assert_nothing_lost(result)
    assert handle.turns_resent.remote().result() > resent


def test_with_every_replica_killed_the_turns_wait_for_serves_replacements(
    gateway, test_pki, two_channel_call
):
    """Both replicas die under the call's turns: the resent turns wait in Serve's router
    until the controller has started replacements (within the 30 s deadline)."""
    target, handle = gateway
    for _ in range(120):  # the previous test's replacement must be up first
        if len(replica_processes("Transcriber")) == 2:
            break
        time.sleep(0.5)
    resent = handle.turns_resent.remote().result()
    result, killed, done = asyncio.run(
        _call_with_kills(test_pki, target, handle, two_channel_call, 2, 2)
    )
    _assert_nothing_lost(result)
    assert handle.turns_resent.remote().result() > resent
    print(f"\nboth replicas killed: the call's last final {done - killed:.1f} s after the kill")


def test_a_redeploy_mid_call_drains_the_gateway_and_the_call_resumes(
    cluster, test_pki, two_channel_call
):
    """Runs last: 10 s into the 33 s call the application is deployed again with a
    changed config (every deployment is replaced): the call's finals all arrive, once,
    in order."""
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
