"""Spoken forms to written ones, with a map back to the words they came from.

ASR writes the same card number as "4539 1488 …", "4 5 3 9 …", "four five three nine",
"forty five thirty nine" or "double five"; an e-mail address as "john dot smith at
example dot com". Recognisers want one form, and redaction must land on the words the
caller said, so normalising keeps, for every character of its output, the index of the
source word it came from. Digits that follow each other are joined into one run
("4539 1488" -> "45391488"), so a number split across words, segments or turns is one
string to check; word boundaries inside a run stay known through the map.

No library does this (number parsers turn "forty five thirty nine" into 84 or fail,
and none keeps a per-character source map), so it is written here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}  # fmt: skip
TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}  # fmt: skip
REPEATS = {"double": 2, "triple": 3}
ZERO_WORDS = {"oh", "o"}
"""Zero only next to other digits ("oh five"); alone it is an interjection."""
FILLERS = {"uh", "um", "er", "ah", "erm", "hmm", "dash", "hyphen", "and"}
"""Skipped between two digits, so "4539 uh 1488" stays one run."""
NUMBER_WORDS = set(UNITS) | set(TEENS) | set(TENS) | set(REPEATS) | {"hundred", "thousand"}

TLDS = {
    "com", "net", "org", "edu", "gov", "io", "co", "us", "uk", "info", "biz", "me",
    "ca", "de", "fr", "au", "in", "ai", "app", "dev", "mail", "email",
}  # fmt: skip
EMAIL_CONNECTORS = {"dot": ".", "period": ".", "underscore": "_", "dash": "-", "hyphen": "-"}

_EDGE_PUNCT = re.compile(r"^([\"'(\[]*)(.*?)([\"'.,;:!?)\]]*)$", re.S)
_DIGIT_TOKEN = re.compile(r"^\(?\d[\d\-,./()]*$")
_DECIMAL = re.compile(r"^\d+\.\d{1,2}$")
_WORD_NUMBER = re.compile(r"^([a-z]+)-([a-z]+)$")  # "forty-five"


def split_edges(token: str) -> tuple[str, str, str]:
    """(leading punctuation, core, trailing punctuation) of one source word."""
    match = _EDGE_PUNCT.match(token.strip())
    assert match is not None
    return match.group(1), match.group(2), match.group(3)


@dataclass(frozen=True)
class Normalised:
    """Written-form text; `source[i]` is the source word of character i (-1: a space
    or a character no word owns)."""

    text: str
    source: tuple[int, ...]
    cores: tuple[str, ...] = ()
    """The source words without their edge punctuation."""

    def words_of(self, start: int, end: int) -> range:
        """Source words that characters [start, end) came from."""
        owners = [s for s in self.source[start:end] if s >= 0]
        return range(min(owners), max(owners) + 1) if owners else range(0)


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.source: list[int] = []
        self.last_was_digits = False

    def digits(self, digits: str, word: int) -> None:
        if self.parts and not self.last_was_digits:
            self._space()
        self._append(digits, word)
        self.last_was_digits = True

    def word(self, text: str, word: int) -> None:
        if self.parts:
            self._space()
        self._append(text, word)
        self.last_was_digits = False

    def _space(self) -> None:
        self.parts.append(" ")
        self.source.append(-1)

    def _append(self, text: str, word: int) -> None:
        self.parts.append(text)
        self.source.extend([word] * len(text))

    def build(self, cores: Sequence[str]) -> Normalised:
        return Normalised("".join(self.parts), tuple(self.source), tuple(cores))


def normalise(words: Sequence[str]) -> Normalised:
    """The written form of a hypothesis given as words (ASR words, or text split on
    whitespace)."""
    cores = [split_edges(w)[1] for w in words]
    lowered = [c.lower() for c in cores]
    emails = _spoken_emails(lowered)
    out = _Builder()
    i = 0
    while i < len(words):
        if i in emails:
            end, address = emails[i]
            out.word(address, i)
            # the address's characters belong to its first word; map the rest too
            out.source[-len(address) :] = _spread(i, end, len(address))
            i = end
            continue
        consumed = _number_at(lowered, i, out)
        if consumed:
            i += consumed
            continue
        core = cores[i]
        if _DIGIT_TOKEN.match(core) and not _DECIMAL.match(core) and ":" not in core:
            out.digits(re.sub(r"\D", "", core), i)
        elif lowered[i] in FILLERS and out.last_was_digits and _digit_next(lowered, i + 1):
            pass  # "4539 uh 1488": one run
        elif core:
            out.word(core, i)
        i += 1
    return out.build(cores)


def _spread(first: int, end: int, length: int) -> list[int]:
    """Map `length` characters evenly over words first..end-1."""
    count = end - first
    return [first + min(count - 1, k * count // max(length, 1)) for k in range(length)]


def _digit_next(lowered: Sequence[str], i: int) -> bool:
    while i < len(lowered) and lowered[i] in FILLERS:
        i += 1
    if i >= len(lowered):
        return False
    word = lowered[i]
    return bool(_DIGIT_TOKEN.match(word)) or word in NUMBER_WORDS or word in ZERO_WORDS


def _is_numberish(lowered: Sequence[str], i: int) -> bool:
    return 0 <= i < len(lowered) and (
        lowered[i] in NUMBER_WORDS or bool(_DIGIT_TOKEN.match(lowered[i]))
    )


def _number_at(lowered: Sequence[str], i: int, out: _Builder) -> int:
    """Spoken digits starting at word i, appended to `out`; how many words they took."""
    word = lowered[i]
    parts = _WORD_NUMBER.match(word)
    if parts and parts.group(1) in TENS and parts.group(2) in UNITS:  # "forty-five"
        out.digits(str(TENS[parts.group(1)] + UNITS[parts.group(2)]), i)
        return 1
    if word in ZERO_WORDS:
        if _is_numberish(lowered, i - 1) or _is_numberish(lowered, i + 1) or out.last_was_digits:
            out.digits("0", i)
            return 1
        return 0
    if word in REPEATS and i + 1 < len(lowered):
        nxt = lowered[i + 1]
        digit = UNITS.get(nxt, 0 if nxt in ZERO_WORDS else None)
        if digit is None and re.fullmatch(r"\d", nxt):
            digit = int(nxt)
        if digit is not None:
            out.digits(str(digit) * REPEATS[word], i)
            out.source[-REPEATS[word] :] = [i] * (REPEATS[word] - 1) + [i + 1]
            return 2
        return 0
    if word in UNITS or word in TEENS or word in TENS:
        return _cardinal(lowered, i, out)
    return 0


def _cardinal(lowered: Sequence[str], i: int, out: _Builder) -> int:
    """One spoken group: "seven", "fifteen", "forty five", "five hundred twenty",
    "two thousand and three". Digits of following groups are appended by the caller."""
    value = _below_thousand(lowered, i)
    if value is None:
        return 0
    number, j = value
    if j < len(lowered) and lowered[j] == "thousand":
        number *= 1000
        rest = _below_thousand(lowered, j + 1, after_and=True)
        number, j = (number + rest[0], rest[1]) if rest else (number, j + 1)
    text = str(number)
    out.digits(text, i)
    out.source[-len(text) :] = _spread(i, j, len(text))
    return j - i


def _below_thousand(
    lowered: Sequence[str], j: int, after_and: bool = False
) -> tuple[int, int] | None:
    """(value, next word) of "forty five" or "five hundred [and] twenty", from word j;
    with `after_and`, a leading "and" may come first ("thousand and three")."""
    if after_and and j < len(lowered) and lowered[j] == "and":
        j += 1
    value = _below_hundred(lowered, j)
    if value is None:
        return None
    number, j = value
    if j < len(lowered) and lowered[j] == "hundred":
        number *= 100
        rest = _below_thousand(lowered, j + 1, after_and=True)
        number, j = (number + rest[0], rest[1]) if rest and rest[0] < 100 else (number, j + 1)
    return number, j


def _below_hundred(lowered: Sequence[str], j: int) -> tuple[int, int] | None:
    if j >= len(lowered):
        return None
    word = lowered[j]
    if word in UNITS:
        return UNITS[word], j + 1
    if word in TEENS:
        return TEENS[word], j + 1
    if word in TENS:
        if j + 1 < len(lowered) and lowered[j + 1] in UNITS and lowered[j + 1] != "zero":
            return TENS[word] + UNITS[lowered[j + 1]], j + 2
        return TENS[word], j + 1
    return None


def _spoken_emails(lowered: Sequence[str]) -> dict[int, tuple[int, str]]:
    """Spoken addresses, "john dot smith at example dot com": first word -> (end, address)."""
    found: dict[int, tuple[int, str]] = {}
    for at, word in enumerate(lowered):
        if word != "at" or at == 0:
            continue
        domain, end = _spoken_domain(lowered, at + 1)
        if domain is None:
            continue
        start, local = _spoken_local(lowered, at)
        if start is not None:
            found[start] = (end, f"{local}@{domain}")
    return found


def _spoken_domain(lowered: Sequence[str], j: int) -> tuple[str | None, int]:
    labels: list[str] = []
    while j < len(lowered) and re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", lowered[j] or "-"):
        labels.append(lowered[j])
        j += 1
        if j < len(lowered) and lowered[j] in ("dot", "period"):
            j += 1
            continue
        break
    domain = ".".join(labels)
    if "." in domain and domain.rsplit(".", 1)[1] in TLDS:
        return domain, j
    return None, j


_LOCAL_CUES = ("email", "e-mail", "mail", "address")


def _spoken_local(lowered: Sequence[str], at: int) -> tuple[int | None, str]:
    """The local part before "at": words joined by spoken connectors, or after a cue
    ("my email is john smith at ...") up to three words run together."""
    j = at - 1
    pieces = [lowered[j]]
    while j - 2 >= 0 and lowered[j - 1] in EMAIL_CONNECTORS:
        pieces[:0] = [lowered[j - 2], EMAIL_CONNECTORS[lowered[j - 1]]]
        j -= 2
    if j - 1 >= 1 and lowered[j - 1] not in ("is", "it's") and j - 2 >= 0:
        # "email is john smith at": join the words after the cue
        for back in (2, 3):
            k = j - back + 1
            if (
                k >= 1
                and lowered[k - 1] == "is"
                and any(c in lowered[max(0, k - 4) : k] for c in _LOCAL_CUES)
            ):
                pieces[:0] = lowered[k:j]
                j = k
                break
    if not re.fullmatch(r"[a-z0-9._\-]+", "".join(pieces)):
        return None, ""
    return j, "".join(pieces)
