"""The transcriber's decode queue: finals ahead of interims, taken in batches.

A replica decodes on a few worker threads; every call's turns wait here for one. A
final is what a contact center stores and answers; an interim only previews it and the
next interim supersedes it. So a waiting final goes before every waiting interim
(first come, first served within each kind), and under load interims wait, or are
skipped, instead of delaying finals. A decode is not interrupted, so a final that
arrives while every worker decodes an interim would wait for one to finish: at most
`interim_workers` workers decode interims at once, and the others stay free for finals.
A free worker takes up to `max_batch` waiting turns at once, from any calls (it waits
up to `max_wait_seconds` for company), so the engine can decode them in one batched
call. Hand-written because concurrent.futures' executors take work one item at a time
and in arrival order only.
"""

from __future__ import annotations

import asyncio
import itertools
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
        interim_workers: int | None = None,
    ) -> None:
        """`decode` runs on a worker thread and returns one result per item, in order.
        `interim_workers`: the most workers decoding interims at once (None: all)."""
        self._decode = decode
        self._finals_first = finals_first
        self._max_batch = max_batch
        self._max_wait = max_wait_seconds
        self._interim_workers = workers if interim_workers is None else interim_workers
        self._interims_busy = 0
        """Workers whose batch holds an interim."""
        self._entries: list[tuple[int, int, _Job | None]] = []
        """(priority, arrival, job), taken lowest first; job None tells a worker to stop."""
        self._ready = threading.Condition()
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
        self._put((priority, next(self._order), job))
        return await future

    @property
    def waiting(self) -> int:
        with self._ready:
            return len(self._entries)

    def _put(self, entry: tuple[int, int, _Job | None]) -> None:
        with self._ready:
            self._entries.append(entry)
            self._ready.notify_all()

    def load(self) -> QueueLoad:
        """How finals waited and how busy the threads were since the last call (the
        autoscaling signal, serve/autoscaling.py)."""
        now = time.perf_counter()
        with self._ready:  # the oldest final still waiting, if any
            waiting = [job.queued_at for _, _, job in self._entries if job and job.final]
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
            self._put((STOP, next(self._order), None))

    def _work(self) -> None:
        while True:
            batch, stop = self._take()
            if batch:
                interims = not all(job.final for job in batch)
                try:
                    self._decode_batch(batch)
                finally:
                    if interims:
                        with self._ready:
                            self._interims_busy -= 1
                            self._ready.notify_all()
            if stop:
                return

    def _take(self) -> tuple[list[_Job], bool]:
        """The next batch: the first waiting job this worker may take, then whatever else
        it may take that waits (or arrives within max_wait), up to max_batch. Jobs whose
        caller left (a hang-up) are dropped."""
        batch: list[_Job] = []
        deadline = 0.0
        with self._ready:
            while len(batch) < self._max_batch:
                entry = self._next(interim_allowed=self._interim_allowed(batch))
                if entry is None:
                    if not batch:
                        self._ready.wait()
                        continue
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    self._ready.wait(left)
                    continue
                job = entry[2]
                if job is None:
                    return batch, True  # stop, after this batch if there is one
                if job.future.cancelled():
                    continue
                if not job.final and all(j.final for j in batch):
                    self._interims_busy += 1
                if not batch:
                    deadline = time.perf_counter() + self._max_wait
                batch.append(job)
        return batch, False

    def _interim_allowed(self, batch: list[_Job]) -> bool:
        """Whether an interim may join `batch`: its worker already decodes interims, or
        another worker may start to."""
        return not all(j.final for j in batch) or self._interims_busy < self._interim_workers

    def _next(self, interim_allowed: bool) -> tuple[int, int, _Job | None] | None:
        """Removes and returns the first entry that may be taken now (under the lock)."""
        allowed = [e for e in self._entries if interim_allowed or e[2] is None or e[2].final]
        if not allowed:
            return None
        entry = min(allowed, key=lambda e: (e[0], e[1]))
        self._entries.remove(entry)
        return entry

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
