"""The records database: SQLite or PostgreSQL behind one small interface.

Plain SQL through DB-API connections (sqlite3, psycopg 3). The two dialects differ only
in placeholders, a few type names and how a writer takes an exclusive lock, so each
statement is written once with `?` placeholders and `{blob}`/`{real}` types and adapted
here. Call records (serve/records/store.py) and the audit log (serve/audit/store.py)
keep their tables in the same database, each with its own versioned migrations.
Methods block: async callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve.core.config import RecordsConfig
from serve.core.env import read_environment

Migrations = tuple[tuple[int, str], ...]
"""(version, script) pairs: append, never edit one that has shipped."""


class DatabaseUnavailable(Exception):
    """The server (or file) cannot be reached; the next call reconnects."""


@dataclass(frozen=True)
class _Dialect:
    placeholder: str
    types: dict[str, str]
    unavailable: tuple[type[BaseException], ...]
    exclusive_lock: str
    """Serialises writers that must see each other's rows: migrations of processes
    starting together, and appends to the audit log's hash chain."""

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.placeholder).format(**self.types)


class Cursor:
    """A DB-API cursor that speaks the one SQL spelling of this module."""

    def __init__(self, cursor, dialect: _Dialect) -> None:
        self._cursor = cursor
        self._dialect = dialect

    def execute(self, statement: str, params: Iterable[Any] = ()) -> Cursor:
        self._cursor.execute(self._dialect.sql(statement), tuple(params))
        return self

    def lock(self) -> None:
        """Hold the database's writer lock until this transaction ends."""
        self.execute(self._dialect.exclusive_lock)

    def fetchone(self):
        return self._cursor.fetchone()

    def fetchall(self) -> list:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class Database:
    """One connection, used by one thread at a time (a lock serialises callers)."""

    IDLE_CHECK_SECONDS = 5.0

    def __init__(self, connect, dialect: _Dialect, name: str) -> None:
        self._connect = connect
        self._dialect = dialect
        self._connection = None
        self._last_used = 0.0
        self._lock = threading.Lock()
        self.name = name

    def _live_connection(self):
        """The connection, reconnected when it was idle and no longer answers (the
        server restarted meanwhile): a stale connection would fail one request."""
        if self._connection is not None and time.monotonic() - self._last_used > (
            self.IDLE_CHECK_SECONDS
        ):
            try:
                self._connection.execute("SELECT 1")
                self._connection.rollback()
            except self._dialect.unavailable:
                self._drop_connection()
        if self._connection is None:
            self._connection = self._connect()
        self._last_used = time.monotonic()
        return self._connection

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """A cursor in one transaction; a lost connection is DatabaseUnavailable."""
        with self._lock:
            try:
                cursor = self._live_connection().cursor()
                try:
                    yield Cursor(cursor, self._dialect)
                    self._connection.commit()
                except BaseException:
                    self._rollback()
                    raise
                finally:
                    cursor.close()
            except self._dialect.unavailable as exc:
                self._drop_connection()
                raise DatabaseUnavailable(f"the {self.name} database is unavailable") from exc

    def _rollback(self) -> None:
        with contextlib.suppress(*self._dialect.unavailable):
            self._connection.rollback()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing a broken connection may fail too
                self._connection.close()
        self._connection = None

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def migrate(self, version_table: str, migrations: Migrations) -> int:
        """Apply the migrations not yet recorded in `version_table`; returns the version."""
        with self.transaction() as cursor:
            cursor.lock()
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {version_table} "
                "(version INTEGER PRIMARY KEY, applied_at {real} NOT NULL)"
            )
            applied = {
                row[0] for row in cursor.execute(f"SELECT version FROM {version_table}").fetchall()
            }
            for version, script in migrations:
                if version in applied:
                    continue
                for statement in script.split(";"):
                    if statement.strip():
                        cursor.execute(statement)
                cursor.execute(
                    f"INSERT INTO {version_table} (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )
        return max(version for version, _ in migrations)


def sqlite_database(path: Path) -> Database:
    """The embedded database: one file in the state directory, 0600, write-ahead log."""
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
    return Database(connect, dialect, "sqlite")


def postgres_database(conninfo: str) -> Database:
    """PostgreSQL through psycopg 3; `conninfo` names the server, TLS mode and CA."""
    import psycopg

    def connect():
        return psycopg.connect(conninfo, connect_timeout=5)

    dialect = _Dialect(
        "%s",
        {"blob": "BYTEA", "real": "DOUBLE PRECISION"},
        (psycopg.OperationalError,),
        "SELECT pg_advisory_xact_lock(7214)",  # any constant: Confide's writer lock
    )
    return Database(connect, dialect, "postgres")


def open_database(config: RecordsConfig, state_dir: Path) -> Database:
    """The configured database (not yet migrated: each store migrates its own tables)."""
    if config.store == "postgres":
        return postgres_database(_conninfo(config))
    return sqlite_database(state_dir / "records" / "records.db")


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
