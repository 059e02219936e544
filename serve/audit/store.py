"""The audit log's tables in the records database, with their own migrations.

Appends take the database's writer lock, so writers in several processes (the
recorder, gateways, the purge loop, the CLI) extend one chain without forking it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import astuple, fields

from serve.audit.chain import GENESIS, AuditRecord, Checkpoint, chain_record
from serve.audit.events import AuditEvent
from serve.core.database import Database

MIGRATIONS = (
    (
        1,
        """
        CREATE TABLE audit_records (
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            at {real} NOT NULL,
            actor_fingerprint TEXT NOT NULL,
            actor_tenant TEXT NOT NULL,
            actor_role TEXT NOT NULL,
            action TEXT NOT NULL,
            tenant TEXT NOT NULL,
            target TEXT NOT NULL,
            purpose TEXT NOT NULL,
            outcome TEXT NOT NULL,
            error_id TEXT NOT NULL,
            detail TEXT NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        );
        CREATE INDEX audit_by_tenant ON audit_records (tenant, seq);
        CREATE TABLE audit_checkpoints (
            seq INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            at {real} NOT NULL,
            key_id TEXT NOT NULL,
            signature TEXT NOT NULL
        );
        CREATE TABLE audit_keys (
            key_id TEXT PRIMARY KEY,
            public_key TEXT NOT NULL,
            sealed_private_key {blob} NOT NULL,
            created_at {real} NOT NULL
        )
        """,
    ),
)

_RECORD_COLUMNS = ", ".join(f.name for f in fields(AuditRecord))
_CHECKPOINT_COLUMNS = ", ".join(f.name for f in fields(Checkpoint))


class AuditStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    def migrate(self) -> int:
        return self.database.migrate("audit_schema_migrations", MIGRATIONS)

    def append(self, events: Iterable[AuditEvent]) -> list[AuditRecord]:
        """Chain and store the events in one transaction; an event already stored (same
        event id) is skipped. Returns the records written."""
        events = list(events)
        written: list[AuditRecord] = []
        if not events:
            return written
        with self.database.transaction() as cursor:
            cursor.lock()
            marks = ", ".join("?" for _ in events)
            stored = {
                row[0]
                for row in cursor.execute(
                    f"SELECT event_id FROM audit_records WHERE event_id IN ({marks})",
                    [e.event_id for e in events],
                ).fetchall()
            }
            head = cursor.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            seq, prev_hash = head if head is not None else (0, GENESIS)
            for event in events:
                if event.event_id in stored:
                    continue
                stored.add(event.event_id)
                seq += 1
                record = chain_record(event, seq, prev_hash)
                cursor.execute(
                    f"INSERT INTO audit_records ({_RECORD_COLUMNS}) "
                    f"VALUES ({', '.join('?' for _ in fields(AuditRecord))})",
                    astuple(record),
                )
                written.append(record)
                prev_hash = record.hash
        return written

    def records(
        self, tenant: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Records in chain order; one tenant's only when `tenant` is given."""
        conditions, params = ["seq > ?"], [after_seq]
        if tenant is not None:
            conditions.append("tenant = ?")
            params.append(tenant)
        limit_clause = f" LIMIT {int(limit)}" if limit is not None else ""
        with self.database.transaction() as cursor:
            rows = cursor.execute(
                f"SELECT {_RECORD_COLUMNS} FROM audit_records "
                f"WHERE {' AND '.join(conditions)} ORDER BY seq{limit_clause}",
                params,
            ).fetchall()
        return [AuditRecord(*row) for row in rows]

    def latest(self, tenant: str, action: str) -> AuditRecord | None:
        with self.database.transaction() as cursor:
            row = cursor.execute(
                f"SELECT {_RECORD_COLUMNS} FROM audit_records WHERE tenant = ? AND action = ? "
                "ORDER BY seq DESC LIMIT 1",
                (tenant, action),
            ).fetchone()
        return None if row is None else AuditRecord(*row)

    def head(self) -> tuple[int, str]:
        with self.database.transaction() as cursor:
            row = cursor.execute(
                "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return row if row is not None else (0, GENESIS)

    def put_checkpoint(self, checkpoint: Checkpoint) -> None:
        with self.database.transaction() as cursor:
            cursor.execute(
                f"INSERT INTO audit_checkpoints ({_CHECKPOINT_COLUMNS}) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                astuple(checkpoint),
            )

    def checkpoints(self) -> list[Checkpoint]:
        with self.database.transaction() as cursor:
            rows = cursor.execute(
                f"SELECT {_CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY seq"
            ).fetchall()
        return [Checkpoint(*row) for row in rows]

    def signing_keys(self) -> dict[str, tuple[str, bytes]]:
        with self.database.transaction() as cursor:
            rows = cursor.execute(
                "SELECT key_id, public_key, sealed_private_key FROM audit_keys"
            ).fetchall()
        return {row[0]: (row[1], bytes(row[2])) for row in rows}

    def ensure_signing_key(self, create) -> tuple[str, str, bytes]:
        """The signing key, made by `create()` -> (key id, public hex, sealed private)
        when there is none yet; the writer lock makes concurrent starters agree."""
        with self.database.transaction() as cursor:
            cursor.lock()
            row = cursor.execute(
                "SELECT key_id, public_key, sealed_private_key FROM audit_keys "
                "ORDER BY created_at DESC LIMIT 1"
            ).fetchone()
            if row is not None:
                return row[0], row[1], bytes(row[2])
            key_id, public_key, sealed = create()
            cursor.execute(
                "INSERT INTO audit_keys (key_id, public_key, sealed_private_key, created_at) "
                "VALUES (?, ?, ?, ?)",
                (key_id, public_key, sealed, time.time()),
            )
            return key_id, public_key, sealed
