"""ListCalls page tokens: where the last page ended, signed for one tenant and range.

A token is opaque to clients; its HMAC makes a tampered token, or one issued to another
tenant or for another range, an INVALID_ARGUMENT instead of a way to walk someone
else's calls (the tenant is checked against the certificate either way).
"""

from __future__ import annotations

from serve.core.errors import InvalidArgument
from serve.core.signed_tokens import SignedTokens


class PageTokens:
    def __init__(self, key: bytes) -> None:
        self._tokens = SignedTokens(key, "list-calls-page-token")

    def issue(self, tenant: str, span: tuple[float, float], after: tuple[float, str]) -> str:
        return self._tokens.issue([tenant, list(span), list(after)])

    def read(self, token: str, tenant: str, span: tuple[float, float]) -> tuple[float, str]:
        body = self._tokens.read(token)
        try:
            owner, token_span, after = body  # type: ignore[misc]
            valid = owner == tenant and tuple(token_span) == span
            position = float(after[0]), str(after[1])
        except (TypeError, ValueError, IndexError):
            valid = False
        if not valid:
            raise InvalidArgument("page_token is not one this tenant was given for this range")
        return position
