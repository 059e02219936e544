"""The redaction engine: find entities in one hypothesis and mask the words they span.

A hypothesis arrives as words (ASR words for finals, the text split on whitespace for
interims); findings are ranges of those words, so masking replaces words one for one
and never moves a word's timing. Everything here is synchronous CPU work: callers run
it off the event loop (serve/redaction/window.py does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from serve.core.config import ENTITY_TYPES
from serve.redaction.nlp import SPACY_MODEL, NamesAndEmails
from serve.redaction.recognizers import RECOGNISERS, Span
from serve.redaction.spoken import Normalised, normalise, split_edges

FAILED = "REDACTED"
"""The mask of every word of a hypothesis the engine failed on (fail closed)."""
DIGITS = "DIGITS"
"""The mask interims put on any digits left, since their final may still redact them."""
_PRIORITY = {entity: rank for rank, entity in enumerate((*ENTITY_TYPES, DIGITS, FAILED))}


@dataclass(frozen=True)
class Finding:
    entity: str
    words: range
    """Indexes of the hypothesis words it spans."""


@dataclass(frozen=True)
class Redaction:
    """One hypothesis, redacted: `masks[i]` is the entity that hides word i, or None."""

    words: tuple[str, ...]
    masks: tuple[str | None, ...]
    findings: tuple[Finding, ...] = ()
    failed: bool = False

    @property
    def masked_words(self) -> tuple[str, ...]:
        return tuple(_mask_word(w, m) for w, m in zip(self.words, self.masks, strict=True))

    @property
    def text(self) -> str:
        """The words joined, each run of one finding shown as one mask."""
        out: list[str] = []
        for index, (word, mask) in enumerate(zip(self.words, self.masks, strict=True)):
            if mask is not None and index > 0 and self.masks[index - 1] == mask:
                trail = split_edges(word)[2]
                out[-1] = _strip_trailing_punct(out[-1]) + trail
                continue
            out.append(_mask_word(word, mask))
        return " ".join(out)

    def only(self, entities: Iterable[str]) -> Redaction:
        """This redaction with only some entity types masked (e.g. security codes in
        text that is otherwise stored raw)."""
        keep = set(entities)
        masks = tuple(m if m in keep else None for m in self.masks)
        return Redaction(self.words, masks, tuple(f for f in self.findings if f.entity in keep))

    def counts(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for finding in self.findings:
            counted[finding.entity] = counted.get(finding.entity, 0) + 1
        return counted


def _mask_word(word: str, mask: str | None) -> str:
    if mask is None:
        return word
    lead, _, trail = split_edges(word)
    return f"{lead}[{mask}]{trail}"


def _strip_trailing_punct(word: str) -> str:
    return re.sub(r"[.,;:!?]+$", "", word)


def unredacted(words: Sequence[str]) -> Redaction:
    return Redaction(tuple(words), (None,) * len(words))


def failed(words: Sequence[str]) -> Redaction:
    """Every word masked: what a hypothesis becomes when the engine fails on it."""
    return Redaction(tuple(words), (FAILED,) * len(words), failed=True)


class Redactor:
    """Loaded once per gateway replica (spaCy takes seconds); thread-safe for `redact`."""

    def __init__(self, spacy_model: str = SPACY_MODEL) -> None:
        self._names = NamesAndEmails(spacy_model)

    def redact(
        self,
        words: Sequence[str],
        entities: frozenset[str],
        context: Sequence[str] = (),
        mask_digits: bool = False,
    ) -> Redaction:
        """Mask what `entities` names. `context`: the words said just before (the other
        channel's question, say), read for cues but never masked. `mask_digits` hides
        any digit left too (for interims)."""
        everything = [*context, *words]
        norm = normalise(everything)
        spans = [span for recognise in RECOGNISERS for span in recognise(norm)]
        spans += self._names.find(norm.text, entities)
        if mask_digits:
            spans += [Span(DIGITS, m.start(), m.end()) for m in re.finditer(r"\d+", norm.text)]
        findings = _findings(norm, spans, entities | {DIGITS}, offset=len(context))
        masks: list[str | None] = [None] * len(words)
        for finding in findings:
            for index in finding.words:
                current = masks[index]
                if current is None or _PRIORITY[finding.entity] < _PRIORITY[current]:
                    masks[index] = finding.entity
        return Redaction(tuple(words), tuple(masks), tuple(findings))


def _findings(
    norm: Normalised, spans: list[Span], entities: frozenset[str], offset: int
) -> list[Finding]:
    findings = []
    seen = set()
    for span in spans:
        if span.entity not in entities:
            continue
        words = norm.words_of(span.start, span.end)
        start, stop = max(words.start, offset) - offset, max(words.stop, offset) - offset
        if stop > start and (span.entity, start, stop) not in seen:
            seen.add((span.entity, start, stop))
            findings.append(Finding(span.entity, range(start, stop)))
    findings.sort(key=lambda f: (f.words.start, _PRIORITY[f.entity]))
    return findings


@dataclass
class Tally:
    """Counts for metrics and spans: never what was found, only how many."""

    entities: dict[str, int] = field(default_factory=dict)
    failures: int = 0

    def add(self, redaction: Redaction) -> None:
        for entity, count in redaction.counts().items():
            self.entities[entity] = self.entities.get(entity, 0) + count
        self.failures += redaction.failed
