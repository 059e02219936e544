"""Call audio in: G.711 mu-law/A-law and 16-bit PCM, interleaved channels, 8 or 16 kHz.

Everything leaves here as float32 mono per channel at 16 kHz, the rate Whisper and the
Silero VAD expect, so 8 kHz telephony audio needs no resampling on the client.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

MODEL_RATE = 16_000
SUPPORTED_RATES = (8_000, 16_000)


class Encoding(Enum):
    LINEAR16 = "linear16"
    MULAW = "mulaw"
    ALAW = "alaw"

    @property
    def sample_width(self) -> int:
        return 2 if self is Encoding.LINEAR16 else 1


def _mulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


MULAW_TO_PCM = _mulaw_table()
ALAW_TO_PCM = _alaw_table()


def encode_mulaw(pcm: np.ndarray) -> bytes:
    """16-bit PCM to G.711 mu-law (for clients, sample calls and tests)."""
    x = pcm.astype(np.int32) >> 2  # 14-bit, as G.711 defines it
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 8159) + 0x21
    segment = np.floor(np.log2(magnitude >> 5)).astype(np.int32)
    code = np.where(segment > 7, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8).tobytes()


def encode_alaw(pcm: np.ndarray) -> bytes:
    """16-bit PCM to G.711 A-law (for clients, sample calls and tests)."""
    x = pcm.astype(np.int32)
    sign = np.where(x >= 0, 0x80, 0)
    magnitude = np.minimum(np.where(x >= 0, x, -x - 1), 32767) >> 3
    exponent = np.where(
        magnitude < 32, 0, np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int32) - 4
    )
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> np.maximum(exponent, 0)) & 0x0F
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes()


def encode(pcm: np.ndarray, encoding: Encoding) -> bytes:
    if encoding is Encoding.MULAW:
        return encode_mulaw(pcm)
    if encoding is Encoding.ALAW:
        return encode_alaw(pcm)
    return pcm.astype("<i2").tobytes()


def decode_pcm16(data: bytes, encoding: Encoding) -> np.ndarray:
    """Bytes of whole samples to int16 PCM."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if encoding is Encoding.MULAW:
        return MULAW_TO_PCM[raw]
    if encoding is Encoding.ALAW:
        return ALAW_TO_PCM[raw]
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def float_to_pcm16(audio: np.ndarray) -> bytes:
    """float32 in [-1, 1] to 16-bit little-endian PCM bytes (clipped)."""
    return (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def _halfband_taps(num_taps: int = 63) -> np.ndarray:
    """Windowed-sinc low-pass at a quarter of the higher rate, unity DC gain."""
    n = np.arange(num_taps) - (num_taps - 1) / 2
    taps = np.sinc(n / 2) * np.kaiser(num_taps, 8.0)
    return (taps / taps.sum()).astype(np.float32)


def downsample_2x(samples: np.ndarray) -> np.ndarray:
    """16 kHz -> 8 kHz for a whole recording: low-pass, then keep every other sample."""
    return np.convolve(samples, _halfband_taps(), mode="same")[::2]


class Upsampler2x:
    """Streaming 8 kHz -> 16 kHz: zero-stuffing and a FIR whose history spans chunks."""

    def __init__(self) -> None:
        self._taps = 2 * _halfband_taps()  # zero-stuffing halves the level
        self._history = np.zeros(len(self._taps) - 1, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        stuffed = np.zeros(2 * len(samples), dtype=np.float32)
        stuffed[::2] = samples
        buffer = np.concatenate([self._history, stuffed])
        self._history = buffer[len(buffer) - len(self._history) :]
        return np.convolve(buffer, self._taps, mode="valid").astype(np.float32)


class StreamDecoder:
    """Decodes a call's interleaved byte stream into per-channel float32 at 16 kHz.

    Chunks need not end on a frame boundary: a partial frame waits for the next chunk.
    """

    def __init__(self, encoding: Encoding, sample_rate: int, channels: int) -> None:
        if sample_rate not in SUPPORTED_RATES:
            raise ValueError(f"unsupported sample rate {sample_rate}")
        self.encoding = encoding
        self.sample_rate = sample_rate
        self.channels = channels
        self._frame_bytes = encoding.sample_width * channels
        self._pending = b""
        self._upsamplers = [Upsampler2x() for _ in range(channels)] if sample_rate == 8000 else []
        self.frames_decoded = 0

    @property
    def seconds_decoded(self) -> float:
        return self.frames_decoded / self.sample_rate

    def decode(self, data: bytes) -> list[np.ndarray]:
        data = self._pending + data
        whole = len(data) - len(data) % self._frame_bytes
        self._pending = data[whole:]
        pcm = decode_pcm16(data[:whole], self.encoding).reshape(-1, self.channels)
        self.frames_decoded += len(pcm)
        out = []
        for index in range(self.channels):
            channel = pcm[:, index].astype(np.float32) / 32768.0
            if self._upsamplers:
                channel = self._upsamplers[index].process(channel)
            out.append(channel)
        return out
