"""Who is calling: the tenant named by the client certificate that mTLS verified.

The gateway requires a client certificate signed by the configured CA, so by the time a
handler runs the peer is authenticated; here we only read its identity. A SPIFFE URI
SAN in our trust domain names the tenant; without one, the certificate's CN does.
"""

from __future__ import annotations

import grpc

from serve.core.errors import PermissionDenied, Unauthenticated

_SPIFFE_PREFIX = "spiffe://"


def peer_identity(context: grpc.aio.ServicerContext, trust_domain: str) -> str:
    """The tenant name from the peer certificate; Unauthenticated if there is none."""
    auth = context.auth_context()
    prefix = f"{_SPIFFE_PREFIX}{trust_domain}/tenant/"
    for key in ("peer_spiffe_id", "x509_subject_alternative_name"):
        for value in auth.get(key, ()):
            text = value.decode("utf-8", "replace")
            if text.startswith(prefix):
                return text[len(prefix) :]
    common_names = [name for name in auth.get("x509_common_name", ()) if name]
    if common_names:  # an empty subject names nobody
        return common_names[0].decode("utf-8", "replace")
    raise Unauthenticated("no verified client certificate")


def authorize(context: grpc.aio.ServicerContext, trust_domain: str, tenants: frozenset[str]) -> str:
    tenant = peer_identity(context, trust_domain)
    if tenant not in tenants:
        # The name comes from a CA-verified certificate, so echoing it leaks nothing.
        raise PermissionDenied(f"tenant {tenant!r} is not allowed on this gateway")
    return tenant
