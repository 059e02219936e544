"""WAV files as call recordings: 16-bit PCM, G.711 A-law (format 6) and mu-law (format 7).

Python's `wave` module reads PCM only; telephony recordings are usually G.711.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from serve.core.audio import Encoding

_FORMAT_TAGS = {1: Encoding.LINEAR16, 6: Encoding.ALAW, 7: Encoding.MULAW}
_TAG_OF = {encoding: tag for tag, encoding in _FORMAT_TAGS.items()}


class WavError(ValueError):
    """The file is not a WAV recording Confide can stream."""


@dataclass(frozen=True)
class Recording:
    encoding: Encoding
    sample_rate: int
    channels: int
    data: bytes
    """Interleaved samples in `encoding`."""

    @property
    def frame_bytes(self) -> int:
        return self.encoding.sample_width * self.channels

    @property
    def seconds(self) -> float:
        return len(self.data) / self.frame_bytes / self.sample_rate


def read_wav(path: Path) -> Recording:
    blob = Path(path).read_bytes()
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise WavError(f"{path}: not a RIFF/WAVE file")
    fmt = None
    offset = 12
    while offset + 8 <= len(blob):
        chunk_id, size = struct.unpack_from("<4sI", blob, offset)
        body = blob[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise WavError(f"{path}: short fmt chunk")
            fmt = struct.unpack_from("<HHIIHH", body)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavError(f"{path}: data before fmt chunk")
            tag, channels, rate, _, _, bits = fmt
            if tag not in _FORMAT_TAGS:
                raise WavError(f"{path}: unsupported WAV format tag {tag}")
            encoding = _FORMAT_TAGS[tag]
            if bits != 8 * encoding.sample_width:
                raise WavError(f"{path}: {bits}-bit {encoding.value} is not supported")
            return Recording(encoding, rate, channels, body)
        offset += 8 + size + (size & 1)
    raise WavError(f"{path}: no data chunk")


def write_wav(path: Path, recording: Recording) -> None:
    width = recording.encoding.sample_width
    fmt = struct.pack(
        "<HHIIHH",
        _TAG_OF[recording.encoding],
        recording.channels,
        recording.sample_rate,
        recording.sample_rate * recording.frame_bytes,
        recording.frame_bytes,
        8 * width,
    )
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(recording.data)) + recording.data
    if len(recording.data) & 1:
        body += b"\0"
    Path(path).write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
