"""Recognisers for what callers read aloud: numbers found by checksum or by the words
before them, on the written form that serve/redaction/spoken.py makes.

Checksums come from python-stdnum (Luhn, ABA routing, SSN rules) and phone numbers from
phonenumbers. What no library offers is the spoken context ("the three digits on the
back are ...", "my PIN is ...") and card numbers inside a longer run of digits; those
rules are written here. Names and written e-mail addresses come from Presidio
(serve/redaction/nlp.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import phonenumbers
from stdnum import luhn
from stdnum.us import rtn, ssn

from serve.redaction.spoken import Normalised


@dataclass(frozen=True)
class Span:
    entity: str
    start: int
    end: int
    """Character offsets in the normalised text."""


_RUN = re.compile(r"(?<![\w$:.,/])\d+(?![\w:.,/%])")
_WORD = re.compile(r"[a-z0-9']+")


def _runs(text: str) -> Iterator[re.Match]:
    return _RUN.finditer(text)


def _cue(text: str, start: int, pattern: re.Pattern, words: int = 10) -> bool:
    """Whether `pattern` occurs in the last `words` words before `start`."""
    before = _WORD.findall(text[:start].lower())[-words:]
    return bool(pattern.search(" ".join(before)))


def _boundaries(norm: Normalised, start: int, end: int) -> list[int]:
    """Offsets in [start, end) where a new source word begins."""
    src = norm.source
    return [p for p in range(start, end) if p == start or src[p] != src[p - 1]]


# -- payment cards ----------------------------------------------------------------------

_CARD_CUE = re.compile(
    r"\b(card|visa|mastercard|master card|amex|american express|discover|credit|debit|"
    r"account number|number on the front)\b"
)
_CARD_LENGTHS = range(19, 12, -1)


def _card_prefix_ok(number: str) -> bool:
    """Issuer prefixes (IIN ranges) of the major networks, with their lengths."""
    n = len(number)
    two, four = int(number[:2]), int(number[:4])
    if number[0] == "4":
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return n == 16
    if two in (34, 37):
        return n == 15
    if number.startswith(("6011", "65")) or 644 <= int(number[:3]) <= 649 or two == 62:
        return 16 <= n <= 19
    if two == 35:
        return 16 <= n <= 19
    if two in (30, 36, 38, 39):
        return n in (14, 16)
    return False


def cards(norm: Normalised) -> list[Span]:
    """Luhn-valid numbers with an issuer prefix, also inside a longer run (a card read
    straight on into a phone number); with a card cue, any run of 13-19 digits (one
    misheard digit breaks the checksum but not the caller's privacy)."""
    found = []
    for run in _runs(norm.text):
        digits, start = run.group(), run.start()
        if len(digits) < 13:
            continue
        spans = list(_card_spans(norm, start, digits))
        if not spans and len(digits) <= 19 and _cue(norm.text, start, _CARD_CUE):
            spans = [Span("CARD_NUMBER", start, run.end())]
        found += spans
    return found


def _card_spans(norm: Normalised, start: int, digits: str) -> Iterator[Span]:
    position = start
    end = start + len(digits)
    while position < end:
        for begin in _boundaries(norm, position, end):
            offset = begin - start
            for length in _CARD_LENGTHS:
                number = digits[offset : offset + length]
                if len(number) == length and _card_prefix_ok(number) and luhn.is_valid(number):
                    yield Span("CARD_NUMBER", begin, begin + length)
                    position = begin + length
                    break
            else:
                continue
            break
        else:
            return


_CVV_CUE = re.compile(
    r"\b(security code|cvv2?|cvc2?|cid|csc|card verification|verification (code|value)|"
    r"(three|3|four|4) digits?|on the back|back of the card|security number)\b"
)


def security_codes(norm: Normalised) -> list[Span]:
    """Three or four digits after a security-code cue."""
    return [
        Span("CARD_SECURITY_CODE", run.start(), run.end())
        for run in _runs(norm.text)
        if len(run.group()) in (3, 4) and _cue(norm.text, run.start(), _CVV_CUE, words=12)
    ]


_EXPIRY_CUE = re.compile(r"\b(expir\w*|exp|valid (thru|through|until)|good (thru|through))\b")
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|"
    "december|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_MONTH_YEAR = re.compile(rf"\b({_MONTHS})\b(\s+(of\s+)?\d{{2,4}})", re.I)


def expiries(norm: Normalised) -> list[Span]:
    """A month and year after an expiry cue: "oh five twenty seven", "05/27", "may 2027"."""
    found = []
    for match in _MONTH_YEAR.finditer(norm.text):
        if _cue(norm.text, match.start(), _EXPIRY_CUE, words=8):
            found.append(Span("CARD_EXPIRY", match.start(), match.end()))
    for run in _runs(norm.text):
        digits = run.group()
        if 3 <= len(digits) <= 6 and _cue(norm.text, run.start(), _EXPIRY_CUE, words=8):
            month = int(digits[:2]) if len(digits) in (4, 6) else int(digits[0])
            if 1 <= month <= 12:
                found.append(Span("CARD_EXPIRY", run.start(), run.end()))
    return found


# -- identity numbers and bank details -------------------------------------------------

_WRITTEN_SSN = re.compile(r"^\d{3}-\d{2}-\d{4}$")
_SSN_CUE = re.compile(r"\b(social|ssn|social security|tax id|taxpayer)\b")


def social_security_numbers(norm: Normalised) -> list[Span]:
    """Nine digits that follow the SSN rules and either a cue or the 3-2-4 grouping;
    with a cue also the "last four"."""
    found = []
    for run in _runs(norm.text):
        digits, start = run.group(), run.start()
        cued = _cue(norm.text, start, _SSN_CUE, words=12)
        if len(digits) == 9:
            groups = [b - start for b in _boundaries(norm, start, run.end())]
            written = _WRITTEN_SSN.match(norm.cores[norm.source[start]])
            if cued or (ssn.is_valid(digits) and (groups == [0, 3, 5] or written)):
                found.append(Span("US_SSN", start, run.end()))
        elif len(digits) == 4 and cued:
            found.append(Span("US_SSN", start, run.end()))
    return found


_ROUTING_CUE = re.compile(r"\b(routing|aba|transit number|transit)\b")
_ACCOUNT_CUE = re.compile(r"\b(account|checking|savings|acct)\b")


def bank_numbers(norm: Normalised) -> list[Span]:
    """ABA routing numbers (checksum, or nine digits after a routing cue) and account
    numbers (6-17 digits after an account cue)."""
    found = []
    for run in _runs(norm.text):
        digits, start = run.group(), run.start()
        routing_cued = _cue(norm.text, start, _ROUTING_CUE)
        if len(digits) == 9 and (
            routing_cued or (rtn.is_valid(digits) and _cue(norm.text, start, _ACCOUNT_CUE))
        ):
            found.append(Span("ROUTING_NUMBER", start, run.end()))
        elif 6 <= len(digits) <= 17 and _cue(norm.text, start, _ACCOUNT_CUE, words=8):
            found.append(Span("BANK_ACCOUNT", start, run.end()))
    return found


_PIN_CUE = re.compile(r"\b(pin|pin number|passcode|pass code|access code|security pin)\b")
_PASSWORD_CUE = re.compile(
    r"\b(password|passphrase|pass phrase|passwords?)\s+(is|was|it's)\b", re.I
)
_PASSWORD_STOP = re.compile(r"[.,;!?]|\b(and|but|so|okay|ok|thanks|thank)\b", re.I)


def pins(norm: Normalised) -> list[Span]:
    return [
        Span("PIN", run.start(), run.end())
        for run in _runs(norm.text)
        if 4 <= len(run.group()) <= 8 and _cue(norm.text, run.start(), _PIN_CUE, words=8)
    ]


def passwords(norm: Normalised) -> list[Span]:
    """The words after "my password is", up to three or the end of the clause."""
    found = []
    for cue in _PASSWORD_CUE.finditer(norm.text):
        rest = norm.text[cue.end() :]
        stop = _PASSWORD_STOP.search(rest)
        clause = rest[: stop.start()] if stop else rest
        words = list(re.finditer(r"\S+", clause))[:3]
        if words:
            found.append(
                Span("PASSWORD", cue.end() + words[0].start(), cue.end() + words[-1].end())
            )
    return found


# -- contact details -------------------------------------------------------------------

_PHONE_CUE = re.compile(
    r"\b(phone|number|call me|reach me|cell|mobile|callback|call back|text me)\b"
)


def phone_numbers(norm: Normalised) -> list[Span]:
    """Valid US numbers by libphonenumber; after a phone cue also merely possible ones
    (555 numbers, which the library calls invalid)."""
    found = _phones_in_long_runs(norm)
    for match in phonenumbers.PhoneNumberMatcher(
        norm.text, "US", leniency=phonenumbers.Leniency.POSSIBLE
    ):
        digits = re.sub(r"\D", "", match.raw_string)
        valid = phonenumbers.is_valid_number(match.number)
        if len(digits) < 7:
            continue
        if valid or _cue(norm.text, match.start, _PHONE_CUE, words=8):
            found.append(Span("PHONE_NUMBER", match.start, match.end))
    return found


def _phones_in_long_runs(norm: Normalised) -> list[Span]:
    """A valid number that starts at a word inside a longer run ("4539 … 6467 212 555
    0123" is one run once normalised; the matcher only sees whole runs), where the run
    also holds a card or follows a phone cue."""
    found = []
    for run in _runs(norm.text):
        if len(run.group()) <= 11:
            continue
        cards = list(_card_spans(norm, run.start(), run.group()))
        if not (cards or _cue(norm.text, run.start(), _PHONE_CUE, words=8)):
            continue  # a long reference number, not a card and a phone said together
        after_cards = max((card.end for card in cards), default=run.start() + 1)
        for begin in _boundaries(norm, after_cards, run.end()):  # not inside a card
            for length in (11, 10):
                digits = norm.text[begin : begin + length]
                if len(digits) == length and (length == 10 or digits[0] == "1"):
                    try:
                        number = phonenumbers.parse(digits, "US")
                    except phonenumbers.NumberParseException:
                        continue
                    if phonenumbers.is_valid_number(number):
                        found.append(Span("PHONE_NUMBER", begin, begin + length))
                        break
    return found


_DOB_CUE = re.compile(r"\b(date of birth|dob|d o b|born|birthday|birth date|birthdate)\b")
_DATE_WORD = re.compile(
    rf"^({_MONTHS}|\d{{1,8}}|\d{{1,2}}(st|nd|rd|th)|first|second|third|\w+th|"
    r"\w+(ond|rst|ird)|of|the|slash|,)$",
    re.I,
)


def dates_of_birth(norm: Normalised) -> list[Span]:
    """The date after a birth cue: the words that read as a date, up to eight."""
    found = []
    for cue in _DOB_CUE.finditer(norm.text.lower()):
        rest = norm.text[cue.end() :]
        words = list(re.finditer(r"[^\s,]+", rest))
        skip = 0
        while skip < len(words) and words[skip].group().lower() in (
            "is",
            "was",
            "it's",
            "on",
            "my",
            "um",
            "uh",
        ):
            skip += 1
        taken = []
        for word in words[skip : skip + 8]:
            if not _DATE_WORD.match(word.group().strip(".")):
                break
            taken.append(word)
        if any(re.search(r"\d|" + _MONTHS, w.group().lower()) for w in taken):
            found.append(
                Span("DATE_OF_BIRTH", cue.end() + taken[0].start(), cue.end() + taken[-1].end())
            )
    return found


_STATES = (
    "alabama|alaska|arizona|arkansas|california|colorado|connecticut|delaware|florida|"
    "georgia|hawaii|idaho|illinois|indiana|iowa|kansas|kentucky|louisiana|maine|maryland|"
    "massachusetts|michigan|minnesota|mississippi|missouri|montana|nebraska|nevada|"
    "new hampshire|new jersey|new mexico|new york|north carolina|north dakota|ohio|oklahoma|"
    "oregon|pennsylvania|rhode island|south carolina|south dakota|tennessee|texas|utah|"
    "vermont|virginia|washington|west virginia|wisconsin|wyoming"
)
_STREET = re.compile(
    r"\b\d{1,6}\s+((?i:north|south|east|west|n|s|e|w)\s+)?([A-Za-z0-9']+\s+){1,3}"
    r"(?i:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|"
    r"pl|terrace|circle|highway|hwy|parkway|pkwy|square|trail|loop)\b"
    r"(\s*,?\s*(?i:apartment|apt|unit|suite|number)\s+\w+)?"
    rf"((\s+[A-Z][a-z]+){{0,2}}\s+(?i:{_STATES}))?",  # "Springfield, Illinois"
)
_ZIP_CUE = re.compile(rf"\b(zip|zip code|zipcode|postal code|postcode|{_STATES})\b")


def street_addresses(norm: Normalised) -> list[Span]:
    return [Span("STREET_ADDRESS", m.start(), m.end()) for m in _STREET.finditer(norm.text)]


def zip_codes(norm: Normalised) -> list[Span]:
    return [
        Span("ZIP_CODE", run.start(), run.end())
        for run in _runs(norm.text)
        if len(run.group()) in (5, 9) and _cue(norm.text, run.start(), _ZIP_CUE, words=4)
    ]


_NAME_CUE = re.compile(
    r"\b(my name is|name's|this is|i am|i'm|speaking with|spelled|last name is|first name is)\s+"
    r"([A-Z][a-z'\-]+(\s+[A-Z][a-z'\-]+){0,2})"
)
_NOT_NAMES = {"calling", "just", "not", "here", "sorry", "the", "a", "very", "so", "good"}


def introduced_names(norm: Normalised) -> list[Span]:
    """Capitalised words after "my name is" (the NER model misses lone first names)."""
    found = []
    for match in _NAME_CUE.finditer(norm.text):
        if match.group(2).split()[0].lower() not in _NOT_NAMES:
            found.append(Span("PERSON", match.start(2), match.end(2)))
    return found


RECOGNISERS: tuple[Callable[[Normalised], list[Span]], ...] = (
    cards,
    security_codes,
    expiries,
    social_security_numbers,
    bank_numbers,
    pins,
    passwords,
    phone_numbers,
    dates_of_birth,
    street_addresses,
    zip_codes,
    introduced_names,
)
"""The rule-based recognisers. All run on every hypothesis (regular expressions, cheap);
the engine keeps the spans of the types the tenant's policy enables."""
