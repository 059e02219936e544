"""The recorder's local spool: record writes kept on disk while the store is down.

A spooled write holds exactly what reached the recorder: ciphertext and the plaintext
metadata. Files are 0600 in a 0700 directory, named so that they sort in arrival order,
and written atomically (a temporary file, then a rename). The spool is bounded; past its
bound a write is refused (SpoolFull), never silently dropped.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from serve.audit.events import Actor, AuditEvent
from serve.core.secret_files import write_secret
from serve.records.errors import SpoolFull
from serve.records.model import CallRow, Entry, RecordWrite


class Spool:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self._directory = directory
        self._max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    def files(self) -> list[Path]:
        """Spooled writes, oldest first."""
        return sorted(self._directory.glob("*.json"))

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for path in self.files())

    def add(self, write: RecordWrite) -> None:
        data = json.dumps(_encode(write)).encode()
        if self.size + len(data) > self._max_bytes:
            raise SpoolFull(f"the record spool is full ({self._max_bytes} bytes)")
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        staged = self._directory / f".{name}.tmp"
        write_secret(staged, data)
        os.replace(staged, self._directory / name)

    @staticmethod
    def read(path: Path) -> RecordWrite:
        return _decode(json.loads(path.read_bytes()))


def _encode(write: RecordWrite) -> dict:
    return {
        "write_id": write.write_id,
        "entries": [
            {**asdict(e), "sealed": base64.b64encode(e.sealed).decode()} for e in write.entries
        ],
        "call": None
        if write.call is None
        else {**asdict(write.call), "details": base64.b64encode(write.call.details).decode()},
        "audit": [asdict(event) for event in write.audit],
    }


def _decode(data: dict) -> RecordWrite:
    entries = tuple(
        Entry(**{**e, "sealed": base64.b64decode(e["sealed"])}) for e in data["entries"]
    )
    call = data["call"]
    if call is not None:
        call = CallRow(**{**call, "details": base64.b64decode(call["details"])})
    audit = tuple(
        AuditEvent(**{**event, "actor": Actor(**event["actor"])}) for event in data.get("audit", ())
    )
    return RecordWrite(entries, call, data["write_id"], audit)
