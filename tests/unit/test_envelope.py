"""Envelope encryption and the key providers: tamper, binding, rotation, shredding,
fail-closed, and a Hypothesis fuzz of the parser. The provider contract runs against
the local provider and AWS KMS (moto, in-process)."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from serve.core.envelope import Binding, EnvelopeError, MalformedBlob, OpenFailed, parse
from serve.core.keys import KeyDestroyed, KeyDisabled, KmsError, LocalKeyProvider, period_kek_id
from serve.core.sealing import Sealer

BINDING = Binding("acme", "call-1", "turn-audio")
SECRET = b"card 4111 1111 1111 1111, expiry 12/29" * 3


PROVIDERS = ["local", "aws-kms", "vault-transit-fake"]
if os.environ.get("VAULT_ADDR"):  # the same contract against a real Vault
    PROVIDERS.append("vault-transit-real")


@pytest.fixture(params=PROVIDERS)
def provider(request, tmp_path):
    if request.param == "local":
        yield LocalKeyProvider(tmp_path / "keys" / "local-kek.json")
    elif request.param == "aws-kms":
        import boto3
        from moto import mock_aws

        from serve.core.aws_kms import AwsKmsKeyProvider

        with mock_aws():
            yield AwsKmsKeyProvider(boto3.client("kms", region_name="eu-west-1"))
    elif request.param == "vault-transit-fake":
        from serve.core.vault_transit import VaultTransitKeyProvider
        from tests.fakes.vault_transit import TOKEN, FakeTransit

        with FakeTransit() as fake:
            yield VaultTransitKeyProvider(url=fake.url, token=TOKEN)
    else:
        from serve.core.vault_transit import VaultTransitKeyProvider

        yield VaultTransitKeyProvider(
            url=os.environ["VAULT_ADDR"], token=os.environ.get("VAULT_TOKEN")
        )


@pytest.fixture
def sealer(provider):
    return Sealer(provider)


def test_round_trip_and_ciphertext_hides_plaintext(sealer):
    blob = sealer.seal(SECRET, BINDING)
    assert b"4111" not in blob and SECRET not in blob
    assert sealer.open(blob, BINDING) == SECRET


def test_each_blob_has_its_own_data_key_and_nonce(sealer):
    first, second = sealer.seal(SECRET, BINDING), sealer.seal(SECRET, BINDING)
    assert first != second
    assert parse(first)[0].wrapped_key != parse(second)[0].wrapped_key


def test_flipping_any_single_byte_fails(sealer):
    blob = sealer.seal(b"short secret", BINDING)
    for index in range(len(blob)):
        for bit in (0x01, 0x80):
            tampered = bytearray(blob)
            tampered[index] ^= bit
            with pytest.raises(EnvelopeError):
                sealer.open(bytes(tampered), BINDING)


@pytest.mark.parametrize(
    "other",
    [
        Binding("globex", "call-1", "turn-audio"),
        Binding("acme", "call-2", "turn-audio"),
        Binding("acme", "call-1", "transcript"),
    ],
)
def test_wrong_tenant_call_or_purpose_fails(sealer, other):
    blob = sealer.seal(SECRET, BINDING)
    with pytest.raises(EnvelopeError):
        sealer.open(blob, other)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_garbage_is_a_clear_error_never_a_crash(garbage):
    with pytest.raises(MalformedBlob):
        parse(b"CFDE" + garbage if garbage[:1] == b"\x01" else garbage)


@given(cut=st.integers(min_value=0, max_value=200))
@settings(max_examples=100, deadline=None)
def test_truncated_blobs_are_malformed_or_fail_to_open(tmp_path_factory, cut):
    sealer = Sealer(LocalKeyProvider(tmp_path_factory.mktemp("k") / "kek.json"))
    blob = sealer.seal(b"payload", BINDING)
    with pytest.raises(EnvelopeError):
        sealer.open(blob[: min(cut, len(blob) - 1)], BINDING)


def test_rotation_new_data_uses_new_version_old_still_opens_rewrap_moves(sealer, provider):
    old = sealer.seal(SECRET, BINDING)
    kek_id = parse(old)[0].kek_id
    assert provider.rotate(kek_id) == 2
    new = sealer.seal(SECRET, BINDING)
    assert parse(new)[0].kek_version == 2
    assert sealer.open(old, BINDING) == SECRET
    moved = sealer.rewrap(old, BINDING)
    assert parse(moved)[0].kek_version == 2
    assert parse(moved)[1] == parse(old)[1], "re-wrap must not touch the ciphertext body"
    assert sealer.open(moved, BINDING) == SECRET


def test_destroyed_period_kek_makes_its_blobs_unrecoverable(provider):
    november = Sealer(provider, clock=lambda: dt.datetime(2026, 11, 3, tzinfo=dt.UTC))
    december = Sealer(provider, clock=lambda: dt.datetime(2026, 12, 3, tzinfo=dt.UTC))
    old, new = november.seal(SECRET, BINDING), december.seal(SECRET, BINDING)
    provider.destroy(period_kek_id("acme", dt.datetime(2026, 11, 1, tzinfo=dt.UTC)))
    with pytest.raises(KeyDestroyed, match="unrecoverable"):
        november.open(old, BINDING)
    if provider.name != "vault-transit":  # Vault deletes the key; it keeps no tombstone
        with pytest.raises(KeyDestroyed):
            november.seal(SECRET, BINDING)  # a destroyed period takes no new data either
    assert december.open(new, BINDING) == SECRET  # other periods are untouched


def test_disabled_key_fails_closed_both_ways(sealer, provider):
    if provider.name == "vault-transit":
        pytest.skip("Vault disables keys by policy: test_vault_policy_denial_fails_closed")
    blob = sealer.seal(SECRET, BINDING)
    kek_id = parse(blob)[0].kek_id
    provider.disable(kek_id)
    with pytest.raises(KeyDisabled):
        sealer.open(blob, BINDING)
    with pytest.raises(KeyDisabled):
        sealer.seal(SECRET, BINDING)
    provider.enable(kek_id)
    assert sealer.open(blob, BINDING) == SECRET


def test_local_provider_refuses_production_and_keeps_keys_0600(tmp_path):
    with pytest.raises(KmsError, match="development only"):
        LocalKeyProvider(tmp_path / "kek.json", production=True)
    provider = LocalKeyProvider(tmp_path / "kek.json")
    Sealer(provider).seal(b"x", BINDING)
    assert stat.S_IMODE((tmp_path / "kek.json").stat().st_mode) == 0o600


def test_a_second_process_view_sees_new_keys(tmp_path):
    writer = Sealer(LocalKeyProvider(tmp_path / "kek.json"))
    reader = Sealer(LocalKeyProvider(tmp_path / "kek.json"))  # loaded before any key exists
    assert reader.open(writer.seal(SECRET, BINDING), BINDING) == SECRET


def test_open_failed_message_carries_no_payload(sealer):
    blob = sealer.seal(SECRET, BINDING)
    with pytest.raises(OpenFailed) as failure:
        sealer.open(blob, Binding("acme", "call-1", "reply"))
    assert "4111" not in str(failure.value)


def test_kms_outage_fails_closed():
    import boto3
    from botocore.config import Config

    from serve.core.aws_kms import AwsKmsKeyProvider
    from serve.core.keys import KmsUnavailable

    unreachable = boto3.client(
        "kms",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    sealer = Sealer(AwsKmsKeyProvider(unreachable))
    with pytest.raises(KmsUnavailable):
        sealer.seal(SECRET, BINDING)


def test_aws_kms_binds_the_encryption_context():
    import boto3
    from moto import mock_aws

    from serve.core.aws_kms import AwsKmsKeyProvider

    with mock_aws():
        provider = AwsKmsKeyProvider(boto3.client("kms", region_name="eu-west-1"))
        version, wrapped = provider.wrap("tenant/acme/2026-11", b"k" * 32, BINDING)
        assert provider.unwrap("tenant/acme/2026-11", version, wrapped, BINDING) == b"k" * 32
        with pytest.raises(OpenFailed):
            provider.unwrap("tenant/acme/2026-11", version, wrapped, Binding("acme", "x", "y"))


def test_vault_policy_denial_fails_closed():
    from serve.core.vault_transit import VaultTransitKeyProvider
    from tests.fakes.vault_transit import TOKEN, FakeTransit

    with FakeTransit() as fake:
        sealer = Sealer(VaultTransitKeyProvider(url=fake.url, token=TOKEN))
        blob = sealer.seal(SECRET, BINDING)
        fake.denied.add(next(iter(fake.keys)))  # a policy now denies the tenant's key
        with pytest.raises(KeyDisabled):
            sealer.open(blob, BINDING)
        with pytest.raises(KeyDisabled):
            sealer.seal(SECRET, BINDING)


def test_vault_unreachable_fails_closed():
    from serve.core.keys import KmsUnavailable
    from serve.core.vault_transit import VaultTransitKeyProvider

    sealer = Sealer(VaultTransitKeyProvider(url="http://127.0.0.1:9", token="t"))
    with pytest.raises(KmsUnavailable):
        sealer.seal(SECRET, BINDING)


def test_threads_opening_at_once_see_a_key_another_process_just_created(tmp_path):
    """Sealing and opening run in worker threads; a new KEK (a new tenant, a new month)
    written by another process must not look destroyed to any of them."""
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "keys" / "local-kek.json"
    for round_ in range(20):
        opener = Sealer(LocalKeyProvider(path))
        binding = Binding(f"t{round_}", "call", "transcript")
        blob = Sealer(LocalKeyProvider(path)).seal(SECRET, binding)  # "another process"
        with ThreadPoolExecutor(8) as pool:
            opened = [pool.submit(opener.open, blob, binding) for _ in range(16)]
            assert {future.result() for future in opened} == {SECRET}


def test_two_processes_creating_a_months_aws_key_at_once_agree_on_one(monkeypatch):
    """Both find no key and create one; the second alias fails: it uses the first
    process's key (both seal and open alike) and schedules its own for deletion."""
    import boto3
    from moto import mock_aws

    from serve.core.aws_kms import AwsKmsKeyProvider

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        kms = boto3.client("kms", region_name="eu-west-1")
        first, second = AwsKmsKeyProvider(kms), AwsKmsKeyProvider(kms)
        binding = Binding("acme", "call-1", "turn")

        class RacingClient:
            """The second process's client: the first process aliases its key in the
            moment between the second one's CreateKey and CreateAlias."""

            def __getattr__(self, name):
                return getattr(kms, name)

            def create_key(self, **arguments):
                created = kms.create_key(**arguments)
                Sealer(first).seal(b"first", binding)
                return created

        second._kms = RacingClient()
        blob = Sealer(second).seal(b"second", binding)
        assert Sealer(first).open(blob, binding) == b"second"
        states = sorted(
            kms.describe_key(KeyId=k["KeyId"])["KeyMetadata"]["KeyState"]
            for k in kms.list_keys()["Keys"]
        )
        assert states == ["Enabled", "PendingDeletion"]
