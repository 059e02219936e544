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
    tls: tuple[bytes, bytes] | None = None
    """(certificate, key) PEM: then the server accepts TLS connections only, as RDS
    with rds.force_ssl does."""

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
        if self.tls is not None:
            self._require_tls(*self.tls)

    def _require_tls(self, cert: bytes, key: bytes) -> None:
        (self.data_dir / "server.crt").write_bytes(cert)
        (self.data_dir / "server.key").write_bytes(key)
        os.chmod(self.data_dir / "server.key", 0o600)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
        )
        if os.geteuid() == 0:
            postgres = pwd.getpwnam("postgres")
            for name in ("server.crt", "server.key", "postgresql.conf", "pg_hba.conf"):
                os.chown(self.data_dir / name, postgres.pw_uid, postgres.pw_gid)

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
        """For the tests' own administration: over the Unix socket (no TLS needed)."""
        return f"host={self.root} port={self.port} user={self.user} dbname={database}"

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


def start_server(tls: tuple[bytes, bytes] | None = None) -> PostgresServer:
    """A fresh server in its own directory under /tmp (pytest's temporary directories
    are root's alone, and the server runs as `postgres`)."""
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="confide-postgres-"))
    server = PostgresServer(root, _free_port(), tls=tls)
    server.init()
    server.start()
    return server


def records_settings(request, backend: str) -> dict:
    """`records` config for a test parametrised over "sqlite" and "postgres": the
    PostgreSQL side gets a fresh database on the session's server."""
    if backend != "postgres":
        return {"store": "sqlite"}
    server = request.getfixturevalue("postgres")
    return {
        "store": "postgres",
        "postgres_host": "127.0.0.1",
        "postgres_port": server.port,
        "postgres_database": server.new_database(),
        "postgres_sslmode": "disable",
    }
