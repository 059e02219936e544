"""The record store's contract, the same tests on both backends: SQLite in a temporary
state directory, and a real PostgreSQL server started for the session. Retention runs
against the store with a clock the tests move forward; sealing uses the local KMS
provider's real keys (and, for an outage, Vault Transit's client against a port where
nothing listens)."""

from __future__ import annotations

import datetime as dt
import sqlite3

import pytest

from serve.core.allowlist import IdentifierHasher
from serve.core.config import ConfideConfig, RecordsConfig
from serve.core.envelope import parse
from serve.core.keys import KeyDestroyed, KmsUnavailable, LocalKeyProvider
from serve.core.sealing import Sealer
from serve.records.codec import RecordCodec, RecordReader
from serve.records.errors import StoreUnavailable, UnknownCall, UnreadableRecord
from serve.records.model import REPLY, SEGMENT, CallRow, Entry
from serve.records.retention import DAY, Purger, plan_purge
from serve.records.store import open_store, sqlite_store
from tests.postgres import records_settings

pytestmark = pytest.mark.integration

WORDS = ["Dashwood", "leisure", "prudently", "respectable", "amiable"]
START = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC).timestamp()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
def config(request, tmp_path) -> ConfideConfig:
    records = records_settings(request, request.param)
    return ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "tenants": [
                {"name": "acme", "retention": {"window_days": 7}},
                {"name": "bank", "retention": {"mode": "compliance", "compliance_days": 2557}},
                {"name": "shop", "retention": {"window_days": 7, "keep_aggregates": False}},
            ],
            "records": records,
        }
    )


@pytest.fixture
def store(config):
    store = open_store(config.records, config.state_path)
    yield store
    store.close()


@pytest.fixture
def provider(config) -> LocalKeyProvider:
    return LocalKeyProvider(config.state_path / "keys" / "local-kek.json")


@pytest.fixture
def codec(provider) -> RecordCodec:
    return RecordCodec(Sealer(provider))


HASHER = IdentifierHasher(b"k" * 32)


def record_call(store, codec, tenant="acme", call_id="call-1", started=START, ended=None):
    """A call as the gateway records it: sealed details, segments and a reply."""
    key = HASHER(call_id)
    details = codec.seal(tenant, key, started, {"call_id": call_id, "roles": ["customer"]})
    ended = started + 60 if ended is None else ended
    store.put_call(
        CallRow(tenant, key, _period(started), started, ended, 12.5, 2, 2, 1, "OK", details=details)
    )
    entries = [
        Entry(
            tenant,
            key,
            SEGMENT,
            0,
            turn,
            codec.seal(
                tenant,
                key,
                started,
                {
                    "channel": 0,
                    "turn_index": turn,
                    "text": f"{WORDS[turn]} said the customer",
                    "start_seconds": turn * 5.0,
                },
            ),
        )
        for turn in range(2)
    ]
    entries.append(
        Entry(
            tenant,
            key,
            REPLY,
            0,
            1,
            codec.seal(tenant, key, started, {"text": "A reply.", "turn_index": 1}),
        )
    )
    assert store.put_entries(entries) == 3
    return key


def _period(started: float) -> str:
    return dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m")


def reader(store, codec) -> RecordReader:
    return RecordReader(store, codec, HASHER)


def purger(store, config, provider, codec, now) -> Purger:
    return Purger(store, config, provider, codec, Clock(now))


# -- the store ---------------------------------------------------------------------------


def test_migrations_are_versioned_and_idempotent(store):
    assert store.migrate() == 2
    assert store.migrate() == 2


def test_a_record_reads_back_and_a_retried_write_is_stored_once(store, codec):
    key = record_call(store, codec)
    again = store.entries("acme", key)
    assert store.put_entries(again) == 0  # same keys: nothing new
    transcript = reader(store, codec).transcript("acme", "call-1")
    assert [s["text"].split()[0] for s in transcript.segments] == WORDS[:2]
    assert transcript.details["call_id"] == "call-1" and transcript.replies[0]["text"]
    with pytest.raises(UnknownCall):
        reader(store, codec).transcript("acme", "no-such-call")
    with pytest.raises(UnknownCall):
        reader(store, codec).transcript("shop", "call-1")  # another tenant's key


def test_plaintext_columns_are_exactly_the_listed_metadata(store, config, codec):
    expected = {
        "calls": {
            "tenant",
            "call_key",
            "period",
            "started_at",
            "ended_at",
            "audio_seconds",
            "turns",
            "final_segments",
            "agent_replies",
            "status",
            "legal_hold",
            "text_purged_at",
            "details",
            "training_consent",
        },
        "entries": {"tenant", "call_key", "kind", "channel", "turn", "sealed"},
    }
    for table, columns in expected.items():
        assert set(_columns(store, config, table)) == columns
    # The two columns with content hold envelopes, never text.
    key = record_call(store, codec)
    blobs = [store.call("acme", key).details] + [e.sealed for e in store.entries("acme", key)]
    assert all(parse(blob) for blob in blobs)


def _columns(store, config, table):
    if config.records.store == "sqlite":
        path = config.state_path / "records" / "records.db"
        with sqlite3.connect(path) as connection:
            return [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
    with store._transaction() as cursor:  # reading the live schema
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
            (table,),
        )
        return [row[0] for row in cursor.fetchall()]


def test_no_word_of_a_call_is_on_disk(store, codec, config, request):
    record_call(store, codec)
    files = _store_files(config, request)
    assert files, "nothing to scan"
    blobs = [path.read_bytes() for path in files]
    assert not [w for w in WORDS[:2] if any(w.encode() in b for b in blobs)]
    # Control: the same scan finds a word that was stored in the clear.
    control = "clear-control-canary"  # a word no other test's call says
    store.put_call(CallRow("acme", "control", "2026-03", START, status=control))
    assert any(control.encode() in path.read_bytes() for path in _store_files(config, request))


def _store_files(config, request):
    if config.records.store == "sqlite":
        return [p for p in (config.state_path / "records").rglob("*") if p.is_file()]
    server = request.getfixturevalue("postgres")
    server.checkpoint()
    return [p for p in server.data_dir.rglob("*") if p.is_file()]


def test_sqlite_files_are_owner_only(store, codec, config):
    if config.records.store != "sqlite":
        pytest.skip("SQLite only: PostgreSQL keeps its own data directory")
    record_call(store, codec)
    for path in (config.state_path / "records").glob("records.db*"):
        assert path.stat().st_mode & 0o077 == 0, path


def test_the_lease_keeps_a_second_runner_out(store):
    assert store.try_lock("purge", "a", now=100, lease_seconds=60)
    assert not store.try_lock("purge", "b", now=120, lease_seconds=60)
    assert store.try_lock("purge", "a", now=130, lease_seconds=60)  # renew
    assert store.try_lock("purge", "b", now=200, lease_seconds=60)  # a's lease ran out
    store.unlock("purge", "b")
    assert store.try_lock("purge", "a", now=201, lease_seconds=60)


# -- retention ---------------------------------------------------------------------------


def test_text_goes_after_the_window_and_aggregates_stay(store, codec, config, provider):
    key = record_call(store, codec)
    within = START + 60 + 7 * DAY - 1
    assert plan_purge(store, config, within).expire == []
    report = purger(store, config, provider, codec, within + 2).run()
    assert report.expired == 1
    assert store.entries("acme", key) == []
    row = store.call("acme", key)
    assert row.text_purged_at is not None and row.details == b""
    assert (row.turns, row.final_segments, row.status) == (2, 2, "OK")  # selective archival
    with pytest.raises(UnknownCall, match="purged"):
        reader(store, codec).transcript("acme", "call-1")
    again = purger(store, config, provider, codec, within + 3).run()
    assert again.expired == 0  # idempotent


def test_without_archival_the_row_goes_too(store, codec, config, provider):
    key = record_call(store, codec, tenant="shop")
    purger(store, config, provider, codec, START + 8 * DAY).run()
    with pytest.raises(UnknownCall):
        store.call("shop", key)


def test_a_legal_hold_keeps_text_and_its_months_key(store, codec, config, provider):
    held = record_call(store, codec, call_id="held")
    record_call(store, codec, call_id="other")
    store.set_hold("acme", held, True)
    later = START + 60 * DAY
    report = purger(store, config, provider, codec, later).run()
    assert report.expired == 1 and report.shredded == 0
    assert len(reader(store, codec).transcript("acme", "held").segments) == 2
    store.set_hold("acme", held, False)
    report = purger(store, config, provider, codec, later + 1).run()
    assert report.expired == 1 and report.shredded == 1
    with pytest.raises(UnknownCall):
        store.set_hold("acme", "no-such-call", True)


def test_compliance_mode_keeps_text_for_its_years(store, codec, config, provider):
    record_call(store, codec, tenant="bank")
    after_a_year = START + 365 * DAY
    assert purger(store, config, provider, codec, after_a_year).run().expired == 0
    assert len(reader(store, codec).transcript("bank", "call-1").segments) == 2
    after_seven_years = START + 2558 * DAY
    assert purger(store, config, provider, codec, after_seven_years).run().expired == 1


def test_shredding_makes_a_copied_database_unreadable(store, codec, config, provider, tmp_path):
    """The backup problem: a copy taken before the purge keeps the ciphertext, but once
    the tenant-month's key is destroyed, no row of the copy opens."""
    key = record_call(store, codec)
    copy = _backup(store, config, key, tmp_path)
    segment = next(entry for entry in copy if entry.kind == SEGMENT)
    assert codec.open("acme", key, segment.sealed)["text"].startswith(WORDS[0])
    plan = purger(store, config, provider, codec, START + 40 * DAY).plan()
    assert [(s.tenant, s.period) for s in plan.shred] == [("acme", "2026-03")]
    assert any("destroy key tenant/acme/2026-03" in line for line in plan.describe())
    report = purger(store, config, provider, codec, START + 40 * DAY).run()
    assert report.shredded == 1
    for entry in copy:
        with pytest.raises(UnreadableRecord) as failure:
            codec.open("acme", key, entry.sealed)
        assert isinstance(failure.value.__cause__, KeyDestroyed)


def _backup(store, config, key, tmp_path):
    """The backup, taken before the purge: for SQLite a copy of the database file (its
    rows read back from the copy), for PostgreSQL every sealed row read out."""
    if config.records.store != "sqlite":
        return store.entries("acme", key)
    copy_path = tmp_path / "backup.db"
    source_path = config.state_path / "records" / "records.db"
    with sqlite3.connect(source_path) as source, sqlite3.connect(copy_path) as copy:
        source.backup(copy)
    return sqlite_store(copy_path).entries("acme", key)


def test_the_current_month_is_never_shredded(store, codec, config, provider):
    record_call(store, codec, started=START, ended=START + 60)
    # Eight days later the window has passed, but March is not over: keep its key.
    plan = plan_purge(store, config, START + 8 * DAY)
    assert len(plan.expire) == 1 and plan.shred == []


def test_a_kms_outage_stops_the_purge_before_any_text_goes(store, config):
    """Records sealed through Vault Transit; then Vault stops answering."""
    from serve.core.vault_transit import VaultTransitKeyProvider
    from tests.fakes.vault_transit import TOKEN, FakeTransit

    with FakeTransit() as vault:
        provider = VaultTransitKeyProvider(url=vault.url, token=TOKEN)
        codec = RecordCodec(Sealer(provider))
        key = record_call(store, codec)
    run = Purger(store, config, provider, codec, Clock(START + 40 * DAY))
    with pytest.raises(KmsUnavailable):
        run.run()
    assert len(store.entries("acme", key)) == 3  # nothing deleted
    assert store.try_lock("purge", "next", START + 40 * DAY, 60)  # the lease was released


def test_a_foreign_row_is_counted_never_a_crash(store, codec, config, provider):
    key = record_call(store, codec)
    store.put_entries([Entry("acme", key, SEGMENT, 1, 9, b"not an envelope")])
    assert reader(store, codec).transcript("acme", "call-1").unreadable == 1
    report = purger(store, config, provider, codec, START + 8 * DAY).run()
    assert report.expired == 1


def test_postgres_is_reached_over_verified_tls_only(postgres_tls, test_pki, tmp_path):
    """As RDS with rds.force_ssl: plaintext is refused, and the server's certificate is
    verified against the CA and its name (sslmode verify-full, the default)."""
    database = postgres_tls.new_database()

    def records(**settings) -> RecordsConfig:
        return RecordsConfig(
            store="postgres",
            postgres_host="127.0.0.1",
            postgres_port=postgres_tls.port,
            postgres_database=database,
            **settings,
        )

    store = open_store(records(postgres_ca_cert=test_pki.server.ca), tmp_path)
    store.put_call(CallRow("acme", "k", "2026-03", START))
    assert store.call("acme", "k").period == "2026-03"
    store.close()
    with pytest.raises(StoreUnavailable):
        open_store(records(postgres_sslmode="disable"), tmp_path)
    with pytest.raises(StoreUnavailable):  # a server certificate this CA did not sign
        open_store(records(postgres_ca_cert=_foreign_ca(tmp_path)), tmp_path)


def _foreign_ca(tmp_path):
    from cluster.pki import create_ca

    path = tmp_path / "foreign-ca.pem"
    create_ca("Not the records server's CA").write(path, tmp_path / "foreign-ca.key")
    return path
