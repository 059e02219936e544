"""Redaction's exceptions: both mean "no text may pass"."""

from __future__ import annotations


class RedactionError(Exception):
    """Base of redaction's errors."""


class RedactionUnavailable(RedactionError):
    """The engine cannot start (a model package is missing)."""
