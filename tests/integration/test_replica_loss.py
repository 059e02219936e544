"""A transcriber replica killed (SIGKILL of its worker process) in the middle of a call,
on a real embedded Ray cluster with two transcriber replicas: the gateway sends the
turns it had on that replica again, and the call loses no final (serve/replica_loss.py)."""

from __future__ import annotations

import asyncio
import json
import signal
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


@pytest.fixture(scope="module")
def gateway(test_pki, tmp_path_factory):
    config = call_path_config(tmp_path_factory.mktemp("state")).with_overrides(
        transcriber={"num_replicas": 2}
    )
    with lifecycle.embedded(config, test_pki.server) as port:
        from ray import serve

        from serve.app import APP_NAME

        yield f"localhost:{port}", serve.get_app_handle(APP_NAME)


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
