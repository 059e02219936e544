"""Every environment variable Confide reads, read here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Environment:
    config_file: Path | None
    """CONFIDE_CONFIG: a YAML file that overrides the documented defaults."""
    state_dir: Path | None
    """CONFIDE_STATE_DIR: where keys, certificates and cluster state live (0700)."""
    ray_address: str | None
    """CONFIDE_RAY_ADDRESS: join this Ray cluster instead of starting an embedded one."""
    vault_token: str | None
    """VAULT_TOKEN: the token for the vault-transit key provider (never in a file)."""
    records_password: str | None
    """CONFIDE_RECORDS_PASSWORD: the record store's PostgreSQL password, unless
    records.postgres_password_file names a file."""


def read_environment() -> Environment:
    def path(name: str) -> Path | None:
        value = os.environ.get(name)
        return Path(value).expanduser() if value else None

    return Environment(
        config_file=path("CONFIDE_CONFIG"),
        state_dir=path("CONFIDE_STATE_DIR"),
        ray_address=os.environ.get("CONFIDE_RAY_ADDRESS") or None,
        vault_token=os.environ.get("VAULT_TOKEN") or None,
        records_password=os.environ.get("CONFIDE_RECORDS_PASSWORD") or None,
    )
