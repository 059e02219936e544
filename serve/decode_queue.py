"""The transcriber's decode queue: finals ahead of interims.

A replica decodes on a few worker threads; every call's turns wait here for one. A
final is what a contact center stores and answers; an interim only previews it and the
next interim supersedes it. So a waiting final goes before every waiting interim
(first come, first served within each kind), and under load interims wait, or are
dropped by the gateway, instead of delaying finals. Hand-written because
concurrent.futures' executors take work in arrival order only.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Callable
from typing import TypeVar

Result = TypeVar("Result")

FINAL, INTERIM = 0, 1
"""Priorities: lower goes first."""


class DecodeQueue:
    def __init__(self, workers: int, name: str = "decode", finals_first: bool = True) -> None:
        self._finals_first = finals_first
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    async def run(self, final: bool, work: Callable[[], Result]) -> Result:
        """`work()` on a worker thread, once every final queued before it (and, for an
        interim, every final queued at all) has started."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        priority = FINAL if final or not self._finals_first else INTERIM
        self._queue.put((priority, next(self._order), work, loop, future))
        return await future

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put((2, next(self._order), None, None, None))

    def _work(self) -> None:
        while True:
            _, _, work, loop, future = self._queue.get()
            if work is None:
                return
            if future.cancelled():
                continue  # the caller left (a hang-up) before a thread was free
            try:
                result = work()
            except BaseException as error:  # handed to the caller, not raised here
                loop.call_soon_threadsafe(_settle, future, None, error)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future, result, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
