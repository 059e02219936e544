"""One call's outgoing events: ordered work, side streams, and an end that always comes.

Work submitted with `submit` (a turn's transcription) is emitted in submission order,
whatever order it completes in. Provisional work (an interim, which the turn's final
supersedes) never holds later work back: when firm work submitted after it finishes
first, or the emitter closes, the provisional work is cancelled and emits nothing; and
when it is held up behind earlier work, only the newest finished provisional work of
its kind (an interim of its channel) goes out, not each in turn. A side stream (an
agent reply) is emitted as it yields, and can be cut with the task `stream` returns.
The emitter owns every task it starts: `events` ends once `close` was called and
everything is done, and its `finally` cancels whatever is still running, so a failure
or a hang-up never leaves a task behind or a reader waiting.

Events wait for the reader in a bounded buffer: when the client stops reading, work and
side streams stop at their next event (backpressure), and `backlog` tells the caller how
much submitted work waits, so it can stop taking input too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_ORDERED_DONE = object()
_SIDE_DONE = object()


class OrderedEmitter(Generic[T]):
    def __init__(self, max_buffered_events: int = 64) -> None:
        self._ordered: asyncio.Queue[asyncio.Task[Sequence[T]] | None] = asyncio.Queue()
        self._out: asyncio.Queue[object] = asyncio.Queue()
        self._room = asyncio.Semaphore(max_buffered_events)  # events not yet taken
        self._taken = asyncio.Event()  # set whenever drained work leaves the backlog
        self._tasks: set[asyncio.Task] = set()
        self._side: set[asyncio.Task] = set()
        self._submitted: set[asyncio.Task] = set()
        self._provisional: dict[asyncio.Task, Hashable] = {}  # not yet drained: its kind
        self._firm_queued: set[asyncio.Task] = set()  # firm work not yet drained
        self._overtaken = asyncio.Event()  # set when firm work finishes, or on close
        self._closed = False

    def submit(self, work: Awaitable[Sequence[T]], provisional: Hashable | None = None) -> None:
        """Emit work's events (possibly none) after everything submitted before it.
        Provisional work names its kind (an interim: its channel) and is emitted only
        if it finishes before any firm work submitted after it, and no later work of
        its kind has finished by the time its turn comes."""
        if self._closed:
            raise RuntimeError("the emitter was closed")
        task = self._own(asyncio.ensure_future(work))
        self._submitted.add(task)
        task.add_done_callback(self._submitted.discard)
        if provisional is not None:
            self._provisional[task] = provisional
        else:
            self._firm_queued.add(task)
            task.add_done_callback(lambda _: self._overtaken.set())
        self._ordered.put_nowait(task)

    def stream(self, events: AsyncIterator[T]) -> asyncio.Task[None]:
        """Emit each event as it comes; cancel the returned task to cut the stream
        (the iterator may still yield a last event while it handles the cancellation)."""
        task = self._own(asyncio.ensure_future(self._forward(events)))
        self._side.add(task)
        task.add_done_callback(self._side_done)
        return task

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def backlog(self) -> int:
        """Submitted work whose events have not gone out yet (finished or not)."""
        return self._ordered.qsize()

    async def wait_for_backlog_below(self, limit: int) -> None:
        while self.backlog >= limit:
            self._taken.clear()
            await self._taken.wait()

    async def wait_below(self, limit: int) -> None:
        """Until fewer than `limit` pieces of submitted work are unfinished."""
        while len(self._submitted) >= limit:
            await asyncio.wait(set(self._submitted), return_when=asyncio.FIRST_COMPLETED)

    def close(self) -> None:
        """Nothing more will be submitted; side streams may still start."""
        if not self._closed:
            self._closed = True
            self._overtaken.set()
            self._ordered.put_nowait(None)

    async def events(self) -> AsyncIterator[T]:
        """Every event, until closed and done. Raises what a piece of work raised."""
        drain = self._own(asyncio.ensure_future(self._drain()))
        ordered_done = False
        try:
            # Done once everything ended and every event it put out has been taken: a
            # side stream can finish while its last events still wait in the queue.
            while not (ordered_done and not self._side and self._out.empty()):
                item = await self._out.get()
                if item is _ORDERED_DONE:
                    ordered_done = True
                elif isinstance(item, _Failed):
                    raise item.error
                elif item is not _SIDE_DONE:
                    self._room.release()
                    yield item  # type: ignore[misc]
        finally:
            drain.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _own(self, task: asyncio.Task) -> asyncio.Task:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @contextlib.contextmanager
    def _failures_to_events(self) -> Iterator[None]:
        """Hand a failure to `events`, which raises it; a cancellation is no failure."""
        try:
            yield
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._out.put_nowait(_Failed(exc))

    async def _drain(self) -> None:
        with self._failures_to_events():
            while (task := await self._ordered.get()) is not None:
                self._taken.set()
                self._firm_queued.discard(task)
                if task in self._provisional:
                    kind = self._provisional.pop(task)
                    if not await self._finishes_first(task) or self._newer_done(kind):
                        task.cancel()
                        continue
                for event in await task:
                    await self._put(event)
            self._out.put_nowait(_ORDERED_DONE)

    async def _finishes_first(self, task: asyncio.Task) -> bool:
        """Whether provisional `task` finishes before any firm work queued after it
        (and before the emitter closes)."""
        while not task.done():
            self._overtaken.clear()
            if self._closed or any(firm.done() for firm in self._firm_queued):
                return False
            overtaken = asyncio.ensure_future(self._overtaken.wait())
            try:
                await asyncio.wait({task, overtaken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                overtaken.cancel()
        return True

    def _newer_done(self, kind: Hashable) -> bool:
        """Whether provisional work of `kind` submitted later has finished already
        (newest wins: the older one would only go out to be replaced at once)."""
        return any(
            task.done() and not task.cancelled()
            for task, other in self._provisional.items()
            if other == kind
        )

    async def _forward(self, events: AsyncIterator[T]) -> None:
        with self._failures_to_events():
            async for event in events:
                await self._put(event)

    async def _put(self, event: T) -> None:
        await self._room.acquire()  # waits while the reader is this far behind
        self._out.put_nowait(event)

    def _side_done(self, task: asyncio.Task) -> None:
        self._side.discard(task)
        self._out.put_nowait(_SIDE_DONE)  # wakes `events` to check whether all is done
