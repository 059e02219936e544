"""Redaction across one call's turns: the per-channel window and the call's cues.

A caller reads a card number in groups, and the turn detector may cut between them:
"4539 1488" … "0343 6467". Each turn alone shows 8 harmless digits. So a final whose
written form ends in an unmasked run of digits is held back until the channel's next
final, and both are redacted as one hypothesis and released in order. The hold ends
without a next final only when the channel stays silent for `hold_seconds` (the caller
did not go on); while the caller speaks, the held final waits for that turn's final.
Finals of a channel are redacted in turn order, whatever order their transcriptions
finish in.

The words of the call's latest final (any channel, already redacted) are the cue for
the next one, so "what are the three digits on the back?" from the agent makes the
customer's "7 2 1" a security code.

Interims mask every digit besides what the engine finds: their final may still turn
those digits into a card number, and an interim must never show what the final hides.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from serve.redaction.engine import Redaction, Redactor, Tally, failed, unredacted
from serve.redaction.spoken import normalise

CONTEXT_WORDS = 12
MAX_HELD_DIGITS = 18
"""A trailing run this long could still grow into a card number (up to 19 digits)."""
MIN_HELD_DIGITS = 3


@dataclass(eq=False)
class Ticket:
    """A final's place in its channel's order, taken when its turn ends."""

    channel: int
    after: asyncio.Future | None
    processed: asyncio.Future
    released: asyncio.Future
    words: tuple[str, ...] = ()
    redaction: Redaction | None = None
    held: bool = False
    """It waited for the channel's next final (it ended in digits)."""


@dataclass
class _Channel:
    last: Ticket | None = None
    pending: list[Ticket] = field(default_factory=list)
    context: tuple[str, ...] = ()
    timer: asyncio.TimerHandle | None = None
    speaking: bool = False
    """A turn is open on the channel: its final will come."""


class CallRedaction:
    """One call's redaction. `redactor` None: redaction is off (benchmarks only)."""

    def __init__(
        self, redactor: Redactor | None, entities: frozenset[str], hold_seconds: float
    ) -> None:
        self._redactor = redactor
        self._entities = entities
        self._hold = hold_seconds
        self._channels: dict[int, _Channel] = {}
        self._context: tuple[str, ...] = ()
        self._closed = False
        self.tally = Tally()

    @property
    def enabled(self) -> bool:
        return self._redactor is not None

    # -- finals ----------------------------------------------------------------------

    def reserve(self, channel: int) -> Ticket:
        """Take the next place in `channel`'s order (call when the turn ends)."""
        state = self._channels.setdefault(channel, _Channel())
        state.speaking = False
        self._disarm(state)  # the new final will release or extend what is held
        loop = asyncio.get_running_loop()
        previous = state.last.processed if state.last is not None else None
        ticket = Ticket(channel, previous, loop.create_future(), loop.create_future())
        state.last = ticket
        return ticket

    async def final(self, ticket: Ticket, words: Sequence[str]) -> Redaction:
        """The final's redaction, once it may be released: at once, or after the
        channel's next final (or the hold) when it ends in digits. Empty `words` (no
        text, or a failed turn) keep the channel's order and release nothing."""
        if ticket.after is not None:
            await asyncio.shield(ticket.after)
        state = self._channels[ticket.channel]
        try:
            if not words:
                ticket.released.set_result(unredacted(()))
                self._arm(state, ticket)
            else:
                await self._place(state, ticket, tuple(words))
        except Exception:  # a bug in the window: fail closed, and the channel goes on
            if not ticket.released.done():
                self.tally.failures += 1
                ticket.released.set_result(failed(words))
        finally:
            ticket.processed.set_result(None)
            if self._closed and state.last is ticket:
                self._release(state)
        return await ticket.released

    def speech_started(self, channel: int) -> None:
        """The channel's VAD heard speech: a held final waits for the turn's final."""
        state = self._channels.setdefault(channel, _Channel())
        state.speaking = True
        self._disarm(state)

    def blip(self, channel: int) -> None:
        """The speech that started was too short to be a turn: no final is coming."""
        state = self._channels.setdefault(channel, _Channel())
        state.speaking = False
        self._arm(state)

    def close(self) -> None:
        """No more turns: release what waits for a next final that will not come."""
        self._closed = True
        for state in self._channels.values():
            if state.last is None or state.last.processed.done():
                self._release(state)

    async def _place(self, state: _Channel, ticket: Ticket, words: tuple[str, ...]) -> None:
        ticket.words = words
        group = [*state.pending, ticket]
        if not state.pending:
            state.context = self._context
        redaction = await self._redact([w for t in group for w in t.words], state.context)
        _split(redaction, group)
        held_from = None if redaction.failed else _dangling_from(redaction)
        if self._redactor is None or self._hold <= 0 or held_from is None:
            state.pending = group
            self._release(state)
            return
        released, state.pending = _split_at(group, held_from)
        for done in released:
            self._deliver(done)
        for waiting in state.pending:
            waiting.held = True
        self._arm(state, ticket)

    def _arm(self, state: _Channel, current: Ticket | None = None) -> None:
        """Start the hold's clock, unless a final is on its way (a later turn ended, or
        one is open): then that final releases what is held."""
        self._disarm(state)
        coming = state.speaking or not (
            state.last is current or state.last is None or state.last.processed.done()
        )
        if state.pending and not coming:
            loop = asyncio.get_running_loop()
            state.timer = loop.call_later(self._hold, self._release, state)

    @staticmethod
    def _disarm(state: _Channel) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None

    def _release(self, state: _Channel) -> None:
        self._disarm(state)
        for ticket in state.pending:
            self._deliver(ticket)
        state.pending = []

    def _deliver(self, ticket: Ticket) -> None:
        if ticket.released.done():
            return
        assert ticket.redaction is not None
        self.tally.add(ticket.redaction)
        self._context = ticket.redaction.masked_words[-CONTEXT_WORDS:]
        ticket.released.set_result(ticket.redaction)

    # -- interims --------------------------------------------------------------------

    async def interim(self, words: Sequence[str]) -> Redaction:
        return await self.alone(words, mask_digits=True)

    async def alone(self, words: Sequence[str], mask_digits: bool = False) -> Redaction:
        """One hypothesis outside the channel order (an interim, a Converse turn)."""
        return await self._redact(words, self._context, mask_digits)

    async def _redact(
        self, words: Sequence[str], context: Sequence[str], mask_digits: bool = False
    ) -> Redaction:
        """The engine, in a worker thread; a failure masks the whole hypothesis (fail
        closed; `Redaction.failed` counts it)."""
        if self._redactor is None:
            return unredacted(words)
        try:
            return await asyncio.to_thread(
                self._redactor.redact, list(words), self._entities, context, mask_digits
            )
        except Exception:
            return failed(words)


def _split(redaction: Redaction, group: list[Ticket]) -> None:
    """Give each ticket its words' part of the group's redaction, keeping what an
    earlier pass masked (a longer view may only add masks)."""
    offset = 0
    for ticket in group:
        count = len(ticket.words)
        masks = list(redaction.masks[offset : offset + count])
        if ticket.redaction is not None:
            masks = [new or old for new, old in zip(masks, ticket.redaction.masks, strict=True)]
        # counted once, by the ticket where the finding starts
        findings = tuple(f for f in redaction.findings if offset <= f.words.start < offset + count)
        ticket.redaction = Redaction(ticket.words, tuple(masks), findings, redaction.failed)
        offset += count


def _dangling_from(redaction: Redaction) -> int | None:
    """The first word of a trailing run of digits that is not all masked, if any."""
    norm = normalise(redaction.words)
    run = re.search(r"(\d+)$", norm.text)
    if run is None or not MIN_HELD_DIGITS <= len(run.group()) <= MAX_HELD_DIGITS:
        return None
    words = norm.words_of(run.start(), run.end())
    if all(redaction.masks[i] is not None for i in words):
        return None
    return words.start


def _split_at(group: list[Ticket], word: int) -> tuple[list[Ticket], list[Ticket]]:
    """Tickets that end before combined word `word`, and the rest."""
    offset = 0
    for index, ticket in enumerate(group):
        if offset + len(ticket.words) > word:
            return group[:index], group[index:]
        offset += len(ticket.words)
    return group, []
