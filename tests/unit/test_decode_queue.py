"""The transcriber's decode queue (serve/decode_queue.py): finals before interims."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serve.decode_queue import DecodeQueue


def _calls(batch):
    """Items are functions: a batch's results are their return values."""
    return [waiting.item() for waiting in batch]


def _order(finals_first: bool) -> list[str]:
    """One worker, held busy while three interims and two finals queue up."""

    async def scenario() -> list[str]:
        decode = DecodeQueue(_calls, 1, finals_first=finals_first)
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
        decode = DecodeQueue(_calls, 1)

        def fail():
            raise ValueError("engine failed")

        with pytest.raises(ValueError, match="engine failed"):
            await decode.run(True, fail)
        assert await decode.run(True, lambda: 42) == 42
        decode.close()

    asyncio.run(scenario())


def test_work_whose_caller_left_is_skipped():
    async def scenario():
        decode = DecodeQueue(_calls, 1)
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


def test_a_free_worker_takes_every_waiting_turn_up_to_the_batch_size():
    async def scenario():
        batches: list[list[str]] = []
        release = threading.Event()

        def decode(batch):
            if batch[0].item == "hold":
                release.wait()
            batches.append([w.item for w in batch])
            return [w.item.upper() for w in batch]

        queue = DecodeQueue(decode, 1, max_batch=3)
        busy = asyncio.ensure_future(queue.run(True, "hold"))
        await asyncio.sleep(0.05)
        names = ["i1", "f1", "f2", "f3", "i2"]
        jobs = [asyncio.ensure_future(queue.run(n.startswith("f"), n)) for n in names]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(busy, *jobs)
        queue.close()
        return batches, results

    batches, results = asyncio.run(scenario())
    assert batches == [["hold"], ["f1", "f2", "f3"], ["i1", "i2"]]
    assert results == ["HOLD", "I1", "F1", "F2", "F3", "I2"]  # each caller gets its own


def test_a_worker_waits_up_to_max_wait_for_a_batch_to_fill():
    async def scenario(max_wait: float):
        batches: list[int] = []

        def decode(batch):
            batches.append(len(batch))
            return [None] * len(batch)

        queue = DecodeQueue(decode, 1, max_batch=4, max_wait_seconds=max_wait)
        first = asyncio.ensure_future(queue.run(True, 1))
        await asyncio.sleep(0.1)
        await asyncio.gather(first, queue.run(True, 2))
        queue.close()
        return batches

    assert asyncio.run(scenario(1.0)) == [2]
    assert asyncio.run(scenario(0.0)) == [1, 1]


def test_an_error_in_a_batch_reaches_each_of_its_callers():
    async def scenario():
        def decode(batch):
            raise ValueError("engine failed")

        queue = DecodeQueue(decode, 1, max_batch=2)
        results = await asyncio.gather(
            queue.run(True, 1), queue.run(True, 2), return_exceptions=True
        )
        queue.close()
        return results

    assert all(isinstance(r, ValueError) for r in asyncio.run(scenario()))


def test_load_reports_how_long_finals_waited_and_how_busy_the_threads_were():
    async def scenario():
        release = threading.Event()

        def decode(batch):
            if batch[0].item == "hold":
                release.wait()
            return [None] * len(batch)

        queue = DecodeQueue(decode, 1)
        queue.load()
        busy = asyncio.ensure_future(queue.run(False, "hold"))  # an interim: no final wait
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(queue.run(True, "final"))
        await asyncio.sleep(0.3)
        stuck = queue.load()  # the final has waited 0.3 s and is still waiting
        release.set()
        await asyncio.gather(busy, waiting)
        await asyncio.sleep(0.3)
        after = queue.load()
        idle = queue.load()
        queue.close()
        return stuck, after, idle

    stuck, after, idle = asyncio.run(scenario())
    assert stuck.final_wait_seconds >= 0.25 and stuck.busy_fraction < 0.2  # still decoding
    assert after.final_wait_seconds >= 0.25 and after.busy_fraction > 0.4
    assert idle.final_wait_seconds == 0 and idle.busy_fraction < 0.05


def _final_while_interims_decode(interim_workers: int) -> tuple[list[str], bool]:
    """Two workers; interims keep arriving and hold their worker until released. Which
    ran, and whether a final that came last was decoded while they were held."""

    async def scenario():
        release = threading.Event()
        ran: list[str] = []

        def decode(batch):
            name = batch[0].item
            ran.append(name)
            if name.startswith("i"):
                release.wait()
            return [name]

        queue = DecodeQueue(decode, 2, interim_workers=interim_workers)
        interims = [asyncio.ensure_future(queue.run(False, f"i{n}")) for n in range(3)]
        await asyncio.sleep(0.1)
        final = asyncio.ensure_future(queue.run(True, "f"))
        done, _ = await asyncio.wait([final], timeout=0.5)
        release.set()
        await asyncio.gather(final, *interims)
        queue.close()
        return ran, bool(done)

    return asyncio.run(scenario())


def test_a_worker_kept_free_of_interims_takes_a_final_at_once():
    ran, final_in_time = _final_while_interims_decode(interim_workers=1)
    assert final_in_time
    assert ran == ["i0", "f", "i1", "i2"]  # the interims one at a time, on one worker


def test_interims_on_every_worker_hold_a_final_back():
    ran, final_in_time = _final_while_interims_decode(interim_workers=2)
    assert not final_in_time
    assert sorted(ran[:2]) == ["i0", "i1"] and ran[2] == "f"


def test_the_default_keeps_one_of_several_workers_free_of_interims():
    from serve.core.config import TranscriberConfig

    assert TranscriberConfig(num_workers=2).effective_interim_workers == 1
    assert TranscriberConfig(num_workers=4).effective_interim_workers == 3
    assert TranscriberConfig(num_workers=1).effective_interim_workers == 1  # or none at all
    assert TranscriberConfig(num_workers=2, interim_workers=5).effective_interim_workers == 2
