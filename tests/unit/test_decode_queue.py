"""The transcriber's decode queue (serve/decode_queue.py): finals before interims."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serve.decode_queue import DecodeQueue


def _order(finals_first: bool) -> list[str]:
    """One worker, held busy while three interims and two finals queue up."""

    async def scenario() -> list[str]:
        decode = DecodeQueue(1, finals_first=finals_first)
        release = threading.Event()
        done: list[str] = []
        busy = asyncio.ensure_future(decode.run(True, release.wait))
        await asyncio.sleep(0.05)
        jobs = []
        for name, final in [("i1", False), ("f1", True), ("i2", False), ("f2", True)]:
            jobs.append(asyncio.ensure_future(decode.run(final, lambda n=name: done.append(n))))
            await asyncio.sleep(0.01)
        release.set()
        await asyncio.gather(busy, *jobs)
        decode.close()
        return done

    return asyncio.run(scenario())


def test_waiting_finals_go_before_waiting_interims():
    assert _order(finals_first=True) == ["f1", "f2", "i1", "i2"]


def test_without_priority_the_queue_is_first_come_first_served():
    assert _order(finals_first=False) == ["i1", "f1", "i2", "f2"]


def test_an_error_reaches_the_caller_and_the_worker_goes_on():
    async def scenario():
        decode = DecodeQueue(1)

        def fail():
            raise ValueError("engine failed")

        with pytest.raises(ValueError, match="engine failed"):
            await decode.run(True, fail)
        assert await decode.run(True, lambda: 42) == 42
        decode.close()

    asyncio.run(scenario())


def test_work_whose_caller_left_is_skipped():
    async def scenario():
        decode = DecodeQueue(1)
        release = threading.Event()
        ran: list[str] = []
        busy = asyncio.ensure_future(decode.run(True, release.wait))
        await asyncio.sleep(0.05)
        left = asyncio.ensure_future(decode.run(True, lambda: ran.append("left")))
        await asyncio.sleep(0.01)
        left.cancel()
        release.set()
        await busy
        assert await decode.run(True, lambda: "after") == "after"
        decode.close()
        return ran

    assert asyncio.run(scenario()) == []
