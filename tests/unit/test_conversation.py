import pytest

from serve.conversation import Conversation, chat_messages, fit_to_context


def _words(messages) -> int:
    return sum(len(m["content"].split()) for m in messages)


def test_chat_messages_alternate_roles_and_merge_runs():
    messages = chat_messages(
        "be brief", [("customer", "hi"), ("customer", "there"), ("agent", "hello")]
    )
    assert messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello"},
    ]


def test_fit_to_context_drops_the_oldest_turns_first():
    turns = [("customer", f"turn{i} " + "word " * 9) for i in range(10)]  # 10 words each
    kept = fit_to_context("sys", turns, _words, budget=1 + 35)
    assert kept == tuple(turns[-3:])
    assert fit_to_context("sys", turns, _words, budget=10_000) == tuple(turns)


@pytest.mark.parametrize("budget", [1, 12, 36, 200, 640, 10_000])
def test_fit_to_context_bisects_to_what_dropping_one_by_one_keeps(budget):
    turns = [("customer" if i % 2 else "agent", "word " * (3 + i % 7)) for i in range(64)]
    calls = []

    def counting(messages):
        calls.append(1)
        return _words(messages)

    one_by_one = tuple(turns)
    while len(one_by_one) > 1 and _words(chat_messages("sys", one_by_one)) > budget:
        one_by_one = one_by_one[1:]
    assert fit_to_context("sys", turns, counting, budget) == one_by_one
    assert len(calls) <= 6  # log2(64) renderings, not one per dropped turn


def test_fit_to_context_keeps_the_last_turn_even_when_alone_too_long():
    turns = [("customer", "word " * 100)]
    assert fit_to_context("sys", turns, _words, budget=5) == tuple(turns)


def test_conversation_caps_turns_and_checks_roles():
    conversation = Conversation(max_turns=3)
    for i in range(5):
        conversation.add("customer", f"t{i}")
    conversation.add("agent", "")  # nothing said, nothing kept
    assert [text for _, text in conversation.turns] == ["t2", "t3", "t4"]
    with pytest.raises(ValueError, match="role"):
        conversation.add("system", "x")
