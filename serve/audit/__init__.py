"""The audit log: who read, decrypted, exported, deleted, held or purged which call,
when, why, and how it ended, hash-chained and signed so that tampering shows.

    from serve.audit import Actor, AuditEvent, open_audit_log, events
    log = open_audit_log(config)
    log.record(AuditEvent(actor, events.RECORD_READ, tenant, target=call_key))

Records live in the records database (serve/audit/store.py), chained
(serve/audit/chain.py); checkpoints are signed with a KMS-sealed Ed25519 key
(signing.py) and also written outside the database (anchor.py). `confide audit-log
verify` checks all of it.

Errors: AuditUnavailable (nothing could be recorded: refuse the audited action).
"""

from __future__ import annotations

from serve.audit import events
from serve.audit.anchor import Anchor, FileAnchor, S3Anchor
from serve.audit.chain import AuditRecord, Checkpoint, Verification
from serve.audit.events import Actor, AuditEvent
from serve.audit.log import AuditLog, AuditUnavailable
from serve.audit.signing import CheckpointSigner
from serve.audit.store import AuditStore
from serve.core.config import ConfideConfig
from serve.core.database import Database, open_database
from serve.core.keys import key_provider
from serve.core.sealing import Sealer

__all__ = [
    "Actor",
    "AuditEvent",
    "AuditLog",
    "AuditRecord",
    "AuditUnavailable",
    "Checkpoint",
    "Verification",
    "events",
    "open_audit_log",
]


def open_audit_log(config: ConfideConfig, database: Database | None = None) -> AuditLog:
    """The audit log in the records database (the given connection, or a new one),
    its signing key opened through the configured KMS."""
    store = AuditStore(database or open_database(config.records, config.state_path))
    store.migrate()
    signer = CheckpointSigner(store, Sealer(key_provider(config.keys, config.state_path)))
    return AuditLog(store, signer, _anchor(config))


def _anchor(config: ConfideConfig) -> Anchor:
    if config.audit.anchor == "s3":
        import boto3

        client = boto3.client("s3", region_name=config.audit.s3_region)
        return S3Anchor(config.audit.s3_bucket or "", config.audit.s3_prefix, client)
    return FileAnchor(config.state_path / "audit" / "checkpoints.jsonl")
