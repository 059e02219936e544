"""Who is calling: the tenant and role named by the client certificate mTLS verified.

The gateway requires a client certificate signed by the configured CA, so by the time
a handler runs the peer is authenticated; here its identity is read. The scheme is
SPIFFE's: a URI SAN `spiffe://<trust domain>/tenant/<tenant>/role/<role>`; without the
role segment (the certificates of the call path before roles existed) the role is
`platform`. Without such a SAN the certificate's CN names the tenant, as `platform`.
The fingerprint (SHA-256 of the certificate) names the actor in the audit log.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from serve.access.roles import PLATFORM, ROLES
from serve.core.errors import PermissionDenied, Unauthenticated

_SPIFFE_PATH = re.compile(r"^/tenant/(?P<tenant>[^/]+)(?:/role/(?P<role>[^/]+))?$")


@dataclass(frozen=True)
class Identity:
    tenant: str
    role: str
    fingerprint: str
    """SHA-256 of the client certificate (DER), hex."""


def spiffe_id(trust_domain: str, tenant: str, role: str = PLATFORM) -> str:
    """The URI SAN a client certificate carries for `tenant` acting as `role`."""
    base = f"spiffe://{trust_domain}/tenant/{tenant}"
    return base if role == PLATFORM else f"{base}/role/{role}"


def certificate_fingerprint(context: grpc.aio.ServicerContext) -> str:
    """The peer certificate's SHA-256, whether or not it names anyone."""
    return _fingerprint(context.auth_context())


def _fingerprint(auth: dict) -> str:
    pem = next(iter(auth.get("x509_pem_cert", ())), None)
    if pem is None:
        return ""
    der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def peer_identity(context: grpc.aio.ServicerContext, trust_domain: str) -> Identity:
    """The peer's tenant and role; Unauthenticated if the certificate names nobody,
    PermissionDenied if it names a role Confide does not have."""
    auth = context.auth_context()
    prefix = f"spiffe://{trust_domain}"
    for key in ("peer_spiffe_id", "x509_subject_alternative_name"):
        for value in auth.get(key, ()):
            text = value.decode("utf-8", "replace")
            match = _SPIFFE_PATH.match(text[len(prefix) :]) if text.startswith(prefix) else None
            if match is None:
                continue
            role = match["role"] or PLATFORM
            if role not in ROLES:
                raise PermissionDenied(f"role {role!r} does not exist")
            return Identity(match["tenant"], role, _fingerprint(auth))
    common_names = [name for name in auth.get("x509_common_name", ()) if name]
    if common_names:  # an empty subject names nobody
        return Identity(common_names[0].decode("utf-8", "replace"), PLATFORM, _fingerprint(auth))
    raise Unauthenticated("no verified client certificate")
