"""What the audit log costs per access: GetCall through the gateway's RecordsService over
mTLS, with the audit record written (as deployed) and, interleaved in the same run, with
the audit write skipped (a measurement control only: the product cannot turn it off);
plus one append on its own. SQLite always; PostgreSQL too with --postgres (a server
started for the run from Debian's package, as the tests do).

    python -m loadtests.audit_cost [--reads 300] [--postgres] [--out DIR]

Prints a table and writes audit_cost.csv.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

from cluster.client import aio_channel
from cluster.pki import DevPki
from confide.v1 import records_pb2 as pb
from confide.v1 import records_pb2_grpc
from loadtests.report import report
from serve.access import RecordsAccess, open_records_access
from serve.audit import Actor, AuditEvent, AuditLog, events
from serve.boundary import PayloadBoundary
from serve.core.allowlist import IdentifierHasher
from serve.core.config import ConfideConfig
from serve.core.keys import key_provider
from serve.core.sealing import Sealer
from serve.core.telemetry_key import telemetry_key
from serve.records.codec import RecordCodec
from serve.records.model import SEGMENT, CallRow, Entry
from serve.records.store import open_store
from serve.sealed import PayloadCodec
from serve.server import start_server
from serve.telemetry import GatewayTelemetry


class _Unaudited(AuditLog):
    """The control: the same read with no audit write. Never used by the product."""

    def __init__(self) -> None:
        pass

    def record(self, *events):
        return []


def _config(state: Path, records: dict) -> ConfideConfig:
    return ConfideConfig.model_validate(
        {
            "state_dir": str(state),
            "tenants": [{"name": "acme"}],
            "records": records,
            "redaction": {"enabled": False},
        }
    )


def _seed(config: ConfideConfig, calls: int) -> None:
    hasher = IdentifierHasher(telemetry_key(config.keys, config.state_path))
    codec = RecordCodec(Sealer(key_provider(config.keys, config.state_path)))
    store = open_store(config.records, config.state_path)
    started = time.time() - 600
    period = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m")
    for n in range(calls):
        key = hasher(f"call-{n}")
        details = codec.seal("acme", key, started, {"call_id": f"call-{n}"})
        store.put_call(
            CallRow("acme", key, period, started, started + 60, 60, 6, 6, 0, "OK", details=details)
        )
        store.put_entries(
            Entry(
                "acme",
                key,
                SEGMENT,
                0,
                turn,
                codec.seal(
                    "acme",
                    key,
                    started,
                    {"channel": 0, "role": "customer", "turn_index": turn,
                     "text": "a sentence of about ten words said by the customer here",
                     "start_seconds": turn * 5.0, "end_seconds": turn * 5.0 + 4},
                    SEGMENT,
                ),
            )
            for turn in range(6)
        )  # fmt: skip
    store.close()


async def _reads(config: ConfideConfig, access: RecordsAccess, reads: int) -> dict[str, list]:
    pki = DevPki.ensure(config.state_path, ["acme"], config.trust_domain)
    hasher = IdentifierHasher(telemetry_key(config.keys, config.state_path))
    unaudited = RecordsAccess(access.reader, _Unaudited(), access.page_tokens)
    timings: dict[str, list[float]] = {"audited": [], "unaudited": []}
    servers = {
        name: await start_server(
            config.with_overrides(gateway={"host": "127.0.0.1", "port": 0}),
            pki.gateway_tls(),
            PayloadBoundary(PayloadCodec(None, hasher)),
            GatewayTelemetry.disabled(hasher),
            records=variant,
        )
        for name, variant in (("audited", access), ("unaudited", unaudited))
    }
    tls = pki.role_tls("acme", "supervisor", config.trust_domain)
    try:
        channels = {
            name: aio_channel(f"localhost:{server.port}", tls) for name, server in servers.items()
        }
        stubs = {}
        for name, channel in channels.items():
            stubs[name] = records_pb2_grpc.RecordsServiceStub(await channel.__aenter__())
        for n in range(reads):  # interleaved: both see the same machine at the same time
            for name, stub in stubs.items():
                started = time.perf_counter()
                await stub.GetCall(pb.GetCallRequest(call_id=f"call-{n % 20}"))
                timings[name].append((time.perf_counter() - started) * 1000)
        for channel in channels.values():
            await channel.__aexit__(None, None, None)
    finally:
        for server in servers.values():
            await server.stop(0)
    return timings


def _appends(log: AuditLog, count: int) -> list[float]:
    actor = Actor("ab" * 32, "acme", "supervisor")
    timings = []
    for n in range(count):
        event = AuditEvent(actor, events.RECORD_READ, "acme", target=f"hmac:{n:064x}")
        started = time.perf_counter()
        log.record(event)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def measure(backend: str, records: dict, reads: int, state: Path) -> list[dict]:
    config = _config(state, records)
    _seed(config, 20)
    access = open_records_access(config)
    timings = asyncio.run(_reads(config, access, reads))
    timings["append only"] = _appends(access.audit, reads)
    stored = access.audit.entries()
    # The record's fields as stored (text and numbers), not counting the database's
    # per-row overhead and indexes.
    record_bytes = statistics.mean(
        sum(len(str(value)) for value in vars(record).values()) for record in stored
    )
    print(f"{backend}: {len(stored)} audit records, {record_bytes:.0f} bytes of fields each")
    return [
        {
            "backend": backend,
            "measure": name if name == "append only" else f"GetCall, {name}",
            "n": len(values),
            "p50_ms": round(_p(values, 50), 2),
            "p95_ms": round(_p(values, 95), 2),
        }
        for name, values in timings.items()
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=300)
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL server")
    parser.add_argument("--out", type=Path, default=Path("loadtests/results"))
    args = parser.parse_args()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += measure("sqlite", {"store": "sqlite"}, args.reads, Path(tmp) / "sqlite")
        if args.postgres:
            from tests.postgres import start_server as start_postgres

            server = start_postgres()
            try:
                records = {
                    "store": "postgres",
                    "postgres_host": "127.0.0.1",
                    "postgres_port": server.port,
                    "postgres_database": server.new_database(),
                    "postgres_sslmode": "disable",
                }
                rows += measure("postgres", records, args.reads, Path(tmp) / "postgres")
            finally:
                server.stop()
    report(rows, args.out, "audit_cost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
