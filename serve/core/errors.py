"""Confide's exception hierarchy. Each error maps to one gRPC status code, and its
message is written for clients: it never carries audio, transcript or prompt text.

    ConfideError
    ├── InvalidArgument      INVALID_ARGUMENT
    ├── PermissionDenied     PERMISSION_DENIED
    ├── Unauthenticated      UNAUTHENTICATED
    ├── ResourceExhausted    RESOURCE_EXHAUSTED
    ├── FailedPrecondition   FAILED_PRECONDITION
    └── EngineUnavailable    UNAVAILABLE
"""

from __future__ import annotations

import grpc


class ConfideError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    error_id: str | None = None
    """Set when the error was already reported under an id (e.g. as a call event)."""


class InvalidArgument(ConfideError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class PermissionDenied(ConfideError):
    code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(ConfideError):
    code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(ConfideError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ConfideError):
    """The request is valid but this deployment cannot serve it (e.g. dialogue is off)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class EngineUnavailable(ConfideError):
    """A model engine failed or is overloaded; the call itself goes on."""

    code = grpc.StatusCode.UNAVAILABLE
