"""Chaos under load: Locust's live calls while transcriber replicas are killed.

    python -m loadtests.chaos [--calls 8] [--replicas 2] [--every 15] [--kills 4]
                              [--fault-time 90] [--calm-time 60]

An embedded Confide cluster (records on, so stored finals can be counted) serves
`--calls` concurrent live calls of the two-channel sample in two phases on the same
cluster: during the faults, a fault thread SIGKILLs a random transcriber replica's worker
process every `--every` seconds (at most `--kills`; loopback only: this machine's own
Ray workers); after them, the same load with no fault. Per phase it reports, over the
calls that ended, the finals expected (the turns the gateway cut: each call's summary)
and delivered (the finals the caller received), the finals stored (segment entries the
record store gained), error events by code, end-of-turn -> final p50/p95, the turns the
gateway sent again, and how many replicas were killed. Prints a table; writes chaos.csv under
loadtests/results/<timestamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from cluster import lifecycle
from cluster.client import aio_channel, stream_call
from confide.v1 import call_pb2_grpc
from loadtests.load import client_tls, client_tls_dir, locust_command, replica_processes
from loadtests.report import report
from serve.core.config import ConfideConfig, TlsFiles
from serve.core.wavfile import read_wav

HERE = Path(__file__).resolve().parent
RECORDING = HERE.parent / "examples" / "two_channel_mulaw_8k.wav"
ROLES = ["customer", "agent"]


class FaultInjector:
    """Kills a random transcriber replica every `every` seconds, `kills` times at most."""

    def __init__(self, every: float, kills: int, seed: int) -> None:
        self._every, self._kills = every, kills
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.killed = 0

    def _run(self) -> None:
        while self.killed < self._kills and not self._stop.wait(self._every):
            replicas = replica_processes("Transcriber")
            if replicas:
                with contextlib.suppress(psutil.Error):
                    self._random.choice(replicas).send_signal(signal.SIGKILL)
                    self.killed += 1

    def __enter__(self) -> FaultInjector:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def finals_per_call(port: int, tls: TlsFiles) -> int:
    async def call() -> int:
        async with aio_channel(f"localhost:{port}", tls) as channel:
            stub = call_pb2_grpc.CallServiceStub(channel)
            result = await stream_call(stub, read_wav(RECORDING), ROLES, realtime=False)
        return len(result.finals)

    return asyncio.run(call())


def stored_segments(state: Path) -> int:
    path = state / "records" / "records.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        query = "SELECT COUNT(*) FROM entries WHERE kind = 'segment'"
        return connection.execute(query).fetchone()[0]


def run_locust(calls: int, seconds: int, port: int, tls_dir: Path, prefix: Path) -> None:
    # Long enough for every call to end (they lag under faults): counts are per call.
    stop_timeout = int(read_wav(RECORDING).seconds) + 180
    command = locust_command(
        calls, seconds, f"localhost:{port}", tls_dir, RECORDING, prefix, stop_timeout
    )
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _total(stats: dict[str, dict[str, str]], name: str) -> int:
    """The sum of a request event's response_length (count times average size)."""
    row = stats.get(name, {})
    return round(int(row.get("Request Count", 0)) * float(row.get("Average Content Size", 0)))


def phase_row(name: str, prefix: Path, stored: int, killed: int, resent: int) -> dict:
    stats = {row["Name"]: row for row in _rows(Path(f"{prefix}_stats.csv"))}
    finals = stats.get("end_of_turn_to_final", {})
    call = stats.get("StreamCall", {})
    started = int(call.get("Request Count", 0))
    expected, delivered = _total(stats, "call_turns"), _total(stats, "call_finals")
    errors: dict[str, int] = {}
    for row in _rows(Path(f"{prefix}_failures.csv")):
        cause = row["Error"].split("(")[-1].strip("')\"")
        key = f"{row['Name']}:{cause}"
        errors[key] = errors.get(key, 0) + int(row["Occurrences"])
    return {
        "phase": name,
        "calls": started,
        "failed_calls": int(call.get("Failure Count", 0)),
        "finals_expected": expected,
        "finals_delivered": delivered,
        "finals_stored": stored,
        "finals_lost": expected - delivered,
        "error_events": ";".join(f"{k}={v}" for k, v in sorted(errors.items())) or "none",
        "eot_final_p50_ms": finals.get("50%", ""),
        "eot_final_p95_ms": finals.get("95%", ""),
        "replicas_killed": killed,
        "turns_resent": resent,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--replicas", type=int, default=2, help="transcriber replicas")
    parser.add_argument("--every", type=float, default=15.0, help="seconds between kills")
    parser.add_argument("--kills", type=int, default=4, help="replicas killed at most")
    parser.add_argument("--fault-time", type=int, default=90, help="seconds of calls, faults")
    parser.add_argument("--calm-time", type=int, default=60, help="seconds of calls, after")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="confide-chaos-") as state:
        config = ConfideConfig().with_overrides(
            state_dir=state,
            gateway={"host": "127.0.0.1", "port": 0, "max_concurrent_calls": args.calls + 2},
            transcriber={"num_replicas": args.replicas},
            dialogue={"enabled": False},
            # Logical CPUs for Ray's placement: each replica reserves one, and the
            # replicas beside the transcribers need theirs on this 2-core machine.
            ray={"num_cpus": args.replicas + 2},
        )
        with lifecycle.embedded(config) as port:
            from ray import serve

            from serve.app import APP_NAME

            gateway = serve.get_app_handle(APP_NAME)
            tls_dir = client_tls_dir(config)
            per_call = finals_per_call(port, client_tls(tls_dir))
            for name, seconds, kills in (
                ("faults", args.fault_time, args.kills),
                ("after", args.calm_time, 0),
            ):
                stored_before = stored_segments(Path(state))
                resent_before = gateway.turns_resent.remote().result()
                with FaultInjector(args.every, kills, args.seed) as faults:
                    run_locust(args.calls, seconds, port, tls_dir, out / f"locust_{name}")
                time.sleep(3)  # the recorder's last writes
                rows.append(
                    phase_row(
                        name,
                        out / f"locust_{name}",
                        stored_segments(Path(state)) - stored_before,
                        faults.killed,
                        gateway.turns_resent.remote().result() - resent_before,
                    )
                )
    print(
        f"\nChaos: {args.calls} live calls ({RECORDING.name}, {per_call} finals each), "
        f"{args.replicas} transcriber replicas, a random one SIGKILLed every {args.every:g} s"
    )
    report(rows, out, "chaos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
