"""The ordered emitter on its own: order, side streams, and an end that loses nothing."""

from __future__ import annotations

import asyncio

import pytest

from serve.emitter import OrderedEmitter


async def _after(seconds: float, *events):
    await asyncio.sleep(seconds)
    return events


async def _stream(*events):
    for event in events:
        yield event


def _collect(scenario):
    return asyncio.run(asyncio.wait_for(scenario(), 10))


async def _events_until(emitter: OrderedEmitter, last: str) -> list[str]:
    """Every event, closing the emitter once `last` came (nothing more is submitted)."""
    got = []
    async for event in emitter.events():
        got.append(event)
        if event == last:
            emitter.close()
    return got


def test_ordered_work_leaves_in_submission_order():
    async def scenario():
        emitter = OrderedEmitter()
        emitter.submit(_after(0.2, "first"))
        emitter.submit(_after(0.0, "second", "third"))
        emitter.submit(_after(0.1))  # nothing to say
        emitter.close()
        return [event async for event in emitter.events()]

    assert _collect(scenario) == ["first", "second", "third"]


def test_a_side_stream_that_ends_while_the_consumer_is_busy_loses_nothing():
    """A reply started by the last final: it finishes while the consumer is still busy
    with an earlier event (storing a record), and all of it must still come out."""

    async def scenario():
        emitter = OrderedEmitter()
        emitter.submit(_after(0.0, "last final"))
        emitter.close()
        got = []
        async for event in emitter.events():
            got.append(event)
            if event == "last final":
                emitter.stream(_stream("delta", "reply final"))
                await asyncio.sleep(0.05)
        return got

    assert _collect(scenario) == ["last final", "delta", "reply final"]


def test_a_failure_ends_the_stream_and_cancels_the_rest():
    started = []

    async def forever():
        started.append(True)
        await asyncio.sleep(3600)
        return ("never",)

    async def broken():
        raise ValueError("a bug")

    async def scenario():
        emitter = OrderedEmitter()
        slow = asyncio.ensure_future(forever())
        emitter.submit(broken())
        emitter.submit(slow)
        emitter.close()
        with pytest.raises(ValueError):
            async for _ in emitter.events():
                pass
        await asyncio.sleep(0)
        return slow.cancelled()

    assert _collect(scenario) is True


def test_a_reader_that_stops_reading_holds_back_work_and_side_streams():
    """At most `max_buffered_events` wait for the reader; the rest of the work waits in
    the backlog, which the caller sees, and nothing is lost once the reader goes on."""

    async def scenario():
        emitter = OrderedEmitter(max_buffered_events=3)
        produced = []

        async def side():
            for n in range(10):
                produced.append(n)
                yield f"delta {n}"

        for n in range(8):
            emitter.submit(_after(0.0, f"final {n}"))
        emitter.stream(side())
        events = emitter.events()
        first = await anext(events)  # the reader takes one event, then stops reading
        await asyncio.sleep(0.3)
        held = (emitter.backlog, len(produced))
        waiter = asyncio.ensure_future(emitter.wait_for_backlog_below(7))
        await asyncio.sleep(0.1)
        blocked = not waiter.done()
        emitter.close()
        rest = [event async for event in events]
        await waiter
        return first, held, blocked, rest

    first, (backlog, produced), blocked, rest = _collect(scenario)
    # The side stream filled the 3 places first; the drain holds final 0 and waits, so
    # 7 finals wait in the backlog, and the side stream stopped at its next delta.
    assert backlog == 7 and produced <= 5 and blocked
    everything = [first, *rest]
    assert [e for e in everything if e.startswith("final")] == [f"final {n}" for n in range(8)]
    assert [e for e in everything if e.startswith("delta")] == [f"delta {n}" for n in range(10)]


def test_provisional_work_that_finishes_first_keeps_its_place():
    async def scenario():
        emitter = OrderedEmitter()
        emitter.submit(_after(0.05, "interim"), provisional="a")
        emitter.submit(_after(0.2, "final"))
        return await _events_until(emitter, "final")

    assert _collect(scenario) == ["interim", "final"]


def test_firm_work_that_finishes_first_drops_the_provisional_work_before_it():
    """An interim still decoding when a later final is ready never delays the final: it
    is cancelled, and says nothing."""
    cancelled = []

    async def slow_interim():
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return ("late interim",)

    async def scenario():
        emitter = OrderedEmitter()
        emitter.submit(slow_interim(), provisional="a")
        emitter.submit(_after(0.1, "final"))
        started = asyncio.get_running_loop().time()
        got = []
        async for event in emitter.events():
            got.append((event, asyncio.get_running_loop().time() - started))
            emitter.close()
        return got

    got = _collect(scenario)
    assert [event for event, _ in got] == ["final"]
    assert got[0][1] < 1.0  # out as soon as it was ready, not after the interim's 5 s
    assert cancelled == [True]


def test_a_provisional_is_not_dropped_for_another_provisional():
    """Interims of two channels: the later one finishing first does not cut the earlier
    one; they go out in order."""

    async def scenario():
        emitter = OrderedEmitter()
        emitter.submit(_after(0.2, "interim a"), provisional="channel 0")
        emitter.submit(_after(0.0, "interim b"), provisional="channel 1")
        return await _events_until(emitter, "interim b")

    assert _collect(scenario) == ["interim a", "interim b"]


def test_closing_drops_an_unfinished_provisional():
    async def scenario():
        emitter = OrderedEmitter()
        emitter.submit(_after(0.0, "final"))
        emitter.submit(_after(5, "interim"), provisional="a")
        got = []
        async for event in emitter.events():
            got.append(event)
            emitter.close()  # the call ended: its open turn's final came before
        return got

    assert _collect(scenario) == ["final"]


def test_behind_held_work_only_the_newest_provisional_of_a_kind_goes_out():
    """A final held for redaction: the next turn's interims that finish meanwhile are
    not all sent the moment it goes out; only each channel's newest."""

    async def scenario():
        emitter = OrderedEmitter()
        emitter.submit(_after(0.3, "held final"))
        emitter.submit(_after(0.0, "interim 1 ch0"), provisional="channel 0")
        emitter.submit(_after(0.0, "interim 1 ch1"), provisional="channel 1")
        emitter.submit(_after(0.0, "interim 2 ch0"), provisional="channel 0")
        emitter.submit(_after(0.0, "interim 3 ch0"), provisional="channel 0")
        return await _events_until(emitter, "interim 3 ch0")

    assert _collect(scenario) == ["held final", "interim 1 ch1", "interim 3 ch0"]
