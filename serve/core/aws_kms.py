"""AWS KMS as the KEK holder: one customer-managed key per tenant and period, found by
alias (`alias/confide-kek/tenant/<name>/<YYYY-MM>`), data keys wrapped with the blob's
binding as the KMS encryption context.

KMS enforces the context; Confide checks the key's state itself before each use, so a
disabled or deleted key fails closed even where a KMS emulator does not enforce it.
boto3 is imported only when this provider is built.
"""

from __future__ import annotations

from typing import Any

from serve.core.envelope import Binding, OpenFailed
from serve.core.keys import KeyDestroyed, KeyDisabled, KmsError, KmsUnavailable

_UNREACHABLE = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
)
_RETRYABLE_CODES = {"ThrottlingException", "KMSInternalException", "DependencyTimeoutException"}


class AwsKmsKeyProvider:
    name = "aws-kms"

    def __init__(
        self,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        alias_prefix: str = "alias/confide-kek/",
        create_missing: bool = True,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("kms", region_name=region, endpoint_url=endpoint_url)
        self._kms = client
        self._alias_prefix = alias_prefix
        self._create_missing = create_missing

    def _alias(self, kek_id: str) -> str:
        return f"{self._alias_prefix}{kek_id}"

    def _call(self, operation: str, **arguments: Any) -> dict:
        """One KMS call, with botocore's failures translated at this boundary."""
        try:
            return getattr(self._kms, operation)(**arguments)
        except Exception as exc:
            name = type(exc).__name__
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            if name in _UNREACHABLE or code in _RETRYABLE_CODES:
                raise KmsUnavailable(f"AWS KMS is unavailable ({name})") from None
            if code == "NotFoundException":
                raise KeyDestroyed(
                    "the KMS key does not exist "
                    "(never created, or deleted: its data is unrecoverable)"
                ) from None
            if code in {"DisabledException", "KMSInvalidStateException"}:
                raise KeyDisabled(f"the KMS key cannot be used now ({code})") from None
            if code in {"InvalidCiphertextException", "IncorrectKeyException"}:
                raise OpenFailed("the wrapped data key does not authenticate") from None
            raise KmsError(f"AWS KMS refused {operation} ({code or name})") from None

    def _resolve(self, kek_id: str) -> str:
        """Key id behind the alias (DisableKey and friends take no aliases)."""
        return self._call("describe_key", KeyId=self._alias(kek_id))["KeyMetadata"]["KeyId"]

    def _key_id(self, kek_id: str, create: bool = False) -> str:
        """The key behind the alias, after checking that it may be used."""
        try:
            metadata = self._call("describe_key", KeyId=self._alias(kek_id))["KeyMetadata"]
        except KeyDestroyed:
            if not (create and self._create_missing):
                raise
            key = self._call(
                "create_key",
                Description=f"Confide KEK {kek_id}",
                KeyUsage="ENCRYPT_DECRYPT",
                Tags=[{"TagKey": "confide:kek", "TagValue": kek_id}],
            )["KeyMetadata"]
            # The alias first: the pods may use a key only once it carries one of theirs.
            try:
                self._call("create_alias", AliasName=self._alias(kek_id), TargetKeyId=key["KeyId"])
            except KmsError:
                # Another process created this month's key at the same moment: use
                # theirs, and schedule ours (never used, tagged confide:kek) for deletion.
                winner = self._key_id(kek_id)
                self._call("schedule_key_deletion", KeyId=key["KeyId"], PendingWindowInDays=7)
                return winner
            self._call("enable_key_rotation", KeyId=key["KeyId"])
            return key["KeyId"]
        state = metadata["KeyState"]
        if state in {"PendingDeletion", "PendingReplicaDeletion"}:
            raise KeyDestroyed(f"KEK {kek_id} is scheduled for deletion; its data is unrecoverable")
        if state != "Enabled":
            raise KeyDisabled(f"KEK {kek_id} is {state}")
        return metadata["KeyId"]

    def _version(self, key_id: str) -> int:
        rotations = self._call("list_key_rotations", KeyId=key_id).get("Rotations", [])
        return len(rotations) + 1

    @staticmethod
    def _context(kek_id: str, version: int, binding: Binding) -> dict[str, str]:
        # The version is bound too, so a blob whose header claims another fails to open.
        return {**binding.as_context(), "kek_id": kek_id, "kek_version": str(version)}

    def wrap(self, kek_id: str, data_key: bytes, binding: Binding) -> tuple[int, bytes]:
        key_id = self._key_id(kek_id, create=True)
        version = self._version(key_id)
        blob = self._call(
            "encrypt",
            KeyId=key_id,
            Plaintext=data_key,
            EncryptionContext=self._context(kek_id, version, binding),
        )["CiphertextBlob"]
        return version, blob

    def unwrap(self, kek_id: str, version: int, wrapped: bytes, binding: Binding) -> bytes:
        key_id = self._key_id(kek_id)
        # KMS finds the key material version inside the ciphertext; `version` is ours.
        return self._call(
            "decrypt",
            KeyId=key_id,
            CiphertextBlob=wrapped,
            EncryptionContext=self._context(kek_id, version, binding),
        )["Plaintext"]

    def rotate(self, kek_id: str) -> int:
        key_id = self._key_id(kek_id)
        self._call("rotate_key_on_demand", KeyId=key_id)
        return self._version(key_id)

    def disable(self, kek_id: str) -> None:
        self._call("disable_key", KeyId=self._resolve(kek_id))

    def enable(self, kek_id: str) -> None:
        self._call("enable_key", KeyId=self._resolve(kek_id))

    def destroy(self, kek_id: str) -> None:
        # KMS waits at least 7 days before deleting; the key is unusable from now on.
        self._call("schedule_key_deletion", KeyId=self._resolve(kek_id), PendingWindowInDays=7)
