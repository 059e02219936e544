"""Envelope encryption for conversation payloads: AES-256-GCM with a fresh data key per
blob, the data key wrapped by a key-encryption key (KEK) that a KMS holds.

Binary format, version 1 (all integers big-endian):

    magic      4  b"CFDE"
    version    1  1
    algorithm  1  1 = AES-256-GCM
    provider   1+n  length-prefixed ASCII: "local", "aws-kms", "vault-transit"
    kek_id     2+n  length-prefixed UTF-8, e.g. "tenant/acme/2026-11"
    kek_ver    4
    wrapped    2+n  the data key as the KMS wrapped it
    nonce      12
    body       ...  ciphertext with the 16-byte GCM tag

The associated data is magic, version, algorithm, kek_id and nonce plus the binding
(tenant, the call's keyed HMAC, purpose), so a blob opens only for the call, tenant
and purpose it was sealed for. kek_ver and wrapped are left out of it on purpose:
re-wrapping under a new KEK version rewrites them without touching the body, and a
changed wrapped key simply unwraps to a key that fails the tag. Parsing is strict:
every malformed blob raises MalformedBlob, never anything else.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC = b"CFDE"
VERSION = 1
AES_256_GCM = 1
NONCE_BYTES = 12
TAG_BYTES = 16
DATA_KEY_BYTES = 32
_MAX_FIELD = 4096


class EnvelopeError(Exception):
    """Base of everything that can go wrong opening or sealing a blob."""


class MalformedBlob(EnvelopeError):
    """The bytes are not a well-formed Confide envelope."""


class OpenFailed(EnvelopeError):
    """The blob is well-formed but does not authenticate: tampered, or opened for the
    wrong tenant, call or purpose."""


@dataclass(frozen=True)
class Binding:
    """What a blob belongs to; authenticated, never encrypted, never stored in the blob."""

    tenant: str
    call_id: str  # the call's keyed HMAC where Confide seals (serve/sealed.py, records)
    purpose: str  # e.g. "turn-audio", "transcript", "prompt", "reply"

    def encode(self) -> bytes:
        return b"".join(
            _field(value.encode(), 2) for value in (self.tenant, self.call_id, self.purpose)
        )

    def as_context(self) -> dict[str, str]:
        """The binding as a KMS encryption context."""
        return {"tenant": self.tenant, "call_id": self.call_id, "purpose": self.purpose}


@dataclass(frozen=True)
class Header:
    provider: str
    kek_id: str
    kek_version: int
    wrapped_key: bytes
    nonce: bytes

    def encode(self) -> bytes:
        return b"".join(
            [
                MAGIC,
                bytes([VERSION, AES_256_GCM]),
                _field(self.provider.encode("ascii"), 1),
                _field(self.kek_id.encode(), 2),
                struct.pack(">I", self.kek_version),
                _field(self.wrapped_key, 2),
                self.nonce,
            ]
        )


def _field(value: bytes, width: int) -> bytes:
    limit = (1 << (8 * width)) - 1
    if len(value) > min(limit, _MAX_FIELD):
        raise ValueError("envelope field too long")
    return len(value).to_bytes(width, "big") + value


class _Reader:
    def __init__(self, blob: bytes) -> None:
        self._blob = blob
        self._at = 0

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self._at + size > len(self._blob):
            raise MalformedBlob(f"truncated envelope: {what} is cut short")
        value = self._blob[self._at : self._at + size]
        self._at += size
        return value

    def field(self, width: int, what: str) -> bytes:
        return self.take(int.from_bytes(self.take(width, what), "big"), what)

    def rest(self) -> bytes:
        return self._blob[self._at :]


def parse(blob: bytes) -> tuple[Header, bytes]:
    """(header, body); MalformedBlob if anything is off."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise MalformedBlob("an envelope is bytes")
    blob = bytes(blob)
    reader = _Reader(blob)
    if reader.take(4, "magic") != MAGIC:
        raise MalformedBlob("not a Confide envelope (bad magic)")
    version, algorithm = reader.take(2, "version")
    if version != VERSION:
        raise MalformedBlob(f"unsupported envelope version {version}")
    if algorithm != AES_256_GCM:
        raise MalformedBlob(f"unsupported algorithm id {algorithm}")
    try:
        provider = reader.field(1, "provider").decode("ascii")
        kek_id = reader.field(2, "kek id").decode()
    except UnicodeDecodeError as exc:
        raise MalformedBlob("envelope key names are not text") from exc
    (kek_version,) = struct.unpack(">I", reader.take(4, "kek version"))
    wrapped = reader.field(2, "wrapped key")
    nonce = reader.take(NONCE_BYTES, "nonce")
    if not provider or not kek_id or not wrapped:
        raise MalformedBlob("envelope header has an empty field")
    body = reader.rest()
    if len(body) < TAG_BYTES:
        raise MalformedBlob("truncated envelope: no room for the authentication tag")
    return Header(provider, kek_id, kek_version, wrapped, nonce), body


def associated_data(header: Header, binding: Binding) -> bytes:
    return b"".join(
        [
            MAGIC,
            bytes([VERSION, AES_256_GCM]),
            _field(header.kek_id.encode(), 2),
            header.nonce,
            binding.encode(),
        ]
    )


def seal_with_key(plaintext: bytes, data_key: bytes, header: Header, binding: Binding) -> bytes:
    body = AESGCM(data_key).encrypt(header.nonce, plaintext, associated_data(header, binding))
    return header.encode() + body


def open_with_key(data_key: bytes, header: Header, body: bytes, binding: Binding) -> bytes:
    try:
        return AESGCM(data_key).decrypt(header.nonce, body, associated_data(header, binding))
    except InvalidTag:
        raise OpenFailed(
            "envelope does not authenticate (tampered, or not sealed for this tenant, call "
            "and purpose)"
        ) from None


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=8 * DATA_KEY_BYTES)


def new_nonce() -> bytes:
    return os.urandom(NONCE_BYTES)
