"""What the audit log records: who did what to which call, why, and how it ended.

Nothing here carries transcript text: a call is named by its keyed HMAC (the same
`call_key` that traces, metrics and the record store use), an actor by its client
certificate's SHA-256 fingerprint and the tenant and role it names.
"""

from __future__ import annotations

import getpass
import time
import uuid
from dataclasses import dataclass, field
from typing import Literal

# Actions. Data plane: calls. Records: reads, decryption, exports, erasure, holds,
# retention. Keys: the KMS operations on tenant-month keys. Access: refusals.
CALL_START = "call.start"
CALL_END = "call.end"
RECORDS_LIST = "records.list"
RECORDS_STATS = "records.stats"
RECORD_READ = "record.read"
RECORD_READ_RAW = "record.read_raw"
"""A decryption of raw text (stored under purpose transcript.raw)."""
RECORD_DELETE = "record.delete"
RECORD_PURGE = "record.purge"
"""Retention deleted a call's text."""
HOLD_SET = "hold.set"
HOLD_RELEASE = "hold.release"
RETENTION_CHANGE = "retention.change"
TRAINING_EXPORT = "training.export"
AUDIT_READ = "audit.read"
KEY_ROTATE = "key.rotate"
KEY_DISABLE = "key.disable"
KEY_ENABLE = "key.enable"
KEY_DESTROY = "key.destroy"
KEY_REWRAP = "key.rewrap"
ACCESS_DENIED = "access.denied"

Outcome = Literal["ok", "denied", "not_found", "invalid", "failed"]


@dataclass(frozen=True)
class Actor:
    """Who acted: a client certificate (its fingerprint, tenant and role), an operator
    on a cluster host, or Confide itself (the purge loop)."""

    fingerprint: str
    tenant: str
    role: str

    @classmethod
    def operator(cls) -> Actor:
        """Someone running `confide` on a host with the state directory (and the KMS)."""
        return cls(f"os-user:{getpass.getuser()}", "", "operator")

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls(f"confide:{component}", "", "system")


@dataclass(frozen=True)
class AuditEvent:
    actor: Actor
    action: str
    tenant: str
    """The tenant whose data the action concerns ("" for a cluster-wide one)."""
    target: str = ""
    """A call's HMAC'd key, a key id, or empty."""
    purpose: str = ""
    """Why, in the actor's words: required to read raw text."""
    outcome: Outcome = "ok"
    error_id: str = ""
    """The error id the client, the log line and the span share."""
    detail: dict[str, int | bool | str] = field(default_factory=dict)
    """Counts and flags only (calls exported, segments read, raw or not)."""
    at: float = field(default_factory=time.time)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Unique: an event written twice (a retried or re-flushed write) is stored once."""
