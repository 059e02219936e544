from pathlib import Path

import pytest

from cluster.wavfile import Recording, read_wav

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def two_channel_call() -> Recording:
    return read_wav(EXAMPLES / "two_channel_mulaw_8k.wav")


@pytest.fixture(scope="session")
def mono_recording() -> Recording:
    return read_wav(EXAMPLES / "mono_linear16_16k.wav")
