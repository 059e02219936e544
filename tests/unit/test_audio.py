import warnings

import numpy as np
import pytest

from serve.core.audio import (
    ALAW_TO_PCM,
    MULAW_TO_PCM,
    Encoding,
    StreamDecoder,
    Upsampler2x,
    decode_pcm16,
    encode,
    encode_alaw,
    encode_mulaw,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    # CPython's own G.711 codec, an independent reference: in the standard library up
    # to 3.12, from the audioop-lts package (a dev dependency) on 3.13 and later.
    import audioop

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)


def test_g711_decode_tables_match_cpython():
    every_byte = bytes(range(256))
    assert np.array_equal(MULAW_TO_PCM, np.frombuffer(audioop.ulaw2lin(every_byte, 2), "<i2"))
    assert np.array_equal(ALAW_TO_PCM, np.frombuffer(audioop.alaw2lin(every_byte, 2), "<i2"))


def test_g711_encoders_match_cpython_for_every_sample():
    assert encode_mulaw(ALL_PCM) == audioop.lin2ulaw(ALL_PCM.tobytes(), 2)
    assert encode_alaw(ALL_PCM) == audioop.lin2alaw(ALL_PCM.tobytes(), 2)


@pytest.mark.parametrize("encoding", list(Encoding))
def test_round_trip_error_is_within_quantisation(encoding):
    tone = (8000 * np.sin(np.linspace(0, 200 * np.pi, 8000))).astype(np.int16)
    decoded = decode_pcm16(encode(tone, encoding), encoding).astype(np.int32)
    error = np.abs(decoded - tone)
    assert error.max() <= (0 if encoding is Encoding.LINEAR16 else 256)


def test_upsampler_passes_speech_band_and_rejects_images():
    rate = 8000
    t = np.arange(rate) / rate
    for freq, expect_gain in ((1000, 1.0), (3000, 1.0)):
        up = Upsampler2x().process(np.sin(2 * np.pi * freq * t).astype(np.float32))
        steady = up[200:-200]
        assert np.sqrt(2) * steady.std() == pytest.approx(expect_gain, abs=0.05)
        spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
        freqs = np.fft.rfftfreq(len(steady), 1 / 16000)
        image = spectrum[np.argmin(np.abs(freqs - (8000 - freq)))]
        assert image < spectrum.max() * 1e-3  # the 8 kHz mirror is > 60 dB down


def test_stream_decoder_splits_channels_and_keeps_partial_frames():
    left = np.full(160, 1000, dtype=np.int16)
    right = np.full(160, -2000, dtype=np.int16)
    interleaved = np.stack([left, right], axis=1).reshape(-1).tobytes()
    decoder = StreamDecoder(Encoding.LINEAR16, 16000, 2)
    first = decoder.decode(interleaved[:101])  # 25 frames and one odd byte
    second = decoder.decode(interleaved[101:])
    out_left = np.concatenate([first[0], second[0]])
    out_right = np.concatenate([first[1], second[1]])
    assert len(out_left) == len(out_right) == 160
    assert np.allclose(out_left, 1000 / 32768) and np.allclose(out_right, -2000 / 32768)
    assert decoder.seconds_decoded == pytest.approx(0.01)


def test_8khz_input_comes_out_at_16khz():
    decoder = StreamDecoder(Encoding.MULAW, 8000, 1)
    (channel,) = decoder.decode(bytes(800))
    assert len(channel) == 1600


def test_unsupported_rate_is_refused():
    with pytest.raises(ValueError, match="sample rate"):
        StreamDecoder(Encoding.MULAW, 44100, 1)


@pytest.mark.parametrize("chunk", [333, 1001])
def test_chunks_that_end_inside_a_frame_keep_the_channels_apart(two_channel_call, chunk):
    """A two-channel mu-law stream sent in chunks that split frames decodes exactly as
    the whole stream does, also across a PCI pause whose skipped bytes split frames."""
    from confide.v1 import call_pb2 as pb
    from serve.call_setup import parse_setup
    from serve.core.audio import StreamDecoder
    from serve.core.config import ConfideConfig
    from serve.pipeline import CallAudio

    data = two_channel_call.data[:64_000]
    whole = StreamDecoder(two_channel_call.encoding, two_channel_call.sample_rate, 2).decode(data)
    split = StreamDecoder(two_channel_call.encoding, two_channel_call.sample_rate, 2)
    parts = [split.decode(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    for channel in range(2):
        assert np.array_equal(np.concatenate([p[channel] for p in parts]), whole[channel])

    # The same call as 16-bit PCM (4 bytes a frame): an odd chunk splits a sample too.
    pcm = decode_pcm16(data, Encoding.MULAW).tobytes()
    audio_format = pb.AudioFormat(
        encoding=pb.AUDIO_ENCODING_LINEAR16,
        sample_rate_hertz=8000,
        channels=[pb.ChannelConfig(role=1), pb.ChannelConfig(role=2)],
    )
    call = CallAudio(parse_setup("c", audio_format, False), ConfideConfig())
    call.feed(pcm[:chunk])
    call.drain()  # as a pause does
    call.skip(pcm[chunk : 2 * chunk])  # unheard, and not a whole number of frames
    call.feed(pcm[2 * chunk : 4 * chunk])
    # Every byte counts, skipped, held or decoded: the whole frames sent.
    assert call.seconds_received == pytest.approx((4 * chunk // 4) / 8000)


def test_held_chunks_give_the_same_turns_at_the_same_chunks(two_channel_call):
    """The call's bytes wait until they complete the VAD's next run: every final comes
    at the same chunk, with the same audio, as when each 20 ms chunk is decoded at once;
    and bytes still held when the call ends are decoded before its open turn closes."""
    from confide.v1 import call_pb2 as pb
    from serve.call_setup import CallSetup
    from serve.core.config import ConfideConfig
    from serve.pipeline import CallAudio

    roles = (pb.SPEAKER_ROLE_CUSTOMER, pb.SPEAKER_ROLE_AGENT)
    rate = two_channel_call.sample_rate
    setup = CallSetup("c", two_channel_call.encoding, rate, roles, "en", False)
    step = two_channel_call.frame_bytes * rate * 20 // 1000
    # Cut at 13.01 s, inside the customer's second turn: it is open when the bytes end,
    # and the last chunk (10 ms) is too short for the VAD's next run, so it is held.
    data = two_channel_call.data[: int(13.01 * rate) * two_channel_call.frame_bytes]

    def run(hold: bool):
        call, finals, events = CallAudio(setup, ConfideConfig()), [], []
        for offset in range(0, len(data), step):
            steps = call.feed(data[offset : offset + step])
            if not hold:
                steps += call.drain()
            finals += [(offset, ch.index, f.turn) for ch, s in steps for f in s.finals]
            events += [(offset, ch.index, s.speech_started, s.blip) for ch, s in steps]
        assert call.seconds_received == pytest.approx(13.01)
        assert not [s.finals for _, s in call.drain() if s.finals]
        open_turns = [(ch.index, ch.flush()) for ch in call.channels]
        started = [e for e in events if e[2] or e[3]]
        return finals, [(None, i, f.turn) for i, f in open_turns if f is not None], started

    held, held_open, held_started = run(hold=True)
    each, each_open, each_started = run(hold=False)
    assert len(held) >= 2 and len(held_started) >= 3
    assert held_started == each_started  # speech heard at the same chunks
    for (o1, c1, t1), (o2, c2, t2) in zip(held + held_open, each + each_open, strict=True):
        assert (o1, c1, t1.start_sample) == (o2, c2, t2.start_sample)
        assert np.array_equal(t1.audio, t2.audio)
    assert held_open  # the open turn reaches the call's last byte either way
