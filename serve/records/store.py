"""The record store: one schema, versioned migrations, SQLite or PostgreSQL underneath.

Plain SQL through DB-API connections (sqlite3, psycopg 3). The two dialects differ only
in placeholders and a few type names, so each statement is written once with `?`
placeholders and `{blob}`/`{real}` types and adapted per backend. Methods are
blocking: async callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Any

from serve.core.config import RecordsConfig
from serve.core.env import read_environment
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
)

_CALL_COLUMNS = tuple(f.name for f in fields(CallRow))
_ENTRY_COLUMNS = tuple(f.name for f in fields(Entry))


@dataclass(frozen=True)
class _Dialect:
    placeholder: str
    types: dict[str, str]
    unavailable: tuple[type[BaseException], ...]
    migration_lock: str
    """Serialises migrations of processes starting together (recorder, purge loop)."""

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.placeholder).format(**self.types)


class RecordStore:
    """One connection, used by one thread at a time (a lock serialises callers)."""

    def __init__(self, connect, dialect: _Dialect, name: str) -> None:
        self._connect = connect
        self._dialect = dialect
        self._connection = None
        self._lock = threading.Lock()
        self.name = name

    # -- connection -----------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor in one transaction; a lost connection is StoreUnavailable (and the
        next call reconnects)."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self._connect()
                cursor = self._connection.cursor()
                try:
                    yield cursor
                    self._connection.commit()
                except BaseException:
                    self._rollback()
                    raise
                finally:
                    cursor.close()
            except self._dialect.unavailable as exc:
                self._drop_connection()
                raise StoreUnavailable(f"the {self.name} record store is unavailable") from exc

    def _rollback(self) -> None:
        with contextlib.suppress(*self._dialect.unavailable):
            self._connection.rollback()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                self._connection.close()
        self._connection = None

    def _execute(self, cursor, statement: str, params: Iterable[Any] = ()) -> None:
        cursor.execute(self._dialect.sql(statement), tuple(params))

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    # -- schema ---------------------------------------------------------------------

    def migrate(self) -> int:
        """Apply the migrations not applied yet; returns the schema version."""
        with self._transaction() as cursor:
            self._execute(cursor, self._dialect.migration_lock)
            self._execute(
                cursor,
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at {real} NOT NULL)",
            )
            self._execute(cursor, "SELECT version FROM schema_migrations")
            applied = {row[0] for row in cursor.fetchall()}
            for version, script in MIGRATIONS:
                if version in applied:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        self._execute(cursor, statement)
                self._execute(
                    cursor,
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
        return max(version for version, _ in MIGRATIONS)

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
    return tuple(values[c] for c in _CALL_COLUMNS)


def _call_row(values) -> CallRow:
    row = dict(zip(_CALL_COLUMNS, values, strict=True))
    row["legal_hold"] = bool(row["legal_hold"])
    row["details"] = bytes(row["details"])
    return CallRow(**row)


# -- backends ---------------------------------------------------------------------------


def sqlite_store(path: Path) -> RecordStore:
    """The embedded store: one file in the state directory, 0600, write-ahead log."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))

    def connect() -> sqlite3.Connection:
        previous = os.umask(0o077)  # the -wal and -shm files too
        try:
            connection = sqlite3.connect(path, timeout=30, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
        finally:
            os.umask(previous)
        return connection

    dialect = _Dialect(
        "?", {"blob": "BLOB", "real": "REAL"}, (sqlite3.OperationalError,), "BEGIN IMMEDIATE"
    )
    return RecordStore(connect, dialect, "sqlite")


def postgres_store(conninfo: str) -> RecordStore:
    """PostgreSQL through psycopg 3; `conninfo` names the server, TLS mode and CA."""
    import psycopg

    def connect():
        return psycopg.connect(conninfo, connect_timeout=5)

    dialect = _Dialect(
        "%s",
        {"blob": "BYTEA", "real": "DOUBLE PRECISION"},
        (psycopg.OperationalError,),
        "SELECT pg_advisory_xact_lock(7214)",  # any constant: Confide's migration lock
    )
    return RecordStore(connect, dialect, "postgres")


def open_store(config: RecordsConfig, state_dir: Path) -> RecordStore:
    """The configured store, migrated to the current schema."""
    if config.store == "postgres":
        store = postgres_store(_conninfo(config))
    else:
        store = sqlite_store(state_dir / "records" / "records.db")
    store.migrate()
    return store


def _conninfo(config: RecordsConfig) -> str:
    from psycopg.conninfo import make_conninfo

    password = read_environment().records_password
    if config.postgres_password_file is not None:
        password = config.postgres_password_file.read_text().strip()
    settings = {
        "host": config.postgres_host,
        "port": config.postgres_port,
        "dbname": config.postgres_database,
        "user": config.postgres_user,
        "sslmode": config.postgres_sslmode,
        "sslrootcert": str(config.postgres_ca_cert) if config.postgres_ca_cert else None,
        "password": password,
        "application_name": "confide",
    }
    return make_conninfo(**{k: v for k, v in settings.items() if v is not None})
