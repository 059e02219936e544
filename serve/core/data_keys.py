"""Data keys reused within one call and purpose, so a turn does not cost a KMS call.

Sealing every payload with a fresh data key costs one KMS wrap per blob and one unwrap
per reader: with AWS KMS, about ten calls per turn and a few per reply token. A data
key is bound to one (tenant, call, purpose), the envelope's binding, so reusing it for
that binding's later blobs changes nothing a reader sees: each blob still carries the
wrapped key and its own nonce, and opens alone. The cache is bounded in entries and in
age (a disabled KEK stops new calls at once and cached calls within the age bound),
and an entry's key bytes are overwritten when it goes, as far as Python allows.
AES-GCM with random 96-bit nonces stays far inside its bound at `max_uses` per key.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from serve.core.config import KeysConfig
from serve.core.envelope import Binding


@dataclass
class _Entry:
    version: int
    wrapped: bytes
    key: bytearray
    created: float
    uses: int = 0

    def wipe(self) -> None:
        for index in range(len(self.key)):
            self.key[index] = 0


class DataKeyCache:
    def __init__(
        self,
        max_entries: int = 4096,
        max_age_seconds: float = 60.0,
        max_uses: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._max_entries = max_entries
        self._max_age = max_age_seconds
        self._max_uses = max_uses
        self._clock = clock
        self._sealing: OrderedDict[tuple, _Entry] = OrderedDict()
        self._opening: OrderedDict[tuple, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def _fresh(self, entry: _Entry) -> bool:
        return self._clock() - entry.created < self._max_age and entry.uses < self._max_uses

    def _get(self, table: OrderedDict, key: tuple) -> _Entry | None:
        entry = table.get(key)
        if entry is None:
            return None
        if not self._fresh(entry):
            table.pop(key).wipe()
            return None
        entry.uses += 1
        table.move_to_end(key)
        return entry

    def _put(self, table: OrderedDict, key: tuple, entry: _Entry) -> None:
        old = table.pop(key, None)
        if old is not None:
            old.wipe()
        table[key] = entry
        while len(table) > self._max_entries:
            table.popitem(last=False)[1].wipe()

    def for_sealing(self, kek_id: str, binding: Binding) -> tuple[int, bytes, bytes] | None:
        with self._lock:
            entry = self._get(self._sealing, (kek_id, binding))
            return None if entry is None else (entry.version, entry.wrapped, bytes(entry.key))

    def sealed(self, kek_id: str, binding: Binding, version: int, wrapped: bytes, key: bytes):
        with self._lock:
            entry = _Entry(version, wrapped, bytearray(key), self._clock(), 1)
            self._put(self._sealing, (kek_id, binding), entry)

    def for_opening(self, kek_id: str, version: int, wrapped: bytes, binding: Binding):
        with self._lock:
            entry = self._get(self._opening, (kek_id, version, wrapped, binding))
            return None if entry is None else bytes(entry.key)

    def opened(self, kek_id: str, version: int, wrapped: bytes, binding: Binding, key: bytes):
        with self._lock:
            entry = _Entry(version, wrapped, bytearray(key), self._clock(), 1)
            self._put(self._opening, (kek_id, version, wrapped, binding), entry)

    def forget(self, tenant: str, call_id: str) -> None:
        """A call ended: its keys go (and are overwritten) now, not at their age."""
        with self._lock:
            for table in (self._sealing, self._opening):
                ended = [k for k in table if (k[-1].tenant, k[-1].call_id) == (tenant, call_id)]
                for key in ended:
                    table.pop(key).wipe()


def data_key_cache(keys: KeysConfig) -> DataKeyCache | None:
    """The configured cache; None when keys.data_key_cache_seconds is 0."""
    if keys.data_key_cache_seconds <= 0:
        return None
    return DataKeyCache(keys.data_key_cache_entries, keys.data_key_cache_seconds)
