import pytest

from serve.core.config import KeysConfig
from serve.core.envelope import EnvelopeError
from serve.messages import DialogueRequest, TurnAudio, TurnTranscript, Word
from serve.sealed import PayloadCodec

CANARY = "CANARY-7f3a-dashwood"


@pytest.fixture
def codec(tmp_path):
    return PayloadCodec.build(KeysConfig(), tmp_path)


def test_every_payload_type_round_trips_sealed(codec):
    turn = TurnAudio(CANARY.encode() * 10, "en", True, "acme", "call-1")
    request = codec.seal_turn(turn)
    assert CANARY.encode() not in request.audio.blob
    assert codec.open_turn(request) == turn

    transcript = TurnTranscript(CANARY, (Word(CANARY, 0.1, 0.5, 0.9),), 1.5, 0.2)
    sealed = codec.seal_transcript(transcript, "acme", "call-1")
    assert CANARY.encode() not in sealed.blob
    assert codec.open_transcript(sealed) == transcript

    dialogue = DialogueRequest("r1", "be brief", (("customer", CANARY),), 32, "acme", "call-1")
    wire = codec.seal_prompt(dialogue)
    assert CANARY.encode() not in wire.prompt.blob
    assert codec.open_prompt(wire) == dialogue

    reply = codec.seal_reply(CANARY, "acme", "call-1")
    assert CANARY.encode() not in reply.blob and codec.open_reply(reply) == CANARY


def test_fail_closed_on_plaintext_or_wrong_purpose(codec, tmp_path):
    plain = PayloadCodec.build(KeysConfig(sealing=False), tmp_path)
    unsealed = plain.seal_reply("hello", "acme", "call-1")
    with pytest.raises(EnvelopeError, match="unsealed"):
        codec.open_reply(unsealed)
    with pytest.raises(EnvelopeError, match="sealing off"):
        plain.open_reply(codec.seal_reply("hello", "acme", "call-1"))
    transcript = codec.seal_transcript(TurnTranscript("x"), "acme", "call-1")
    with pytest.raises(EnvelopeError, match="expected a reply"):
        codec.open_reply(transcript)


def test_configured_provider_is_built(tmp_path):
    import boto3
    from moto import mock_aws

    from serve.core.keys import KmsError, key_provider

    with mock_aws():
        boto3.setup_default_session(region_name="eu-west-1")
        provider = key_provider(KeysConfig(provider="aws-kms", aws_region="eu-west-1"), tmp_path)
        assert provider.name == "aws-kms"
        codec = PayloadCodec.build(KeysConfig(provider="aws-kms", aws_region="eu-west-1"), tmp_path)
        assert codec.open_reply(codec.seal_reply("hi", "acme", "c1")) == "hi"
    with pytest.raises(KmsError, match="development only"):
        key_provider(KeysConfig(production=True), tmp_path)


def test_kms_encryption_context_carries_the_call_hmac_not_the_call_id(tmp_path):
    """CloudTrail keeps every Encrypt/Decrypt's encryption context for as long as its
    bucket does: it must never see the client's call id."""
    import boto3
    from moto import mock_aws

    from serve.core.allowlist import IdentifierHasher
    from serve.core.aws_kms import AwsKmsKeyProvider
    from serve.core.sealing import Sealer

    contexts = []
    with mock_aws():
        client = boto3.client("kms", region_name="eu-west-1")
        for operation in ("Encrypt", "Decrypt"):
            client.meta.events.register(
                f"provide-client-params.kms.{operation}",
                lambda params, **_: contexts.append(params["EncryptionContext"]),
            )
        hasher = IdentifierHasher(b"k" * 32)
        codec = PayloadCodec(Sealer(AwsKmsKeyProvider(client)), hasher)
        assert codec.open_reply(codec.seal_reply("hi", "acme", "call-555-0100")) == "hi"
    assert len(contexts) == 2
    for context in contexts:
        assert context["call_id"] == hasher("call-555-0100")
        assert "call-555-0100" not in repr(context)


def test_keys_cli_rotates_and_rewraps(tmp_path, monkeypatch):
    from cluster.cli import main
    from serve.core.allowlist import IdentifierHasher
    from serve.core.envelope import Binding, parse
    from serve.core.keys import LocalKeyProvider
    from serve.core.sealing import Sealer
    from serve.core.telemetry_key import telemetry_key

    monkeypatch.setenv("CONFIDE_STATE_DIR", str(tmp_path))
    sealer = Sealer(LocalKeyProvider(tmp_path / "keys" / "local-kek.json"))
    # Blobs are bound to the call's HMAC; the operator names the call by its id.
    call_key = IdentifierHasher(telemetry_key(KeysConfig(), tmp_path))("call-9")
    binding = Binding("acme", call_key, "transcript")
    stored = tmp_path / "t.sealed"
    stored.write_bytes(sealer.seal(b"stored transcript", binding))
    assert main(["keys", "rotate", "--tenant", "acme"]) == 0
    assert (
        main(
            [
                "keys",
                "rewrap",
                str(stored),
                "--tenant",
                "acme",
                "--call-id",
                "call-9",
                "--purpose",
                "transcript",
            ]
        )
        == 0
    )
    assert parse(stored.read_bytes())[0].kek_version == 2
    assert sealer.open(stored.read_bytes(), binding) == b"stored transcript"


def test_failures_are_counted_and_fail_closed(tmp_path):
    from serve.core.keys import KeyDisabled, LocalKeyProvider, period_kek_id

    failures = []
    uncached = KeysConfig(data_key_cache_seconds=0)
    codec = PayloadCodec.build(uncached, tmp_path, lambda op, err: failures.append((op, err)))
    sealed = codec.seal_reply("hello", "acme", "call-1")
    LocalKeyProvider(tmp_path / "keys" / "local-kek.json").disable(period_kek_id("acme"))
    with pytest.raises(KeyDisabled):
        codec.open_reply(sealed)
    with pytest.raises(KeyDisabled):
        codec.seal_reply("hello", "acme", "call-1")
    assert failures == [("open", "KeyDisabled"), ("seal", "KeyDisabled")]


def test_a_calls_data_key_is_wrapped_once_and_a_disabled_kek_stops_it_within_the_age(tmp_path):
    """One KMS wrap per call and purpose, one unwrap per reader; blobs still open alone.
    A disabled KEK stops a new call at once and a cached one when its entry ages out."""
    from serve.core.data_keys import DataKeyCache
    from serve.core.envelope import Binding, parse
    from serve.core.keys import KeyDisabled, LocalKeyProvider, period_kek_id
    from serve.core.sealing import Sealer

    class Counting(LocalKeyProvider):
        wraps = unwraps = 0

        def wrap(self, *args):
            Counting.wraps += 1
            return super().wrap(*args)

        def unwrap(self, *args):
            Counting.unwraps += 1
            return super().unwrap(*args)

    now = [0.0]
    provider = Counting(tmp_path / "kek.json")
    gateway = Sealer(provider, data_keys=DataKeyCache(max_age_seconds=60, clock=lambda: now[0]))
    replica = Sealer(provider, data_keys=DataKeyCache(max_age_seconds=60, clock=lambda: now[0]))
    binding = Binding("acme", "call-1", "turn")
    blobs = [gateway.seal(f"turn {n}".encode(), binding) for n in range(50)]
    assert [replica.open(blob, binding) for blob in blobs] == [
        f"turn {n}".encode() for n in range(50)
    ]
    assert (Counting.wraps, Counting.unwraps) == (1, 1)
    assert len({parse(blob)[0].nonce for blob in blobs}) == 50  # a fresh nonce each
    assert Sealer(provider).open(blobs[7], binding) == b"turn 7"  # opens alone, uncached

    provider.disable(period_kek_id("acme"))
    with pytest.raises(KeyDisabled):
        gateway.seal(b"x", Binding("acme", "call-2", "turn"))  # a new call: at once
    assert replica.open(gateway.seal(b"y", binding), binding) == b"y"  # cached: until...
    now[0] = 61.0  # ...its entry ages out
    with pytest.raises(KeyDisabled):
        gateway.seal(b"z", binding)
    gateway.forget("acme", "call-1")
