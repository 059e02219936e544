"""Sealing and opening records: the one place a stored transcript is encrypted or read.

A record is JSON sealed with the tenant's key-encryption key for the month the call
began (purpose "transcript", bound to the tenant and the call's HMAC'd key), so a
tenant-month's key shreds every record of those calls at once. The gateway seals; the
recorder never holds a key; `RecordReader` (the CLI, and the access issue's roles after
it) opens.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json

from serve.core.envelope import Binding, EnvelopeError
from serve.core.sealing import Sealer
from serve.records.errors import UnknownCall, UnreadableRecord
from serve.records.model import RAW_SEGMENT, REPLY, SEGMENT, CallRow, Transcript, purpose_of
from serve.records.store import RecordStore


def period_of(started_at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(started_at, dt.UTC)


class RecordCodec:
    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def seal(
        self, tenant: str, call_key: str, started_at: float, content: dict, kind: str | None = None
    ) -> bytes:
        """Seal a call's details (kind None) or one entry, under the kind's purpose."""
        data = json.dumps(content, separators=(",", ":")).encode()
        binding = _binding(tenant, call_key, kind)
        return self._sealer.seal(data, binding, at=period_of(started_at))

    def open(self, tenant: str, call_key: str, blob: bytes, kind: str | None = None) -> dict:
        """The record's content; UnreadableRecord if it does not open (corrupt, foreign,
        or its key was destroyed)."""
        try:
            return json.loads(self._sealer.open(blob, _binding(tenant, call_key, kind)))
        except (EnvelopeError, ValueError) as exc:
            raise UnreadableRecord(f"record of {call_key} does not open") from exc


def _binding(tenant: str, call_key: str, kind: str | None) -> Binding:
    return Binding(tenant, call_key, purpose_of(kind))


class RecordReader:
    """Reads records back: rows in the clear, transcripts opened through the KMS."""

    def __init__(self, store: RecordStore, codec: RecordCodec, call_key) -> None:
        self._store = store
        self._codec = codec
        self._call_key = call_key  # call id -> its HMAC, as the gateway stored it

    @property
    def database(self):
        """The records database (the audit log keeps its tables there too)."""
        return self._store.database

    def call_key(self, call_id: str) -> str:
        return self._call_key(call_id)

    def calls(self, tenant: str | None, since: float | None) -> list[tuple[CallRow, str | None]]:
        """Rows with their call ids, where the sealed details still open."""
        return [(row, self._call_id(row)) for row in self._store.calls(tenant, since)]

    def set_hold(self, tenant: str, call_id: str, hold: bool) -> None:
        self._store.set_hold(tenant, self._call_key(call_id), hold)

    # By call key, for the RecordsService (serve/access), which audits each use.

    def row(self, tenant: str, call_key: str) -> CallRow:
        return self._store.call(tenant, call_key)

    def rows(self, tenant: str, start: float, end: float) -> list[CallRow]:
        return [row for row in self._store.calls(tenant, start) if row.started_at < end]

    def page(
        self, tenant: str, span: tuple[float, float], after: tuple[float, str] | None, limit: int
    ) -> list[tuple[CallRow, str | None]]:
        """Rows of calls that began in `span` after `after`, with their call ids."""
        return [(row, self._call_id(row)) for row in self._store.page(tenant, *span, after, limit)]

    def hold(self, tenant: str, call_key: str, hold: bool) -> None:
        self._store.set_hold(tenant, call_key, hold)

    def erase(self, tenant: str, call_key: str) -> None:
        self._store.erase(tenant, call_key)

    def _call_id(self, row: CallRow) -> str | None:
        """The call id from the row's sealed details; None where they do not open."""
        with contextlib.suppress(UnreadableRecord):
            if row.details:
                return self._codec.open(row.tenant, row.call_key, row.details)["call_id"]
        return None

    def transcript(self, tenant: str, call_id: str, raw: bool = False) -> Transcript:
        row = self._store.call(tenant, self._call_key(call_id))
        if row.text_purged_at is not None:
            raise UnknownCall(f"the text of call {row.call_key} was purged by retention")
        return self.open(row, raw)

    def open(self, row: CallRow, raw: bool = False) -> Transcript:
        """Every entry of the call that opens; the others are counted as unreadable.
        Raw segments are opened only when `raw` is asked for."""
        unreadable = 0
        try:
            details = self._codec.open(row.tenant, row.call_key, row.details)
        except UnreadableRecord:
            details, unreadable = {}, 1
        opened: dict[str, list[dict]] = {SEGMENT: [], REPLY: [], RAW_SEGMENT: []}
        for entry in self._store.entries(row.tenant, row.call_key):
            if entry.kind not in opened or (entry.kind == RAW_SEGMENT and not raw):
                continue
            try:
                content = self._codec.open(row.tenant, row.call_key, entry.sealed, entry.kind)
            except UnreadableRecord:
                unreadable += 1
                continue
            opened[entry.kind].append(content)
        for segments in (opened[SEGMENT], opened[RAW_SEGMENT]):
            segments.sort(key=lambda s: (s["start_seconds"], s["channel"]))
        return Transcript(
            row, details, opened[SEGMENT], opened[REPLY], unreadable, opened[RAW_SEGMENT]
        )
