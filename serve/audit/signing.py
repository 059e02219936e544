"""The checkpoint signing key: Ed25519, its private half sealed by the KMS.

The sealed key lives in the database beside the log. Whoever can write the database
cannot sign (the KMS opens the key), nor swap in a key of their own (a blob the KMS did
not seal does not open), so verification takes the public key from the opened private
key, never from the table alone.
"""

from __future__ import annotations

import time
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from serve.audit.chain import Checkpoint
from serve.audit.store import AuditStore
from serve.core.envelope import Binding, EnvelopeError
from serve.core.sealing import Sealer

# "_audit" is not a valid tenant name, so this is never a tenant's key-encryption key.
_BINDING = Binding("_audit", "checkpoint-signing-key", "audit-checkpoint-key")


class SigningKeyUnreadable(Exception):
    """A signing key in the database that the KMS does not open."""


def _public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


class CheckpointSigner:
    def __init__(self, store: AuditStore, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer
        self._key: tuple[str, Ed25519PrivateKey] | None = None

    def _create(self) -> tuple[str, str, bytes]:
        key = Ed25519PrivateKey.generate()
        raw = key.private_bytes_raw()
        return f"audit-{uuid.uuid4().hex[:12]}", _public_hex(key), self._sealer.seal(raw, _BINDING)

    def _open(self, key_id: str, public_hex: str, sealed: bytes) -> Ed25519PrivateKey:
        try:
            key = Ed25519PrivateKey.from_private_bytes(self._sealer.open(sealed, _BINDING))
        except (EnvelopeError, ValueError) as exc:
            raise SigningKeyUnreadable(f"audit signing key {key_id} does not open") from exc
        if _public_hex(key) != public_hex:
            raise SigningKeyUnreadable(f"audit signing key {key_id} does not match its record")
        return key

    def sign(self, seq: int, head_hash: str) -> Checkpoint:
        if self._key is None:
            key_id, public_hex, sealed = self._store.ensure_signing_key(self._create)
            self._key = key_id, self._open(key_id, public_hex, sealed)
        key_id, key = self._key
        unsigned = Checkpoint(seq, head_hash, time.time(), key_id, "")
        signature = key.sign(unsigned.signed_bytes()).hex()
        return Checkpoint(seq, head_hash, unsigned.at, key_id, signature)

    def verifier(self):
        """A function Checkpoint -> bool, over every signing key the KMS opens."""
        public = {}
        for key_id, (public_hex, sealed) in self._store.signing_keys().items():
            public[key_id] = self._open(key_id, public_hex, sealed).public_key()

        def verify(checkpoint: Checkpoint) -> bool:
            key = public.get(checkpoint.key_id)
            if key is None:
                return False
            try:
                key.verify(bytes.fromhex(checkpoint.signature), checkpoint.signed_bytes())
            except (InvalidSignature, ValueError):
                return False
            return True

        return verify
