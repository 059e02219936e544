"""Dialogue engine benchmark: time to first reply token and decoding rate, per dtype.

    python -m loadtests.dialogue_speed [--dtypes bfloat16,float32] [--rounds 2] [--repeats 3]

Runs the dialogue engine as a replica does (serve/vllm_engine.py's VllmEngine on the
SmolLM2 model `confide models prepare` builds, prepared first if missing; the config's
defaults otherwise, greedy) in a child process per dtype,
the dtypes alternating round by round, so that both see the same machine. Each engine
answers conversations of three lengths: a call's first turn, a call some turns in, and
one that fills the context. Every request's conversation is new (a leading serial
number), so no answer comes from the prefix cache. Prints the medians and writes
dialogue-speed.csv (every request) under loadtests/results/<timestamp>/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from loadtests.report import report

RESULTS = Path(__file__).resolve().parent / "results"
TURN = (
    "I booked a check-up for Tuesday at nine and I need to know what to bring, "
    "and whether I can park at the clinic."
)
CONVERSATIONS = {"first turn": 1, "ten turns": 10, "full context": 60}
"""Name: how many customer/agent turns of TURN (60 is cut to the context, oldest first)."""


def measure(dtype: str, repeats: int, max_tokens: int) -> list[dict]:
    """In this process: one engine, every conversation `repeats` times, after a warm-up."""
    import os

    from cluster import models
    from serve.core.config import ConfideConfig, DialogueConfig
    from serve.messages import DialogueRequest
    from serve.vllm_engine import VllmEngine, vllm_environment

    base = ConfideConfig()
    config = DialogueConfig(dtype=dtype, temperature=0.0)
    models.prepare(base.dialogue_model_dir, progress=False)
    os.environ.update(vllm_environment(config, base.state_path))
    engine = VllmEngine(config, str(base.dialogue_model_dir))
    serial = iter(range(10**6))

    async def ask(turns: int) -> dict:
        roles = ("customer", "agent")
        request = DialogueRequest(
            request_id=f"bench-{next(serial)}",
            system_prompt=f"Call {next(serial)}. {config.system_prompt}",
            turns=tuple((roles[i % 2], TURN) for i in range(2 * turns - 1)),
            max_tokens=max_tokens,
        )
        start = time.perf_counter()
        first, text = None, ""
        async for delta in engine.stream(request):
            first = first or time.perf_counter() - start
            text += delta
        total = time.perf_counter() - start
        tokens = len(engine._tokenizer(text, add_special_tokens=False).input_ids)
        prompt_tokens = len(engine._tokenizer(engine.prompt(request)).input_ids)
        rate = (tokens - 1) / (total - first) if tokens > 1 else 0.0
        return {
            "prompt_tokens": prompt_tokens,
            "ttft_s": round(first, 3),
            "reply_tokens": tokens,
            "decode_tokens_per_s": round(rate, 1),
        }

    async def run() -> list[dict]:
        await ask(1)  # warm-up
        rows = []
        for _ in range(repeats):
            for name, turns in CONVERSATIONS.items():
                rows.append({"dtype": dtype, "conversation": name, **await ask(turns)})
        return rows

    try:
        return asyncio.run(run())
    finally:
        engine.shutdown()


def _child(dtype: str, repeats: int, max_tokens: int) -> list[dict]:
    command = [
        sys.executable,
        "-m",
        "loadtests.dialogue_speed",
        "--child",
        dtype,
        "--repeats",
        str(repeats),
        "--max-tokens",
        str(max_tokens),
    ]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the {dtype} engine failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(rows: list[dict]) -> list[dict]:
    summary = []
    for key in dict.fromkeys((r["dtype"], r["conversation"]) for r in rows):
        group = [r for r in rows if (r["dtype"], r["conversation"]) == key]
        summary.append(
            {
                "dtype": key[0],
                "conversation": key[1],
                "requests": len(group),
                "prompt_tokens": round(statistics.median(r["prompt_tokens"] for r in group)),
                "ttft_p50_s": round(statistics.median(r["ttft_s"] for r in group), 3),
                "decode_tok_per_s_p50": round(
                    statistics.median(r["decode_tokens_per_s"] for r in group), 1
                ),
            }
        )
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--rounds", type=int, default=2, help="engine starts per dtype")
    parser.add_argument("--repeats", type=int, default=3, help="requests per conversation")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.repeats, args.max_tokens)))
        return 0
    rows = []
    for round_ in range(args.rounds):
        for dtype in args.dtypes.split(","):
            print(f"round {round_ + 1}: {dtype}", flush=True)
            rows += [
                {"round": round_ + 1, **r} for r in _child(dtype, args.repeats, args.max_tokens)
            ]
    out = RESULTS / time.strftime("%Y%m%d-%H%M%S")
    report(rows, out, "dialogue-speed-requests")
    print()
    report(summarize(rows), out, "dialogue-speed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
