"""ListCalls page tokens: where the last page ended, signed for one tenant and range.

A token is opaque to clients; its HMAC makes a tampered token, or one issued to another
tenant or for another range, an INVALID_ARGUMENT instead of a way to walk someone
else's calls (the tenant is checked against the certificate either way).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from serve.core.errors import InvalidArgument


class PageTokens:
    def __init__(self, key: bytes) -> None:
        # Its own key, derived from the deployment's HMAC key, so a token's MAC is
        # never also a valid identifier hash.
        self._key = hmac.new(key, b"confide/list-calls-page-token", hashlib.sha256).digest()

    def issue(self, tenant: str, span: tuple[float, float], after: tuple[float, str]) -> str:
        body = json.dumps([tenant, list(span), list(after)], separators=(",", ":")).encode()
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac + body).decode().rstrip("=")

    def read(self, token: str, tenant: str, span: tuple[float, float]) -> tuple[float, str]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            mac, body = raw[:32], raw[32:]
            valid = hmac.compare_digest(mac, hmac.new(self._key, body, hashlib.sha256).digest())
            owner, token_span, after = json.loads(body) if valid else (None, None, None)
        except (ValueError, TypeError):
            valid = False
        if not valid or owner != tenant or tuple(token_span) != span:
            raise InvalidArgument("page_token is not one this tenant was given for this range")
        return float(after[0]), str(after[1])
