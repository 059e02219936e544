"""The call benchmark: an embedded Confide cluster, Locust driving N concurrent live
calls over mutual TLS, and a table of what it sustained.

    python -m loadtests.bench --calls 1,4,8,16 [--run-time 90] [--interim | --interims both]
                              [--agent] [--compare sealing|tracing|records|redaction|
                              data-key-cache|ray-tls|finals-first] [--breakdown]
                              [--chunk-ms 20,100]

Per N it reports end-of-turn -> final latency p50/p95, the transcriber's real-time
factor (decode seconds per audio second), calls completed and refused, CPU (percent of
one core) and peak RSS per Serve deployment, the Locust process's CPU and the whole
machine's CPU (200 % = both cores here). Prints a table and writes summary.csv and latency.png under
loadtests/results/<timestamp>/. Each N runs against the same warm cluster in one run,
so rows compare side by side on this noisy machine. `--compare` runs every level twice,
on two clusters that differ only in payload sealing or in tracing (exported over OTLP
to a receiver in this process), and reports the ratio. `--breakdown` traces the cluster
into that receiver and prints, per level, where a final's time went (the gateway's and
the transcriber's spans): waiting to be sent, the trip to a replica, the replica's
queue, decoding, the trip back, redaction. `--chunk-ms` sets how much audio each
StreamCall message carries (20 ms, as telephony frames it, by default); a list runs
every level once per size on the same cluster.

Latencies count in each level's steady state only (Locust's --steady-state: from one
call length after the start, when every user is in a call, until the run time ends).
Locust runs at the replicas' CPU niceness (Ray's workers are niced; a load generator
that is not takes the shared cores first), and its send lag column shows it kept pace.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from cluster import lifecycle, models
from cluster.client import CHUNK_MS
from cluster.trace_receiver import TraceReceiver
from loadtests.load import client_tls_dir, locust_command, replica_niceness, replica_processes
from serve.core.config import ConfideConfig, load_config
from serve.core.wavfile import read_wav

HERE = Path(__file__).resolve().parent
DEFAULT_RECORDING = HERE.parent / "examples" / "two_channel_mulaw_8k.wav"
REPLICA_KINDS = ("Gateway", "Transcriber", "Dialogue", "Recorder")
NAN = float("nan")


@dataclass(frozen=True)
class Variant:
    name: str
    overrides: dict


# Each comparison: the variant measured, then its baseline.
COMPARISONS = {
    "sealing": (
        Variant("sealed", {"keys": {"sealing": True}}),
        Variant("unsealed", {"keys": {"sealing": False}}),
    ),
    "tracing": (Variant("traced", {}), Variant("untraced", {"telemetry": {"traces": "off"}})),
    "records": (
        Variant("recorded", {"records": {"enabled": True}}),
        Variant("unrecorded", {"records": {"enabled": False}}),
    ),
    "redaction": (
        Variant("redacted", {"redaction": {"enabled": True}}),
        Variant("unredacted", {"redaction": {"enabled": False}}),
    ),
    "data-key-cache": (
        Variant("cached-keys", {"keys": {"data_key_cache_seconds": 60}}),
        Variant("key-per-blob", {"keys": {"data_key_cache_seconds": 0}}),
    ),
    "ray-tls": (
        Variant("ray-tls", {"ray": {"tls": "on"}}),
        Variant("ray-plaintext", {"ray": {"tls": "off"}}),
    ),
    # Run with --interim: without interims there is nothing to put finals ahead of.
    "finals-first": (
        Variant("finals-first", {"transcriber": {"finals_first": True}}),
        Variant("arrival-order", {"transcriber": {"finals_first": False}}),
    ),
}


@dataclass
class Row:
    variant: str
    interims: bool
    calls: int
    channels: int
    chunk_ms: int
    """Call audio per StreamCall message."""
    finals: int
    interims_delivered: int
    eot_final_p50_ms: float
    eot_final_p95_ms: float
    eot_final_p99_ms: float
    wer_pct: float
    real_time_factor: float
    calls_completed: int
    calls_refused: int
    sustained: bool
    gateway_cpu_pct: float
    gateway_rss_mb: float
    transcriber_cpu_pct: float
    transcriber_rss_mb: float
    load_generator_cpu_pct: float
    load_generator_lag_p95_ms: float
    """How late the load generator sent chunks (per call, its latest): near 0 means
    it kept pace and the latencies are the server's."""
    machine_cpu_pct: float
    # With --agent only (NaN otherwise):
    reply_first_token_p50_ms: float = NAN
    reply_first_token_p95_ms: float = NAN
    eot_first_reply_token_p50_ms: float = NAN
    eot_first_reply_token_p95_ms: float = NAN
    reply_tokens_per_s: float = NAN
    stream_tokens_per_s: float = NAN
    dialogue_cpu_pct: float = NAN
    dialogue_rss_mb: float = NAN
    # With call records on (NaN otherwise): the store's growth per minute of call audio
    # and the recorder's CPU per concurrent call.
    record_bytes_per_call_minute: float = NAN
    recorder_cpu_pct_per_call: float = NAN


class ReplicaMonitor:
    """CPU (percent of one core, summed over replicas of a kind) and peak RSS."""

    def __init__(self) -> None:
        self._procs = {kind: self._find(kind) for kind in REPLICA_KINDS}
        self._peak_rss = dict.fromkeys(REPLICA_KINDS, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def _find(kind: str) -> list[psutil.Process]:
        return replica_processes(kind, children=True)  # vLLM's engine core: a child

    def _cpu_seconds(self, kind: str) -> float:
        total = 0.0
        for proc in self._procs[kind]:
            times = proc.cpu_times()
            total += times.user + times.system
        return total

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            for kind, procs in self._procs.items():
                rss = sum(p.memory_info().rss for p in procs)
                self._peak_rss[kind] = max(self._peak_rss[kind], rss)

    def __enter__(self) -> ReplicaMonitor:
        self._started = time.monotonic()
        self._cpu_start = {kind: self._cpu_seconds(kind) for kind in REPLICA_KINDS}
        self._machine_start = psutil.cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        elapsed = time.monotonic() - self._started
        self.cpu_pct = {
            kind: 100 * (self._cpu_seconds(kind) - self._cpu_start[kind]) / elapsed
            for kind in REPLICA_KINDS
        }
        self.rss_mb = {kind: self._peak_rss[kind] / 2**20 for kind in REPLICA_KINDS}
        now = psutil.cpu_times()
        busy = sum(now) - now.idle - (sum(self._machine_start) - self._machine_start.idle)
        self.machine_cpu_pct = 100 * busy / elapsed
        self.elapsed = elapsed


def transcriber_totals() -> tuple[float, float]:
    """(audio seconds, decode seconds) summed over the transcriber replicas."""
    from ray import serve

    from serve.app import APP_NAME

    handle = serve.get_deployment_handle("Transcriber", APP_NAME)
    seen: dict[str, dict] = {}
    for _ in range(20):
        stats = handle.stats.remote().result()
        seen[stats["replica"]] = stats
    return (
        sum(s["audio_seconds"] for s in seen.values()),
        sum(s["decode_seconds"] for s in seen.values()),
    )


def _locust_row(stats_csv: Path, name: str) -> dict[str, str]:
    with stats_csv.open() as f:
        for row in csv.DictReader(f):
            if row["Name"] == name:
                return row
    return {}


def _store_bytes(state: Path) -> int:
    """Bytes the SQLite record store holds for calls: sealed entries and details, and
    the plaintext columns (counted at their stored size). The file itself grows in
    pages and its write-ahead log until a checkpoint, which would overstate a record."""
    import sqlite3

    path = state / "records" / "records.db"
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(path)) as connection:
        entries = connection.execute(
            "SELECT COALESCE(SUM(LENGTH(sealed) + LENGTH(tenant) + LENGTH(call_key) + 20), 0) "
            "FROM entries"
        ).fetchone()[0]
        calls = connection.execute(
            "SELECT COALESCE(SUM(LENGTH(details) + LENGTH(tenant) + LENGTH(call_key) + 80), 0) "
            "FROM calls"
        ).fetchone()[0]
    return entries + calls


@dataclass(frozen=True)
class Level:
    """One load level: concurrent calls, whether they ask for interims, and how much
    audio each StreamCall message carries."""

    calls: int
    interims: bool
    chunk_ms: int = CHUNK_MS

    @property
    def name(self) -> str:
        """For file names."""
        chunk = "" if self.chunk_ms == CHUNK_MS else f"_{self.chunk_ms}ms"
        return f"{self.calls}{'_interims' if self.interims else ''}{chunk}"

    @property
    def label(self) -> str:
        """For the printed breakdowns."""
        chunk = "" if self.chunk_ms == CHUNK_MS else f", {self.chunk_ms} ms chunks"
        return f"{self.calls} calls{' with interims' if self.interims else ''}{chunk}"


def run_level(
    level: Level,
    target: str,
    tls_dir: Path,
    recording: Path,
    args,
    out: Path,
    variant: str,
    state: Path,
) -> Row:
    calls, interims = level.calls, level.interims
    prefix = out / f"locust_{variant}_{level.name}"
    before = transcriber_totals()
    store_before = _store_bytes(state)
    command = locust_command(
        calls,
        args.run_time,
        target,
        tls_dir,
        recording,
        prefix,
        int(read_wav(recording).seconds) + 15,
    )
    command.insert(-1, "--steady-state")
    command = ["nice", "-n", str(replica_niceness()), *command]
    if interims:
        command.insert(-1, "--interim")
    if args.agent:
        command.insert(-1, "--agent")
    command[-1:-1] = ["--chunk-ms", str(level.chunk_ms)]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with ReplicaMonitor() as monitor:
        subprocess.run(command, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_cpu = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    after = transcriber_totals()
    stats_csv = Path(f"{prefix}_stats.csv")
    finals = _locust_row(stats_csv, "end_of_turn_to_final")
    call = _locust_row(stats_csv, "StreamCall")
    completed = int(call.get("Request Count", 0)) - int(call.get("Failure Count", 0))
    refused = int(call.get("Failure Count", 0))
    audio, decode = after[0] - before[0], after[1] - before[1]
    p95 = float(finals.get("95%", "nan") or "nan")
    agent: dict = {}
    if args.agent:
        first = _locust_row(stats_csv, "final_to_first_reply_token")
        eot_first = _locust_row(stats_csv, "end_of_turn_to_first_reply_token")
        replies = _locust_row(stats_csv, "agent_reply")
        per_token = _locust_row(stats_csv, "reply_ms_per_token")
        tokens = int(replies.get("Request Count", 0)) * float(
            replies.get("Average Content Size", 0) or 0
        )
        ms_per_token = float(per_token.get("50%", "nan") or "nan")
        agent = {
            "reply_first_token_p50_ms": _number(first, "50%"),
            "reply_first_token_p95_ms": _number(first, "95%"),
            "eot_first_reply_token_p50_ms": _number(eot_first, "50%"),
            "eot_first_reply_token_p95_ms": _number(eot_first, "95%"),
            "reply_tokens_per_s": round(tokens / monitor.elapsed, 1),
            "stream_tokens_per_s": round(1000 / ms_per_token, 1) if ms_per_token else NAN,
            "dialogue_cpu_pct": round(monitor.cpu_pct["Dialogue"], 1),
            "dialogue_rss_mb": round(monitor.rss_mb["Dialogue"], 1),
        }
    records: dict = {}
    call_minutes = completed * read_wav(recording).seconds / 60
    if monitor.cpu_pct.get("Recorder", 0) and call_minutes:
        records = {
            "record_bytes_per_call_minute": round(
                (_store_bytes(state) - store_before) / call_minutes
            ),
            "recorder_cpu_pct_per_call": round(monitor.cpu_pct["Recorder"] / calls, 2),
        }
    return Row(
        variant=variant,
        interims=interims,
        calls=calls,
        channels=calls * read_wav(recording).channels,
        chunk_ms=level.chunk_ms,
        finals=int(finals.get("Request Count", 0)),
        interims_delivered=int(_locust_row(stats_csv, "interim").get("Request Count", 0)),
        eot_final_p50_ms=float(finals.get("50%", "nan") or "nan"),
        eot_final_p95_ms=p95,
        eot_final_p99_ms=_number(finals, "99%"),
        wer_pct=round(_number(_locust_row(stats_csv, "call_wer"), "Average Response Time"), 2),
        real_time_factor=round(decode / audio, 4) if audio else float("nan"),
        calls_completed=completed,
        calls_refused=refused,
        sustained=refused == 0 and completed > 0 and p95 <= args.p95_target_ms,
        gateway_cpu_pct=round(monitor.cpu_pct["Gateway"], 1),
        gateway_rss_mb=round(monitor.rss_mb["Gateway"], 1),
        transcriber_cpu_pct=round(monitor.cpu_pct["Transcriber"], 1),
        transcriber_rss_mb=round(monitor.rss_mb["Transcriber"], 1),
        load_generator_cpu_pct=round(100 * load_cpu / monitor.elapsed, 1),
        load_generator_lag_p95_ms=_number(_locust_row(stats_csv, "send_lag"), "95%"),
        machine_cpu_pct=round(monitor.machine_cpu_pct, 1),
        **agent,
        **records,
    )


def _number(row: dict[str, str], column: str) -> float:
    return float(row.get(column, "nan") or "nan")


def print_table(rows: list[Row], flush: bool = False) -> None:
    fields = [f for f, v in asdict(rows[0]).items() if v == v]  # NaN columns: not measured
    widths = [max(len(f), 8) for f in fields]
    print("  ".join(f.rjust(w) for f, w in zip(fields, widths, strict=True)))
    for row in rows:
        values = [str(asdict(row)[f]) for f in fields]
        print("  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True)), flush=flush)


def plot(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    series = list(dict.fromkeys((r.variant, r.interims, r.chunk_ms) for r in rows))
    for variant, interims, chunk_ms in series:
        part = [
            r for r in rows if (r.variant, r.interims, r.chunk_ms) == (variant, interims, chunk_ms)
        ]
        name = [variant] if len({v for v, _, _ in series}) > 1 else []
        name += ["with interims" if interims else "finals only"]
        name += [f"{chunk_ms} ms chunks"] if len({c for _, _, c in series}) > 1 else []
        suffix = " " + ", ".join(name)
        channels = [r.channels for r in part]
        axis.plot(channels, [r.eot_final_p50_ms for r in part], "o-", label=f"p50{suffix}")
        axis.plot(channels, [r.eot_final_p95_ms for r in part], "s-", label=f"p95{suffix}")
        axis.plot(channels, [r.eot_final_p99_ms for r in part], "^:", label=f"p99{suffix}")
    axis.axhline(1000, color="grey", linestyle="--", label="1 s target")
    axis.set_xlabel("live call channels")
    axis.set_ylabel("end of turn -> final (ms)")
    axis.set_title("Confide call benchmark")
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def run_variant(base: ConfideConfig, variant: Variant, args, out: Path) -> list[Row]:
    """Every level against one embedded cluster."""
    with contextlib.ExitStack() as stack:
        overrides = dict(variant.overrides)
        # Redaction is compared with both clusters traced (OTLP/HTTP, no measurable cost
        # here): its spans time each final's redaction in the gateway exactly.
        traced = variant.name == "traced" or args.compare == "redaction" or args.breakdown
        if traced:
            receiver = stack.enter_context(TraceReceiver())
            http = args.otlp == "http" or args.compare == "redaction"
            overrides["telemetry"] = {
                "traces": "otlp-http" if http else "otlp-grpc",
                "otlp_endpoint": receiver.http_endpoint if http else receiver.endpoint,
                "otlp_insecure": True,
            }
        windows: list[tuple[str, int, int]] = []
        rows = _run_levels(base, overrides, variant.name, args, out, windows)
        if traced:
            print(f"  spans received by the OTLP receiver: {len(receiver.spans)}")
        if variant.name == "redacted":
            print_redaction_spans(receiver.spans, windows)
        if args.breakdown:
            print_breakdown(receiver.spans, windows)
        return rows


def print_breakdown(spans, windows: list[tuple[str, int, int]]) -> None:
    """Where finals spent their time, per level, from the spans of each final: the
    gateway's confide.vad (ends when the VAD cut the turn; its confide.audio_lag_ms is
    how far the gateway's reading trailed the call's clock then), confide.final (from the
    cut until the client is sent the final) and under it confide.transcribe,
    confide.redact and confide.record, and the transcriber's confide.transcriber.decode
    (its confide.decode_ms is the engine's own time; the rest of the span is the wait
    for a worker thread and opening and sealing the payloads). "waiting its turn" is the
    time after redaction and storing until the final goes out: the call's earlier
    turns are sent first. What the client's end-to-end latency has beyond these is the
    VAD's silence wait and the network."""
    finals: dict[tuple, dict] = {}
    timed = ("confide.vad", "confide.final", "confide.transcribe", "confide.redact")
    for span in spans:
        if span.name in timed and not span.attributes.get("confide.interim"):
            attributes = span.attributes
            key = (
                span.trace_id,
                attributes.get("confide.channel"),
                attributes.get("confide.turn_index"),
            )
            finals.setdefault(key, {})[span.name] = span
    served = {s.parent_span_id: s for s in spans if s.name == "confide.transcriber.decode"}
    stored = collections.defaultdict(list)
    for span in spans:
        if span.name == "confide.record":
            stored[span.parent_span_id].append(span)
    for level, start, end in windows:
        parts: dict[str, list[float]] = collections.defaultdict(list)
        for final in finals.values():
            vad, whole, sent, redact = (final.get(name) for name in timed)
            if not (vad and sent and redact and start <= vad.end_ns <= end):
                continue
            lag = vad.attributes.get("confide.audio_lag_ms")
            if lag is not None:
                parts["audio lag at the cut"].append(float(lag))
            parts["cut -> sent"].append((sent.start_ns - vad.end_ns) / 1e6)
            replica = served.get(sent.span_id)
            if replica is not None:
                decode = float(replica.attributes.get("confide.decode_ms", 0.0))
                parts["to the replica"].append((replica.start_ns - sent.start_ns) / 1e6)
                parts["queue, open, seal"].append(replica.duration_ms - decode)
                parts["decode"].append(decode)
                parts["back to the gateway"].append((sent.end_ns - replica.end_ns) / 1e6)
            parts["redaction"].append(redact.duration_ms)
            parts["cut -> redacted"].append((redact.end_ns - vad.end_ns) / 1e6)
            if whole is not None:
                writes = stored.get(whole.span_id, [])
                done = max([redact.end_ns] + [w.end_ns for w in writes])
                parts["record"].append(sum(w.duration_ms for w in writes))
                parts["waiting its turn"].append((whole.end_ns - done) / 1e6)
                parts["cut -> out to the client"].append((whole.end_ns - vad.end_ns) / 1e6)
        print(f"  {level}: where finals' time went (ms, {len(parts['decode'])} finals)")
        for part, times in parts.items():
            if not times:  # a level without finals
                continue
            p50, p95 = _p50_p95(times)
            print(f"    {part:26} p50 {p50:8.1f}  p95 {p95:8.1f}")


def _p50_p95(times: list[float]) -> tuple[float, float]:
    times = sorted(times)
    return times[len(times) // 2], times[min(int(len(times) * 0.95), len(times) - 1)]


def print_redaction_spans(spans, windows: list[tuple[str, int, int]]) -> None:
    """Each final's redaction as the gateway timed it (finals not held for a next one),
    per level: the latency redaction adds to a final under the benchmark's load."""
    redact = [
        s for s in spans if s.name == "confide.redact" and not s.attributes.get("confide.held")
    ]
    for level, start, end in windows:
        times = sorted(s.duration_ms for s in redact if start <= s.start_ns <= end)
        if not times:
            print(f"  {level}: no confide.redact spans arrived")
            continue
        p50, p95 = _p50_p95(times)
        print(
            f"  {level}: redaction added per final (confide.redact, {len(times)} finals): "
            f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {times[-1]:.1f} ms"
        )


def _run_levels(
    base: ConfideConfig,
    overrides: dict,
    variant: str,
    args,
    out: Path,
    windows: list[tuple[str, int, int]] | None = None,
) -> list[Row]:
    """Every level on one cluster; `windows` gets (level's label, start, end) in epoch
    ns."""
    with tempfile.TemporaryDirectory(prefix="confide-bench-") as state:
        dialogue: dict = {"enabled": args.agent}
        if args.agent and base.dialogue.model_dir is None:
            # The default model lives in the user's state directory: prepare it once there.
            dialogue["model_dir"] = str(base.dialogue_model_dir)
            models.prepare(base.dialogue_model_dir)
        config = base.with_overrides(
            state_dir=state,
            gateway={"host": "127.0.0.1", "port": 0},
            dialogue=dialogue,
            **overrides,
        )
        rows = []
        with lifecycle.embedded(config) as port:
            tls_dir = client_tls_dir(config)
            levels = [int(n) for n in args.calls.split(",")]
            modes = {"off": [False], "on": [True], "both": [False, True]}[args.interims]
            chunk_sizes = [int(ms) for ms in args.chunk_ms.split(",")]
            for interims, chunk_ms, calls in itertools.product(modes, chunk_sizes, levels):
                level = Level(calls, interims, chunk_ms)
                started = time.time_ns()
                row = run_level(
                    level,
                    f"localhost:{port}",
                    tls_dir,
                    args.recording,
                    args,
                    out,
                    variant,
                    Path(state),
                )
                if windows is not None:
                    windows.append((level.label, started, time.time_ns()))
                rows.append(row)
                print_table([row], flush=True)
        return rows


def print_ratio(rows: list[Row], measured: str, baseline: str, p95_target_ms: float) -> None:
    """Calls sustained (p95 within target, none refused) and completed, measured variant
    over baseline, and the p95 ratio per level."""

    def sustained(variant: str) -> int:
        return max((r.calls for r in rows if r.variant == variant and r.sustained), default=0)

    on, off = sustained(measured), sustained(baseline)
    ratio = on / off if off else float("nan")
    print(
        f"\ncalls sustained (p95 <= {p95_target_ms:.0f} ms): {measured} {on}, {baseline} {off}, "
        f"ratio {ratio:.2f}"
    )
    completed = {
        v: sum(r.calls_completed for r in rows if r.variant == v) for v in (measured, baseline)
    }
    if completed[baseline]:
        print(
            f"calls completed over all levels: {measured} {completed[measured]}, {baseline} "
            f"{completed[baseline]}, ratio {completed[measured] / completed[baseline]:.3f}"
        )
    for row in (r for r in rows if r.variant == measured):
        base = next(
            (
                r
                for r in rows
                if r.variant == baseline
                and (r.calls, r.interims, r.chunk_ms) == (row.calls, row.interims, row.chunk_ms)
            ),
            None,
        )
        if base is not None and base.eot_final_p95_ms:
            print(
                f"  {row.calls:3d} calls: p95 {measured}/{baseline} = "
                f"{row.eot_final_p95_ms / base.eot_final_p95_ms:.2f}"
            )


def print_sealing_cost() -> None:
    """Seal + open with the local provider: throughput per MB and cost per payload."""
    from serve.core.envelope import Binding
    from serve.core.keys import LocalKeyProvider
    from serve.core.sealing import Sealer

    with tempfile.TemporaryDirectory() as keys:
        sealer = Sealer(LocalKeyProvider(Path(keys) / "kek.json"))
        binding = Binding("bench", "call", "turn-audio")
        print("\nsealing cost (seal + open, local provider, one core):")
        for label, size, repeats in (
            ("1 MiB", 1 << 20, 50),
            ("5 s turn (160 KB)", 160_000, 200),
            ("reply delta (8 B)", 8, 2000),
        ):
            payload = os.urandom(size)
            started = time.perf_counter()
            for _ in range(repeats):
                sealer.open(sealer.seal(payload, binding), binding)
            seconds = (time.perf_counter() - started) / repeats
            print(f"  {label:20} {seconds * 1e6:9.1f} us each  {size / seconds / 2**20:9.1f} MiB/s")


REDACTION_SAMPLES = (
    "Please hold while we try to connect you.",
    "Hi, my name is Maria Garcia and I'm calling about my bill from last month.",
    "My card number is 4539 1488 0343 6467 and the security code is 1 2 3.",
    "I have two questions about the delivery, it was supposed to arrive on Tuesday.",
)


def print_redaction_cost(repeats: int = 200) -> None:
    """The engine alone, in this process: milliseconds per hypothesis (what each final
    and interim costs the gateway's CPU, off its event loop)."""
    from serve.core.config import ENTITY_TYPES
    from serve.redaction import Redactor

    redactor = Redactor()
    entities = frozenset(ENTITY_TYPES)
    print("\nredaction engine, one hypothesis at a time (this process, one thread):")
    for text in REDACTION_SAMPLES:
        words = text.split()
        redactor.redact(words, entities)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            redactor.redact(words, entities)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p50, p95 = _p50_p95(times)
        print(f"  {len(words):3} words  p50 {p50:6.2f} ms  p95 {p95:6.2f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", default="1,4,8,16", help="concurrent calls per level")
    parser.add_argument("--run-time", type=int, default=90, help="seconds of new calls per level")
    parser.add_argument("--recording", type=Path, default=DEFAULT_RECORDING)
    parser.add_argument(
        "--interims",
        choices=["off", "on", "both"],
        default="off",
        help="calls ask for interim results: never, always, or each level twice (finals "
        "only, then with interims: the published table, `make bench`)",
    )
    parser.add_argument(
        "--interim", dest="interims", action="store_const", const="on", help="--interims on"
    )
    parser.add_argument(
        "--agent", action="store_true", help="calls ask for agent replies (deploys the LLM)"
    )
    parser.add_argument("--config", type=Path, help="Confide config for the cluster")
    parser.add_argument("--p95-target-ms", type=float, default=1000.0)
    parser.add_argument(
        "--chunk-ms",
        default=str(CHUNK_MS),
        help="call audio per StreamCall message, milliseconds; a list runs every level once "
        "per size on the same cluster (20 is what telephony sends; each message costs the "
        "gateway and the load generator CPU)",
    )
    parser.add_argument(
        "--compare",
        choices=sorted(COMPARISONS),
        help="run every level with payload sealing, tracing, call records, redaction, the "
        "data-key cache, Ray's TLS or finals-first decoding on and off; report the ratio",
    )
    parser.add_argument(
        "--baseline-first",
        action="store_true",
        help="with --compare, run the baseline cluster first (repeat both orders: the first "
        "cluster of a run is measured on a colder machine)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="trace the cluster and print where finals spent their time, per level",
    )
    parser.add_argument(
        "--otlp", choices=["grpc", "http"], default="grpc", help="how traced variants export"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()

    out = args.out / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    base: ConfideConfig = load_config(args.config) if args.config else ConfideConfig()
    variants = COMPARISONS[args.compare] if args.compare else (Variant("default", {}),)
    if args.baseline_first:
        variants = tuple(reversed(variants))
    rows = []
    for variant in variants:
        rows += run_variant(base, variant, args, out)
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    plot(rows, out / "latency.png")
    print(
        f"\nConfide call benchmark ({args.recording.name}, interims={args.interims}, "
        f"agent={args.agent})"
    )
    print_table(rows)
    if args.compare:
        measured, baseline = COMPARISONS[args.compare]
        print_ratio(rows, measured.name, baseline.name, args.p95_target_ms)
    if args.compare == "sealing":
        print_sealing_cost()
    if args.compare == "redaction":
        print_redaction_cost()
    print(f"\nwrote {out / 'summary.csv'} and {out / 'latency.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
