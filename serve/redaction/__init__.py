"""Redaction: card numbers and personal data removed where text is born, in the gateway.

The gateway redacts every hypothesis, interim and final, before it goes anywhere:
`Redactor` finds entities in one hypothesis; `RedactionWorker` runs it in a process of
its own beside each gateway replica (`InThread` in this process); `CallRedaction` keeps
one call's order and its per-channel window (a number read across two turns is found
whole). Importable without Ray or gRPC; spaCy and Presidio load inside `Redactor`.

Errors: `RedactionError`, and `RedactionUnavailable` when the engine cannot start.
A failure on one hypothesis never raises: the hypothesis comes back fully masked
(`Redaction.failed`), and counted.
"""

from serve.core.config import ENTITY_TYPES
from serve.redaction.engine import DIGITS, FAILED, Finding, Redaction, Redactor, Tally
from serve.redaction.errors import RedactionError, RedactionUnavailable
from serve.redaction.window import CallRedaction, Ticket
from serve.redaction.worker import InThread, RedactionEngine, RedactionWorker

__all__ = [
    "DIGITS",
    "ENTITY_TYPES",
    "FAILED",
    "CallRedaction",
    "Finding",
    "InThread",
    "Redaction",
    "RedactionEngine",
    "RedactionError",
    "RedactionUnavailable",
    "RedactionWorker",
    "Redactor",
    "Tally",
    "Ticket",
]
