"""The hash chain and its signed checkpoints: the audit log's tamper evidence.

Each record carries the SHA-256 of the record before it and its own hash over a
canonical encoding of every field, so editing, inserting, deleting or reordering a
record breaks the chain where it happened. Someone who can write the database could
recompute the whole chain, so a checkpoint signs (seq, hash) with an Ed25519 key that
only the KMS opens (serve/audit/signing.py), and checkpoints are also written outside
the database (serve/audit/anchor.py), which catches a log cut back to an earlier
checkpoint. Written by hand: hash chains over SQL rows are a few lines, and no
well-kept library does this for both SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from serve.audit.events import AuditEvent

GENESIS = "0" * 64
"""The previous hash of the first record."""


@dataclass(frozen=True)
class AuditRecord:
    """One stored audit record: the event's fields flattened, its place, its hashes."""

    seq: int
    event_id: str
    at: float
    actor_fingerprint: str
    actor_tenant: str
    actor_role: str
    action: str
    tenant: str
    target: str
    purpose: str
    outcome: str
    error_id: str
    detail: str
    """Canonical JSON, stored as text, so the hash covers exactly what is stored."""
    prev_hash: str
    hash: str

    def expected_hash(self) -> str:
        fields = asdict(self)
        del fields["hash"]
        return _digest(fields)

    def to_dict(self) -> dict:
        return {**asdict(self), "detail": json.loads(self.detail)}


def chain_record(event: AuditEvent, seq: int, prev_hash: str) -> AuditRecord:
    fields = {
        "seq": seq,
        "event_id": event.event_id,
        "at": event.at,
        "actor_fingerprint": event.actor.fingerprint,
        "actor_tenant": event.actor.tenant,
        "actor_role": event.actor.role,
        "action": event.action,
        "tenant": event.tenant,
        "target": event.target,
        "purpose": event.purpose,
        "outcome": event.outcome,
        "error_id": event.error_id,
        "detail": canonical(event.detail),
        "prev_hash": prev_hash,
    }
    return AuditRecord(**fields, hash=_digest(fields))


@dataclass(frozen=True)
class Checkpoint:
    """A signature over the chain's head at `seq`."""

    seq: int
    hash: str
    at: float
    key_id: str
    signature: str
    """Ed25519 over `signed_bytes()`, hex."""

    def signed_bytes(self) -> bytes:
        return canonical(
            {"seq": self.seq, "hash": self.hash, "at": self.at, "key_id": self.key_id}
        ).encode()

    def to_json(self) -> str:
        return canonical(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> Checkpoint:
        return cls(**json.loads(line))


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _digest(fields: dict) -> str:
    return hashlib.sha256(canonical(fields).encode()).hexdigest()


@dataclass
class Verification:
    records: int = 0
    checkpoints: int = 0
    """Distinct checkpoints checked (in the database and outside it)."""
    unsigned_tail: int = 0
    """Records after the newest checkpoint: covered by the chain, not yet signed."""
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    records: list[AuditRecord], checkpoints: list[Checkpoint], signature_valid
) -> Verification:
    """Check every link, every record's hash, and every checkpoint (signature, and that
    the record it names is there with that hash). Problems name sequence numbers only."""
    result = Verification(records=len(records))
    previous_hash, expected_seq = GENESIS, 1
    by_seq: dict[int, AuditRecord] = {}
    for record in records:
        if record.seq != expected_seq:
            result.problems.append(
                f"record {expected_seq}: missing (the next one stored is {record.seq})"
            )
        if record.prev_hash != previous_hash:
            result.problems.append(
                f"record {record.seq}: does not follow record {record.seq - 1} "
                "(a record was deleted, inserted or moved)"
            )
        if record.expected_hash() != record.hash:
            result.problems.append(f"record {record.seq}: contents do not match its hash")
        by_seq[record.seq] = record
        previous_hash, expected_seq = record.hash, record.seq + 1
    last_seq = records[-1].seq if records else 0
    distinct = {(c.seq, c.signature): c for c in checkpoints}
    newest_signed = 0
    for checkpoint in sorted(distinct.values(), key=lambda c: c.seq):
        result.checkpoints += 1
        if not signature_valid(checkpoint):
            result.problems.append(f"checkpoint at {checkpoint.seq}: signature does not verify")
            continue
        if checkpoint.seq > last_seq:
            result.problems.append(
                f"checkpoint at {checkpoint.seq}: the log ends at {last_seq} (truncated)"
            )
        elif by_seq.get(checkpoint.seq) is None or by_seq[checkpoint.seq].hash != checkpoint.hash:
            result.problems.append(
                f"checkpoint at {checkpoint.seq}: record {checkpoint.seq} is not the one "
                "signed (the chain was rewritten)"
            )
        newest_signed = max(newest_signed, checkpoint.seq)
    result.unsigned_tail = max(last_seq - newest_signed, 0)
    return result
