"""When the agent may reply (serve/turn_taking.py)."""

from __future__ import annotations

from serve.turn_taking import TurnTaking


def test_a_final_heard_while_the_customer_is_quiet_is_answered():
    taking = TurnTaking()
    taking.speech_started(0)
    taking.final_cut(0)
    assert taking.final_heard(0) == 0
    assert taking.due() is None  # answered once


def test_a_final_heard_while_the_next_one_is_awaited_waits_for_it():
    taking = TurnTaking()
    for _ in range(2):
        taking.speech_started(0)
        taking.final_cut(0)
    assert taking.final_heard(0) is None
    assert taking.final_heard(1) == 1


def test_a_final_heard_while_the_customer_speaks_is_answered_after_a_blip():
    taking = TurnTaking()
    taking.speech_started(0)
    taking.final_cut(0)
    taking.speech_started(0)  # speaking again when final 0 comes out
    assert taking.final_heard(0) is None
    assert taking.speech_stopped(0) == 0  # it was a cough: answer turn 0 now


def test_a_later_final_that_comes_to_nothing_releases_the_reply():
    taking = TurnTaking()
    for _ in range(2):
        taking.speech_started(0)
        taking.final_cut(0)
    assert taking.final_heard(0) is None
    assert taking.final_heard(None) == 0  # turn 1 had no words (or failed)


def test_speech_on_another_customer_channel_also_holds_the_reply():
    taking = TurnTaking()
    taking.speech_started(0)
    taking.final_cut(0)
    taking.speech_started(2)
    assert taking.final_heard(0) is None
    taking.final_cut(2)
    assert taking.final_heard(3) == 3
