"""Opaque tokens that the server hands a client and later takes back (a ListCalls page
token, a call's resume token): JSON under an HMAC-SHA256, so a client can carry state
between requests but cannot alter it. Not encrypted: what goes in must be fit for the
client to read (never transcript text)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json


class SignedTokens:
    def __init__(self, key: bytes, purpose: str) -> None:
        # A key of its own per purpose, so a token of one kind is never valid as another
        # and its MAC is never also an identifier hash.
        self._key = hmac.new(key, b"confide/" + purpose.encode(), hashlib.sha256).digest()

    def issue(self, body: object) -> str:
        data = json.dumps(body, separators=(",", ":")).encode()
        mac = hmac.new(self._key, data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac + data).decode().rstrip("=")

    def read(self, token: str) -> object | None:
        """The body, or None when the token is malformed or was not issued here."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (ValueError, TypeError):
            return None
        mac, data = raw[:32], raw[32:]
        if not hmac.compare_digest(mac, hmac.new(self._key, data, hashlib.sha256).digest()):
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None
