"""Sealing: envelope encryption with KEKs from a KeyProvider, the one way conversation
payloads leave the process that produced them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from serve.core.envelope import (
    Binding,
    Header,
    MalformedBlob,
    new_data_key,
    new_nonce,
    open_with_key,
    parse,
    seal_with_key,
)
from serve.core.keys import KeyProvider, period_kek_id


class Sealer:
    def __init__(
        self,
        provider: KeyProvider,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._provider = provider
        self._clock = clock

    def seal(self, plaintext: bytes, binding: Binding, at: dt.datetime | None = None) -> bytes:
        """Seal under the tenant's KEK for the month of `at` (default: now). A call's
        records all use the month the call began, so one key shreds all of them."""
        kek_id = period_kek_id(binding.tenant, at or self._clock())
        data_key = new_data_key()
        version, wrapped = self._provider.wrap(kek_id, data_key, binding)
        header = Header(self._provider.name, kek_id, version, wrapped, new_nonce())
        return seal_with_key(plaintext, data_key, header, binding)

    def open(self, blob: bytes, binding: Binding) -> bytes:
        header, body, data_key = self._unwrap(blob, binding)
        return open_with_key(data_key, header, body, binding)

    def rewrap(self, blob: bytes, binding: Binding) -> bytes:
        """The same blob under the KEK's newest version; the body is left untouched."""
        header, body, data_key = self._unwrap(blob, binding)
        open_with_key(data_key, header, body, binding)  # never re-wrap what does not open
        version, wrapped = self._provider.wrap(header.kek_id, data_key, binding)
        new_header = Header(header.provider, header.kek_id, version, wrapped, header.nonce)
        return new_header.encode() + body

    def _unwrap(self, blob: bytes, binding: Binding) -> tuple[Header, bytes, bytes]:
        header, body = parse(blob)
        if header.provider != self._provider.name:
            raise MalformedBlob(
                f"blob was sealed by the {header.provider!r} key provider, "
                f"not {self._provider.name!r}"
            )
        data_key = self._provider.unwrap(
            header.kek_id, header.kek_version, header.wrapped_key, binding
        )
        return header, body, data_key
