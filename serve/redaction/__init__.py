"""Redaction: card numbers and personal data removed where text is born, in the gateway.

The gateway redacts every hypothesis, interim and final, before it goes anywhere:
`Redactor` (loaded once per replica) finds entities in one hypothesis; `CallRedaction`
keeps one call's order and its per-channel window (a number read across two turns is
found whole). Importable without Ray or gRPC; spaCy and Presidio load inside
`Redactor`.

Errors: `RedactionError`, and `RedactionUnavailable` when the engine cannot start.
A failure on one hypothesis never raises: the hypothesis comes back fully masked
(`Redaction.failed`), and counted.
"""

from serve.core.config import ENTITY_TYPES
from serve.redaction.engine import DIGITS, FAILED, Finding, Redaction, Redactor, Tally
from serve.redaction.errors import RedactionError, RedactionUnavailable
from serve.redaction.window import CallRedaction, Ticket

__all__ = [
    "DIGITS",
    "ENTITY_TYPES",
    "FAILED",
    "CallRedaction",
    "Finding",
    "Redaction",
    "RedactionError",
    "RedactionUnavailable",
    "Redactor",
    "Tally",
    "Ticket",
]
