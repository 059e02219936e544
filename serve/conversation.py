"""Per-call conversation state for the dialogue model, bounded to its context.

Turns are kept oldest first; when the prompt would not leave room for the reply, the
oldest turns are dropped (never the newest, never the system prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Turn = tuple[str, str]  # (role, text); role is "customer" or "agent"
CHAT_ROLES = {"customer": "user", "agent": "assistant"}


def chat_messages(system_prompt: str, turns: Sequence[Turn]) -> list[dict[str, str]]:
    """OpenAI-style chat messages; consecutive turns of one role are merged, as chat
    templates expect alternating roles."""
    messages = [{"role": "system", "content": system_prompt}]
    for role, text in turns:
        chat_role = CHAT_ROLES[role]
        if messages[-1]["role"] == chat_role:
            messages[-1] = {"role": chat_role, "content": f"{messages[-1]['content']} {text}"}
        else:
            messages.append({"role": chat_role, "content": text})
    return messages


def fit_to_context(
    system_prompt: str,
    turns: Sequence[Turn],
    count_prompt_tokens: Callable[[list[dict[str, str]]], int],
    budget: int,
) -> tuple[Turn, ...]:
    """The newest turns whose prompt fits in `budget` tokens (at least the last turn).

    Dropping the oldest turns only shortens the prompt, so the fewest drops that fit are
    found by bisection: about log2(turns) renderings, not one per dropped turn."""
    turns = tuple(turns)

    def fits(dropped: int) -> bool:
        return count_prompt_tokens(chat_messages(system_prompt, turns[dropped:])) <= budget

    most = max(len(turns) - 1, 0)  # the newest turn is always kept
    low, high = 0, most
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return turns[low:]


class Conversation:
    """One call's dialogue history, oldest first, with a hard cap on turns kept."""

    def __init__(self, max_turns: int = 64) -> None:
        self._turns: list[Turn] = []
        self._max_turns = max_turns

    def add(self, role: str, text: str) -> None:
        if role not in CHAT_ROLES:
            raise ValueError(f"unknown role {role!r}")
        if text:
            self._turns.append((role, text))
            del self._turns[: -self._max_turns]

    @property
    def turns(self) -> tuple[Turn, ...]:
        return tuple(self._turns)
