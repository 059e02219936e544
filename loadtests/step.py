"""Autoscaling benchmark: a step from 4 to 16 live calls, and what the transcriber's
autoscaling does about it.

    python -m loadtests.step [--signals final_wait,ongoing_requests,fixed]
                             [--step-from 4] [--step-to 16] [--step-at 60] [--run-time 300]

An embedded cluster whose transcriber replicas have one decoding thread and one CPU each
(so a second replica is a second core's worth of decoding on this machine), autoscaled
between 1 and --max-replicas on each chosen signal (serve/autoscaling.py; `fixed` keeps
one replica), one cluster per signal, one after another. Locust runs --step-from calls,
then --step-to from --step-at seconds. Every 5 s the benchmark counts the transcriber's
replica processes; every final's end-of-turn -> final latency is logged with its time.
Prints per 20 s the calls and each signal's replicas and p95 side by side, and writes
step.csv (also finals and p50) and step-<signal>.png under loadtests/results/<timestamp>/.
"""

from __future__ import annotations

import argparse
import csv
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from cluster import lifecycle
from loadtests.bench import DEFAULT_RECORDING
from loadtests.load import HERE, client_tls_dir, replica_niceness, replica_processes
from serve.core.config import ConfideConfig, load_config
from serve.core.wavfile import read_wav

WINDOW_SECONDS = 20
SIGNALS = ("final_wait", "ongoing_requests", "fixed")


def autoscaling(signal: str, max_replicas: int) -> dict:
    if signal == "fixed":
        return {"num_replicas": 1}
    return {
        "autoscaling": {
            "min_replicas": 1,
            "max_replicas": max_replicas,
            "signal": signal,
            "upscale_delay_seconds": 10,
            # Serve's default policy aims at this many requests in flight per replica;
            # each call keeps about one per channel in flight.
            "target_ongoing_requests": 8,
        }
    }


def locust_step(target: str, tls_dir: Path, args, finals_log: Path, prefix: Path) -> list[str]:
    return [
        sys.executable, "-m", "locust",
        "-f", f"{HERE / 'locustfile.py'},{HERE / 'step_shape.py'}",
        "--headless", "--only-summary", "--host", target, "--csv", str(prefix),
        "--tls-dir", str(tls_dir), "--recording", str(args.recording),
        "--step-from", str(args.step_from), "--step-to", str(args.step_to),
        "--step-at", str(args.step_at), "--step-run-time", str(args.run_time),
        "--finals-log", str(finals_log),
        "--stop-timeout", str(int(read_wav(args.recording).seconds) + 15),
        "--loglevel", "WARNING", "ContactCenterCall",
    ]  # fmt: skip


class ReplicaCounter:
    """The transcriber's replica processes, counted every few seconds."""

    def __init__(self, period: float = 5.0) -> None:
        self.samples: list[tuple[float, int]] = []
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ReplicaCounter:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.time(), len(replica_processes("Transcriber"))))
            self._stop.wait(self._period)


def timeline(started: float, finals: list[tuple[float, float]], replicas, args) -> list[dict]:
    rows = []
    for start in range(0, int(args.run_time + args.step_at), WINDOW_SECONDS):
        low, high = started + start, started + start + WINDOW_SECONDS
        latencies = sorted(ms for at, ms in finals if low <= at < high)
        counts = [n for at, n in replicas if low <= at < high]
        if not latencies and not counts:
            continue
        rows.append(
            {
                "seconds": start,
                "calls": args.step_from if start < args.step_at else args.step_to,
                "replicas": max(counts) if counts else 0,
                "finals": len(latencies),
                "p50_ms": _percentile(latencies, 0.5),
                "p95_ms": _percentile(latencies, 0.95),
            }
        )
    return rows


def _percentile(values: list[float], q: float) -> float:
    return values[min(int(len(values) * q), len(values) - 1)] if values else float("nan")


def plot(rows: list[dict], path: Path, signal: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, latency = plt.subplots(figsize=(7, 4))
    seconds = [r["seconds"] for r in rows]
    latency.plot(seconds, [r["p95_ms"] for r in rows], "s-", label="p95 end of turn -> final")
    latency.plot(seconds, [r["p50_ms"] for r in rows], "o-", label="p50")
    latency.set_xlabel("seconds")
    latency.set_ylabel("ms")
    count = latency.twinx()
    count.step(seconds, [r["replicas"] for r in rows], "g-", where="post", label="replicas")
    count.step(seconds, [r["calls"] / 4 for r in rows], "k:", where="post", label="calls / 4")
    count.set_ylabel("transcriber replicas")
    latency.legend(loc="upper left")
    count.legend(loc="upper right")
    steps = f"{rows[0]['calls']} -> {rows[-1]['calls']} calls"
    latency.set_title(f"Step {steps}, autoscaling: {signal}")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def run_signal(signal: str, base: ConfideConfig, args, out: Path) -> list[dict]:
    """The step against a fresh cluster autoscaled on `signal`: its timeline."""
    with tempfile.TemporaryDirectory(prefix="confide-step-") as state:
        config = base.with_overrides(
            state_dir=state,
            gateway={"host": "127.0.0.1", "port": 0},
            dialogue={"enabled": False},
            ray={"num_cpus": 2 + args.max_replicas},  # logical CPUs: room for every replica
            transcriber={
                "num_workers": 1,
                "cpu_threads": 1,
                "num_cpus": 1,
                **autoscaling(signal, args.max_replicas),
            },
        )
        with lifecycle.embedded(config) as port:
            tls_dir = client_tls_dir(config)
            finals_log = out / f"finals-{signal}.csv"
            started = time.time()
            with ReplicaCounter() as replicas:
                target = f"localhost:{port}"
                command = locust_step(target, tls_dir, args, finals_log, out / f"locust-{signal}")
                # At the replicas' priority (loadtests/load.py), as the call benchmark.
                command = ["nice", "-n", str(replica_niceness()), *command]
                subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
            with finals_log.open() as f:
                finals = [(float(at), float(ms)) for at, ms in csv.reader(f)]
    rows = timeline(started, finals, replicas.samples, args)
    plot(rows, out / f"step-{signal}.png", signal)
    return [{"signal": signal, **row} for row in rows]


def print_side_by_side(rows: list[dict], signals: list[str]) -> None:
    """One line per window: the calls, then each signal's replicas and p95."""
    by_window: dict[int, dict[str, dict]] = {}
    for row in rows:
        by_window.setdefault(row["seconds"], {})[row["signal"]] = row
    header = ["seconds", "calls"] + [
        f"{signal[:10]}:{column}" for signal in signals for column in ("replicas", "p95_ms")
    ]
    print("  ".join(h.rjust(12) for h in header))
    for seconds, signal_rows in sorted(by_window.items()):
        calls = next(iter(signal_rows.values()))["calls"]
        values = [str(seconds), str(calls)]
        for signal in signals:
            row = signal_rows.get(signal)
            p95 = "" if row is None or math.isnan(row["p95_ms"]) else str(round(row["p95_ms"]))
            values += ["" if row is None else str(row["replicas"]), p95]
        print("  ".join(v.rjust(12) for v in values))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--signals",
        default="final_wait",
        help="comma-separated, each on its own cluster one after another: final_wait, "
        "ongoing_requests (Serve's default policy), fixed (one replica)",
    )
    parser.add_argument("--step-from", type=int, default=4)
    parser.add_argument("--step-to", type=int, default=16)
    parser.add_argument("--step-at", type=float, default=60)
    parser.add_argument("--run-time", type=float, default=300, help="seconds in all")
    parser.add_argument("--max-replicas", type=int, default=2)
    parser.add_argument("--recording", type=Path, default=DEFAULT_RECORDING)
    parser.add_argument("--config", type=Path)
    args = parser.parse_args()
    signals = args.signals.split(",")
    unknown = set(signals) - set(SIGNALS)
    if unknown:
        parser.error(f"unknown signals {sorted(unknown)}; choose from {', '.join(SIGNALS)}")
    out = HERE / "results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    base = load_config(args.config) if args.config else ConfideConfig()
    rows = [row for signal in signals for row in run_signal(signal, base, args, out)]
    with (out / "step.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(
        f"step {args.step_from} -> {args.step_to} calls at {args.step_at:g} s, "
        f"per {WINDOW_SECONDS} s:"
    )
    print_side_by_side(rows, signals)
    print(f"\nwrote {out / 'step.csv'} and step-<signal>.png there")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
