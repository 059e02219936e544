"""Where the engine runs: a process of its own beside each gateway replica.

Measured in the gateway: one hypothesis costs the engine 7 ms of CPU, but took 14 ms
(p50) and 31 ms (p95) in a worker thread at two calls, because the thread and the
replica's event loop (gRPC, the VAD of every live channel) share one GIL; every switch
between them also delays the loop. A process has its own interpreter: the event loop
only sends words and receives masks (well under a millisecond of pickling).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Protocol

from serve.redaction.engine import Redaction, Redactor
from serve.redaction.errors import RedactionUnavailable

_engine: Redactor | None = None  # in the worker process only


def _load(spacy_model: str) -> None:
    global _engine
    _engine = Redactor(spacy_model)


def _redact(
    words: list[str], entities: frozenset[str], context: tuple[str, ...], mask_digits: bool
) -> Redaction:
    assert _engine is not None, "the worker loads the engine before its first task"
    return _engine.redact(words, entities, context, mask_digits)


def _ready() -> bool:
    return _engine is not None


class RedactionEngine(Protocol):
    async def redact(
        self,
        words: Sequence[str],
        entities: frozenset[str],
        context: Sequence[str] = (),
        mask_digits: bool = False,
    ) -> Redaction: ...


class InThread:
    """The engine in this process, each hypothesis in a worker thread (the CLI, tests)."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    async def redact(self, words, entities, context=(), mask_digits=False) -> Redaction:
        return await asyncio.to_thread(
            self._redactor.redact, list(words), entities, tuple(context), mask_digits
        )


class RedactionWorker:
    """The engine in one spawned process (not forked: the replica runs gRPC and Ray
    threads). If the process dies, the hypothesis in flight raises (the caller masks it
    whole) and the next one starts a new process."""

    def __init__(self, spacy_model: str, start_timeout: float = 120.0) -> None:
        self._spacy_model = spacy_model
        self._start_timeout = start_timeout
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=(self._spacy_model,),
        )
        try:
            pool.submit(_ready).result(timeout=self._start_timeout)
        except Exception as exc:
            pool.shutdown(wait=False, cancel_futures=True)
            raise RedactionUnavailable("the redaction worker process did not start") from exc
        return pool

    async def redact(self, words, entities, context=(), mask_digits=False) -> Redaction:
        loop = asyncio.get_running_loop()
        pool = self._pool
        try:
            return await loop.run_in_executor(
                pool, _redact, list(words), entities, tuple(context), mask_digits
            )
        except BrokenProcessPool:
            await asyncio.to_thread(self._restart, pool)
            raise

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                broken.shutdown(wait=False, cancel_futures=True)
                self._pool = self._start()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
