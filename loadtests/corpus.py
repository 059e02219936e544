"""Recorded speech with reference transcripts, from Debian packages (`make samples`
installs them): Asterisk's IVR prompts (8 kHz, CC-BY-SA 3.0; texts in
asterisk-core-sounds-en's core-sounds-en.txt.gz) and pocketsphinx-testdata's LibriVox
excerpts (16 kHz, public domain). examples/make_samples.py builds the sample calls from
them; loadtests/batching.py measures WER on them."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from serve.core.scoring import word_error_rate

ASTERISK = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXT = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


def asterisk_texts() -> dict[str, str]:
    """Prompt name (a path under ASTERISK without .wav) -> what it says."""
    texts = {}
    with gzip.open(ASTERISK_TEXT, "rt", encoding="utf-8") as lines:
        for line in lines:
            name, sep, text = line.partition(": ")
            if sep and not line.startswith(";"):
                texts[name.strip()] = text.strip()
    return texts


def librivox_texts() -> dict[str, str]:
    """Clip name (a file under LIBRIVOX without .wav) -> what it says."""
    texts = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        match = re.match(r"<s> (.*) </s> \((.*)\)", line.strip())
        if match:
            texts[match.group(2)] = match.group(1)
    return texts


def recorded_prompts(limit: int) -> list[tuple[Path, str]]:
    """Every LibriVox clip, then Asterisk prompts in name order, up to `limit`
    recordings: (wav path, reference). Prompts without a recording are left out."""
    found = [(LIBRIVOX / f"{name}.wav", text) for name, text in sorted(librivox_texts().items())]
    for name, text in sorted(asterisk_texts().items()):
        path = ASTERISK / f"{name}.wav"
        if path.is_file() and re.search(r"[a-z]", text.lower()):
            found.append((path, text))
    return [(p, t) for p, t in found if p.is_file()][:limit]


def call_references(recording: Path, roles: list[str]) -> dict[int, str]:
    """A sample call's reference text per channel, from the recording's .json (empty
    when it has none)."""
    meta = recording.with_suffix(".json")
    if not meta.is_file():
        return {}
    reference = json.loads(meta.read_text()).get("reference") or {}
    return {
        channel: " ".join(part["text"] for part in reference[role])
        for channel, role in enumerate(roles)
        if role in reference
    }


def call_wer(references: dict[int, str], heard: dict[int, list[str]]) -> float:
    """Word error rate in percent over all referenced channels, weighted by words."""
    errors = words = 0.0
    for channel, reference in references.items():
        count = len(reference.split())
        errors += word_error_rate(reference, " ".join(heard.get(channel, []))) * count
        words += count
    return 100 * errors / words
