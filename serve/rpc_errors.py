"""The one error wrapper of every RPC handler: Confide errors become their status code,
anything else INTERNAL, and each failure gets an error id that the client, the log line
and the span share. No exception text reaches any of the three."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

import grpc
from opentelemetry import trace

from serve.core.allowlist import Plain, confide_logger
from serve.core.errors import ConfideError

logger = confide_logger("confide.gateway")


def new_error_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class RpcOutcome:
    status: grpc.StatusCode = grpc.StatusCode.OK


@contextlib.asynccontextmanager
async def status_on_error(context: grpc.aio.ServicerContext, span: trace.Span, method: str):
    """Run a handler's body; abort the RPC with the status its failure maps to."""
    outcome = RpcOutcome()
    try:
        yield outcome
    except ConfideError as error:
        outcome.status = error.code
        retry_after = getattr(error, "retry_after_seconds", None)
        if retry_after is not None:
            context.set_trailing_metadata((("retry-after-seconds", str(retry_after)),))
        await abort(context, span, outcome.status, str(error), error.error_id)
    except grpc.aio.AbortError:
        raise
    except asyncio.CancelledError:
        outcome.status = grpc.StatusCode.CANCELLED
        raise
    except Exception as exc:  # never let exception text reach the client
        outcome.status = grpc.StatusCode.INTERNAL
        logger.error("unexpected %s in %s", Plain(type(exc).__name__), Plain(method))
        await abort(context, span, outcome.status, "internal error")


async def abort(
    context: grpc.aio.ServicerContext,
    span: trace.Span,
    code: grpc.StatusCode,
    message: str,
    error_id: str | None = None,
) -> None:
    error_id = error_id or new_error_id()
    span.set_attribute("confide.error_id", error_id)
    logger.warning("rpc failed %s: %s", Plain(error_id), Plain(code.name))
    await context.abort(code, f"{message} (error id {error_id})")
