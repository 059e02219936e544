"""Build the sample calls in examples/ reproducibly from real recorded speech.

Sources (Debian packages, installed by `make setup`):
- asterisk-core-sounds-en-wav: IVR/agent prompts, CC-BY-SA 3.0 (Digium, Allison Smith);
  transcripts from asterisk-core-sounds-en's core-sounds-en.txt.gz.
- pocketsphinx-testdata: LibriVox "Sense and Sensibility" excerpts, public domain.

    python examples/make_samples.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from loadtests.corpus import ASTERISK, LIBRIVOX, asterisk_texts, librivox_texts
from serve.core.audio import Encoding, decode_pcm16, downsample_2x, encode
from serve.core.wavfile import Recording, read_wav, write_wav

HERE = Path(__file__).resolve().parent
RATE = 8000

AGENT_PROMPTS = ["pls-hold-while-try", "agent-pass", "queue-youarenext"]
# 0880 and 0890 are left out: tiny.en mishears "ill disposed" in both, even at 16 kHz.
CUSTOMER_CLIPS = [
    "sense_and_sensibility_01_austen_64kb-0870",
    "sense_and_sensibility_01_austen_64kb-0920",
    "sense_and_sensibility_01_austen_64kb-0930",
]
GAP_SECONDS = 0.8


def _pcm(path: Path) -> np.ndarray:
    """A mono recording as int16 at 8 kHz (2:1 decimation with a low-pass for 16 kHz)."""
    rec = read_wav(path)
    pcm = decode_pcm16(rec.data, rec.encoding).astype(np.float32)
    if rec.sample_rate == 16000:
        pcm = downsample_2x(pcm)
    elif rec.sample_rate != RATE:
        raise ValueError(f"{path}: unexpected rate {rec.sample_rate}")
    return np.clip(pcm, -32768, 32767).astype(np.int16)


Turn = tuple[int, np.ndarray, str, int]
"""(channel, 8 kHz PCM, reference text, samples of silence after it)."""


def _lay_out(turns: list[Turn]) -> tuple[np.ndarray, dict[str, list[dict]]]:
    """The turns one after another on two channels, after a leading gap, each followed
    by its silence; and the reference transcript per role with start times."""
    gap = int(GAP_SECONDS * RATE)
    stereo = np.zeros((gap + sum(len(pcm) + after for _, pcm, _, after in turns), 2), np.int16)
    reference: dict[str, list[dict]] = {"customer": [], "agent": []}
    position = gap
    for channel, pcm, text, after in turns:
        stereo[position : position + len(pcm), channel] = pcm
        role = "customer" if channel == 0 else "agent"
        reference[role].append({"start_seconds": round(position / RATE, 3), "text": text})
        position += len(pcm) + after
    return stereo, reference


def _write_call(name: str, stereo: np.ndarray, meta: dict) -> None:
    """examples/<name>.wav (two-channel G.711 mu-law) and its description <name>.json."""
    write_wav(
        HERE / f"{name}.wav",
        Recording(Encoding.MULAW, RATE, 2, encode(stereo.reshape(-1), Encoding.MULAW)),
    )
    (HERE / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")


def build_two_channel_call() -> None:
    agent_texts, customer_texts = asterisk_texts(), librivox_texts()
    gap = int(GAP_SECONDS * RATE)
    turns: list[Turn] = []
    for prompt, clip in zip(AGENT_PROMPTS, CUSTOMER_CLIPS, strict=True):
        turns.append((1, _pcm(ASTERISK / f"{prompt}.wav"), agent_texts[prompt], gap))
        turns.append((0, _pcm(LIBRIVOX / f"{clip}.wav"), customer_texts[clip], gap))
    stereo, reference = _lay_out(turns)
    meta = {
        "description": "Two-channel 8 kHz G.711 mu-law call: channel 0 customer, channel 1 agent.",
        "channels": ["customer", "agent"],
        "sources": {
            "agent": "asterisk-core-sounds-en-wav (CC-BY-SA 3.0): " + ", ".join(AGENT_PROMPTS),
            "customer": "pocketsphinx-testdata LibriVox (public domain): "
            + ", ".join(CUSTOMER_CLIPS),
        },
        "reference": reference,
    }
    _write_call("two_channel_mulaw_8k", stereo, meta)


CARD_NUMBER = "4539148803436467"
"""A test Visa number (Luhn-valid, issued to nobody)."""


def _trimmed(pcm: np.ndarray, margin: float = 0.03) -> np.ndarray:
    """A clip without its leading and trailing silence (the digit prompts carry some)."""
    loud = np.flatnonzero(np.abs(pcm.astype(np.int32)) > 300)
    pad = int(margin * RATE)
    return pcm[max(loud[0] - pad, 0) : loud[-1] + pad] if len(loud) else pcm


def _spoken_digits(digits: str) -> np.ndarray:
    gap = np.zeros(int(0.08 * RATE), np.int16)
    parts = []
    for digit in digits:
        parts += [_trimmed(_pcm(ASTERISK / "digits" / f"{digit}.wav")), gap]
    return np.concatenate(parts)


def build_card_call() -> None:
    """A customer reads a card number in two groups, with a pause between them long
    enough for the VAD to cut two turns: redaction must still find the whole number."""
    silence = lambda seconds: np.zeros(int(seconds * RATE), np.int16)  # noqa: E731
    agent = _pcm(ASTERISK / "vm-enter-num-to-call.wav")
    lead = _trimmed(_pcm(ASTERISK / "vm-num-i-have.wav"))
    first = np.concatenate([lead, silence(0.2), _spoken_digits(CARD_NUMBER[:8])])
    second = _spoken_digits(CARD_NUMBER[8:])
    gap = int(GAP_SECONDS * RATE)
    pause = int(1.5 * RATE)  # between the two groups: two turns
    stereo, _ = _lay_out([(1, agent, "", gap), (0, first, "", pause), (0, second, "", gap)])
    meta = {
        "description": "Two-channel 8 kHz G.711 mu-law call in which the customer reads a"
        " test card number in two turns; channel 0 customer, channel 1 agent.",
        "channels": ["customer", "agent"],
        "sources": {
            "agent": "asterisk-core-sounds-en-wav (CC-BY-SA 3.0): vm-enter-num-to-call",
            "customer": "asterisk-core-sounds-en-wav (CC-BY-SA 3.0): vm-num-i-have, digits/*",
        },
        "card_number": CARD_NUMBER,
    }
    _write_call("card_call_mulaw_8k", stereo, meta)


CLINIC_CUSTOMER_TURNS = [
    (["hello"], "hello"),
    (["digits/tomorrow", "digits/day-2", "digits/at", "digits/10", "digits/a-m"],
     "tomorrow tuesday at 10 a m"),
    (["digits/4", "digits/1", "digits/7", "digits/2"], "4 1 7 2"),
    (["auth-thankyou", "goodbye"], "thank you goodbye"),
]  # fmt: skip
# References write numbers as digits, as Whisper does (scoring compares words as written).
CLINIC_REPLY_SECONDS = 6.0
"""Silence after each customer turn: room for the in-cluster agent's spoken reply."""


def _words(names: list[str]) -> np.ndarray:
    """Recorded words said as one phrase: trimmed, 0.15 s apart (less than the VAD's
    end-of-turn silence, so the phrase stays one turn)."""
    gap = np.zeros(int(0.15 * RATE), np.int16)
    parts = []
    for name in names:
        parts += [_trimmed(_pcm(ASTERISK / f"{name}.wav")), gap]
    return np.concatenate(parts[:-1])


def build_clinic_call() -> None:
    """The demo's call to a clinic's appointment line: the caller asks for a slot, gives a
    patient number and says goodbye, with room after each turn for the in-cluster
    agent's reply (the demo tenant's system prompt is the receptionist's); the agent
    channel's recorded goodbye ends the call. (No recorded greeting first: SmolLM2-135M
    answers a greeting in the history by echoing the caller.)"""
    gap = int(GAP_SECONDS * RATE)
    reply = int(CLINIC_REPLY_SECONDS * RATE)
    turns: list[Turn] = [(0, _words(names), text, reply) for names, text in CLINIC_CUSTOMER_TURNS]
    turns.append((1, _trimmed(_pcm(ASTERISK / "goodbye.wav")), "Goodbye!", gap))
    stereo, reference = _lay_out(turns)
    words = sorted({n for names, _ in CLINIC_CUSTOMER_TURNS for n in names})
    meta = {
        "description": "Two-channel 8 kHz G.711 mu-law call to a clinic's appointment line"
        " (the demo's call); channel 0 customer, channel 1 agent.",
        "channels": ["customer", "agent"],
        "sources": {
            "agent": "asterisk-core-sounds-en-wav (CC-BY-SA 3.0): goodbye",
            "customer": "asterisk-core-sounds-en-wav (CC-BY-SA 3.0): " + ", ".join(words),
        },
        "reference": reference,
    }
    _write_call("clinic_call_mulaw_8k", stereo, meta)


def build_mono_call() -> None:
    clip = "sense_and_sensibility_01_austen_64kb-0880"
    rec = read_wav(LIBRIVOX / f"{clip}.wav")
    name = "mono_linear16_16k"
    write_wav(HERE / f"{name}.wav", rec)
    meta = {
        "description": "One-channel 16 kHz 16-bit PCM recording (LibriVox, public domain).",
        "channels": ["customer"],
        "sources": {"customer": f"pocketsphinx-testdata: {clip}"},
        "reference": {"customer": [{"start_seconds": 0.0, "text": librivox_texts()[clip]}]},
    }
    (HERE / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")


if __name__ == "__main__":
    build_two_channel_call()
    build_mono_call()
    build_card_call()
    build_clinic_call()
    for path in sorted(HERE.glob("*.wav")):
        print(path.name, f"{read_wav(path).seconds:.1f} s")
