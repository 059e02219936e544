"""The audit log: append, checkpoint, read and verify, in one place.

Records, keys, retention and access all write through `AuditLog.record`, which blocks
until the records are stored (async callers use a worker thread) and raises
`AuditUnavailable` when they cannot be: the caller then refuses what it was about to
do (fail closed).
"""

from __future__ import annotations

from serve.audit.anchor import Anchor
from serve.audit.chain import AuditRecord, Checkpoint, Verification, verify_chain
from serve.audit.events import AuditEvent
from serve.audit.signing import CheckpointSigner, SigningKeyUnreadable
from serve.audit.store import AuditStore
from serve.core.database import DatabaseUnavailable


class AuditUnavailable(Exception):
    """The audit log cannot record: whatever was to be audited must not happen."""


class AuditLog:
    def __init__(self, store: AuditStore, signer: CheckpointSigner, anchor: Anchor) -> None:
        self._store = store
        self._signer = signer
        self._anchor = anchor

    def record(self, *events: AuditEvent) -> list[AuditRecord]:
        try:
            return self._store.append(events)
        except DatabaseUnavailable as exc:
            raise AuditUnavailable("the audit log cannot be written") from exc

    def entries(
        self, tenant: str | None = None, after_seq: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        try:
            return self._store.records(tenant, after_seq, limit)
        except DatabaseUnavailable as exc:
            raise AuditUnavailable("the audit log cannot be read") from exc

    def latest(self, tenant: str, action: str) -> AuditRecord | None:
        """The newest record of an action about a tenant."""
        try:
            return self._store.latest(tenant, action)
        except DatabaseUnavailable as exc:
            raise AuditUnavailable("the audit log cannot be read") from exc

    def checkpoint(self) -> Checkpoint | None:
        """Sign the chain's head (unless it is signed already), store the checkpoint in
        the database and outside it. None while the log is empty."""
        seq, head_hash = self._store.head()
        if seq == 0:
            return None
        latest = self._store.checkpoints()
        if latest and latest[-1].seq == seq:
            return latest[-1]
        checkpoint = self._signer.sign(seq, head_hash)
        self._store.put_checkpoint(checkpoint)
        self._anchor.put(checkpoint)
        return checkpoint

    def verify(self) -> Verification:
        records = self._store.records()
        checkpoints = self._store.checkpoints() + self._anchor.checkpoints()
        try:
            signature_valid = self._signer.verifier()
        except SigningKeyUnreadable as error:
            result = Verification(records=len(records))
            result.problems.append(str(error))
            return result
        return verify_chain(records, checkpoints, signature_valid)
