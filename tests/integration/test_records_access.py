"""Access to records through the gateway, as each role of each tenant meets it: a real
mTLS gRPC server on port 0, client certificates naming tenant and role, records sealed
with the local KMS's real keys in a real store (SQLite, and a PostgreSQL server the
session starts), and the audit log in the same database.

The matrix: every role x every method, on the caller's own tenant's calls and on
another tenant's. Then raw reads, exports, page tokens, fail-closed auditing."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from cluster.client import aio_channel
from cluster.pki import Credential, create_ca, issue_client_cert, issue_server_cert
from confide.v1 import call_pb2 as call_pb
from confide.v1 import call_pb2_grpc, records_pb2_grpc
from confide.v1 import records_pb2 as pb
from serve.access import PERMISSIONS, ROLES, RecordsAccess, open_records_access
from serve.audit import AuditLog
from serve.audit.store import AuditStore
from serve.boundary import PayloadBoundary
from serve.core.allowlist import IdentifierHasher
from serve.core.config import ConfideConfig, TlsFiles
from serve.core.database import postgres_database
from serve.core.keys import key_provider
from serve.core.sealing import Sealer
from serve.core.telemetry_key import telemetry_key
from serve.records.codec import RecordCodec
from serve.records.model import RAW_SEGMENT, REPLY, SEGMENT, CallRow, Entry
from serve.records.store import open_store
from serve.sealed import PayloadCodec
from serve.server import start_server
from serve.telemetry import GatewayTelemetry
from tests.postgres import records_settings

pytestmark = pytest.mark.integration

TRUST_DOMAIN = "confide.test"
TENANTS = ("acme", "initech")
RECORDS = "/confide.v1.RecordsService/"
CALLS = "/confide.v1.CallService/"
CARD = "4539 1488 0343 6467"
STARTED = time.time() - 3600


@dataclass(frozen=True)
class Pki:
    root: Path
    server: TlsFiles
    ca: Credential

    def client(self, tenant: str, role: str) -> TlsFiles:
        cert, key = self.root / f"{tenant}-{role}.pem", self.root / f"{tenant}-{role}.key"
        if not cert.exists():
            issue_client_cert(self.ca, tenant, TRUST_DOMAIN, role=role).write(cert, key)
        return TlsFiles(cert=cert, key=key, ca=self.server.ca)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    root = tmp_path_factory.mktemp("role-pki")
    ca = create_ca("Confide access test CA")
    ca.write(root / "ca.pem", root / "ca.key")
    issue_server_cert(ca, ["localhost", "127.0.0.1"]).write(
        root / "server.pem", root / "server.key"
    )
    server = TlsFiles(cert=root / "server.pem", key=root / "server.key", ca=root / "ca.pem")
    return Pki(root, server, ca)


@pytest.fixture(params=["sqlite", "postgres"])
def config(request, tmp_path) -> ConfideConfig:
    return ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path / "state"),
            "trust_domain": TRUST_DOMAIN,
            "tenants": [
                {"name": "acme", "training": {"opt_in": True}, "redaction": {"store_raw": True}},
                {"name": "initech"},
                {"name": "bank", "retention": {"mode": "compliance", "compliance_days": 2557}},
            ],
            "records": records_settings(request, request.param),
        }
    )


def _record(
    config: ConfideConfig,
    tenant: str,
    call_id: str,
    consent: bool = False,
    started: float = STARTED,
) -> str:
    """A call as the gateway records it: sealed details, a redacted and a raw final (a
    card number and a security code), a reply."""
    hasher = IdentifierHasher(telemetry_key(config.keys, config.state_path))
    codec = RecordCodec(Sealer(key_provider(config.keys, config.state_path)))
    store = open_store(config.records, config.state_path)
    key = hasher(call_id)
    details = codec.seal(tenant, key, started, {"call_id": call_id, "roles": ["customer"]})
    period = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m")
    store.put_call(
        CallRow(
            tenant, key, period, started, started + 60, 30.0, 1, 1, 1, "OK",
            details=details, training_consent=consent,
        )
    )  # fmt: skip

    def segment(text: str) -> dict:
        return {
            "channel": 0,
            "role": "customer",
            "turn_index": 0,
            "text": text,
            "start_seconds": 1.0,
            "end_seconds": 4.0,
        }

    seal = lambda content, kind: codec.seal(tenant, key, started, content, kind)  # noqa: E731
    store.put_entries(
        [
            Entry(
                tenant,
                key,
                SEGMENT,
                0,
                0,
                seal(segment("my card is [CARD_NUMBER] code [CARD_SECURITY_CODE]"), SEGMENT),
            ),
            Entry(
                tenant,
                key,
                RAW_SEGMENT,
                0,
                0,
                seal(segment(f"my card is {CARD} code [CARD_SECURITY_CODE]"), RAW_SEGMENT),
            ),
            Entry(
                tenant,
                key,
                REPLY,
                0,
                0,
                seal({"turn_index": 0, "text": "Thank you.", "interrupted": False}, REPLY),
            ),
        ]
    )
    store.close()
    return key


@dataclass
class Gateway:
    port: int
    pki: Pki
    access: RecordsAccess

    def records(self, channel) -> records_pb2_grpc.RecordsServiceStub:
        return records_pb2_grpc.RecordsServiceStub(channel)

    def channel(self, tenant: str, role: str):
        return aio_channel(f"localhost:{self.port}", self.pki.client(tenant, role))


async def _serving(config: ConfideConfig, pki: Pki, redactor, access=None):
    """The gateway's server with the RecordsService; no model deployments behind it."""
    access = access or await asyncio.to_thread(open_records_access, config)
    hasher = IdentifierHasher(telemetry_key(config.keys, config.state_path))
    running = await start_server(
        config,
        pki.server,
        PayloadBoundary(PayloadCodec(None, hasher)),
        GatewayTelemetry.disabled(hasher),
        redactor=redactor,
        records=access,
    )
    return running, Gateway(running.port, pki, access)


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 60))


async def _status(call) -> tuple[grpc.StatusCode, str, object]:
    try:
        result = await call
        return grpc.StatusCode.OK, "", result
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or "", None


async def _stream_status(call) -> tuple[grpc.StatusCode, str, list]:
    items = []
    try:
        async for item in call:
            items.append(item)
        return grpc.StatusCode.OK, "", items
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or "", items


async def _invoke(channel, method: str, call_id: str):
    """One request per method, valid for a role that holds it."""
    records = records_pb2_grpc.RecordsServiceStub(channel)
    calls = call_pb2_grpc.CallServiceStub(channel)
    name = method.rsplit("/", 1)[-1]
    purpose = "matrix test"
    if name == "ListCalls":
        return await _status(records.ListCalls(pb.ListCallsRequest()))
    if name == "GetCallStats":
        return await _status(records.GetCallStats(pb.GetCallStatsRequest()))
    if name == "GetCall":
        return await _status(records.GetCall(pb.GetCallRequest(call_id=call_id)))
    if name == "DeleteCall":
        request = pb.DeleteCallRequest(call_id=call_id, purpose=purpose)
        return await _status(records.DeleteCall(request))
    if name == "SetLegalHold":
        request = pb.SetLegalHoldRequest(call_id=call_id, hold=True, purpose=purpose)
        return await _status(records.SetLegalHold(request))
    if name == "ExportTrainingData":
        request = pb.ExportTrainingDataRequest(purpose=purpose)
        return await _stream_status(records.ExportTrainingData(request))
    if name == "GetAuditLog":
        return await _status(records.GetAuditLog(pb.GetAuditLogRequest()))
    if name == "Transcribe":  # an empty request: past access control it is invalid
        return await _status(calls.Transcribe(call_pb.TranscribeRequest()))
    if name == "Converse":
        return await _stream_status(calls.Converse(call_pb.ConverseRequest()))
    if name == "StreamCall":
        return await _stream_status(calls.StreamCall(iter([call_pb.StreamCallRequest()])))
    raise AssertionError(method)


METHODS = sorted(m for m in PERMISSIONS if m.startswith((RECORDS, CALLS)))
_FOUND_BY_ID = {"GetCall", "DeleteCall", "SetLegalHold"}


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.rsplit("/", 1)[-1])
def test_every_role_on_every_method_of_its_own_and_another_tenant(config, pki, method, redactor):
    own = {tenant: _record(config, tenant, f"{tenant}-call", consent=True) for tenant in TENANTS}
    name = method.rsplit("/", 1)[-1]

    async def scenario():
        running, gateway = await _serving(config, pki, redactor)
        try:
            for role in ROLES:
                allowed = role in PERMISSIONS[method]
                async with gateway.channel("acme", role) as channel:
                    for call_id in ("initech-call", "acme-call"):  # another tenant's first
                        code, details, result = await _invoke(channel, method, call_id)
                        where = f"{role} {name} {call_id}"
                        if not allowed:
                            assert code == grpc.StatusCode.PERMISSION_DENIED, where
                            _assert_refusal_audited(gateway.access.audit, role, details)
                            continue
                        assert code != grpc.StatusCode.PERMISSION_DENIED, where
                        if method.startswith(CALLS):
                            continue  # past access control: the empty request's own status
                        if name in _FOUND_BY_ID and call_id == "initech-call":
                            assert code == grpc.StatusCode.NOT_FOUND, where
                            assert details.startswith("no call with that id"), where
                            continue
                        assert code == grpc.StatusCode.OK, (where, details)
                        _assert_only_own_tenant(result, own["initech"], "initech-call")
        finally:
            await running.stop(0)

    run(scenario())


def _assert_refusal_audited(audit: AuditLog, role: str, details: str) -> None:
    error_id = re.search(r"error id ([0-9a-f]{16})", details)[1]
    (record,) = [r for r in audit.entries() if r.error_id == error_id]
    assert (record.action, record.outcome, record.actor_role, record.actor_tenant) == (
        "access.denied",
        "denied",
        role,
        "acme",
    )
    assert len(record.actor_fingerprint) == 64


def _assert_only_own_tenant(result, foreign_key: str, foreign_id: str) -> None:
    text = str(result)
    assert foreign_key not in text and foreign_id not in text


def test_raw_text_is_for_compliance_with_a_purpose(config, pki, redactor):
    _record(config, "acme", "acme-call")

    async def scenario():
        running, gateway = await _serving(config, pki, redactor)
        try:
            async with gateway.channel("acme", "supervisor") as channel:
                records = gateway.records(channel)
                redacted = await records.GetCall(pb.GetCallRequest(call_id="acme-call"))
                assert "[CARD_NUMBER]" in redacted.segments[0].text
                assert not redacted.raw_segments and CARD not in str(redacted)
                code, _, _ = await _status(
                    records.GetCall(pb.GetCallRequest(call_id="acme-call", raw=True, purpose="x"))
                )
                assert code == grpc.StatusCode.PERMISSION_DENIED
            async with gateway.channel("acme", "compliance") as channel:
                records = gateway.records(channel)
                code, details, _ = await _status(
                    records.GetCall(pb.GetCallRequest(call_id="acme-call", raw=True))
                )
                assert code == grpc.StatusCode.INVALID_ARGUMENT and "purpose" in details
                purpose = "chargeback dispute 1182"
                raw = await records.GetCall(
                    pb.GetCallRequest(call_id="acme-call", raw=True, purpose=purpose)
                )
                assert CARD in raw.raw_segments[0].text
                assert "[CARD_SECURITY_CODE]" in raw.raw_segments[0].text
            reads = [r for r in gateway.access.audit.entries() if r.action.startswith("record.")]
            assert [(r.action, r.actor_role, r.purpose, r.outcome) for r in reads] == [
                ("record.read", "supervisor", "", "ok"),
                ("record.read_raw", "compliance", purpose, "ok"),
            ]
            assert json.loads(reads[1].detail) == {"segments": 1, "raw_segments": 1}
            assert all("acme-call" not in r.target for r in reads)  # an HMAC, not the id
        finally:
            await running.stop(0)

    run(scenario())


def test_exports_hold_only_consented_calls_of_opted_in_tenants_redacted(config, pki, redactor):
    _record(config, "acme", "acme-consented", consent=True)
    _record(config, "acme", "acme-not-consented", consent=False)
    initech = _record(config, "initech", "initech-consented", consent=True)

    async def scenario():
        running, gateway = await _serving(config, pki, redactor)
        try:
            exported = {}
            for tenant in TENANTS:
                async with gateway.channel(tenant, "trainer") as channel:
                    stream = gateway.records(channel).ExportTrainingData(
                        pb.ExportTrainingDataRequest(purpose="fine-tune intent model")
                    )
                    exported[tenant] = [item async for item in stream]
            hasher = IdentifierHasher(telemetry_key(config.keys, config.state_path))
            assert [item.call_key for item in exported["acme"]] == [hasher("acme-consented")]
            assert exported["initech"] == []  # initech has not opted in
            text = str(exported["acme"])
            assert CARD not in text and "[CARD_NUMBER]" in text
            assert initech not in text
            audited = [r for r in gateway.access.audit.entries() if r.action == "training.export"]
            assert [(r.tenant, json.loads(r.detail)["calls"]) for r in audited] == [
                ("acme", 1),
                ("initech", 0),
            ]
        finally:
            await running.stop(0)

    run(scenario())


def test_list_pages_with_tokens_that_belong_to_one_tenant_and_range(config, pki, redactor):
    for n in range(5):
        _record(config, "acme", f"acme-{n}")
    _record(config, "initech", "initech-0")

    async def scenario():
        running, gateway = await _serving(config, pki, redactor)
        try:
            async with gateway.channel("acme", "supervisor") as channel:
                records = gateway.records(channel)
                seen, token = [], ""
                while True:
                    page = await records.ListCalls(
                        pb.ListCallsRequest(page_size=2, page_token=token)
                    )
                    seen += [call.call_id for call in page.calls]
                    token = page.next_page_token
                    if not token:
                        break
                assert sorted(seen) == [f"acme-{n}" for n in range(5)]
                page = await records.ListCalls(pb.ListCallsRequest(page_size=2))
                tampered = page.next_page_token[:-4] + page.next_page_token[-4:][::-1]
                code, _, _ = await _status(
                    records.ListCalls(pb.ListCallsRequest(page_size=2, page_token=tampered))
                )
                assert code == grpc.StatusCode.INVALID_ARGUMENT
                acme_token = page.next_page_token
            async with gateway.channel("initech", "supervisor") as channel:
                code, details, _ = await _status(
                    gateway.records(channel).ListCalls(pb.ListCallsRequest(page_token=acme_token))
                )
                assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in details
        finally:
            await running.stop(0)

    run(scenario())


def test_an_access_that_cannot_be_audited_is_refused(config, pki, redactor):
    if config.records.store != "postgres":
        pytest.skip("the PostgreSQL server is the one that can go away")
    _record(config, "acme", "acme-call")

    async def scenario():
        access = await asyncio.to_thread(open_records_access, config)
        dead = postgres_database("host=127.0.0.1 port=1 dbname=confide connect_timeout=1")
        broken = AuditLog(AuditStore(dead), signer=None, anchor=None)  # type: ignore[arg-type]
        access = RecordsAccess(access.reader, broken, access.page_tokens)
        running, gateway = await _serving(config, pki, redactor, access)
        try:
            async with gateway.channel("acme", "supervisor") as channel:
                code, details, result = await _status(
                    gateway.records(channel).GetCall(pb.GetCallRequest(call_id="acme-call"))
                )
            assert code == grpc.StatusCode.UNAVAILABLE and "audit log" in details
            assert result is None
        finally:
            await running.stop(0)

    run(scenario())


def test_erasure_is_refused_on_hold_and_audited(config, pki, redactor):
    _record(config, "acme", "acme-call")

    async def scenario():
        running, gateway = await _serving(config, pki, redactor)
        try:
            async with gateway.channel("acme", "compliance") as channel:
                await gateway.records(channel).SetLegalHold(
                    pb.SetLegalHoldRequest(call_id="acme-call", hold=True, purpose="matter 7")
                )
            async with gateway.channel("acme", "admin") as channel:
                records = gateway.records(channel)
                request = pb.DeleteCallRequest(call_id="acme-call", purpose="erasure 88")
                code, _, _ = await _status(records.DeleteCall(request))
                assert code == grpc.StatusCode.FAILED_PRECONDITION
            async with gateway.channel("acme", "compliance") as channel:
                await gateway.records(channel).SetLegalHold(
                    pb.SetLegalHoldRequest(call_id="acme-call", hold=False, purpose="matter 7")
                )
            async with gateway.channel("acme", "admin") as channel:
                await gateway.records(channel).DeleteCall(request)
                code, _, _ = await _status(gateway.records(channel).DeleteCall(request))
                assert code == grpc.StatusCode.NOT_FOUND
            actions = [
                (r.action, r.outcome)
                for r in gateway.access.audit.entries()
                if r.action.startswith(("hold.", "record."))
            ]
            assert actions == [
                ("hold.set", "ok"),
                ("record.delete", "denied"),
                ("hold.release", "ok"),
                ("record.delete", "ok"),
                ("record.delete", "not_found"),
            ]
            assert gateway.access.audit.verify().ok
        finally:
            await running.stop(0)

    run(scenario())


def test_the_audit_log_shows_a_tenant_only_its_own_records(config, pki, redactor):
    _record(config, "acme", "acme-call")
    _record(config, "initech", "initech-call")

    async def scenario():
        running, gateway = await _serving(config, pki, redactor)
        try:
            for tenant in TENANTS:
                async with gateway.channel(tenant, "supervisor") as channel:
                    await gateway.records(channel).GetCall(
                        pb.GetCallRequest(call_id=f"{tenant}-call")
                    )
            async with gateway.channel("acme", "compliance") as channel:
                page = await gateway.records(channel).GetAuditLog(pb.GetAuditLogRequest())
            assert page.records and {r.actor_tenant for r in page.records} == {"acme"}
        finally:
            await running.stop(0)

    run(scenario())


def test_a_role_that_does_not_exist_is_refused_and_audited(config, pki, redactor):
    async def scenario():
        running, gateway = await _serving(config, pki, redactor)
        try:
            async with gateway.channel("acme", "superuser") as channel:
                code, details, _ = await _status(
                    gateway.records(channel).ListCalls(pb.ListCallsRequest())
                )
            assert code == grpc.StatusCode.PERMISSION_DENIED and "superuser" in details
            (refusal,) = gateway.access.audit.entries()
            assert (refusal.action, refusal.outcome, refusal.actor_role) == (
                "access.denied",
                "denied",
                "",
            )
            assert json.loads(refusal.detail)["method"] == "ListCalls"
            assert len(refusal.actor_fingerprint) == 64  # who tried, even unnamed
        finally:
            await running.stop(0)

    run(scenario())


def test_a_compliance_tenant_past_its_window_is_read_by_compliance_only(config, pki, redactor):
    _record(config, "bank", "recent")
    _record(config, "bank", "archived", started=time.time() - 40 * 86_400)

    async def scenario():
        running, gateway = await _serving(config, pki, redactor)
        try:
            async with gateway.channel("bank", "supervisor") as channel:
                records = gateway.records(channel)
                assert (await records.GetCall(pb.GetCallRequest(call_id="recent"))).segments
                code, _, _ = await _status(records.GetCall(pb.GetCallRequest(call_id="archived")))
                assert code == grpc.StatusCode.PERMISSION_DENIED
            async with gateway.channel("bank", "compliance") as channel:
                archived = await gateway.records(channel).GetCall(
                    pb.GetCallRequest(call_id="archived")
                )
                assert archived.segments
        finally:
            await running.stop(0)

    run(scenario())
