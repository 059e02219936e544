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
from serve.records.model import RECORD_PURPOSE, REPLY, SEGMENT, CallRow, Transcript
from serve.records.store import RecordStore


def period_of(started_at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(started_at, dt.UTC)


class RecordCodec:
    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def seal(self, tenant: str, call_key: str, started_at: float, content: dict) -> bytes:
        data = json.dumps(content, separators=(",", ":")).encode()
        return self._sealer.seal(data, _binding(tenant, call_key), at=period_of(started_at))

    def open(self, tenant: str, call_key: str, blob: bytes) -> dict:
        """The record's content; UnreadableRecord if it does not open (corrupt, foreign,
        or its key was destroyed)."""
        try:
            return json.loads(self._sealer.open(blob, _binding(tenant, call_key)))
        except (EnvelopeError, ValueError) as exc:
            raise UnreadableRecord(f"record of {call_key} does not open") from exc


def _binding(tenant: str, call_key: str) -> Binding:
    return Binding(tenant, call_key, RECORD_PURPOSE)


class RecordReader:
    """Reads records back: rows in the clear, transcripts opened through the KMS."""

    def __init__(self, store: RecordStore, codec: RecordCodec, call_key) -> None:
        self._store = store
        self._codec = codec
        self._call_key = call_key  # call id -> its HMAC, as the gateway stored it

    def call_key(self, call_id: str) -> str:
        return self._call_key(call_id)

    def calls(self, tenant: str | None, since: float | None) -> list[tuple[CallRow, str | None]]:
        """Rows with their call ids, where the sealed details still open."""
        listed = []
        for row in self._store.calls(tenant, since):
            call_id = None
            with contextlib.suppress(UnreadableRecord):  # listed by its key instead
                if row.details:
                    call_id = self._codec.open(row.tenant, row.call_key, row.details)["call_id"]
            listed.append((row, call_id))
        return listed

    def set_hold(self, tenant: str, call_id: str, hold: bool) -> None:
        self._store.set_hold(tenant, self._call_key(call_id), hold)

    def transcript(self, tenant: str, call_id: str) -> Transcript:
        row = self._store.call(tenant, self._call_key(call_id))
        if row.text_purged_at is not None:
            raise UnknownCall(f"the text of call {row.call_key} was purged by retention")
        return self.open(row)

    def open(self, row: CallRow) -> Transcript:
        """Every entry of the call that opens; the others are counted as unreadable."""
        unreadable = 0
        try:
            details = self._codec.open(row.tenant, row.call_key, row.details)
        except UnreadableRecord:
            details, unreadable = {}, 1
        segments, replies = [], []
        for entry in self._store.entries(row.tenant, row.call_key):
            try:
                content = self._codec.open(row.tenant, row.call_key, entry.sealed)
            except UnreadableRecord:
                unreadable += 1
                continue
            if entry.kind == SEGMENT:
                segments.append(content)
            elif entry.kind == REPLY:
                replies.append(content)
        segments.sort(key=lambda s: (s["start_seconds"], s["channel"]))
        return Transcript(row, details, segments, replies, unreadable)
