"""Word error rate against reference transcripts, after the usual normalisation.

jiwer computes the rate; the normalisation is ours because Whisper writes some spoken
forms differently from the references' plain words, and LocalAgreement compares words
the same way.
"""

from __future__ import annotations

import re

import jiwer

_NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
# Whisper writes a number as digits one time and as words the next ("4-1-7-2", "Four,
# one, seven, two"): both count as the digits.
_SPOKEN = {"mr": "mister", "mrs": "missus", "dr": "doctor"} | {
    word: str(value) for value, word in enumerate(_NUMBERS)
}


def normalize(text: str) -> list[str]:
    # "10 a.m.", "10 AM" and a reference's "10 a m" are one spoken form.
    text = re.sub(r"\b([ap])\.? ?m\b\.?", r"\1m", text.lower())
    text = re.sub(r"[-‐–—]", " ", text)
    words = re.sub(r"[^a-z0-9' ]", " ", text).split()
    return [_SPOKEN.get(word, word) for word in words]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word edits per reference word; an empty reference counts each hypothesis word."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    if not ref:
        return float(len(hyp))
    if not hyp:
        return 1.0
    return jiwer.wer(" ".join(ref), " ".join(hyp))
