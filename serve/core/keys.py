"""Key-encryption keys (KEKs) held by a KMS, behind one small interface.

One KEK per tenant and period (`tenant/<name>/<YYYY-MM>`), so retention can destroy a
whole period at once (crypto-shredding). Every provider wraps data keys with the
blob's binding as context, keeps numbered versions (rotation: new data uses the newest,
old blobs still open), and fails closed: a KMS that is unreachable, or a key that is
disabled or destroyed, raises a KmsError subclass here, and nothing falls back to
plaintext.

    KmsError
    ├── KmsUnavailable   the KMS cannot be reached
    ├── KeyDisabled      the key exists but may not be used now
    └── KeyDestroyed     the key is gone; its blobs are unrecoverable
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from serve.core.config import KeysConfig
from serve.core.envelope import Binding, EnvelopeError, OpenFailed


class KmsError(EnvelopeError):
    """The KMS would not wrap or unwrap."""


class KmsUnavailable(KmsError):
    pass


class KeyDisabled(KmsError):
    pass


class KeyDestroyed(KmsError):
    pass


def period_kek_id(tenant: str, when: dt.datetime | None = None) -> str:
    """The KEK for a tenant's data sealed in the month of `when` (UTC)."""
    when = when or dt.datetime.now(dt.UTC)
    return f"tenant/{tenant}/{when:%Y-%m}"


class KeyProvider(Protocol):
    name: str

    def wrap(self, kek_id: str, data_key: bytes, binding: Binding) -> tuple[int, bytes]:
        """Wrap under the newest version (creating the KEK on first use): (version, blob)."""
        ...

    def unwrap(self, kek_id: str, version: int, wrapped: bytes, binding: Binding) -> bytes: ...

    def rotate(self, kek_id: str) -> int:
        """Add a new version; return it."""
        ...

    def disable(self, kek_id: str) -> None: ...

    def enable(self, kek_id: str) -> None: ...

    def destroy(self, kek_id: str) -> None:
        """Delete every version: blobs under this KEK can never be opened again."""
        ...


def _wrap_aad(kek_id: str, version: int, binding: Binding) -> bytes:
    return f"{kek_id}\0{version}\0".encode() + binding.encode()


class LocalKeyProvider:
    """KEKs in a 0600 JSON file in the state directory, for development only.

    Several processes (gateway, transcriber, dialogue replicas) share the file: writes
    hold an exclusive lock and replace the file; each use checks its modification time,
    so a key disabled or destroyed elsewhere fails closed here at the next use.
    """

    name = "local"

    def __init__(self, path: Path, production: bool = False) -> None:
        if production:
            raise KmsError(
                "the local key provider keeps keys on this disk and is for development "
                "only; configure aws-kms or vault-transit for production"
            )
        self._path = path
        self._keys: dict = {}
        self._reloading = threading.Lock()
        self._reload()

    # -- storage ------------------------------------------------------------------------

    def _reload(self) -> None:
        # Keys before the stamp: a thread that sees the new stamp must see the new keys
        # (seal and open run in worker threads, several at once).
        stamp = self._mtime()
        self._keys = json.loads(self._path.read_text()) if self._path.exists() else {}
        self._loaded_mtime = stamp

    def _mtime(self) -> tuple[int, int] | None:
        # Every write replaces the file, so the inode changes even within one clock tick.
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def _refresh(self) -> None:
        """Another process may have rotated, disabled or destroyed a key: one stat a use."""
        if self._mtime() != self._loaded_mtime:
            with self._reloading:
                if self._mtime() != self._loaded_mtime:
                    self._reload()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict]:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._path.with_suffix(".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._reload()
            yield self._keys
            staging = self._path.with_suffix(".tmp")
            fd_out = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd_out, "w") as out:
                json.dump(self._keys, out)
            os.replace(staging, self._path)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _entry(self, kek_id: str) -> dict:
        self._refresh()
        entry = self._keys.get(kek_id)
        if entry is None:
            raise KeyDestroyed(f"KEK {kek_id} does not exist (never created, or destroyed)")
        if entry["state"] == "destroyed":
            raise KeyDestroyed(f"KEK {kek_id} was destroyed; its data is unrecoverable")
        if entry["state"] == "disabled":
            raise KeyDisabled(f"KEK {kek_id} is disabled")
        return entry

    @staticmethod
    def _new_version_key() -> str:
        return base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()

    # -- KeyProvider --------------------------------------------------------------------

    def wrap(self, kek_id: str, data_key: bytes, binding: Binding) -> tuple[int, bytes]:
        self._refresh()
        if kek_id not in self._keys:
            with self._locked() as keys:
                keys.setdefault(
                    kek_id, {"state": "enabled", "versions": {"1": self._new_version_key()}}
                )
        entry = self._entry(kek_id)
        version = max(int(v) for v in entry["versions"])
        kek = base64.b64decode(entry["versions"][str(version)])
        nonce = os.urandom(12)
        return version, nonce + AESGCM(kek).encrypt(
            nonce, data_key, _wrap_aad(kek_id, version, binding)
        )

    def unwrap(self, kek_id: str, version: int, wrapped: bytes, binding: Binding) -> bytes:
        entry = self._entry(kek_id)
        encoded = entry["versions"].get(str(version))
        if encoded is None:
            raise KeyDestroyed(f"KEK {kek_id} has no version {version}")
        aad = _wrap_aad(kek_id, version, binding)
        try:
            return AESGCM(base64.b64decode(encoded)).decrypt(wrapped[:12], wrapped[12:], aad)
        except (InvalidTag, ValueError):
            raise OpenFailed("the wrapped data key does not authenticate") from None

    def rotate(self, kek_id: str) -> int:
        with self._locked() as keys:
            entry = keys.get(kek_id)
            if entry is None or entry["state"] == "destroyed":
                raise KeyDestroyed(f"KEK {kek_id} does not exist")
            version = max(int(v) for v in entry["versions"]) + 1
            entry["versions"][str(version)] = self._new_version_key()
        return version

    def _set_state(self, kek_id: str, state: str) -> None:
        with self._locked() as keys:
            if kek_id not in keys:
                raise KeyDestroyed(f"KEK {kek_id} does not exist")
            keys[kek_id]["state"] = state
            if state == "destroyed":
                keys[kek_id]["versions"] = {}

    def disable(self, kek_id: str) -> None:
        self._set_state(kek_id, "disabled")

    def enable(self, kek_id: str) -> None:
        self._set_state(kek_id, "enabled")

    def destroy(self, kek_id: str) -> None:
        self._set_state(kek_id, "destroyed")


def key_provider(keys: KeysConfig, state_dir: Path) -> KeyProvider:
    """The configured KMS provider (its client library is imported only when chosen)."""
    if keys.provider == "aws-kms":
        from serve.core.aws_kms import AwsKmsKeyProvider

        return AwsKmsKeyProvider(
            region=keys.aws_region,
            endpoint_url=keys.aws_endpoint_url,
            alias_prefix=keys.aws_alias_prefix,
        )
    if keys.provider == "vault-transit":
        from serve.core.env import read_environment
        from serve.core.vault_transit import VaultTransitKeyProvider

        return VaultTransitKeyProvider(
            url=keys.vault_addr, token=read_environment().vault_token, mount_point=keys.vault_mount
        )
    return LocalKeyProvider(state_dir / "keys" / "local-kek.json", keys.production)
