"""The recorder deployment: writes the gateway's sealed records to the store.

It receives ciphertext and plaintext metadata only, and holds no key that opens a
transcript (it builds no sealer at all). While the store is down, writes go to the
encrypted local spool, and every later write queues behind them, so they reach the
store in the order they came; a flusher drains the spool once the store answers.
Entries are keyed by tenant, call, kind, channel and turn, so a write that is retried
or flushed twice is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib

from ray import serve
from ray.util import metrics

from serve.audit.store import AuditStore
from serve.core.allowlist import confide_logger, metric_labels
from serve.core.config import ConfideConfig
from serve.core.database import DatabaseUnavailable
from serve.records.errors import StoreUnavailable
from serve.records.model import RecordWrite
from serve.records.spool import Spool
from serve.records.store import RecordStore, open_store

logger = confide_logger("confide.recorder")
FLUSH_INTERVAL_SECONDS = 1.0


class RecordWriter:
    """The store with the spool in front of it (no Ray here: tested on its own)."""

    def __init__(self, store: RecordStore | None, spool: Spool, connect=None) -> None:
        self._store = store
        self._connect = connect
        self._audit: AuditStore | None = None
        self.spool = spool

    def write(self, write: RecordWrite) -> str:
        """ "stored" or "spooled"; SpoolFull when neither is possible."""
        if not self.spool.files():
            try:
                self._put(write)
                return "stored"
            except StoreUnavailable:
                logger.warning("record store unavailable: spooling")
        self.spool.add(write)
        return "spooled"

    def flush(self) -> int:
        """Move spooled writes to the store, oldest first; stops at the first failure."""
        flushed = 0
        for path in self.spool.files():
            try:
                self._put(Spool.read(path))
            except StoreUnavailable:
                break
            path.unlink()
            flushed += 1
        return flushed

    def _put(self, write: RecordWrite) -> None:
        if self._store is None:
            self._store = self._connect()  # raises StoreUnavailable while the store is down
        if write.call is not None:
            self._store.put_call(write.call)
        if write.entries:
            self._store.put_entries(write.entries)
        if write.audit:
            try:
                self._audit_log().append(write.audit)
            except DatabaseUnavailable as exc:
                raise StoreUnavailable("the audit log's database is unavailable") from exc

    def _audit_log(self) -> AuditStore:
        """The audit tables of the same database (appending needs no key)."""
        assert self._store is not None
        if self._audit is None or self._audit.database is not self._store.database:
            audit = AuditStore(self._store.database)
            audit.migrate()
            self._audit = audit
        return self._audit


@serve.deployment
class Recorder:
    async def __init__(self, config: ConfideConfig) -> None:
        spool = Spool(config.state_path / "records" / "spool", config.records.spool_max_bytes)

        def connect() -> RecordStore:
            return open_store(config.records, config.state_path)

        try:
            store = await asyncio.to_thread(connect)
        except StoreUnavailable:
            store = None  # start anyway: writes spool until the store answers
        self._writer = RecordWriter(store, spool, connect)
        self._depth = metrics.Gauge(
            "confide_record_spool_bytes",
            description="Bytes of sealed records waiting in the recorder's spool.",
        )
        self._written = metrics.Counter(
            "confide_records_written",
            description="Record writes by outcome (stored, spooled, refused).",
            tag_keys=("outcome",),
        )
        self._flusher = asyncio.create_task(self._flush_forever())

    async def write(self, write: RecordWrite) -> str:
        """Store (or spool) one write; raises SpoolFull when neither is possible."""
        try:
            outcome = await asyncio.to_thread(self._writer.write, write)
        except Exception:
            self._written.inc(tags=metric_labels({"outcome": "refused"}))
            raise
        self._written.inc(tags=metric_labels({"outcome": outcome}))
        return outcome

    async def spooled_bytes(self) -> int:
        return await asyncio.to_thread(lambda: self._writer.spool.size)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_SECONDS)
            with contextlib.suppress(Exception):  # retried next interval
                flushed = await asyncio.to_thread(self._writer.flush)
                if flushed:
                    logger.info("flushed %s spooled record writes", flushed)
                self._depth.set(await self.spooled_bytes())

    def __del__(self) -> None:
        self._flusher.cancel()


def serve_options(config: ConfideConfig) -> dict:
    return {
        "num_replicas": 1,  # the SQLite store and the spool are this replica's files
        "ray_actor_options": {"num_cpus": config.records.num_cpus},
        "max_ongoing_requests": 64,
    }
