"""Precision and recall of the redaction engine on a labelled set (tests/redaction).

A labelled entity is recalled when every word of it is masked (by any type: what
matters is that it does not show). A finding is a true positive when it overlaps a
labelled entity; anything masked in a negative case is a false positive.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from serve.core.config import ENTITY_TYPES
from serve.redaction.engine import Redactor


@dataclass
class Score:
    labelled: int = 0
    recalled: int = 0
    found: int = 0
    correct: int = 0
    missed: list[str] = field(default_factory=list)
    spurious: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.recalled / self.labelled if self.labelled else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.found if self.found else 1.0


def _word_range(text: str, value: str) -> range:
    start = text.index(value)
    first = len(text[:start].split())
    return range(first, first + len(value.split()))


def evaluate(cases_file: Path, redactor: Redactor) -> dict[str, Score]:
    scores = {entity: Score() for entity in ENTITY_TYPES}
    entities = frozenset(ENTITY_TYPES)
    for line in cases_file.read_text().splitlines():
        case = json.loads(line)
        words = case["text"].split()
        labelled = [(e["type"], _word_range(case["text"], e["value"])) for e in case["entities"]]
        redaction = redactor.redact(words, entities)
        for entity, span in labelled:
            score = scores[entity]
            score.labelled += 1
            if all(redaction.masks[i] is not None for i in span):
                score.recalled += 1
            else:
                score.missed.append(case["text"])
        for finding in redaction.findings:
            score = scores[finding.entity]
            score.found += 1
            if any(set(finding.words) & set(span) for _, span in labelled):
                score.correct += 1
            else:
                score.spurious.append(case["text"])
    return scores


TARGETS = {"CARD_NUMBER": 0.99, "CARD_SECURITY_CODE": 0.99, "US_SSN": 0.99}
"""Recall targets; every other type: 0.95. Precision: 0.95 for every type."""
OTHER_RECALL = 0.95
PRECISION = 0.95


def meets_targets(scores: dict[str, Score]) -> list[str]:
    """The types that miss a target, with the figure."""
    misses = []
    for entity, score in scores.items():
        if score.recall < TARGETS.get(entity, OTHER_RECALL):
            misses.append(f"{entity} recall {score.recall:.3f}")
        if score.precision < PRECISION:
            misses.append(f"{entity} precision {score.precision:.3f}")
    return misses


def table(scores: dict[str, Score]) -> Iterable[str]:
    yield f"{'entity':<20}{'labelled':>9}{'recall':>9}{'found':>7}{'precision':>11}"
    for entity, score in scores.items():
        yield (
            f"{entity:<20}{score.labelled:>9}{score.recall:>9.3f}"
            f"{score.found:>7}{score.precision:>11.3f}"
        )
