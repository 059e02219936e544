"""Reference texts of the sample calls and a call's WER (loadtests/corpus.py), as the
benchmarks compute them."""

from __future__ import annotations

from loadtests.corpus import call_references, call_wer
from tests.conftest import EXAMPLES


def test_a_calls_references_come_per_channel_from_its_json():
    references = call_references(EXAMPLES / "two_channel_mulaw_8k.wav", ["customer", "agent"])
    assert set(references) == {0, 1}
    assert references[0].startswith("and mister john dashwood")
    assert call_references(EXAMPLES / "card_call_mulaw_8k.wav", ["customer", "agent"]) == {}


def test_call_wer_weights_channels_by_their_words():
    references = {0: "one two three four", 1: "yes"}
    assert call_wer(references, {0: ["one two", "three four"], 1: ["yes"]}) == 0
    # one word of five wrong, whichever channel it is on
    assert call_wer(references, {0: ["one two three four"], 1: ["no"]}) == 20
    assert call_wer(references, {0: ["one two three"], 1: ["yes"]}) == 20
