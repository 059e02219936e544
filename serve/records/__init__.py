"""Call records: sealed transcripts and replies, retention, legal holds, crypto-shredding.

The gateway seals what a call said (serve/records/recording.py, through the payload
boundary); the recorder deployment writes it, spooling while the store is down
(recorder.py, spool.py); the store is SQLite or PostgreSQL behind one interface with
versioned migrations (store.py); the purge loop enforces retention and destroys expired
tenant-months' keys (retention.py, purge_loop.py). Reading goes through one place,
`RecordReader` (codec.py), which `open_reader` builds for the CLI.

Errors: see serve/records/errors.py.
"""

from __future__ import annotations

from serve.core.allowlist import IdentifierHasher
from serve.core.config import ConfideConfig
from serve.core.keys import key_provider
from serve.core.sealing import Sealer
from serve.core.telemetry_key import telemetry_key
from serve.records.codec import RecordCodec, RecordReader
from serve.records.errors import (
    RecordsError,
    SpoolFull,
    StoreUnavailable,
    UnknownCall,
    UnreadableRecord,
)
from serve.records.store import RecordStore, open_store

__all__ = [
    "RecordReader",
    "RecordStore",
    "RecordsError",
    "SpoolFull",
    "StoreUnavailable",
    "UnknownCall",
    "UnreadableRecord",
    "open_reader",
    "open_store",
]


def open_reader(config: ConfideConfig) -> RecordReader:
    """Records as an operator reads them: the store, opened through the configured KMS;
    call ids hashed with the key the gateway used."""
    hasher = IdentifierHasher(telemetry_key(config.keys, config.state_path))
    codec = RecordCodec(Sealer(key_provider(config.keys, config.state_path)))
    return RecordReader(open_store(config.records, config.state_path), codec, hasher)
