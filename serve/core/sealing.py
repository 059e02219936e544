"""Sealing: envelope encryption with KEKs from a KeyProvider, the one way conversation
payloads leave the process that produced them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from serve.core.data_keys import DataKeyCache
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
        data_keys: DataKeyCache | None = None,
    ) -> None:
        self._provider = provider
        self._clock = clock
        self._data_keys = data_keys

    def seal(self, plaintext: bytes, binding: Binding, at: dt.datetime | None = None) -> bytes:
        """Seal under the tenant's KEK for the month of `at` (default: now). A call's
        records all use the month the call began, so one key shreds all of them. With a
        data-key cache, a binding's data key is wrapped once and reused (a new nonce
        each time); the blob format is the same."""
        kek_id = period_kek_id(binding.tenant, at or self._clock())
        cached = self._data_keys.for_sealing(kek_id, binding) if self._data_keys else None
        if cached is not None:
            version, wrapped, data_key = cached
        else:
            data_key = new_data_key()
            version, wrapped = self._provider.wrap(kek_id, data_key, binding)
            if self._data_keys is not None:
                self._data_keys.sealed(kek_id, binding, version, wrapped, data_key)
        header = Header(self._provider.name, kek_id, version, wrapped, new_nonce())
        return seal_with_key(plaintext, data_key, header, binding)

    def forget(self, tenant: str, call_id: str) -> None:
        """A call ended: drop its cached data keys now."""
        if self._data_keys is not None:
            self._data_keys.forget(tenant, call_id)

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
        cache = self._data_keys
        located = (header.kek_id, header.kek_version, header.wrapped_key, binding)
        data_key = cache.for_opening(*located) if cache is not None else None
        if data_key is None:
            data_key = self._provider.unwrap(*located)
            if cache is not None:
                cache.opened(*located, data_key)
        return header, body, data_key
