"""The RecordsService servicer: stored calls, read back under roles, every access audited.

By the time a handler runs, the interceptor has admitted the caller's tenant and role
for the method (serve/access/policy.py). Each handler reaches only the caller's own
tenant (the tenant comes from the certificate, never from the request), and writes its
audit record before anything leaves: reads are opened in memory, audited, then sent;
changes are audited, then made. When the audit log cannot record, the request fails
with UNAVAILABLE and nothing is returned or changed (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from opentelemetry import trace

from confide.v1 import records_pb2 as pb
from confide.v1 import records_pb2_grpc
from serve.access.identity import Identity
from serve.access.page_token import PageTokens
from serve.access.policy import AccessPolicy
from serve.access.roles import ARCHIVE, RAW_TEXT
from serve.audit import Actor, AuditEvent, AuditLog, AuditUnavailable, events
from serve.core.config import ConfideConfig
from serve.core.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from serve.records import RecordReader, StoreUnavailable, UnknownCall
from serve.records.model import CallRow, Transcript
from serve.records.retention import DAY
from serve.rpc_errors import status_on_error
from serve.wire import SPEAKER_ROLES

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
MAX_PURPOSE_CHARACTERS = 500
_NOT_FOUND = "no call with that id"
T = TypeVar("T")


@dataclass(frozen=True)
class RecordsAccess:
    """What reading records needs: the reader (store + KMS), the audit log, and the key
    that signs page tokens (serve/access/__init__.py opens them)."""

    reader: RecordReader
    audit: AuditLog
    page_tokens: PageTokens


class RecordsService(records_pb2_grpc.RecordsServiceServicer):
    def __init__(
        self,
        config: ConfideConfig,
        access: RecordsAccess,
        policy: AccessPolicy,
        tracer: trace.Tracer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self._reader = access.reader
        self._audit = access.audit
        self._policy = policy
        self._tokens = access.page_tokens
        self._tracer = tracer or trace.NoOpTracer()
        self._clock = clock

    # -- the wrapper ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _handling(self, context: grpc.aio.ServicerContext, method: str):
        """One span per RPC and errors as status + error id (serve/rpc_errors.py)."""
        span = self._tracer.start_span(
            "confide.records", attributes={"rpc.method": method}, record_exception=False
        )
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                async with status_on_error(context, span, method) as outcome:
                    identity = self._policy.identify(context)
                    span.set_attribute("confide.tenant", identity.tenant)
                    yield identity
        finally:
            span.set_attribute("confide.status", outcome.status.name)
            span.end()

    @staticmethod
    async def _blocking(function: Callable[..., T], *args) -> T:
        """Store and KMS calls block: a worker thread. Their failures, as statuses."""
        try:
            return await asyncio.to_thread(function, *args)
        except UnknownCall:
            raise NotFound(_NOT_FOUND) from None
        except StoreUnavailable:
            raise Unavailable("the record store is unavailable; retry later") from None

    async def _audit_or_refuse(self, event: AuditEvent) -> None:
        try:
            await asyncio.to_thread(self._audit.record, event)
        except AuditUnavailable:
            raise Unavailable(
                "the audit log cannot record this access, so it is refused; retry later"
            ) from None

    def _event(self, identity: Identity, action: str, **fields) -> AuditEvent:
        actor = Actor(identity.fingerprint, identity.tenant, identity.role)
        return AuditEvent(actor, action, identity.tenant, **fields)

    async def _find(self, identity: Identity, call_id: str, action: str, purpose: str) -> CallRow:
        """The caller's call; NOT_FOUND (audited) when its tenant has none by that id,
        which says nothing about other tenants."""
        if not 1 <= len(call_id) <= 128:
            raise InvalidArgument("call_id must be 1-128 characters")
        key = self._reader.call_key(call_id)
        try:
            return await self._blocking(self._reader.row, identity.tenant, key)
        except NotFound:
            await self._audit_or_refuse(
                self._event(identity, action, target=key, purpose=purpose, outcome="not_found")
            )
            raise

    # -- listing --------------------------------------------------------------------

    async def ListCalls(
        self, request: pb.ListCallsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCallsResponse:
        async with self._handling(context, "ListCalls") as identity:
            span = self._range(request.range)
            # Tokens name the range as asked: an open end ("until now") stays open.
            asked = (span[0], span[1] if request.range.HasField("end_time") else 0.0)
            size = _page_size(request.page_size)
            after = None
            if request.page_token:
                after = self._tokens.read(request.page_token, identity.tenant, asked)
            rows = await self._blocking(self._reader.page, identity.tenant, span, after, size + 1)
            more, rows = len(rows) > size, rows[:size]
            calls = [self._stored_call(row, call_id) for row, call_id in rows]
            await self._audit_or_refuse(
                self._event(identity, events.RECORDS_LIST, detail={"calls": len(calls)})
            )
            token = ""
            if more:
                last = rows[-1][0]
                token = self._tokens.issue(identity.tenant, asked, (last.started_at, last.call_key))
            return pb.ListCallsResponse(calls=calls, next_page_token=token)
        raise AssertionError("unreachable: _handling aborts")

    async def GetCallStats(
        self, request: pb.GetCallStatsRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCallStatsResponse:
        async with self._handling(context, "GetCallStats") as identity:
            start, end = self._range(request.range)
            rows = await self._blocking(self._reader.rows, identity.tenant, start, end)
            await self._audit_or_refuse(
                self._event(identity, events.RECORDS_STATS, detail={"calls": len(rows)})
            )
            return pb.GetCallStatsResponse(
                calls=len(rows),
                audio_seconds=round(sum(r.audio_seconds for r in rows), 3),
                turns=sum(r.turns for r in rows),
                final_segments=sum(r.final_segments for r in rows),
                agent_replies=sum(r.agent_replies for r in rows),
                calls_on_legal_hold=sum(r.legal_hold for r in rows),
                calls_by_status=Counter(r.status for r in rows),
            )
        raise AssertionError("unreachable: _handling aborts")

    # -- reading --------------------------------------------------------------------

    async def GetCall(
        self, request: pb.GetCallRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetCallResponse:
        async with self._handling(context, "GetCall") as identity:
            purpose = _purpose(request.purpose, required=request.raw)
            if request.raw:
                await self._policy.require(context, RAW_TEXT, "GetCall with raw")
            action = events.RECORD_READ_RAW if request.raw else events.RECORD_READ
            row = await self._find(identity, request.call_id, action, purpose)
            if row.text_purged_at is not None:
                await self._audit_or_refuse(
                    self._event(
                        identity, action, target=row.call_key, purpose=purpose, outcome="not_found"
                    )
                )
                raise NotFound("the call's text was deleted by retention")
            if self._archived(row):
                await self._policy.require(context, ARCHIVE, "GetCall past the window")
            transcript = await self._blocking(self._reader.open, row, request.raw)
            await self._audit_or_refuse(
                self._event(
                    identity,
                    action,
                    target=row.call_key,
                    purpose=purpose,
                    detail={
                        "segments": len(transcript.segments),
                        "raw_segments": len(transcript.raw_segments),
                    },
                )
            )
            return self._call_response(transcript)
        raise AssertionError("unreachable: _handling aborts")

    async def ExportTrainingData(
        self, request: pb.ExportTrainingDataRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportTrainingDataResponse]:
        async with self._handling(context, "ExportTrainingData") as identity:
            purpose = _purpose(request.purpose, required=True)
            if not self._config.redaction.enabled:
                raise FailedPrecondition("redaction is off: nothing may be exported")
            start, end = self._range(request.range)
            rows = []
            if self._config.tenant(identity.tenant).training.opt_in:
                rows = [
                    row
                    for row in await self._blocking(self._reader.rows, identity.tenant, start, end)
                    if row.training_consent and row.text_purged_at is None and row.ended_at
                ]
            await self._audit_or_refuse(
                self._event(
                    identity, events.TRAINING_EXPORT, purpose=purpose, detail={"calls": len(rows)}
                )
            )
            for row in rows:
                # Redacted segments only: raw finals are never opened here.
                transcript = await self._blocking(self._reader.open, row, False)
                yield pb.ExportTrainingDataResponse(
                    call_key=row.call_key,
                    segments=[_segment(s) for s in transcript.segments],
                )

    # -- changes --------------------------------------------------------------------

    async def DeleteCall(
        self, request: pb.DeleteCallRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteCallResponse:
        async with self._handling(context, "DeleteCall") as identity:
            purpose = _purpose(request.purpose, required=True)
            row = await self._find(identity, request.call_id, events.RECORD_DELETE, purpose)
            if row.legal_hold:
                await self._audit_or_refuse(
                    self._event(
                        identity,
                        events.RECORD_DELETE,
                        target=row.call_key,
                        purpose=purpose,
                        outcome="denied",
                        detail={"reason": "legal_hold"},
                    )
                )
                raise FailedPrecondition("the call is on legal hold; release it first")
            await self._audit_or_refuse(
                self._event(identity, events.RECORD_DELETE, target=row.call_key, purpose=purpose)
            )
            await self._blocking(self._reader.erase, row.tenant, row.call_key)
            return pb.DeleteCallResponse()
        raise AssertionError("unreachable: _handling aborts")

    async def SetLegalHold(
        self, request: pb.SetLegalHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.SetLegalHoldResponse:
        async with self._handling(context, "SetLegalHold") as identity:
            purpose = _purpose(request.purpose, required=True)
            action = events.HOLD_SET if request.hold else events.HOLD_RELEASE
            row = await self._find(identity, request.call_id, action, purpose)
            await self._audit_or_refuse(
                self._event(identity, action, target=row.call_key, purpose=purpose)
            )
            await self._blocking(self._reader.hold, row.tenant, row.call_key, request.hold)
            row = await self._blocking(self._reader.row, row.tenant, row.call_key)
            return pb.SetLegalHoldResponse(call=self._stored_call(row, request.call_id))
        raise AssertionError("unreachable: _handling aborts")

    # -- the audit log --------------------------------------------------------------

    async def GetAuditLog(
        self, request: pb.GetAuditLogRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAuditLogResponse:
        async with self._handling(context, "GetAuditLog") as identity:
            if request.after_sequence < 0:
                raise InvalidArgument("after_sequence must not be negative")
            size = _page_size(request.page_size)
            try:
                records = await asyncio.to_thread(
                    self._audit.entries, identity.tenant, request.after_sequence, size
                )
            except AuditUnavailable:
                raise Unavailable("the audit log cannot be read; retry later") from None
            await self._audit_or_refuse(
                self._event(identity, events.AUDIT_READ, detail={"records": len(records)})
            )
            return pb.GetAuditLogResponse(
                records=[_audit_record(r) for r in records],
                next_after_sequence=records[-1].seq if len(records) == size else 0,
            )
        raise AssertionError("unreachable: _handling aborts")

    def _archived(self, row: CallRow) -> bool:
        """A compliance-mode tenant's call past its operational window."""
        retention = self._config.tenant(row.tenant).retention
        ended = row.ended_at if row.ended_at is not None else row.started_at
        return retention.mode == "compliance" and (
            self._clock() > ended + retention.window_days * DAY
        )

    # -- conversions ----------------------------------------------------------------

    def _range(self, requested: pb.TimeRange) -> tuple[float, float]:
        start = (
            requested.start_time.ToNanoseconds() / 1e9 if requested.HasField("start_time") else 0
        )
        end = (
            requested.end_time.ToNanoseconds() / 1e9
            if requested.HasField("end_time")
            else self._clock() + 1
        )
        if end <= start:
            raise InvalidArgument("range: end_time must be after start_time")
        return float(start), float(end)

    def _stored_call(self, row: CallRow, call_id: str | None) -> pb.StoredCall:
        call = pb.StoredCall(
            call_id=call_id or row.call_key,
            start_time=_timestamp(row.started_at),
            audio_seconds=row.audio_seconds,
            turns=row.turns,
            final_segments=row.final_segments,
            agent_replies=row.agent_replies,
            status=row.status,
            legal_hold=row.legal_hold,
            text_purged=row.text_purged_at is not None,
            training_consent=row.training_consent,
        )
        if row.ended_at is not None:
            call.end_time.CopyFrom(_timestamp(row.ended_at))
        if not row.legal_hold and row.text_purged_at is None:
            days = self._config.tenant(row.tenant).retention.text_days
            ended = row.ended_at if row.ended_at is not None else row.started_at
            call.text_expire_time.CopyFrom(_timestamp(ended + days * DAY))
        return call

    def _call_response(self, transcript: Transcript) -> pb.GetCallResponse:
        return pb.GetCallResponse(
            call=self._stored_call(transcript.row, transcript.details.get("call_id")),
            segments=[_segment(s) for s in transcript.segments],
            replies=[
                pb.StoredReply(
                    turn_index=r["turn_index"], text=r["text"], interrupted=r["interrupted"]
                )
                for r in transcript.replies
            ],
            raw_segments=[_segment(s) for s in transcript.raw_segments],
            unreadable=transcript.unreadable,
        )


def _purpose(text: str, required: bool) -> str:
    text = text.strip()
    if required and not text:
        raise InvalidArgument("purpose is required for this request (1-500 characters)")
    if len(text) > MAX_PURPOSE_CHARACTERS:
        raise InvalidArgument(f"purpose is at most {MAX_PURPOSE_CHARACTERS} characters")
    return text


def _page_size(requested: int) -> int:
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be 0-{MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _segment(segment: dict) -> pb.StoredSegment:
    return pb.StoredSegment(
        channel=segment["channel"],
        role=SPEAKER_ROLES.get(segment.get("role", ""), 0),
        turn_index=segment["turn_index"],
        start_seconds=segment["start_seconds"],
        end_seconds=segment.get("end_seconds", 0.0),
        text=segment["text"],
    )


def _audit_record(record) -> pb.AuditRecord:
    return pb.AuditRecord(
        sequence=record.seq,
        time=_timestamp(record.at),
        actor_fingerprint=record.actor_fingerprint,
        actor_tenant=record.actor_tenant,
        actor_role=record.actor_role,
        action=record.action,
        target=record.target,
        purpose=record.purpose,
        outcome=record.outcome,
        error_id=record.error_id,
        detail_json=record.detail,
        hash=record.hash,
        previous_hash=record.prev_hash,
    )
