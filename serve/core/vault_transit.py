"""HashiCorp Vault Transit as the KEK holder: one derived aes256-gcm96 key per tenant and
period (`confide-tenant-<name>-<YYYY-MM>`), data keys wrapped with the blob's binding as
the key-derivation context, so Vault itself refuses a blob opened for another call.

Vault Transit has no disable switch: a key is switched off by Vault policy, which Vault
answers with 403, and that is KeyDisabled here. hvac is imported only when this
provider is built.
"""

from __future__ import annotations

import base64
from typing import Any

from serve.core.envelope import Binding, OpenFailed
from serve.core.keys import KeyDestroyed, KeyDisabled, KmsError, KmsUnavailable


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class VaultTransitKeyProvider:
    name = "vault-transit"

    def __init__(
        self,
        client: Any = None,
        url: str | None = None,
        token: str | None = None,
        mount_point: str = "transit",
        create_missing: bool = True,
    ) -> None:
        if client is None:
            import hvac

            client = hvac.Client(url=url, token=token, timeout=5)
        self._transit = client.secrets.transit
        self._mount = mount_point
        self._create_missing = create_missing

    @staticmethod
    def _key_name(kek_id: str) -> str:
        return "confide-" + kek_id.replace("/", "-")

    def _call(self, operation: str, **arguments: Any) -> Any:
        """One Transit call, with hvac's and requests' failures translated here."""
        try:
            return getattr(self._transit, operation)(mount_point=self._mount, **arguments)
        except Exception as exc:
            name = type(exc).__name__
            if name in {
                "ConnectionError",
                "Timeout",
                "ConnectTimeout",
                "ReadTimeout",
                "VaultDown",
                "BadGateway",
                "InternalServerError",
                "RateLimitExceeded",
            }:
                raise KmsUnavailable(f"Vault is unavailable ({name})") from None
            if name == "InvalidPath":
                raise KeyDestroyed(
                    "the Transit key does not exist "
                    "(never created, or destroyed: its data is unrecoverable)"
                ) from None
            if name in {"Forbidden", "Unauthorized"}:
                raise KeyDisabled(f"Vault refuses this key ({name})") from None
            if name == "InvalidRequest" and operation == "decrypt_data":
                raise OpenFailed("the wrapped data key does not authenticate") from None
            raise KmsError(f"Vault Transit refused {operation} ({name})") from None

    def _ensure(self, kek_id: str) -> str:
        key = self._key_name(kek_id)
        try:
            self._call("read_key", name=key)
        except KeyDestroyed:
            if not self._create_missing:
                raise
            self._call("create_key", name=key, key_type="aes256-gcm96", derived=True)
        return key

    @staticmethod
    def _context(kek_id: str, version: int, binding: Binding) -> str:
        # Vault derives the key from this context; the version is bound like the rest.
        return _b64(f"{kek_id}\0{version}\0".encode() + binding.encode())

    def _latest(self, key: str) -> int:
        return int(self._call("read_key", name=key)["data"]["latest_version"])

    def wrap(self, kek_id: str, data_key: bytes, binding: Binding) -> tuple[int, bytes]:
        key = self._ensure(kek_id)
        version = self._latest(key)
        response = self._call(
            "encrypt_data",
            name=key,
            plaintext=_b64(data_key),
            context=self._context(kek_id, version, binding),
            key_version=version,
        )
        return version, response["data"]["ciphertext"].encode()

    def unwrap(self, kek_id: str, version: int, wrapped: bytes, binding: Binding) -> bytes:
        key = self._key_name(kek_id)
        ciphertext = wrapped.decode("ascii", "replace")
        if not ciphertext.startswith(f"vault:v{version}:"):
            raise OpenFailed("the wrapped data key names another key version")
        response = self._call(
            "decrypt_data",
            name=key,
            ciphertext=ciphertext,
            context=self._context(kek_id, version, binding),
        )
        return base64.b64decode(response["data"]["plaintext"])

    def rotate(self, kek_id: str) -> int:
        key = self._key_name(kek_id)
        self._call("rotate_key", name=key)
        return self._latest(key)

    def disable(self, kek_id: str) -> None:
        raise KmsError("Vault Transit keys are disabled by Vault policy, not by Confide")

    def enable(self, kek_id: str) -> None:
        raise KmsError("Vault Transit keys are enabled by Vault policy, not by Confide")

    def destroy(self, kek_id: str) -> None:
        key = self._key_name(kek_id)
        self._call("update_key_configuration", name=key, deletion_allowed=True)
        self._call("delete_key", name=key)
