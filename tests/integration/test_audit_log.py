"""The audit log on both backends (SQLite, and a real PostgreSQL server): records chain,
checkpoints sign with a KMS-sealed key, and every kind of tampering is found: an edited,
inserted, deleted or reordered record, a chain rewritten from an edit onwards, a
swapped signing key, and a log cut back to a checkpoint."""

from __future__ import annotations

import threading
from dataclasses import astuple, fields, replace

import pytest

from serve.audit import Actor, AuditEvent, AuditUnavailable, events, open_audit_log
from serve.audit.chain import AuditRecord, chain_record
from serve.audit.log import AuditLog
from serve.audit.signing import CheckpointSigner
from serve.audit.store import AuditStore
from serve.core.config import ConfideConfig
from serve.core.database import open_database, postgres_database
from serve.core.keys import LocalKeyProvider
from serve.core.sealing import Sealer
from tests.postgres import records_settings

pytestmark = pytest.mark.integration

SUPERVISOR = Actor("ab" * 32, "acme", "supervisor")


@pytest.fixture(params=["sqlite", "postgres"])
def config(request, tmp_path) -> ConfideConfig:
    return ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "tenants": [{"name": "acme"}, {"name": "initech"}],
            "records": records_settings(request, request.param),
        }
    )


@pytest.fixture
def log(config) -> AuditLog:
    return open_audit_log(config)


def _read(n: int, tenant: str = "acme") -> AuditEvent:
    return AuditEvent(SUPERVISOR, events.RECORD_READ, tenant, target=f"hmac-{n:04d}")


def _fill(log: AuditLog, count: int, start: int = 0) -> None:
    log.record(*(_read(n) for n in range(start, start + count)))


def _sql(config: ConfideConfig, statement: str, params=()) -> None:
    database = open_database(config.records, config.state_path)
    with database.transaction() as cursor:
        cursor.execute(statement, params)
    database.close()


def _insert(config: ConfideConfig, record: AuditRecord) -> None:
    columns = ", ".join(f.name for f in fields(AuditRecord))
    marks = ", ".join("?" for _ in fields(AuditRecord))
    _sql(config, f"INSERT INTO audit_records ({columns}) VALUES ({marks})", astuple(record))


def test_records_chain_and_verify_with_checkpoints(log):
    _fill(log, 5)
    first = log.checkpoint()
    assert first is not None and first.seq == 5
    assert log.checkpoint() == first  # the head is signed already
    _fill(log, 3, start=5)
    assert log.checkpoint().seq == 8
    result = log.verify()
    assert result.ok, result.problems
    assert (result.records, result.checkpoints, result.unsigned_tail) == (8, 2, 0)
    _fill(log, 2, start=8)
    assert log.verify().unsigned_tail == 2


def test_an_event_written_twice_is_stored_once(log):
    event = _read(1)
    assert len(log.record(event)) == 1
    assert log.record(event) == []  # a spool flushed twice
    assert len(log.entries()) == 1


def test_entries_of_one_tenant_only(log):
    log.record(_read(1), _read(2, tenant="initech"), _read(3))
    assert [r.target for r in log.entries("acme")] == ["hmac-0001", "hmac-0003"]
    assert [r.seq for r in log.entries("acme", after_seq=1, limit=1)] == [3]


def test_an_edited_record_is_detected(config, log):
    _fill(log, 4)
    _sql(config, "UPDATE audit_records SET purpose = ? WHERE seq = 2", ("nothing to see",))
    assert log.verify().problems == ["record 2: contents do not match its hash"]


def test_a_chain_rewritten_after_an_edit_is_caught_by_the_checkpoint(config, log):
    _fill(log, 4)
    log.checkpoint()
    records = log.entries()
    # Whoever can write the database edits record 2 and recomputes every hash after it.
    _sql(config, "DELETE FROM audit_records WHERE seq >= 2")
    previous = records[0].hash
    for record in records[1:]:
        event = AuditEvent(
            SUPERVISOR,
            record.action,
            record.tenant,
            target="hmac-other" if record.seq == 2 else record.target,
            at=record.at,
            event_id=record.event_id,
        )
        forged = chain_record(event, record.seq, previous)
        _insert(config, forged)
        previous = forged.hash
    problems = log.verify().problems
    assert problems == ["checkpoint at 4: record 4 is not the one signed (the chain was rewritten)"]


def test_an_inserted_record_is_detected(config, log):
    _fill(log, 3)
    _sql(config, "UPDATE audit_records SET seq = seq + 100 WHERE seq >= 2")
    _sql(config, "UPDATE audit_records SET seq = seq - 99 WHERE seq >= 100")
    head = log.entries()[0]
    _insert(config, chain_record(_read(99), 2, head.hash))
    problems = log.verify().problems
    assert (
        "record 3: does not follow record 2 (a record was deleted, inserted or moved)" in problems
    )


def test_a_deleted_record_is_detected(config, log):
    _fill(log, 4)
    _sql(config, "DELETE FROM audit_records WHERE seq = 3")
    problems = log.verify().problems
    assert "record 3: missing (the next one stored is 4)" in problems
    assert any("record 4: does not follow" in p for p in problems)


def test_reordered_records_are_detected(config, log):
    _fill(log, 4)
    _sql(config, "UPDATE audit_records SET seq = 100 WHERE seq = 2")
    _sql(config, "UPDATE audit_records SET seq = 2 WHERE seq = 3")
    _sql(config, "UPDATE audit_records SET seq = 3 WHERE seq = 100")
    problems = log.verify().problems
    assert any("record 2: does not follow" in p for p in problems)
    assert any("record 3: contents do not match" in p for p in problems)


def test_a_log_cut_back_to_a_checkpoint_is_detected_by_the_anchor(config, log):
    _fill(log, 3)
    log.checkpoint()
    _fill(log, 3, start=3)
    log.checkpoint()
    # Both the records after the first checkpoint and the later checkpoint go: what is
    # left in the database verifies on its own...
    _sql(config, "DELETE FROM audit_records WHERE seq > 3")
    _sql(config, "DELETE FROM audit_checkpoints WHERE seq > 3")
    # ...but the copy outside the database remembers the later checkpoint.
    assert log.verify().problems == ["checkpoint at 6: the log ends at 3 (truncated)"]


def test_a_swapped_signing_key_does_not_verify(config, log):
    _fill(log, 2)
    log.checkpoint()
    # Someone who can write the database replaces the signing key with one they made,
    # sealed by a KMS they control (another directory's local keys), and re-signs.
    _sql(config, "DELETE FROM audit_keys")
    _sql(config, "DELETE FROM audit_checkpoints")
    store = AuditStore(open_database(config.records, config.state_path))
    foreign = LocalKeyProvider(config.state_path.parent / "elsewhere" / "kek.json")
    forger = CheckpointSigner(store, Sealer(foreign))
    store.put_checkpoint(forger.sign(*store.head()))
    (problem,) = log.verify().problems
    assert problem.startswith("audit signing key") and problem.endswith("does not open")


def test_writers_in_parallel_extend_one_chain(config, log):
    def write(offset: int) -> None:
        own = open_audit_log(config)  # its own connection, as another process would
        for n in range(25):
            own.record(_read(offset + n))

    threads = [threading.Thread(target=write, args=(k * 100,)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = log.verify()
    assert result.ok, result.problems
    assert result.records == 75


def test_an_unreachable_database_fails_closed(config):
    if config.records.store != "postgres":
        pytest.skip("the PostgreSQL server is the one that can go away")
    dead = postgres_database("host=127.0.0.1 port=1 dbname=confide connect_timeout=1")
    log = AuditLog(AuditStore(dead), signer=None, anchor=None)  # type: ignore[arg-type]
    with pytest.raises(AuditUnavailable):
        log.record(_read(1))


def test_records_carry_no_call_id_and_keep_their_fields(log):
    event = AuditEvent(
        Actor("cd" * 32, "acme", "compliance"),
        events.RECORD_READ_RAW,
        "acme",
        target="hmac-xyz",
        purpose="chargeback dispute 1182",
        detail={"segments": 3, "raw": True},
    )
    (record,) = log.record(event)
    assert record.to_dict()["detail"] == {"segments": 3, "raw": True}
    assert replace(record, hash="") != record
    assert log.entries()[0] == record


def test_checkpoints_anchored_in_an_object_lock_bucket_stay_there(config, monkeypatch):
    """The S3 anchor against moto's S3 (in-process): a bucket with Object Lock in
    compliance mode, as infra/terraform/audit.tf makes it. A checkpoint written there
    cannot be deleted, and a log cut back is caught through it."""
    import boto3
    from moto import mock_aws

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        s3 = boto3.client("s3", region_name="eu-west-1")
        s3.create_bucket(
            Bucket="confide-audit",
            CreateBucketConfiguration={"LocationConstraint": "eu-west-1"},
            ObjectLockEnabledForBucket=True,
        )
        s3.put_object_lock_configuration(
            Bucket="confide-audit",
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 365}},
            },
        )
        anchored = config.with_overrides(
            audit={"anchor": "s3", "s3_bucket": "confide-audit", "s3_region": "eu-west-1"}
        )
        log = open_audit_log(anchored)
        _fill(log, 3)
        log.checkpoint()
        _fill(log, 2, start=3)
        log.checkpoint()
        (first, *_) = s3.list_objects_v2(Bucket="confide-audit")["Contents"]
        version = s3.head_object(Bucket="confide-audit", Key=first["Key"])["VersionId"]
        with pytest.raises(s3.exceptions.ClientError):
            s3.delete_object(Bucket="confide-audit", Key=first["Key"], VersionId=version)
        _sql(config, "DELETE FROM audit_records WHERE seq > 3")
        _sql(config, "DELETE FROM audit_checkpoints WHERE seq > 3")
        assert log.verify().problems == ["checkpoint at 5: the log ends at 3 (truncated)"]


def test_a_connection_the_server_dropped_is_renewed_before_use(config, log, monkeypatch, request):
    """A gateway's connection idles while PostgreSQL restarts: the next access checks it
    and reconnects, instead of failing once with UNAVAILABLE."""
    if config.records.store != "postgres":
        pytest.skip("only a server can restart under an idle connection")
    from serve.core.database import Database

    monkeypatch.setattr(Database, "IDLE_CHECK_SECONDS", 0.0)
    _fill(log, 1)
    server = request.getfixturevalue("postgres")
    server.stop()
    server.start()
    _fill(log, 1, start=1)
    assert len(log.entries()) == 2
