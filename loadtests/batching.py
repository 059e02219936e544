"""Decoding benchmark: turn by turn against batched across calls, on the real model.

    python -m loadtests.batching [--batch-sizes 1,2,4,8] [--repeats 3] [--threads 1]
    python -m loadtests.batching --pack [--prompts 160] [--repeats 1]

Cuts the sample calls (examples/*.wav with a reference) into turns with the gateway's own
VAD, then decodes the same turns with WhisperModel.transcribe one at a time and with
serve/whisper_batch.py in batches of each size, in one process, alternating. Reports
turns per second, real-time factor, how many turns the batched pass handed back to the
one-at-a-time path, and WER per variant against the references (must not get worse).
With --pack it compares instead, on recorded prompts of at most 4 s, one turn to a 10 s
window against two (run_packed). Writes batching.csv under loadtests/results/<timestamp>/.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from loadtests import corpus
from serve.core.audio import StreamDecoder
from serve.core.config import TranscriberConfig, VadConfig
from serve.core.scoring import word_error_rate
from serve.core.wavfile import read_wav
from serve.messages import TurnAudio
from serve.turns import TurnSegmenter
from serve.whisper_batch import BatchDecoder

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
RESULTS = Path(__file__).resolve().parent / "results"
PACK_GAP_SECONDS = 1.0
PACK_MAX_TURN_SECONDS = 4.0
"""--pack: turns this short or shorter, two to a window (two fit one 10 s window)."""


@dataclass(frozen=True)
class ChannelTurns:
    name: str
    reference: str
    turns: list[TurnAudio]


def prompt_turns(limit: int) -> list[ChannelTurns]:
    """Recorded prompts and book excerpts (loadtests/corpus.py), one final turn each, as
    the gateway hands them on: 16 kHz, at most gateway.max_turn_seconds (20 s)."""
    channels = []
    for path, text in corpus.recorded_prompts(limit):
        recording = read_wav(path)
        decoder = StreamDecoder(recording.encoding, recording.sample_rate, recording.channels)
        audio = decoder.decode(recording.data)[0]
        if len(audio) > 20 * 16000:
            continue
        pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
        channels.append(ChannelTurns(path.stem, text, [TurnAudio(pcm, "en")]))
    return channels


def sample_turns() -> list[ChannelTurns]:
    """Every referenced channel of the sample calls, cut into final turns by the VAD."""
    channels = []
    for meta_path in sorted(EXAMPLES.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        if not isinstance(meta.get("reference"), dict):
            continue
        recording = read_wav(meta_path.with_suffix(".wav"))
        decoded = StreamDecoder(recording.encoding, recording.sample_rate, recording.channels)
        audio = decoded.decode(recording.data)
        roles = meta.get("channels", ["customer"])
        for index, role in enumerate(roles):
            if role not in meta["reference"]:
                continue
            segmenter = TurnSegmenter(VadConfig())
            turns = segmenter.feed(audio[index])
            last = segmenter.flush()
            turns += [last] if last is not None else []
            pcm = [(np.clip(t.audio, -1, 1) * 32767).astype("<i2").tobytes() for t in turns]
            channels.append(
                ChannelTurns(
                    f"{meta_path.stem}:{role}",
                    " ".join(r["text"] for r in meta["reference"][role]),
                    [TurnAudio(p, "en", word_timestamps=True) for p in pcm],
                )
            )
    return channels


@dataclass
class Result:
    variant: str
    batch_size: int
    window_step_s: float
    turns: int
    wall_seconds: float
    turns_per_second: float
    real_time_factor: float
    handed_back: int
    wer_pct: float


def run(engine, channels: list[ChannelTurns], batch_size: int, window: float = 30.0) -> Result:
    turns = [t for c in channels for t in c.turns]
    started = time.perf_counter()
    if batch_size == 0:
        texts = [engine.transcribe_blocking(t).text for t in turns]
        handed_back = 0
    else:
        texts, handed_back = [], 0
        for first in range(0, len(turns), batch_size):
            batch = turns[first : first + batch_size]
            decoded = BatchDecoder(engine.model, engine.beam_size, window).decode(batch)
            for turn, result in zip(batch, decoded, strict=True):
                if result is None:
                    handed_back += 1
                    result = engine.transcribe_blocking(turn)
                texts.append(result.text)
    variant = "one-at-a-time" if batch_size == 0 else "batched"
    wall = time.perf_counter() - started
    return _result(variant, batch_size, window, channels, turns, texts, wall, handed_back)


def run_packed(engine, channels: list[ChannelTurns], window: float) -> Result:
    """Two turns in one window: each pair of single-turn channels (different recordings,
    as two calls would be) is decoded as turn A, PACK_GAP_SECONDS of silence, turn B;
    each word goes back to the turn its middle falls in (boundary: the gap's middle).
    Measures whether packing could share the encoder's window without losing words or
    moving them between turns (a moved word counts as an error in both turns)."""
    turns = [c.turns[0] for c in channels]
    gap = np.zeros(int(PACK_GAP_SECONDS * 16000), dtype="<i2")
    decoder = BatchDecoder(engine.model, engine.beam_size, window)
    texts, handed_back = [], 0
    started = time.perf_counter()
    for first in range(0, len(turns), 2):
        pair = turns[first : first + 2]  # the last is alone when the count is odd
        pieces = [np.frombuffer(t.pcm16, dtype="<i2") for t in pair]
        audio = np.concatenate([pieces[0], gap, *pieces[1:]]).tobytes()
        packed = TurnAudio(audio, "en", word_timestamps=True)
        result = decoder.decode([packed])[0]
        if result is None:
            handed_back += 1
            result = engine.transcribe_blocking(packed)
        boundary = len(pieces[0]) / 16000 + PACK_GAP_SECONDS / 2
        first_turn = [w.word for w in result.words if (w.start + w.end) / 2 < boundary]
        second_turn = [w.word for w in result.words if (w.start + w.end) / 2 >= boundary]
        texts += [" ".join(first_turn), " ".join(second_turn)][: len(pair)]
    wall = time.perf_counter() - started
    return _result("packed pairs", 1, window, channels, turns, texts, wall, handed_back)


def _result(variant, batch_size, window, channels, turns, texts, wall, handed_back) -> Result:
    """A variant's row; WER of all channels together, each channel's turn texts joined."""
    audio_seconds = sum(len(t.pcm16) / 32000 for t in turns)
    errors, words, position = 0.0, 0, 0
    for channel in channels:
        hypothesis = " ".join(texts[position : position + len(channel.turns)])
        position += len(channel.turns)
        reference_words = len(channel.reference.split())
        errors += word_error_rate(channel.reference, hypothesis) * reference_words
        words += reference_words
    return Result(
        variant,
        batch_size,
        window,
        len(turns),
        round(wall, 2),
        round(len(turns) / wall, 2),
        round(wall / audio_seconds, 4),
        handed_back,
        round(100 * errors / words, 2),
    )


def main() -> int:
    from serve.whisper_engine import WhisperEngine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", default="1,2,4,8")
    parser.add_argument(
        "--window-steps",
        default="30",
        help="window lengths to try, seconds: a turn's window is its length rounded up to "
        "the step (30: Whisper's full window)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 threads")
    parser.add_argument(
        "--prompts", type=int, default=120, help="recorded prompts besides the sample calls"
    )
    parser.add_argument(
        "--pack",
        action="store_true",
        help="instead: recorded prompts of at most 4 s decoded one to a 10 s window, then "
        "two to a window with their words split back by timestamp (packing)",
    )
    args = parser.parse_args()
    engine = WhisperEngine(TranscriberConfig(cpu_threads=args.threads, num_workers=1))
    if args.pack:
        return compare_packing(engine, args)
    channels = sample_turns() + prompt_turns(args.prompts)
    variants = [(0, 30.0)] + [
        (int(size), float(window))
        for size in args.batch_sizes.split(",")
        for window in args.window_steps.split(",")
    ]
    run(engine, channels[:4], 0)  # warm-up
    fields = list(Result.__dataclass_fields__)
    print("  ".join(f.rjust(12) for f in fields), flush=True)
    results = []
    for _ in range(args.repeats):
        for size, window in variants:
            results.append(run(engine, channels, size, window))
            print("  ".join(str(v).rjust(12) for v in asdict(results[-1]).values()), flush=True)
    out = _write(results)
    turns = sum(len(c.turns) for c in channels)
    print(f"\n{turns} turns, {len(channels)} channels; wrote {out}")
    return 0


def compare_packing(engine, args) -> int:
    limit = PACK_MAX_TURN_SECONDS * 32000
    short = [c for c in prompt_turns(args.prompts) if len(c.turns[0].pcm16) <= limit]
    run(engine, short[:4], 1, 10.0)  # warm-up
    fields = list(Result.__dataclass_fields__)
    print("  ".join(f.rjust(12) for f in fields), flush=True)
    results = []
    for _ in range(args.repeats):
        for result in (run(engine, short, 1, 10.0), run_packed(engine, short, 10.0)):
            results.append(result)
            print("  ".join(str(v).rjust(12) for v in asdict(result).values()), flush=True)
    print(f"\n{len(short)} turns of at most {PACK_MAX_TURN_SECONDS:g} s; wrote {_write(results)}")
    return 0


def _write(results: list[Result]) -> Path:
    out = RESULTS / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    with (out / "batching.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(results[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in results)
    return out / "batching.csv"


if __name__ == "__main__":
    raise SystemExit(main())
