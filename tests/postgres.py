"""A real PostgreSQL server for the tests: Debian's `postgresql` package, `initdb` and
`pg_ctl` on a temporary directory, listening on loopback only.

PostgreSQL refuses to run as root, so as root (CI, the dev machine) the server runs as
the `postgres` user that the package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed: `make setup` installs it")
    return Path(initdb).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class PostgresServer:
    root: Path
    port: int
    user: str = "confide"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def _run(self, *command: str) -> None:
        as_user = []
        if os.geteuid() == 0:
            as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            os.chown(self.root, postgres.pw_uid, postgres.pw_gid)
        self._run(
            str(_bindir() / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.user,
            "-A",
            "trust",  # loopback only, a throwaway server
            "--no-sync",
        )

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run(
            str(_bindir() / "pg_ctl"),
            "-D",
            str(self.data_dir),
            "-o",
            options,
            "-l",
            str(self.root / "server.log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run(str(_bindir() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database} sslmode=disable"

    def new_database(self) -> str:
        import psycopg

        name = f"records_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {name}")
        return name

    def checkpoint(self) -> None:
        """Flush everything to the data files (for the tests that scan them)."""
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute("CHECKPOINT")


def start_server() -> PostgresServer:
    """A fresh server in its own directory under /tmp (pytest's temporary directories
    are root's alone, and the server runs as `postgres`)."""
    import tempfile

    server = PostgresServer(Path(tempfile.mkdtemp(prefix="confide-postgres-")), _free_port())
    server.init()
    server.start()
    return server
