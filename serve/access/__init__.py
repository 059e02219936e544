"""Access to records: identities and roles from client certificates, one method-to-role
table checked for every RPC, and the RecordsService that reads, exports, holds and
erases stored calls, every access audited.

    identity.py        tenant and role from the SPIFFE ID of a verified certificate
    roles.py           the roles, and the one table of who may call what
    policy.py          the server interceptor that enforces the table (and audits refusals)
    records_service.py the RecordsService servicer
    page_token.py      signed ListCalls page tokens

Errors are Confide's (serve/core/errors.py): PERMISSION_DENIED for a role or tenant
refused, NOT_FOUND for a call the caller's tenant does not have (whether another tenant
has it is never said), INVALID_ARGUMENT for a missing purpose or a foreign page token,
UNAVAILABLE when the audit log cannot record (fail closed).
"""

from __future__ import annotations

from serve.access.identity import Identity, peer_identity, spiffe_id
from serve.access.page_token import PageTokens
from serve.access.policy import AccessInterceptor, AccessPolicy
from serve.access.records_service import RecordsAccess, RecordsService
from serve.access.roles import PERMISSIONS, PLATFORM, ROLES
from serve.audit import open_audit_log
from serve.core.config import ConfideConfig
from serve.core.telemetry_key import telemetry_key
from serve.records import open_reader

__all__ = [
    "PERMISSIONS",
    "PLATFORM",
    "ROLES",
    "AccessInterceptor",
    "AccessPolicy",
    "Identity",
    "RecordsAccess",
    "RecordsService",
    "open_records_access",
    "peer_identity",
    "spiffe_id",
]


def open_records_access(config: ConfideConfig) -> RecordsAccess:
    """The store, the audit log in the same database, and the page-token key. Blocks
    (database, KMS): async callers use a worker thread."""
    reader = open_reader(config)
    return RecordsAccess(
        reader,
        open_audit_log(config, reader.database),
        PageTokens(telemetry_key(config.keys, config.state_path)),
    )
