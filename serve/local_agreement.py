"""LocalAgreement-2 (whisper_streaming): a word of a growing turn is confirmed once two
consecutive hypotheses agree on it and on everything before it."""

from __future__ import annotations

from serve.core.scoring import normalize


def agreed_prefix(previous: list[str], current: list[str]) -> int:
    """How many leading words of `current` the previous hypothesis confirms."""
    count = 0
    for before, now in zip(previous, current, strict=False):
        if normalize(before) != normalize(now):
            break
        count += 1
    return count


class InterimTracker:
    """Stability of each new interim hypothesis for one channel's current turn."""

    def __init__(self) -> None:
        self._previous: list[str] = []

    def update(self, text: str) -> float:
        """Record a hypothesis; return the fraction of its words that are confirmed."""
        words = text.split()
        confirmed = agreed_prefix(self._previous, words)
        self._previous = words
        return confirmed / len(words) if words else 0.0

    def reset(self) -> None:
        self._previous = []
