"""Roles, and the one table of which role may call which method.

Every RPC the gateway serves is looked up here by its full method name before its
handler runs (serve/access/policy.py); a method missing from the table is refused to
everyone. Two permissions sit inside GetCall: `RAW_TEXT` (raw=true) and `ARCHIVE`.
"""

from __future__ import annotations

PLATFORM = "platform"
"""The contact-center platform: streams calls, transcribes, converses."""
SUPERVISOR = "supervisor"
"""Lists calls and reads redacted transcripts."""
ANALYST = "analyst"
"""Aggregates only: counts and durations, no call ids, no text."""
COMPLIANCE = "compliance"
"""Raw text where stored (with a purpose), legal holds, the tenant's audit log."""
ADMIN = "admin"
"""Erasure on request; lists calls to find them; reads no text."""
TRAINER = "trainer"
"""A training pipeline: exports consented, redacted transcripts and nothing else."""

ROLES = (PLATFORM, SUPERVISOR, ANALYST, COMPLIANCE, ADMIN, TRAINER)
EVERY_ROLE = frozenset(ROLES)

_CALLS = "/confide.v1.CallService/"
_RECORDS = "/confide.v1.RecordsService/"
RAW_TEXT = "raw-text"
"""GetCall with raw=true: the raw finals, opened under purpose transcript.raw."""
ARCHIVE = "compliance-archive"
"""GetCall of a compliance-mode tenant's call past its operational window (the text is
kept for compliance_days only for the compliance role)."""

PERMISSIONS: dict[str, frozenset[str]] = {
    _CALLS + "StreamCall": frozenset({PLATFORM}),
    _CALLS + "Transcribe": frozenset({PLATFORM}),
    _CALLS + "Converse": frozenset({PLATFORM}),
    _RECORDS + "ListCalls": frozenset({SUPERVISOR, COMPLIANCE, ADMIN}),
    _RECORDS + "GetCallStats": frozenset({SUPERVISOR, ANALYST, COMPLIANCE, ADMIN}),
    _RECORDS + "GetCall": frozenset({SUPERVISOR, COMPLIANCE}),
    RAW_TEXT: frozenset({COMPLIANCE}),
    ARCHIVE: frozenset({COMPLIANCE}),
    _RECORDS + "DeleteCall": frozenset({ADMIN}),
    _RECORDS + "SetLegalHold": frozenset({COMPLIANCE}),
    _RECORDS + "ExportTrainingData": frozenset({TRAINER}),
    _RECORDS + "GetAuditLog": frozenset({COMPLIANCE}),
    # Health and reflection describe the service, not its data: any verified identity.
    "/grpc.health.v1.Health/Check": EVERY_ROLE,
    "/grpc.health.v1.Health/List": EVERY_ROLE,
    "/grpc.health.v1.Health/Watch": EVERY_ROLE,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": EVERY_ROLE,
}


def allowed(permission: str, role: str) -> bool:
    return role in PERMISSIONS.get(permission, frozenset())
