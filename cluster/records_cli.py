"""`confide records ...` as a client of the gateway's RecordsService.

An operator acts as a named role of a tenant, with that role's client certificate from
the development PKI (issued on first use), so the CLI passes the same access checks as
any other client and every read, hold and erasure lands in the audit log under the
certificate's fingerprint. Only `records purge` works on the store directly (retention
is the operator's own job; the purge audits itself).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys

import grpc

from cluster.client import aio_channel
from cluster.pki import DevPki
from confide.v1 import records_pb2 as pb
from confide.v1 import records_pb2_grpc
from serve.core.config import ConfideConfig

DEFAULT_ROLES = {
    "list": "supervisor",
    "show": "supervisor",
    "stats": "analyst",
    "hold": "compliance",
    "release": "compliance",
    "delete": "admin",
}
"""The least role that may do each verb (serve/access/roles.py has the table)."""


async def run_verb(config: ConfideConfig, args: argparse.Namespace, target: str) -> int:
    tenant = args.tenant or config.tenants[0].name
    verb = args.records_command
    role = args.role or ("compliance" if getattr(args, "raw", False) else DEFAULT_ROLES[verb])
    pki = DevPki(config.state_path / "pki")
    tls = pki.role_tls(tenant, role, config.trust_domain)
    async with aio_channel(target, tls) as channel:
        records = records_pb2_grpc.RecordsServiceStub(channel)
        try:
            await _VERBS[verb](records, args)
        except grpc.aio.AioRpcError as error:
            print(f"confide records: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


async def _list(records, args) -> None:
    calls, token = [], ""
    while True:
        page = await records.ListCalls(
            pb.ListCallsRequest(range=_since(args.since), page_size=500, page_token=token)
        )
        calls += page.calls
        token = page.next_page_token
        if not token:
            break
    for call in calls:
        print_call(call)
    print(f"{len(calls)} calls")


async def _stats(records, args) -> None:
    stats = await records.GetCallStats(pb.GetCallStatsRequest(range=_since(args.since)))
    statuses = ", ".join(
        f"{name or 'in progress'} {n}" for name, n in stats.calls_by_status.items()
    )
    print(
        f"{stats.calls} calls, {stats.audio_seconds:.1f} s of audio, {stats.turns} turns, "
        f"{stats.agent_replies} agent replies, {stats.calls_on_legal_hold} on legal hold"
        + (f" ({statuses})" if statuses else "")
    )


async def _show(records, args) -> None:
    request = pb.GetCallRequest(call_id=args.call_id, raw=args.raw, purpose=args.purpose)
    print_transcript(await records.GetCall(request))


async def _hold(records, args) -> None:
    hold = args.records_command == "hold"
    request = pb.SetLegalHoldRequest(call_id=args.call_id, hold=hold, purpose=args.purpose)
    await records.SetLegalHold(request)
    print(f"call {args.call_id}: {'on legal hold' if hold else 'released'}")


async def _delete(records, args) -> None:
    await records.DeleteCall(pb.DeleteCallRequest(call_id=args.call_id, purpose=args.purpose))
    print(f"call {args.call_id}: erased")


_VERBS = {
    "list": _list,
    "stats": _stats,
    "show": _show,
    "hold": _hold,
    "release": _hold,
    "delete": _delete,
}


def _since(day: str | None) -> pb.TimeRange:
    time_range = pb.TimeRange()
    if day:
        try:
            start = dt.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=dt.UTC)
        except ValueError:
            raise SystemExit(f"confide records: --since {day!r} is not YYYY-MM-DD") from None
        time_range.start_time.FromDatetime(start)
    return time_range


def _when(stamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToDatetime(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def print_call(call: pb.StoredCall) -> None:
    flags = []
    if call.legal_hold:
        flags.append("legal hold")
    if call.text_purged:
        flags.append("text purged")
    elif call.HasField("text_expire_time"):
        flags.append(f"text kept until {_when(call.text_expire_time)}")
    print(
        f"{call.call_id:34} {_when(call.start_time)}  {call.audio_seconds:7.1f} s  "
        f"{call.turns:3} turns  {call.status or 'in progress':10} " + ", ".join(flags)
    )


def print_transcript(response: pb.GetCallResponse) -> None:
    call = response.call
    print(
        f"call {call.call_id}, {_when(call.start_time)} to {_when(call.end_time)} UTC, "
        f"status {call.status or '-'}"
    )
    roles = {1: "customer", 2: "agent"}
    replies = {reply.turn_index: reply for reply in response.replies}
    for segment in response.segments:
        role = roles.get(segment.role, "unknown")
        print(f"  {segment.start_seconds:7.2f}s {role:9} {segment.text}")
        reply = replies.get(segment.turn_index) if role == "customer" else None
        if reply is not None:
            cut = " (interrupted)" if reply.interrupted else ""
            print(f"  {'':7}  AI agent  {reply.text}{cut}")
    if response.raw_segments:
        print("  raw finals (stored under purpose transcript.raw):")
        for segment in response.raw_segments:
            role = roles.get(segment.role, "unknown")
            print(f"  {segment.start_seconds:7.2f}s {role:9} {segment.text}")
    if response.unreadable:
        print(f"  ({response.unreadable} records did not open)")
