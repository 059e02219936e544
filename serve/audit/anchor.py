"""Checkpoints written outside the database, where its writers cannot reach.

A log cut back to an earlier checkpoint verifies on its own; the copy kept here still
has the later checkpoints, which then name records that are gone. Development keeps an
append-only file in the state directory; production puts each checkpoint in the
audit bucket, whose S3 Object Lock (compliance mode) lets nobody delete or overwrite
it before its retention ends (infra/terraform/audit.tf).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from serve.audit.chain import Checkpoint


class Anchor(Protocol):
    def put(self, checkpoint: Checkpoint) -> None: ...

    def checkpoints(self) -> list[Checkpoint]: ...


class FileAnchor:
    """One JSON line per checkpoint, appended to a 0600 file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def put(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(descriptor, (checkpoint.to_json() + "\n").encode())
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def checkpoints(self) -> list[Checkpoint]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        return [Checkpoint.from_json(line) for line in lines if line.strip()]


class S3Anchor:
    """One object per checkpoint under `prefix` in an Object Lock bucket (the bucket's
    default retention applies; boto3 adds the checksum Object Lock requires)."""

    def __init__(self, bucket: str, prefix: str, client) -> None:
        self._bucket = bucket
        self._prefix = prefix
        self._client = client

    def put(self, checkpoint: Checkpoint) -> None:
        self._client.put_object(
            Bucket=self._bucket,
            Key=f"{self._prefix}{checkpoint.seq:012d}-{checkpoint.signature[:16]}.json",
            Body=checkpoint.to_json().encode(),
            ContentType="application/json",
        )

    def checkpoints(self) -> list[Checkpoint]:
        found = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
            for item in page.get("Contents", []):
                body = self._client.get_object(Bucket=self._bucket, Key=item["Key"])["Body"]
                found.append(Checkpoint.from_json(body.read().decode()))
        return found
