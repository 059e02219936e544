"""The recorder's writer against a real PostgreSQL server that stops and starts again:
writes spool (ciphertext only, 0600, bounded) while the server is down, reach the store
in order once it is back, and each entry is stored exactly once."""

from __future__ import annotations

import pytest

from serve.core.config import RecordsConfig
from serve.records.errors import SpoolFull
from serve.records.model import SEGMENT, CallRow, Entry, RecordWrite
from serve.records.recorder import RecordWriter
from serve.records.spool import Spool
from serve.records.store import open_store

pytestmark = pytest.mark.integration


def _write(turn: int, ended: bool = False) -> RecordWrite:
    row = CallRow(
        "acme",
        "call-key",
        "2026-03",
        1000.0,
        2000.0 if ended else None,
        turns=turn + 1,
        status="OK" if ended else "",
        details=b"sealed details",
    )
    entry = Entry("acme", "call-key", SEGMENT, 0, turn, f"sealed {turn}".encode())
    return RecordWrite((entry,), row, f"w{turn}")


@pytest.fixture
def records(postgres) -> RecordsConfig:
    return RecordsConfig(
        store="postgres",
        postgres_host="127.0.0.1",
        postgres_port=postgres.port,
        postgres_database=postgres.new_database(),
        postgres_sslmode="disable",
    )


def test_a_store_outage_spools_and_every_write_lands_once(postgres, records, tmp_path):
    def connect():
        return open_store(records, tmp_path)

    spool = Spool(tmp_path / "spool", max_bytes=1 << 20)
    writer = RecordWriter(connect(), spool, connect)
    assert writer.write(_write(0)) == "stored"
    postgres.stop()
    try:
        assert writer.write(_write(1)) == "spooled"
        assert writer.write(_write(2)) == "spooled"
        assert writer.flush() == 0  # still down: nothing lost, nothing moved
        files = spool.files()
        assert len(files) == 2
        assert all(path.stat().st_mode & 0o077 == 0 for path in files)
    finally:
        postgres.start()
    assert writer.write(_write(3, ended=True)) == "spooled"  # queued behind the older ones
    assert writer.flush() == 3
    assert writer.flush() == 0 and spool.files() == []
    store = connect()
    assert [e.turn for e in store.entries("acme", "call-key")] == [0, 1, 2, 3]
    row = store.call("acme", "call-key")
    assert (row.status, row.ended_at, row.turns) == ("OK", 2000.0, 4)  # the last write won
    assert store.put_entries(_write(2).entries) == 0  # a flush repeated stores nothing twice


def test_a_full_spool_refuses_the_write(tmp_path):
    spool = Spool(tmp_path / "spool", max_bytes=2048)
    with pytest.raises(SpoolFull):
        for turn in range(50):
            spool.add(_write(turn))
    assert 0 < spool.size <= 2048
    assert Spool.read(spool.files()[0]) == _write(0)  # what was kept reads back whole
