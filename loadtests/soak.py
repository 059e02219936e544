"""Soak: live calls for a long time on one cluster; does anything grow?

    python -m loadtests.soak [--calls 8] [--minutes 30] [--warm-up 3] [--every 30]

An embedded Confide cluster (the default config: records and redaction on, dialogue
off) serves `--calls` concurrent live calls of the two-channel sample for `--minutes`.
Every `--every` seconds it samples the gateway's and the transcriber's RSS, open file
descriptors and threads (summed over their replica processes). Prints start (after the
warm-up) against end, RSS growth in percent, calls, errors and end-of-turn -> final
p95; writes soak_samples.csv, soak.csv and soak.png under loadtests/results/<timestamp>/.
Target: RSS growth at most 10 % after the warm-up, and no errors.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from cluster import lifecycle
from loadtests.load import client_tls_dir, locust_command, replica_processes
from loadtests.report import report
from serve.core.config import ConfideConfig
from serve.core.wavfile import read_wav

HERE = Path(__file__).resolve().parent
RECORDING = HERE.parent / "examples" / "two_channel_mulaw_8k.wav"
WATCHED = ("Gateway", "Transcriber")


def sample(elapsed: float) -> dict:
    row: dict = {"seconds": round(elapsed)}
    for kind in WATCHED:
        rss = fds = threads = 0
        for process in replica_processes(kind):
            try:
                rss += process.memory_info().rss
                fds += process.num_fds()
                threads += process.num_threads()
            except psutil.Error:
                continue
        row |= {f"{kind}_rss_mb": round(rss / 2**20, 1), f"{kind}_fds": fds}
        row[f"{kind}_threads"] = threads
    return row


class Sampler:
    def __init__(self, every: float) -> None:
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples: list[dict] = []

    def _run(self) -> None:
        started = time.monotonic()
        while True:
            self.samples.append(sample(time.monotonic() - started))
            if self._stop.wait(self._every):
                return

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _stats(prefix: Path) -> tuple[dict[str, dict[str, str]], int]:
    with open(f"{prefix}_stats.csv") as f:
        stats = {row["Name"]: row for row in csv.DictReader(f)}
    with open(f"{prefix}_failures.csv") as f:
        errors = sum(int(row["Occurrences"]) for row in csv.DictReader(f))
    return stats, errors


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    minutes = [s["seconds"] / 60 for s in samples]
    for kind in WATCHED:
        axis.plot(minutes, [s[f"{kind}_rss_mb"] for s in samples], label=f"{kind} RSS")
    axis.set_xlabel("minutes")
    axis.set_ylabel("MiB")
    axis.set_title("Confide soak: resident memory")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--warm-up", type=float, default=3, help="minutes before the baseline")
    parser.add_argument("--every", type=float, default=30, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="confide-soak-") as state:
        config = ConfideConfig().with_overrides(
            state_dir=state,
            gateway={"host": "127.0.0.1", "port": 0, "max_concurrent_calls": args.calls + 2},
            dialogue={"enabled": False},
        )
        with lifecycle.embedded(config) as port:
            seconds = int(args.minutes * 60)
            command = locust_command(
                args.calls,
                seconds,
                f"localhost:{port}",
                client_tls_dir(config),
                RECORDING,
                out / "locust",
                int(read_wav(RECORDING).seconds) + 15,
            )
            with Sampler(args.every) as sampler:
                subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
    samples = sampler.samples
    with open(out / "soak_samples.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(samples[0]))
        writer.writeheader()
        writer.writerows(samples)
    plot(samples, out / "soak.png")
    baseline = next(s for s in samples if s["seconds"] >= args.warm_up * 60)
    end = samples[-1]
    stats, errors = _stats(out / "locust")
    call, finals = stats.get("StreamCall", {}), stats.get("end_of_turn_to_final", {})
    rows = []
    for kind in WATCHED:
        start_rss, end_rss = baseline[f"{kind}_rss_mb"], end[f"{kind}_rss_mb"]
        rows.append(
            {
                "process": kind,
                "rss_mb_after_warm_up": start_rss,
                "rss_mb_end": end_rss,
                "rss_growth_pct": round(100 * (end_rss - start_rss) / start_rss, 1),
                "fds_start_end": f"{baseline[f'{kind}_fds']}->{end[f'{kind}_fds']}",
                "threads_start_end": f"{baseline[f'{kind}_threads']}->{end[f'{kind}_threads']}",
                "calls": call.get("Request Count", "0"),
                "errors": errors,
                "eot_final_p95_ms": finals.get("95%", ""),
            }
        )
    print(
        f"\nSoak: {args.calls} live calls for {args.minutes:g} min ({RECORDING.name}); "
        f"baseline after {args.warm_up:g} min, sampled every {args.every:g} s"
    )
    report(rows, out, "soak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
