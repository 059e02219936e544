"""The record store: call rows and sealed entries, with versioned migrations, in the
records database (serve/core/database.py: SQLite or PostgreSQL underneath). Methods
block: async callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import astuple, fields
from pathlib import Path

from serve.core.config import RecordsConfig
from serve.core.database import (
    Cursor,
    Database,
    DatabaseUnavailable,
    open_database,
    sqlite_database,
)
from serve.records.errors import StoreUnavailable, UnknownCall
from serve.records.model import CallRow, Entry

# Versioned migrations: append, never edit one that has shipped.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE calls (
            tenant TEXT NOT NULL,
            call_key TEXT NOT NULL,
            period TEXT NOT NULL,
            started_at {real} NOT NULL,
            ended_at {real},
            audio_seconds {real} NOT NULL,
            turns INTEGER NOT NULL,
            final_segments INTEGER NOT NULL,
            agent_replies INTEGER NOT NULL,
            status TEXT NOT NULL,
            legal_hold INTEGER NOT NULL,
            text_purged_at {real},
            details {blob} NOT NULL,
            PRIMARY KEY (tenant, call_key)
        );
        CREATE TABLE entries (
            tenant TEXT NOT NULL,
            call_key TEXT NOT NULL,
            kind TEXT NOT NULL,
            channel INTEGER NOT NULL,
            turn INTEGER NOT NULL,
            sealed {blob} NOT NULL,
            PRIMARY KEY (tenant, call_key, kind, channel, turn)
        );
        CREATE TABLE shredded_periods (
            tenant TEXT NOT NULL,
            period TEXT NOT NULL,
            shredded_at {real} NOT NULL,
            PRIMARY KEY (tenant, period)
        );
        CREATE TABLE locks (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at {real} NOT NULL
        );
        CREATE INDEX calls_by_end ON calls (ended_at);
        """,
    ),
    (
        2,
        """
        ALTER TABLE calls ADD COLUMN training_consent INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX calls_by_start ON calls (tenant, started_at, call_key);
        """,
    ),
)

_CALL_COLUMNS = tuple(f.name for f in fields(CallRow))
_ENTRY_COLUMNS = tuple(f.name for f in fields(Entry))


class RecordStore:
    """Call records in the records database."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.name = database.name

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Cursor]:
        """A cursor in one transaction; a lost connection is StoreUnavailable (and the
        next call reconnects)."""
        try:
            with self.database.transaction() as cursor:
                yield cursor
        except DatabaseUnavailable as exc:
            raise StoreUnavailable(f"the {self.name} record store is unavailable") from exc

    @staticmethod
    def _execute(cursor: Cursor, statement: str, params: Iterable = ()) -> None:
        cursor.execute(statement, params)

    def close(self) -> None:
        self.database.close()

    # -- schema ---------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the migrations not applied yet; returns the schema version."""
        try:
            return self.database.migrate("schema_migrations", MIGRATIONS)
        except DatabaseUnavailable as exc:
            raise StoreUnavailable(f"the {self.name} record store is unavailable") from exc

    # -- writes ---------------------------------------------------------------------

    def put_call(self, row: CallRow) -> None:
        """Insert the call's row, or update what a later write knows (end, counts,
        status); a hold or a purge already recorded is never undone here."""
        updated = [c for c in _CALL_COLUMNS if c not in {"tenant", "call_key", "legal_hold"}]
        updated.remove("text_purged_at")
        assignments = ", ".join(f"{c} = excluded.{c}" for c in updated)
        with self._transaction() as cursor:
            self._execute(
                cursor,
                f"INSERT INTO calls ({', '.join(_CALL_COLUMNS)}) "
                f"VALUES ({', '.join('?' for _ in _CALL_COLUMNS)}) "
                f"ON CONFLICT (tenant, call_key) DO UPDATE SET {assignments}",
                _call_values(row),
            )

    def put_entries(self, entries: Iterable[Entry]) -> int:
        """Insert entries; one already stored (same key) is left as it is. Returns how
        many were new."""
        added = 0
        with self._transaction() as cursor:
            for entry in entries:
                self._execute(
                    cursor,
                    f"INSERT INTO entries ({', '.join(_ENTRY_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in _ENTRY_COLUMNS)}) "
                    "ON CONFLICT DO NOTHING",
                    astuple(entry),
                )
                added += max(cursor.rowcount, 0)
        return added

    def set_hold(self, tenant: str, call_key: str, hold: bool) -> None:
        with self._transaction() as cursor:
            self._execute(
                cursor,
                "UPDATE calls SET legal_hold = ? WHERE tenant = ? AND call_key = ?",
                (int(hold), tenant, call_key),
            )
            if cursor.rowcount == 0:
                raise UnknownCall(f"no call {call_key} for tenant {tenant}")

    def delete_text(self, tenant: str, call_key: str, now: float, keep_row: bool) -> None:
        """Retention: the call's entries and sealed details go. With keep_row the row
        stays as aggregates (selective archival); otherwise it goes too."""
        with self._transaction() as cursor:
            self._execute(
                cursor,
                "DELETE FROM entries WHERE tenant = ? AND call_key = ?",
                (tenant, call_key),
            )
            if keep_row:
                self._execute(
                    cursor,
                    "UPDATE calls SET details = ?, text_purged_at = ? "
                    "WHERE tenant = ? AND call_key = ? AND legal_hold = 0",
                    (b"", now, tenant, call_key),
                )
            else:
                self._execute(
                    cursor,
                    "DELETE FROM calls WHERE tenant = ? AND call_key = ? AND legal_hold = 0",
                    (tenant, call_key),
                )

    def erase(self, tenant: str, call_key: str) -> None:
        """Erasure on request: the call's entries and its row go. A call on legal hold
        is kept (the caller checks first; this guards against a hold set meanwhile)."""
        with self._transaction() as cursor:
            self._execute(
                cursor,
                "DELETE FROM calls WHERE tenant = ? AND call_key = ? AND legal_hold = 0",
                (tenant, call_key),
            )
            if cursor.rowcount == 0:
                raise UnknownCall(f"no call {call_key} for tenant {tenant} that may be erased")
            self._execute(
                cursor,
                "DELETE FROM entries WHERE tenant = ? AND call_key = ?",
                (tenant, call_key),
            )

    def mark_shredded(self, tenant: str, period: str, now: float) -> None:
        with self._transaction() as cursor:
            self._execute(
                cursor,
                "INSERT INTO shredded_periods (tenant, period, shredded_at) VALUES (?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (tenant, period, now),
            )

    def try_lock(self, name: str, holder: str, now: float, lease_seconds: float) -> bool:
        """Take or renew a named lease; False while another holder's lease runs."""
        with self._transaction() as cursor:
            self._execute(
                cursor,
                "INSERT INTO locks (name, holder, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
                "expires_at = excluded.expires_at "
                "WHERE locks.expires_at < ? OR locks.holder = excluded.holder",
                (name, holder, now + lease_seconds, now),
            )
            self._execute(cursor, "SELECT holder FROM locks WHERE name = ?", (name,))
            return cursor.fetchone()[0] == holder

    def unlock(self, name: str, holder: str) -> None:
        with self._transaction() as cursor:
            self._execute(cursor, "DELETE FROM locks WHERE name = ? AND holder = ?", (name, holder))

    # -- reads ----------------------------------------------------------------------

    def calls(self, tenant: str | None = None, since: float | None = None) -> list[CallRow]:
        conditions, params = ["1 = 1"], []
        if tenant is not None:
            conditions.append("tenant = ?")
            params.append(tenant)
        if since is not None:
            conditions.append("started_at >= ?")
            params.append(since)
        with self._transaction() as cursor:
            self._execute(
                cursor,
                f"SELECT {', '.join(_CALL_COLUMNS)} FROM calls WHERE {' AND '.join(conditions)} "
                "ORDER BY started_at",
                params,
            )
            return [_call_row(row) for row in cursor.fetchall()]

    def page(
        self, tenant: str, start: float, end: float, after: tuple[float, str] | None, limit: int
    ) -> list[CallRow]:
        """A tenant's calls that began in [start, end), in (started_at, call_key) order,
        after the given position: the keyset paging of ListCalls."""
        conditions = ["tenant = ?", "started_at >= ?", "started_at < ?"]
        params: list = [tenant, start, end]
        if after is not None:
            conditions.append("(started_at > ? OR (started_at = ? AND call_key > ?))")
            params += [after[0], after[0], after[1]]
        with self._transaction() as cursor:
            self._execute(
                cursor,
                f"SELECT {', '.join(_CALL_COLUMNS)} FROM calls WHERE {' AND '.join(conditions)} "
                f"ORDER BY started_at, call_key LIMIT {int(limit)}",
                params,
            )
            return [_call_row(row) for row in cursor.fetchall()]

    def call(self, tenant: str, call_key: str) -> CallRow:
        with self._transaction() as cursor:
            self._execute(
                cursor,
                f"SELECT {', '.join(_CALL_COLUMNS)} FROM calls WHERE tenant = ? AND call_key = ?",
                (tenant, call_key),
            )
            row = cursor.fetchone()
        if row is None:
            raise UnknownCall(f"no call {call_key} for tenant {tenant}")
        return _call_row(row)

    def entries(self, tenant: str, call_key: str) -> list[Entry]:
        with self._transaction() as cursor:
            self._execute(
                cursor,
                f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM entries "
                "WHERE tenant = ? AND call_key = ? ORDER BY kind, turn, channel",
                (tenant, call_key),
            )
            return [Entry(*row[:5], bytes(row[5])) for row in cursor.fetchall()]

    def shredded_periods(self) -> set[tuple[str, str]]:
        with self._transaction() as cursor:
            self._execute(cursor, "SELECT tenant, period FROM shredded_periods")
            return {(tenant, period) for tenant, period in cursor.fetchall()}


def _call_values(row: CallRow) -> tuple:
    values = dict(zip(_CALL_COLUMNS, astuple(row), strict=True))
    values["legal_hold"] = int(row.legal_hold)
    values["training_consent"] = int(row.training_consent)
    return tuple(values[c] for c in _CALL_COLUMNS)


def _call_row(values) -> CallRow:
    row = dict(zip(_CALL_COLUMNS, values, strict=True))
    row["legal_hold"] = bool(row["legal_hold"])
    row["training_consent"] = bool(row["training_consent"])
    row["details"] = bytes(row["details"])
    return CallRow(**row)


# -- backends ---------------------------------------------------------------------------


def sqlite_store(path: Path) -> RecordStore:
    """The embedded store: one 0600 SQLite file (see serve/core/database.py)."""
    return RecordStore(sqlite_database(path))


def open_store(config: RecordsConfig, state_dir: Path) -> RecordStore:
    """The configured store, migrated to the current schema."""
    store = RecordStore(open_database(config, state_dir))
    store.migrate()
    return store
