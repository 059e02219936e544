"""When the agent may reply: after a customer's final, unless the customer is already
saying more.

A final can arrive late (its transcriber replica died and the turn was sent again, or
the transcriber is slow) while the customer's next turn is under way or already waiting
for its own final. A reply started then would be cut by that next final as if the
customer had barged in. So the reply waits for the customer's latest turn and answers
the conversation up to it; only speech that starts after a reply began cuts it.
"""

from __future__ import annotations


class TurnTaking:
    """Customer-side state of one call (channels are the customer's channels)."""

    def __init__(self) -> None:
        self._speaking: set[int] = set()
        """Channels whose speech began and has neither become a final nor a blip."""
        self._awaiting = 0
        """Customer finals cut by the VAD and not yet heard (or come to nothing)."""
        self._owed: int | None = None
        """The latest customer turn heard while the customer was saying more."""

    def speech_started(self, channel: int) -> None:
        self._speaking.add(channel)

    def speech_stopped(self, channel: int) -> int | None:
        """Speech ended without a turn (a blip), or the call paused or ended."""
        self._speaking.discard(channel)
        return self.due()

    def final_cut(self, channel: int) -> None:
        """The VAD ended a customer turn; its final is on its way."""
        self._speaking.discard(channel)
        self._awaiting += 1

    def final_heard(self, turn_index: int | None) -> int | None:
        """A customer final came out in order (`turn_index`), or came to nothing (None:
        no words, or its transcription failed). Returns the turn to reply to now."""
        self._awaiting -= 1
        if turn_index is not None:
            self._owed = turn_index
        return self.due()

    def due(self) -> int | None:
        """The turn to reply to, once the customer is quiet and no final is awaited."""
        if self._owed is None or self._awaiting or self._speaking:
            return None
        owed, self._owed = self._owed, None
        return owed
