"""Call records end to end: a real embedded Ray cluster with the recorder and the purge
loop deployed, a real PostgreSQL server as the store, the real tiny.en model on the
two-channel sample call streamed over mTLS in real time.

The store goes down in the middle of a call and comes back: every final the client
received is stored exactly once. The purge loop, running inside the cluster, deletes a
call's text once it is past the tenant's window."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from cluster import lifecycle
from cluster.client import aio_channel, stream_call
from confide.v1 import call_pb2_grpc
from serve.audit import open_audit_log
from serve.core.config import ConfideConfig
from serve.records import UnknownCall, open_reader, open_store
from serve.records.retention import DAY
from tests.conftest import EXAMPLES, ROOT, TRUST_DOMAIN

pytestmark = pytest.mark.integration

WORDS = [b"Dashwood", b"prudently", b"respectable", b"amiable"]


@pytest.fixture(scope="module")
def cluster(test_pki, tmp_path_factory, postgres):
    config = ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path_factory.mktemp("state")),
            "trust_domain": TRUST_DOMAIN,
            "tenants": [
                {"name": "acme", "retention": {"window_days": 7}},
                {"name": "initech", "records": {"enabled": False}},
            ],
            "gateway": {"host": "127.0.0.1", "port": 0},
            "dialogue": {"enabled": False},
            "ray": {"num_cpus": 4},
            "records": {
                "store": "postgres",
                "postgres_host": "127.0.0.1",
                "postgres_port": postgres.port,
                "postgres_database": postgres.new_database(),
                "postgres_sslmode": "disable",
                "purge_interval_seconds": 2,
            },
            "audit": {"checkpoint_interval_seconds": 3},
        }
    )
    with lifecycle.embedded(config, test_pki.server) as port:
        yield config, f"localhost:{port}"


async def _call(test_pki, target, recording, call_id, client="acme", **options):
    async with aio_channel(target, test_pki.clients[client]) as channel:
        stub = call_pb2_grpc.CallServiceStub(channel)
        roles = ["customer", "agent"][: recording.channels]
        return await stream_call(stub, recording, roles, call_id, **options)


def test_every_final_is_stored_once_across_a_store_outage(
    cluster, test_pki, postgres, two_channel_call
):
    config, target = cluster

    async def call_with_outage():
        call = asyncio.ensure_future(_call(test_pki, target, two_channel_call, "outage-call"))
        await asyncio.sleep(8)
        await asyncio.to_thread(postgres.stop)
        try:
            await asyncio.sleep(10)  # finals meanwhile go to the recorder's spool
        finally:
            await asyncio.to_thread(postgres.start)
        return await call

    result = asyncio.run(call_with_outage())
    assert result.events[-1].summary.recorded
    finals = [(s.channel, s.turn_index, s.text) for s in result.finals]
    assert len(finals) >= 5
    reader = open_reader(config)
    deadline = time.monotonic() + 30
    while True:  # the spool drains once the store answers
        stored = reader.transcript("acme", "outage-call")
        if len(stored.segments) >= len(finals) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted((s["channel"], s["turn_index"], s["text"]) for s in stored.segments) == sorted(
        finals
    )
    assert stored.row.status == "OK" and stored.row.final_segments == len(finals)
    assert stored.details["call_id"] == "outage-call" and stored.unreadable == 0
    spool = config.state_path / "records" / "spool"
    assert list(spool.glob("*.json")) == []


def test_what_is_not_recorded(cluster, test_pki, mono_recording):
    config, target = cluster
    off = asyncio.run(
        _call(test_pki, target, mono_recording, "asked-off", realtime=False, record=False)
    )
    tenant_off = asyncio.run(
        _call(test_pki, target, mono_recording, "tenant-off", client="initech", realtime=False)
    )
    assert off.finals and tenant_off.finals
    assert not off.events[-1].summary.recorded and not tenant_off.events[-1].summary.recorded
    reader = open_reader(config)
    with pytest.raises(UnknownCall):
        reader.transcript("acme", "asked-off")
    with pytest.raises(UnknownCall):
        reader.transcript("initech", "tenant-off")


def test_no_word_of_the_call_is_in_the_database_files(
    cluster, test_pki, postgres, two_channel_call
):
    config, target = cluster
    result = asyncio.run(_call(test_pki, target, two_channel_call, "scanned", realtime=False))
    stored = open_reader(config).transcript("acme", "scanned")
    assert len(stored.segments) == len(result.finals) >= 5
    postgres.checkpoint()
    blobs = [p.read_bytes() for p in postgres.data_dir.rglob("*") if p.is_file()]
    assert not [w for w in WORDS if any(w in blob for blob in blobs)]


def test_the_purge_loop_in_the_cluster_deletes_expired_text(cluster, test_pki, mono_recording):
    config, target = cluster
    result = asyncio.run(_call(test_pki, target, mono_recording, "expiring", realtime=False))
    assert result.events[-1].summary.recorded
    reader = open_reader(config)
    key = reader.call_key("expiring")
    store = open_store(config.records, config.state_path)
    row = store.call("acme", key)
    assert reader.transcript("acme", "expiring").segments
    # Age the call past the tenant's 7-day window, as time would.
    with store._transaction() as cursor:  # the test's shortcut past a week of waiting
        cursor.execute(
            "UPDATE calls SET started_at = %s, ended_at = %s WHERE call_key = %s",
            (row.started_at - 8 * DAY, row.ended_at - 8 * DAY, key),
        )
    deadline = time.monotonic() + 30
    while store.call("acme", key).text_purged_at is None and time.monotonic() < deadline:
        time.sleep(1)
    assert store.call("acme", key).text_purged_at is not None
    assert store.entries("acme", key) == []
    with pytest.raises(UnknownCall, match="purged"):
        reader.transcript("acme", "expiring")


def _locust(target: str, tls_dir, out, seconds: int) -> tuple[dict[str, dict[str, str]], str]:
    """8 live calls (the mono sample, over and over) and a supervisor reading records."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "loadtests" / "locustfile.py"),
            "--headless",
            "--only-summary",
            "-u",
            "9",
            "-r",
            "9",
            "--run-time",
            f"{seconds}s",
            "--stop-timeout",
            "20",
            "--host",
            target,
            "--csv",
            str(out / "locust"),
            "--tls-dir",
            str(tls_dir),
            "--recording",
            str(EXAMPLES / "mono_linear16_16k.wav"),
            "--read-interval",
            "1",
            "--loglevel",
            "WARNING",
            "ContactCenterCall",
            "RecordsReader",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=seconds + 120,
    )  # fmt: skip  (Locust exits 1 on any failure: the stats below say which)
    with open(out / "locust_stats.csv") as rows:
        stats = {row["Name"]: row for row in csv.DictReader(rows)}
    failures = (out / "locust_failures.csv").read_text()
    return stats, failures


def test_the_audit_log_verifies_after_a_locust_run_and_shows_tampering(cluster, test_pki, tmp_path):
    config, target = cluster
    tls_dir = tmp_path / "tls"
    tls_dir.mkdir()
    shutil.copy(test_pki.server.ca, tls_dir / "ca.pem")
    for name, client in (("client", "acme"), ("reader", "acme-supervisor")):
        shutil.copy(test_pki.clients[client].cert, tls_dir / f"{name}.pem")
        shutil.copy(test_pki.clients[client].key, tls_dir / f"{name}.key")
    stats, failures = _locust(target, tls_dir, tmp_path, seconds=15)
    assert int(stats["StreamCall"]["Request Count"]) >= 8
    assert int(stats["GetCall"]["Request Count"]) >= 1
    assert stats["Aggregated"]["Failure Count"] == "0", failures

    log = open_audit_log(config)
    deadline = time.monotonic() + 30
    while (result := log.verify()).unsigned_tail and time.monotonic() < deadline:
        time.sleep(1)  # the purge loop signs the head every 3 s
    assert result.ok and result.checkpoints >= 1, result.problems
    records = log.entries("acme")
    actions = [r.action for r in records]
    assert actions.count("call.start") >= 8 and actions.count("call.end") >= 8
    reads = [r for r in records if r.action == "record.read"]
    assert reads and {r.actor_role for r in reads} == {"supervisor"}
    assert all(r.purpose == "quality review" for r in reads)

    # The operator's command finds an edited record, and passes again once it is undone.
    config_file = tmp_path / "confide.yaml"
    config_file.write_text(json.dumps(config.model_dump(mode="json")))
    env = {**os.environ, "CONFIDE_CONFIG": str(config_file)}
    verify = [sys.executable, "-m", "cluster.cli", "audit-log", "verify"]
    assert subprocess.run(verify, env=env, capture_output=True).returncode == 0
    store = open_store(config.records, config.state_path)
    target_record = reads[0]
    with store.database.transaction() as cursor:
        cursor.execute(
            "UPDATE audit_records SET purpose = ? WHERE seq = ?", ("nothing", target_record.seq)
        )
    tampered = subprocess.run(verify, env=env, capture_output=True, text=True)
    assert tampered.returncode == 1
    assert f"FAIL record {target_record.seq}: contents do not match its hash" in tampered.stdout
    with store.database.transaction() as cursor:
        cursor.execute(
            "UPDATE audit_records SET purpose = ? WHERE seq = ?",
            (target_record.purpose, target_record.seq),
        )
    assert subprocess.run(verify, env=env, capture_output=True).returncode == 0
