"""The redaction engine and its per-call window, with the real spaCy/Presidio models."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from serve.core.config import ENTITY_TYPES, RedactionPolicy
from serve.redaction import CallRedaction
from serve.redaction.evaluation import evaluate, meets_targets

ALL = frozenset(ENTITY_TYPES)
CASES = Path(__file__).parents[1] / "redaction" / "cases.jsonl"
CARD = "4539148803436467"


def words(text: str) -> list[str]:
    return text.split()


def _digit_runs(text: str) -> list[str]:
    return re.findall(r"\d(?:[\d\s-]*\d)?", text)


def _longest_run(text: str) -> int:
    return max((len(re.sub(r"\D", "", r)) for r in _digit_runs(text)), default=0)


@pytest.mark.parametrize(
    "text, entity",
    [
        ("my card is four five three nine one four eight eight oh three four three six four six"
         " seven", "CARD_NUMBER"),
        ("it's forty five thirty nine fourteen eighty eight oh three forty three sixty four sixty"
         " seven", "CARD_NUMBER"),
        ("Card 4539-1488-0343-6467.", "CARD_NUMBER"),
        ("the three digits on the back are double seven two", "CARD_SECURITY_CODE"),
        ("my email is john dot smith at example dot com", "EMAIL_ADDRESS"),
        ("My social is 123 45 6789.", "US_SSN"),
    ],
)  # fmt: skip
def test_spoken_forms_are_found(redactor, text, entity):
    redaction = redactor.redact(words(text), ALL)
    assert entity in {f.entity for f in redaction.findings}
    assert _longest_run(redaction.text) < 3
    assert f"[{entity}]" in redaction.text


def test_masking_replaces_words_one_for_one(redactor):
    said = ["Hi,", "my", "card", "is", "4539", "1488", "0343", "6467."]
    redaction = redactor.redact(said, ALL)
    assert len(redaction.masked_words) == len(said)
    assert redaction.masked_words[:4] == tuple(said[:4])
    assert redaction.masked_words[4:] == ("[CARD_NUMBER]",) * 3 + ("[CARD_NUMBER].",)
    assert redaction.text == "Hi, my card is [CARD_NUMBER]."


def test_a_card_straight_into_a_phone_number(redactor):
    redaction = redactor.redact(words("card 4539 1488 0343 6467 212 555 0123"), ALL)
    assert redaction.masks[1:5] == ("CARD_NUMBER",) * 4
    assert redaction.masks[5:] == ("PHONE_NUMBER",) * 3


def test_switched_off_types_stay(redactor):
    said = words("Hi, my name is John Smith")
    assert redactor.redact(said, ALL - {"PERSON"}).text == "Hi, my name is John Smith"
    assert redactor.redact(said, ALL).text == "Hi, my name is [PERSON]"


def test_negatives_stay(redactor):
    for text in ["The total is $45.99, arriving at 10:30.", "I have one or two questions."]:
        assert redactor.redact(text.split(), ALL).text == text


def test_the_evaluation_set_meets_its_targets(redactor):
    assert sum(1 for _ in CASES.open()) >= 300
    scores = evaluate(CASES, redactor)
    assert meets_targets(scores) == []
    assert all(score.labelled >= 18 for score in scores.values())


def test_policy_refuses_unknown_types_and_keeping_security_codes():
    with pytest.raises(ValidationError):
        RedactionPolicy(entities=["CARD_NUMBER", "CARD_SECURITY_CODE", "SHOE_SIZE"])
    with pytest.raises(ValidationError, match="PCI"):
        RedactionPolicy(entities=["CARD_NUMBER"])


# -- the per-call window -----------------------------------------------------------------


def _window(redactor, hold=2.0) -> CallRedaction:
    return CallRedaction(redactor, ALL, hold)


def test_a_card_read_across_two_turns_is_masked_in_both(redactor):
    async def call():
        window = _window(redactor)
        first, second = window.reserve(0), window.reserve(0)
        held = asyncio.create_task(window.final(first, words("my card is 4539 1488")))
        await asyncio.sleep(0.05)
        assert not held.done()  # ends in digits: waits for the channel's next final
        later = await window.final(second, words("0343 6467"))
        return (await held).text, later.text

    first, second = asyncio.run(call())
    assert first == "my card is [CARD_NUMBER]"
    assert second == "[CARD_NUMBER]"


def test_a_held_final_is_released_after_the_hold(redactor):
    async def call():
        window = _window(redactor, hold=0.2)
        ticket = window.reserve(0)
        started = asyncio.get_running_loop().time()
        result = await window.final(ticket, words("my order is 48213"))
        return result.text, asyncio.get_running_loop().time() - started

    text, waited = asyncio.run(call())
    assert text == "my order is 48213"
    assert 0.15 < waited < 1.0


def test_the_last_final_is_released_when_the_call_ends(redactor):
    async def call():
        window = _window(redactor, hold=5.0)
        ticket = window.reserve(0)
        task = asyncio.create_task(window.final(ticket, words("my order is 48213")))
        await asyncio.sleep(0.05)
        window.close()
        return await asyncio.wait_for(task, 1.0)

    assert asyncio.run(call()).text == "my order is 48213"


def test_finals_of_a_channel_are_redacted_in_turn_order(redactor):
    """The second turn's transcript arrives first; it still waits for the first."""

    async def call():
        window = _window(redactor)
        first, second = window.reserve(0), window.reserve(0)
        late = asyncio.create_task(window.final(second, words("0343 6467")))
        await asyncio.sleep(0.05)
        assert not late.done()
        early = await window.final(first, words("card 4539 1488"))
        return early.text, (await late).text

    assert asyncio.run(call()) == ("card [CARD_NUMBER]", "[CARD_NUMBER]")


def test_the_other_channels_question_is_the_cue(redactor):
    async def call():
        window = _window(redactor)
        agent, customer = window.reserve(1), window.reserve(0)
        await window.final(agent, words("What are the three digits on the back?"))
        return (await window.final(customer, words("Sure, 7 2 1."))).text

    assert asyncio.run(call()) == "Sure, [CARD_SECURITY_CODE]."


def test_interims_never_show_digits(redactor):
    redaction = asyncio.run(_window(redactor).interim(words("my card is 4539 1488")))
    assert redaction.text == "my card is [DIGITS]"


def test_an_engine_failure_masks_the_whole_hypothesis():
    class Broken:
        def redact(self, *args):
            raise RuntimeError("model crashed")

    async def call():
        window = CallRedaction(Broken(), ALL, 1.0)
        final = await window.final(window.reserve(0), words("my card is 4539"))
        return final, await window.interim(words("John Smith")), window.tally

    final, interim, tally = asyncio.run(call())
    assert final.failed and final.text == "[REDACTED]"
    assert interim.text == "[REDACTED]"
    assert tally.failures == 1


def test_no_network_at_run_time(tmp_path):
    """Loading the models and redacting an e-mail (tldextract) and a name (spaCy) with
    every socket connection refused."""
    script = tmp_path / "offline.py"
    script.write_text(
        "import socket\n"
        "def refuse(*a, **k):\n"
        "    raise AssertionError('network access at run time')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from serve.core.config import ENTITY_TYPES\n"
        "from serve.redaction import Redactor\n"
        "r = Redactor().redact('Hi, I am John Smith, mail me at jo@example.co.uk'.split(),"
        " frozenset(ENTITY_TYPES))\n"
        "print(r.text)\n"
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "Hi, I am [PERSON], mail me at [EMAIL_ADDRESS]"


def test_a_held_final_waits_while_the_caller_speaks_on(redactor):
    """The next group takes longer to say than the hold: speech on the channel keeps
    the first group held until the turn's final arrives. A blip re-arms the clock."""

    async def call():
        window = _window(redactor, hold=0.2)
        first = window.reserve(0)
        held = asyncio.create_task(window.final(first, words("my card is 4539 1488")))
        await asyncio.sleep(0.05)
        window.speech_started(0)
        await asyncio.sleep(0.4)  # twice the hold
        assert not held.done()
        second = window.reserve(0)
        later = await window.final(second, words("0343 6467"))
        return (await held).text, later.text

    assert asyncio.run(call()) == ("my card is [CARD_NUMBER]", "[CARD_NUMBER]")

    async def blip():
        window = _window(redactor, hold=0.2)
        held = asyncio.create_task(window.final(window.reserve(0), words("order 48213")))
        await asyncio.sleep(0.05)
        window.speech_started(0)
        await asyncio.sleep(0.3)
        assert not held.done()
        window.blip(0)
        return await asyncio.wait_for(held, 1.0)

    assert asyncio.run(blip()).text == "order 48213"


def test_a_card_is_one_finding_not_a_card_and_a_phone_inside_it(redactor):
    """Inside a card's digits lie valid phone numbers ("9148803436"): counted once."""
    redaction = redactor.redact(words("The number I have is 4 5 3 9 1 4 8 8 0 3 4 3 6 4 6 7"), ALL)
    assert [f.entity for f in redaction.findings] == ["CARD_NUMBER"]
