"""Who is calling: the tenant and role named by the client certificate mTLS verified.

The gateway requires a client certificate signed by the configured tenant CA, so by the
time a handler runs the peer is authenticated; here its identity is read, by the rules
of SPIFFE X.509-SVIDs as Envoy applies them: the certificate carries exactly one URI
SAN, `spiffe://<trust domain>/tenant/<tenant>` or
`spiffe://<trust domain>/tenant/<tenant>/role/<role>` (no role segment: `platform`, the
role of the call path). Anything else (two URI SANs, another trust domain or path, a
DNS SAN spelled like a SPIFFE ID, no URI SAN) names nobody and is refused
(UNAUTHENTICATED) before any handler runs. Only with
`gateway.common_name_identity` does a certificate without any URI SAN name its tenant
by its CN, as `platform`.

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
from serve.core.config import TENANT_NAME_PATTERN
from serve.core.errors import PermissionDenied, Unauthenticated

_PATH = re.compile(
    r"^/tenant/(?P<tenant>" + TENANT_NAME_PATTERN.strip("^$") + r")(?:/role/(?P<role>[a-z]+))?$"
)


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


def peer_certificate(context: grpc.aio.ServicerContext) -> x509.Certificate | None:
    pem = next(iter(context.auth_context().get("x509_pem_cert", ())), None)
    return None if pem is None else x509.load_pem_x509_certificate(pem)


def certificate_fingerprint(context: grpc.aio.ServicerContext) -> str:
    """The peer certificate's SHA-256, whether or not it names anyone."""
    certificate = peer_certificate(context)
    if certificate is None:
        return ""
    return hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()


def peer_identity(
    context: grpc.aio.ServicerContext, trust_domain: str, common_name_identity: bool = False
) -> Identity:
    """The peer's tenant and role (see `identity_of`)."""
    return identity_of(peer_certificate(context), trust_domain, common_name_identity)


def identity_of(
    certificate: x509.Certificate | None, trust_domain: str, common_name_identity: bool = False
) -> Identity:
    """A verified certificate's tenant and role. Unauthenticated when it names no
    identity by the rules above; PermissionDenied for a role Confide does not have."""
    if certificate is None:
        raise Unauthenticated("no verified client certificate")
    fingerprint = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    except x509.ExtensionNotFound:
        uris = []
    if not uris and common_name_identity:
        common_names = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        tenant = str(common_names[0].value) if common_names else ""
        if re.fullmatch(TENANT_NAME_PATTERN, tenant):
            return Identity(tenant, PLATFORM, fingerprint)
    if len(uris) != 1:
        raise Unauthenticated(
            "the client certificate must carry exactly one URI SAN, "
            f"spiffe://{trust_domain}/tenant/<tenant>[/role/<role>]"
        )
    prefix = f"spiffe://{trust_domain}"
    match = _PATH.match(uris[0][len(prefix) :]) if uris[0].startswith(prefix + "/") else None
    if match is None:
        raise Unauthenticated(
            f"the client certificate's URI SAN is not spiffe://{trust_domain}/tenant/<tenant>"
        )
    role = match["role"] or PLATFORM
    if role not in ROLES:
        raise PermissionDenied(f"role {role!r} does not exist")
    return Identity(match["tenant"], role, fingerprint)
