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

from serve.core.allowlist import confide_logger, plain_type
from serve.core.config import ConfideConfig
from serve.core.keys import key_provider
from serve.core.sealing import Sealer
from serve.records.codec import RecordCodec
from serve.records.retention import Purger
from serve.records.store import open_store

logger = confide_logger("confide.purge")


def build_purger(config: ConfideConfig, clock=time.time) -> Purger:
    provider = key_provider(config.keys, config.state_path)
    store = open_store(config.records, config.state_path)
    return Purger(store, config, provider, RecordCodec(Sealer(provider)), clock)


@serve.deployment
class PurgeLoop:
    async def __init__(self, config: ConfideConfig) -> None:
        self._interval = config.records.purge_interval_seconds
        self._purger = await asyncio.to_thread(build_purger, config)
        self._last: dict = {}
        self._task = asyncio.create_task(self._run_forever())

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

    def __del__(self) -> None:
        self._task.cancel()


def serve_options(config: ConfideConfig) -> dict:
    return {
        "num_replicas": 1,
        "ray_actor_options": {"num_cpus": config.records.num_cpus},
        "max_ongoing_requests": 4,
    }
