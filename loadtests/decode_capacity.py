"""How many live channels one device decodes: batched Whisper timings, then a queue.

    python -m loadtests.decode_capacity --shapes tiny.en,large-v3-turbo --device cuda
        [--batch-sizes 1,2,4,8,16,32,64] [--window-seconds 10] [--tokens 20] [--out DIR]

Per model shape, window length and batch size it times what a transcriber worker does
for a batch of turns (serve/whisper_batch.py): one CTranslate2 encode, one greedy
`generate` with timestamps, one word alignment. The models are built here with random
weights of the real shape (transformers' Whisper module, converted by CTranslate2's own
loader), because no model hub is reachable and large-v3-turbo is not packaged: a forward
pass costs the same for any weight values. `generate` is held to exactly `--tokens`
tokens (end of text suppressed), since random weights would stop anywhere.

Then a batching worker is simulated with those timings: N live channels each end a turn
as a Poisson process (`--turns-per-channel-minute`, measured on the benchmark's calls);
a free worker takes every waiting turn up to the largest batch size timed, and the turn's
transcript is out when its batch is done. The second table gives, per target in
`--p95-ms` (100 and 300 ms by default), the most channels whose turn cut -> transcript
p95 stays within it. What it leaves out: the VAD's end-of-turn decision before the cut,
the trip through the gateway, and the feature extraction (CPU). Prints the tables and
writes decode-capacity.csv and channel-capacity.csv under --out (default
loadtests/results/<timestamp>/).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import math
import random
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtests.report import report

FRAMES_PER_SECOND = 100  # Whisper's mel frames
TIMESTAMP_TOKENS = 1501  # <|0.00|> ... <|30.00|>
# Measured on the benchmark's recorded call (examples/two_channel_mulaw_8k.wav): the VAD
# cuts 6 turns on its 2 channels in 33.1 s, and tiny.en generates 11-30 tokens for each
# (2.7-7.0 s), mean 18 with timestamps; with the end of text, 20 is a round upper figure.
TURNS_PER_CHANNEL_MINUTE = 6 / 2 / 33.1 * 60
TOKENS_PER_TURN = 20


@dataclass(frozen=True)
class WhisperShape:
    """The sizes that set a Whisper model's cost (its Hugging Face config's names)."""

    num_mel_bins: int
    d_model: int
    encoder_layers: int
    encoder_attention_heads: int
    decoder_layers: int
    decoder_attention_heads: int
    ffn_dim: int
    vocab_size: int
    language_tokens: int


SHAPES = {
    "tiny.en": WhisperShape(80, 384, 4, 6, 4, 6, 1536, 51864, 99),
    "large-v3-turbo": WhisperShape(128, 1280, 32, 20, 4, 20, 5120, 51866, 100),
    # For the test of this script on CPU: the smallest model of the same structure.
    "micro": WhisperShape(80, 64, 1, 2, 1, 2, 128, 51864, 99),
}


def whisper_vocabulary(shape: WhisperShape) -> list[str]:
    """Whisper's token layout (text, end of text, start, languages, tasks, timestamps)
    with placeholder text tokens: CTranslate2 finds the special tokens by name."""
    specials = ["<|endoftext|>", "<|startoftranscript|>"]
    specials += [f"<|lang{i}|>" for i in range(shape.language_tokens)]
    specials += ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>"]
    specials += ["<|nospeech|>", "<|notimestamps|>"]
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(TIMESTAMP_TOKENS)]
    text = shape.vocab_size - len(specials) - len(timestamps)
    return [f"t{i}" for i in range(text)] + specials + timestamps


def build_random_model(shape: WhisperShape, directory: Path, quantization: str) -> Path:
    """A CTranslate2 Whisper model directory with random weights of `shape`."""
    import torch
    from ctranslate2.converters.transformers import WhisperLoader
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=shape.vocab_size,
        num_mel_bins=shape.num_mel_bins,
        d_model=shape.d_model,
        encoder_layers=shape.encoder_layers,
        encoder_attention_heads=shape.encoder_attention_heads,
        decoder_layers=shape.decoder_layers,
        decoder_attention_heads=shape.decoder_attention_heads,
        encoder_ffn_dim=shape.ffn_dim,
        decoder_ffn_dim=shape.ffn_dim,
    )
    with torch.no_grad():
        model = WhisperForConditionalGeneration(config).eval()
        spec = WhisperLoader().get_model_spec(model)
    vocabulary = whisper_vocabulary(shape)
    spec.config.suppress_ids = []
    spec.config.suppress_ids_begin = []
    first_language = vocabulary.index("<|startoftranscript|>") + 1
    spec.config.lang_ids = list(range(first_language, first_language + shape.language_tokens))
    spec.config.alignment_heads = list(
        itertools.product(
            range(shape.decoder_layers // 2, shape.decoder_layers),
            range(shape.decoder_attention_heads),
        )
    )
    spec.register_vocabulary(vocabulary)
    spec.validate()
    spec.optimize(quantization=quantization)
    spec.save(str(directory))
    return directory


@dataclass(frozen=True)
class BatchTiming:
    shape: str
    device: str
    compute_type: str
    window_seconds: float
    batch_size: int
    tokens: int
    encode_ms: float
    generate_ms: float
    align_ms: float
    batch_ms: float
    """Median of the repeats: encode + generate + align."""
    turns_per_second: float


def time_batches(
    name: str,
    model_dir: Path,
    device: str,
    compute_type: str,
    window_seconds: float,
    batch_sizes: list[int],
    tokens: int,
    repeats: int,
) -> list[BatchTiming]:
    import ctranslate2
    import numpy as np

    shape = SHAPES[name]
    model = ctranslate2.models.Whisper(
        str(model_dir), device=device, compute_type=compute_type, intra_threads=0
    )
    vocabulary = whisper_vocabulary(shape)
    end_of_text = vocabulary.index("<|endoftext|>")
    prompt = [vocabulary.index("<|startoftranscript|>"), vocabulary.index("<|transcribe|>")]
    frames = int(window_seconds * FRAMES_PER_SECOND)
    rng = np.random.default_rng(0)
    generate = functools.partial(
        model.generate, beam_size=1, suppress_blank=False, suppress_tokens=[end_of_text]
    )
    max_length = _max_length_for(generate, shape, frames, prompt, tokens)
    rows = []
    for batch_size in batch_sizes:
        mel = rng.standard_normal((batch_size, shape.num_mel_bins, frames), dtype=np.float32)
        features = ctranslate2.StorageView.from_array(mel)
        parts: list[tuple[float, float, float]] = []
        try:
            for attempt in range(repeats + 1):  # the first is a warm-up
                # On a GPU, encode may return before its kernels finish, moving time from
                # encode to generate; the batch's total, which the simulation uses, holds.
                started = time.perf_counter()
                encoded = model.encode(features, to_cpu=False)
                encoded_at = time.perf_counter()
                results = generate(encoded, [prompt] * batch_size, max_length=max_length)
                generated_at = time.perf_counter()
                text = [[t for t in r.sequences_ids[0] if t < end_of_text] or [0] for r in results]
                model.align(encoded, prompt, text, [frames] * batch_size)
                aligned_at = time.perf_counter()
                generated = {len(r.sequences_ids[0]) for r in results}
                if generated != {tokens}:
                    raise ValueError(f"generate made {generated} tokens, not {tokens}")
                if attempt:
                    parts.append(
                        (encoded_at - started, generated_at - encoded_at, aligned_at - generated_at)
                    )
        except RuntimeError as error:  # CTranslate2's out of memory: larger batches would be too
            print(f"  {name} {window_seconds:g} s x{batch_size}: failed ({error}); stopping here")
            break
        encode_ms, generate_ms, align_ms = (
            statistics.median(p) * 1000 for p in zip(*parts, strict=True)
        )
        batch_ms = statistics.median(sum(p) * 1000 for p in parts)
        rows.append(
            BatchTiming(
                name,
                device,
                compute_type,
                window_seconds,
                batch_size,
                tokens,
                round(encode_ms, 2),
                round(generate_ms, 2),
                round(align_ms, 2),
                round(batch_ms, 2),
                round(batch_size / batch_ms * 1000, 1),
            )
        )
        print(f"  {name} {window_seconds:g} s x{batch_size}: {batch_ms:.1f} ms", flush=True)
    return rows


def _max_length_for(generate, shape: WhisperShape, frames: int, prompt, tokens: int) -> int:
    """The `max_length` that makes `generate` return exactly `tokens` tokens, found by
    trying: CTranslate2 returned half of max_length here (OpenAI's Whisper, too, samples
    at most half its text context). Checked on the real tiny.en on CPU: 12 tokens forced
    this way took 86 ms, a turn's own 11 tokens and end of text 106 ms (best of 5)."""
    import ctranslate2
    import numpy as np

    mel = np.random.default_rng(1).standard_normal((1, shape.num_mel_bins, frames))
    features = ctranslate2.StorageView.from_array(mel.astype(np.float32))
    length = len(prompt) + tokens
    for _ in range(4):
        made = len(generate(features, [prompt], max_length=length)[0].sequences_ids[0])
        if made == tokens:
            return length
        length = max(length + 1, round(length * tokens / max(made, 1)))
    raise ValueError(f"no max_length gives {tokens} tokens (last: {made} at {length})")


def simulate_p95_ms(
    batch_ms: dict[int, float],
    channels: int,
    turns_per_channel_minute: float,
    seconds: float = 600.0,
    seed: int = 0,
) -> float:
    """p95 of turn cut -> transcript for one batching worker fed by `channels` channels.

    Arrivals are Poisson at the channels' summed rate; a free worker takes all waiting
    turns (at most the largest timed batch) and finishes them together after the timed
    (linearly interpolated) batch time. Returns inf when the queue keeps growing.
    """
    sizes = sorted(batch_ms)
    largest = sizes[-1]

    def service_seconds(n: int) -> float:
        if n in batch_ms or n < sizes[0]:  # below the smallest timed: as long as it
            return batch_ms[max(n, sizes[0])] / 1000
        above = next(s for s in sizes if s > n)
        below = max(s for s in sizes if s < n)
        share = (n - below) / (above - below)
        return (batch_ms[below] + share * (batch_ms[above] - batch_ms[below])) / 1000

    rate = channels * turns_per_channel_minute / 60
    rng = random.Random(seed)
    arrivals, t = [], 0.0
    while t < seconds:
        t += rng.expovariate(rate)
        arrivals.append(t)
    waits, free_at, next_turn = [], 0.0, 0
    while next_turn < len(arrivals):
        start = max(free_at, arrivals[next_turn])
        batch = [a for a in arrivals[next_turn : next_turn + largest] if a <= start]
        free_at = start + service_seconds(len(batch))
        waits += [free_at - a for a in batch]
        next_turn += len(batch)
    if free_at - arrivals[-1] > seconds / 10:  # the queue grew all through the run
        return math.inf
    waits.sort()
    return waits[int(0.95 * (len(waits) - 1))] * 1000


def channel_capacity(
    batch_ms: dict[int, float], turns_per_channel_minute: float, p95_ms: float
) -> tuple[int, list[tuple[int, float]]]:
    """The most channels within `p95_ms` (doubling, then bisecting), and the points tried."""
    tried: dict[int, float] = {}

    def within(n: int) -> bool:
        tried[n] = simulate_p95_ms(batch_ms, n, turns_per_channel_minute)
        return tried[n] <= p95_ms

    if not within(1):
        return 0, sorted(tried.items())
    low, high = 1, 2
    while within(high):
        low, high = high, high * 2
    while high - low > max(1, low // 50):  # to 2 %
        middle = (low + high) // 2
        low, high = (middle, high) if within(middle) else (low, middle)
    return low, sorted(tried.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default="tiny.en,large-v3-turbo")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--compute-type", help="default: float16 on cuda, int8 on cpu")
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--window-seconds", default="10", help="comma list, e.g. 10,30")
    parser.add_argument("--tokens", type=int, default=TOKENS_PER_TURN, help="per turn")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--p95-ms", default="100,300", help="comma list of targets")
    parser.add_argument(
        "--turns-per-channel-minute", type=float, default=round(TURNS_PER_CHANNEL_MINUTE, 2)
    )
    parser.add_argument("--out", type=Path, help="default: loadtests/results/<timestamp>")
    args = parser.parse_args(argv)
    args.out = args.out or Path(__file__).resolve().parent / "results" / time.strftime(
        "%Y%m%d-%H%M%S"
    )
    compute_type = args.compute_type or ("float16" if args.device == "cuda" else "int8")
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    windows = [float(w) for w in args.window_seconds.split(",")]
    targets = [float(t) for t in args.p95_ms.split(",")]

    timings: list[BatchTiming] = []
    capacity_rows = []
    for name in args.shapes.split(","):
        with tempfile.TemporaryDirectory() as scratch:
            built = time.perf_counter()
            model_dir = build_random_model(SHAPES[name], Path(scratch), compute_type)
            print(f"{name}: random weights built in {time.perf_counter() - built:.0f} s")
            for window in windows:
                rows = time_batches(
                    name,
                    model_dir,
                    args.device,
                    compute_type,
                    window,
                    batch_sizes,
                    args.tokens,
                    args.repeats,
                )
                if not rows:
                    continue
                timings += rows
                batch_ms = {r.batch_size: r.batch_ms for r in rows}
                for target in targets:
                    most, tried = channel_capacity(batch_ms, args.turns_per_channel_minute, target)
                    at_most = [p for n, p in tried if n == most]
                    capacity_rows.append(
                        {
                            "shape": name,
                            "window_seconds": window,
                            "largest_batch": max(batch_ms),
                            "peak_turns_per_second": max(r.turns_per_second for r in rows),
                            "turns_per_channel_minute": args.turns_per_channel_minute,
                            "p95_target_ms": target,
                            "channels_within_target": most,
                            "p95_ms_at_capacity": round(at_most[0], 1) if at_most else "",
                        }
                    )
        if timings:  # after each shape: a lent GPU's time is short, a later shape may fail
            print(f"\nBatched decoding ({args.device}, {compute_type}; median of {args.repeats})")
            report([asdict(t) for t in timings], args.out, "decode-capacity")
            print("\nLive channels per worker within a turn cut -> transcript p95")
            report(capacity_rows, args.out, "channel-capacity")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
