"""Confide's exception hierarchy. Each error maps to one gRPC status code, and its
message is written for clients: it never carries audio, transcript or prompt text.

    ConfideError
    ├── InvalidArgument      INVALID_ARGUMENT
    ├── PermissionDenied     PERMISSION_DENIED
    ├── Unauthenticated      UNAUTHENTICATED
    ├── ResourceExhausted    RESOURCE_EXHAUSTED
    ├── FailedPrecondition   FAILED_PRECONDITION
    ├── DeadlineExceeded     DEADLINE_EXCEEDED
    ├── NotFound             NOT_FOUND
    └── Unavailable          UNAVAILABLE
        └── EngineUnavailable
"""

from __future__ import annotations

import grpc


class ConfideError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    error_id: str | None = None
    """Set when the error was already reported under an id (e.g. as a call event)."""
    turn: tuple[int, int] | None = None
    """(channel, turn index) when the error is one turn's: its final was not made."""


class InvalidArgument(ConfideError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class Cancelled(ConfideError):
    """The client left before the call began."""

    code = grpc.StatusCode.CANCELLED


class PermissionDenied(ConfideError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ConfideError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(ConfideError):
    """A limit was reached; the status carries a retry hint (trailing metadata
    `retry-after-seconds`)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    retry_after_seconds = 5


class FailedPrecondition(ConfideError):
    """The request is valid but this deployment cannot serve it (e.g. dialogue is off)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class DeadlineExceeded(ConfideError):
    """A time limit of the gateway ran out (a first message, a call's length)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(ConfideError):
    """No such thing for this caller (whether it exists for another is never said)."""

    code = grpc.StatusCode.NOT_FOUND


class Unavailable(ConfideError):
    """Something the request needs cannot be reached now (a retry may work)."""

    code = grpc.StatusCode.UNAVAILABLE


class EngineUnavailable(Unavailable):
    """A model engine failed or is overloaded; the call itself goes on."""
