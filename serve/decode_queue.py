"""The transcriber's decode queue: finals ahead of interims, taken in batches.

A replica decodes on a few worker threads; every call's turns wait here for one. A
final is what a contact center stores and answers; an interim only previews it and the
next interim supersedes it. So a waiting final goes before every waiting interim
(first come, first served within each kind), and under load interims wait, or are
skipped, instead of delaying finals. A free worker takes up to `max_batch` waiting
turns at once, from any calls (it waits up to `max_wait_seconds` for company), so the
engine can decode them in one batched call. Hand-written because concurrent.futures'
executors take work one item at a time and in arrival order only.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

FINAL, INTERIM, STOP = 0, 1, 2
"""Priorities: lower goes first."""


@dataclass(frozen=True)
class Waiting(Generic[Item]):
    item: Item
    final: bool
    waited_seconds: float
    """Time in the queue before a worker took it."""


class DecodeQueue(Generic[Item, Result]):
    def __init__(
        self,
        decode: Callable[[Sequence[Waiting[Item]]], Sequence[Result]],
        workers: int,
        *,
        name: str = "decode",
        finals_first: bool = True,
        max_batch: int = 1,
        max_wait_seconds: float = 0.0,
    ) -> None:
        """`decode` runs on a worker thread and returns one result per item, in order."""
        self._decode = decode
        self._finals_first = finals_first
        self._max_batch = max_batch
        self._max_wait = max_wait_seconds
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._workers = workers
        self._lock = threading.Lock()
        self._since = time.perf_counter()
        self._busy_seconds = 0.0
        self._final_waits: list[float] = []
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, final: bool, item: Item) -> Result:
        """The item's result, decoded once every final queued before it (and, for an
        interim, every final queued at all) has been taken."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        priority = FINAL if final or not self._finals_first else INTERIM
        job = _Job(item, final, time.perf_counter(), loop, future)
        self._queue.put((priority, next(self._order), job))
        return await future

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def load(self) -> QueueLoad:
        """How finals waited and how busy the threads were since the last call (the
        autoscaling signal, serve/autoscaling.py)."""
        now = time.perf_counter()
        with self._queue.mutex:  # the oldest final still waiting, if any
            waiting = [job.queued_at for p, _, job in self._queue.queue if p == FINAL]
        with self._lock:
            waits, self._final_waits = self._final_waits, []
            busy, self._busy_seconds = self._busy_seconds, 0.0
            elapsed, self._since = now - self._since, now
        oldest = now - min(waiting) if waiting else 0.0
        return QueueLoad(
            final_wait_seconds=max(sum(waits) / len(waits) if waits else 0.0, oldest),
            busy_fraction=min(busy / max(elapsed * self._workers, 1e-9), 1.0),
        )

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put((STOP, next(self._order), None))

    def _work(self) -> None:
        while True:
            batch, stop = self._take()
            if batch:
                self._decode_batch(batch)
            if stop:
                return

    def _take(self) -> tuple[list[_Job], bool]:
        """The next batch: the first waiting job, then whatever else waits (or arrives
        within max_wait) up to max_batch. Jobs whose caller left (a hang-up) are dropped."""
        batch: list[_Job] = []
        deadline = None
        while len(batch) < self._max_batch:
            try:
                if not batch:
                    entry = self._queue.get()
                    deadline = time.perf_counter() + self._max_wait
                else:
                    entry = self._queue.get(timeout=max(deadline - time.perf_counter(), 0))
            except queue.Empty:
                break
            job = entry[2]
            if job is None:
                return batch, True
            if not job.future.cancelled():
                batch.append(job)
        return batch, False

    def _decode_batch(self, batch: list[_Job]) -> None:
        taken = time.perf_counter()
        try:
            results = self._decode([Waiting(j.item, j.final, taken - j.queued_at) for j in batch])
        except BaseException as error:  # handed to every caller of the batch
            for job in batch:
                job.loop.call_soon_threadsafe(_settle, job.future, None, error)
            return
        finally:
            with self._lock:
                self._busy_seconds += time.perf_counter() - taken
                self._final_waits += [taken - j.queued_at for j in batch if j.final]
        for job, result in zip(batch, results, strict=True):
            job.loop.call_soon_threadsafe(_settle, job.future, result, None)


@dataclass(frozen=True)
class QueueLoad:
    final_wait_seconds: float
    busy_fraction: float


@dataclass(frozen=True)
class _Job:
    item: object
    final: bool
    queued_at: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
