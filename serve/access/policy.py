"""Access control for every RPC, in one place: a server interceptor that reads the
peer's identity, checks its tenant is configured and its role is in the method's row of
the table (serve/access/roles.py), and otherwise refuses the RPC before its handler
runs. Every refusal is written to the audit log first (when the gateway has one)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable

import grpc

from serve.access.certificates import Revocations
from serve.access.identity import (
    Identity,
    certificate_fingerprint,
    identity_of,
    peer_certificate,
    peer_identity,
)
from serve.access.roles import allowed
from serve.audit import Actor, AuditEvent, AuditLog, AuditUnavailable, events
from serve.core.allowlist import Plain, confide_logger
from serve.core.errors import ConfideError, PermissionDenied, Unauthenticated, Unavailable
from serve.rpc_errors import new_error_id

logger = confide_logger("confide.access")


class AccessPolicy:
    def __init__(
        self,
        trust_domain: str,
        tenants: frozenset[str],
        audit: AuditLog | None,
        on_refused: Callable[[str], None] = lambda status: None,
        common_name_identity: bool = False,
        first_message_seconds: float = 10.0,
        revocations: Revocations | None = None,
        min_tls_version: str = "1.2",
    ) -> None:
        self.first_message_seconds = first_message_seconds
        self._min_tls = _tls_version(min_tls_version)
        self._revocations = revocations
        self._common_name_identity = common_name_identity
        self._trust_domain = trust_domain
        self._tenants = tenants
        self._audit = audit
        self._on_refused = on_refused

    def identify(self, context: grpc.aio.ServicerContext) -> Identity:
        """The caller, already admitted by the interceptor."""
        return peer_identity(context, self._trust_domain, self._common_name_identity)

    def _is_revoked(self, certificate) -> bool:
        """Fail closed: a revocation list that cannot be read or verified refuses all."""
        if self._revocations is None:
            return False
        try:
            return self._revocations.revoked(certificate)
        except (ValueError, OSError):
            logger.error("the revocation list cannot be read or verified")
            raise Unavailable("the gateway cannot check revocations; retry later") from None

    def _check_tls_version(self, context: grpc.aio.ServicerContext) -> None:
        negotiated = context.auth_context().get("ssl_tls_version", [b""])[0].decode()
        if _tls_version(negotiated.removeprefix("TLSv")) < self._min_tls:
            raise Unauthenticated(
                f"{negotiated or 'this transport'} is below the gateway's minimum"
            )

    async def require(
        self, context: grpc.aio.ServicerContext, permission: str, method: str
    ) -> Identity:
        """The caller's identity if its role holds `permission`; otherwise the refusal
        is audited and the RPC aborted (PERMISSION_DENIED or UNAUTHENTICATED)."""
        identity, refusal = self.decide(context, permission, method)
        if refusal is not None:
            await self.refuse(context, identity, method, refusal)
        assert identity is not None
        return identity

    def decide(
        self, context: grpc.aio.ServicerContext, permission: str, method: str
    ) -> tuple[Identity | None, ConfideError | None]:
        """(identity, None) when allowed, else (whatever identity was read, the refusal)."""
        identity = None
        try:
            self._check_tls_version(context)
            certificate = peer_certificate(context)  # parsed once for both checks
            identity = identity_of(certificate, self._trust_domain, self._common_name_identity)
            if certificate is not None and self._is_revoked(certificate):
                raise Unauthenticated("the client certificate was revoked")
            if identity.tenant not in self._tenants:
                # The name comes from a CA-verified certificate: echoing it leaks nothing.
                raise PermissionDenied(f"tenant {identity.tenant!r} is not allowed here")
            if not allowed(permission, identity.role):
                raise PermissionDenied(f"role {identity.role!r} may not call {method}")
        except ConfideError as refusal:
            return identity, refusal
        return identity, None

    async def refuse(
        self,
        context: grpc.aio.ServicerContext,
        identity: Identity | None,
        method: str,
        refusal: ConfideError,
    ) -> None:
        error_id = new_error_id()
        if self._audit is not None:
            actor = (
                Actor(identity.fingerprint, identity.tenant, identity.role)
                if identity is not None
                else Actor(certificate_fingerprint(context), "", "")
            )
            event = AuditEvent(
                actor,
                events.ACCESS_DENIED,
                identity.tenant if identity is not None else "",
                outcome="denied",
                error_id=error_id,
                detail={"method": method, "status": refusal.code.name},
            )
            try:
                await asyncio.to_thread(self._audit.record, event)
            except AuditUnavailable:  # refused either way; the log line says it
                logger.error("refusal %s not audited", Plain(error_id))
        self._on_refused(refusal.code.name)
        logger.warning("refused %s: %s", Plain(error_id), Plain(refusal.code.name))
        await context.abort(refusal.code, f"{refusal} (error id {error_id})")
        raise AssertionError("unreachable: the RPC was aborted")


def _tls_version(text: str) -> tuple[int, ...]:
    """ "1.3" -> (1, 3); anything unreadable sorts below every real version."""
    try:
        return tuple(int(part) for part in text.split("."))
    except ValueError:
        return ()


class AccessInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every handler so that `AccessPolicy.require` runs before it."""

    def __init__(self, policy: AccessPolicy) -> None:
        self._policy = policy

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        name = method.rsplit("/", 1)[-1]
        policy = self._policy
        if handler.unary_unary is not None:
            kind, behavior = grpc.unary_unary_rpc_method_handler, handler.unary_unary
        elif handler.unary_stream is not None:
            kind, behavior = grpc.unary_stream_rpc_method_handler, handler.unary_stream
        elif handler.stream_unary is not None:
            kind, behavior = grpc.stream_unary_rpc_method_handler, handler.stream_unary
        else:
            kind, behavior = grpc.stream_stream_rpc_method_handler, handler.stream_stream

        streaming_requests = handler.request_streaming
        if inspect.isasyncgenfunction(behavior):

            async def checked(request, context):
                # Decided before anything is read. A refused stream's first message is
                # still awaited (within the deadline) before the refusal is sent: a
                # client still writing into a call the server ended would see INTERNAL
                # instead of its status (grpc#36066).
                identity, refusal = policy.decide(context, method, name)
                if streaming_requests:
                    request = await _with_first_read(request, context, policy.first_message_seconds)
                if refusal is not None:
                    await policy.refuse(context, identity, name, refusal)
                async for response in behavior(request, context):
                    yield response

        else:

            async def checked(request, context):
                await policy.require(context, method, name)
                return await behavior(request, context)

        return kind(
            checked,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


async def _with_first_read(requests, context: grpc.aio.ServicerContext, seconds: float):
    """The same request stream, its first message already received; a stream that sends
    nothing for `seconds` is ended with DEADLINE_EXCEEDED."""
    iterator = aiter(requests)
    try:
        first = await asyncio.wait_for(anext(iterator, _END), seconds)
    except TimeoutError:
        error_id = new_error_id()
        logger.warning("first message timeout %s", Plain(error_id))
        await context.abort(
            grpc.StatusCode.DEADLINE_EXCEEDED,
            f"no first message within {seconds:g} s (error id {error_id})",
        )

    async def replay():
        if first is _END:
            return
        yield first
        async for request in iterator:
            yield request

    return replay()


_END = object()
