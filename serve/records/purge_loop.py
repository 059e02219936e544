"""The purge loop: retention enforced inside the cluster, one runner per cluster.

A Serve deployment with one replica runs `Purger.run` every
`records.purge_interval_seconds`; the store's lease keeps a second runner (a replica
being replaced, or `confide records purge`) from purging at the same time. A failed run
(the KMS or the store not answering) is retried at the next interval.
"""

from __future__ import annotations

import asyncio
import time

from ray import serve

from serve.audit import Actor, open_audit_log
from serve.core.allowlist import confide_logger, plain_type
from serve.core.config import ConfideConfig
from serve.core.keys import key_provider
from serve.core.sealing import Sealer
from serve.records.codec import RecordCodec
from serve.records.retention import Purger, record_retention_changes
from serve.records.store import open_store

logger = confide_logger("confide.purge")


def build_purger(config: ConfideConfig, clock=time.time, actor: Actor | None = None) -> Purger:
    """The purger, auditing in the records database; retention settings that changed
    since they were last audited are audited first."""
    actor = actor or Actor.system("purge-loop")
    provider = key_provider(config.keys, config.state_path)
    store = open_store(config.records, config.state_path)
    audit = open_audit_log(config, store.database)
    record_retention_changes(audit, config, actor)
    codec = RecordCodec(Sealer(provider))
    return Purger(store, config, provider, codec, clock, audit, actor)


@serve.deployment
class PurgeLoop:
    """Also the audit log's signer: a checkpoint every audit.checkpoint_interval_seconds
    and one when the replica shuts down."""

    async def __init__(self, config: ConfideConfig) -> None:
        self._interval = config.records.purge_interval_seconds
        self._checkpoint_interval = config.audit.checkpoint_interval_seconds
        self._purger = await asyncio.to_thread(build_purger, config)
        self._audit = await asyncio.to_thread(open_audit_log, config)
        self._last: dict = {}
        self._last_checkpoint: dict = {}
        self._task = asyncio.create_task(self._run_forever())
        self._signer = asyncio.create_task(self._checkpoint_forever())

    async def last_checkpoint(self) -> dict:
        """When the newest checkpoint was signed, and at which record."""
        return self._last_checkpoint

    async def checkpoint(self) -> dict:
        try:
            checkpoint = await asyncio.to_thread(self._audit.checkpoint)
            self._last_checkpoint = {
                "at": time.time(),
                "ok": True,
                "seq": checkpoint.seq if checkpoint else 0,
            }
        except Exception as exc:  # the store, the KMS or the anchor: retried next time
            self._last_checkpoint = {"at": time.time(), "ok": False, "error": type(exc).__name__}
            logger.warning("audit checkpoint failed: %s", plain_type(exc))
        return self._last_checkpoint

    async def _checkpoint_forever(self) -> None:
        while True:
            await asyncio.sleep(self._checkpoint_interval)
            await self.checkpoint()

    async def last_run(self) -> dict:
        """When the last pass ended and what it did (for operators and `confide audit`)."""
        return self._last

    async def _run_forever(self) -> None:
        while True:
            try:
                report = await asyncio.to_thread(self._purger.run)
                self._last = {"at": time.time(), "ok": True, **vars(report)}
                if report.expired or report.shredded:
                    logger.info(
                        "purge: %s calls' text deleted, %s tenant-months shredded",
                        report.expired,
                        report.shredded,
                    )
            except Exception as exc:  # the KMS or the store did not answer: retry later
                self._last = {"at": time.time(), "ok": False, "error": type(exc).__name__}
                logger.warning("purge failed: %s", plain_type(exc))
            await asyncio.sleep(self._interval)

    async def __del__(self) -> None:
        self._task.cancel()
        self._signer.cancel()
        await self.checkpoint()


def serve_options(config: ConfideConfig) -> dict:
    return {
        "num_replicas": 1,
        "ray_actor_options": {"num_cpus": config.records.num_cpus},
        "max_ongoing_requests": 4,
    }
