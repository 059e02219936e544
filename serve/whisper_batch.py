"""Batched decoding across calls: several turns, one CTranslate2 encode and generate.

faster-whisper batches the chunks of *one* recording (BatchedInferencePipeline; measured
here: with tiny.en it drops whole sentences, it decodes without timestamps over VAD
chunks), and cross-request batching is an open request there. A transcriber replica
holds turns from many calls at once, each at most one 30 s window (gateway.max_turn_seconds
<= 30), so it can do what WhisperModel.transcribe does for one window, for all of them in
one batch: pad each turn's features to the window, encode them stacked, generate with
timestamps, split the tokens into segments and align words, turn by turn.

The first pass is greedy or beam search at temperature 0, as transcribe's first try. A
final that transcribe would not accept from that try (too repetitive, too improbable, or
its last segment unfinished so transcribe would decode the rest of the window again)
comes back as None, and the engine decodes it alone with WhisperModel.transcribe: the
result is then the same as without batching, only the common case is batched. An
interim is never handed back: it is taken from the first pass (empty when repetitive).
On the sample calls' 49 interims, 3 were handed back (all unsure, cut mid-word) and
their second decoding cost a fifth of all the interims' decoding time.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from serve.messages import TurnAudio, TurnTranscript, Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

# WhisperModel.transcribe's defaults, which the unbatched path uses.
COMPRESSION_RATIO_THRESHOLD = 2.4
LOG_PROB_THRESHOLD = -1.0
NO_SPEECH_THRESHOLD = 0.6
MAX_INITIAL_TIMESTAMP = 1.0
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
MARGIN_FRAMES = 100
"""A short window still ends with at least this much silence (1 s at 100 frames/s)."""
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"


class BatchDecoder:
    """One batched first pass over several turns of any calls."""

    def __init__(self, model: WhisperModel, beam_size: int, window_seconds: float = 30.0) -> None:
        self._model = model
        self._window_seconds = window_seconds
        self._beam_size = beam_size
        self._tokenizers: dict[str, object] = {}

    def decode(self, turns: Sequence[TurnAudio]) -> list[TurnTranscript | None]:
        """Transcripts in the order of `turns`; None for a turn to decode on its own
        (among them any longer than one window, e.g. a whole recording to Transcribe)."""
        results: list[TurnTranscript | None] = [None] * len(turns)
        window = self._model.feature_extractor.n_samples
        fit = [i for i, t in enumerate(turns) if len(t.pcm16) // 2 <= window]
        if fit:
            batch = [turns[i] for i in fit]
            for i, result in zip(fit, self._decode_window_each(batch), strict=True):
                results[i] = result
        return results

    def _decode_window_each(self, turns: Sequence[TurnAudio]) -> list[TurnTranscript | None]:
        from faster_whisper.audio import pad_or_trim

        model = self._model
        audios = [np.frombuffer(t.pcm16, dtype="<i2").astype(np.float32) / 32768.0 for t in turns]
        features, frames = [], []
        for audio in audios:
            turn_features = model.feature_extractor(audio)
            content = min(turn_features.shape[-1] - 1, model.feature_extractor.nb_max_frames)
            frames.append(content)
            features.append(turn_features[:, :content])
        window = self._window_frames(max(frames))
        features = [pad_or_trim(f, window) for f in features]
        encoder_output = model.encode(np.stack(features))
        # One language per generate call keeps one prompt; call centres mostly have one.
        results: list[TurnTranscript | None] = [None] * len(turns)
        for language in dict.fromkeys(t.language for t in turns):
            indexes = [i for i, t in enumerate(turns) if t.language == language]
            self._decode_language(language, indexes, turns, audios, frames, encoder_output, results)
        return results

    def _decode_language(
        self, language, indexes, turns, audios, frames, encoder_output, results
    ) -> None:
        from faster_whisper.transcribe import get_compression_ratio

        model = self._model
        tokenizer = self._tokenizer(language)
        host = functools.cache(lambda: _host(encoder_output))  # at most one copy a batch
        subset = (
            encoder_output
            if len(indexes) == len(turns)
            else _rows(host(), indexes, encoder_output.device)
        )
        prompt = model.get_prompt(tokenizer, [], without_timestamps=False)
        generated = model.model.generate(
            subset,
            [prompt] * len(indexes),
            beam_size=self._beam_size,
            patience=1,
            length_penalty=1,
            max_length=model.max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppressed(tokenizer),
            max_initial_timestamp_index=round(MAX_INITIAL_TIMESTAMP / model.time_precision),
        )
        for i, result in zip(indexes, generated, strict=True):
            tokens = result.sequences_ids[0]
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            seconds = len(audios[i]) / 16000
            silent = (
                result.no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD
            )
            if silent:
                results[i] = TurnTranscript("", audio_seconds=seconds)
                continue
            text = tokenizer.decode(tokens).strip()
            # The gateway asks word timings for finals only: without them, an interim.
            interim = not turns[i].word_timestamps
            if get_compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD:
                if interim:  # a repetition loop: no interim this time, the next one follows
                    results[i] = TurnTranscript("", audio_seconds=seconds)
                continue  # transcribe would retry at a higher temperature
            if avg_logprob < LOG_PROB_THRESHOLD and not interim:
                # transcribe would retry at a higher temperature. An interim is taken as
                # it is: cut mid-word, it is often unsure, and retrying costs up to five
                # full-window decodes for a preview that the next one replaces.
                continue
            segments, _, finished = model._split_segments_by_timestamps(
                tokenizer=tokenizer,
                tokens=tokens,
                time_offset=0.0,
                segment_size=frames[i],
                segment_duration=frames[i] * model.feature_extractor.time_per_frame,
                seek=0,
            )
            if not finished and _last_timestamp(tokens, tokenizer) < frames[i] - 1:
                if interim:  # the growing turn's text so far, the unfinished words too
                    results[i] = TurnTranscript(text, audio_seconds=seconds)
                continue  # transcribe would decode the rest of the window again
            segments = [
                s
                for s in segments
                if s["start"] != s["end"] and tokenizer.decode(s["tokens"]).strip()
            ]
            words: tuple[Word, ...] = ()
            if turns[i].word_timestamps and segments:
                own = _rows(host(), [i], encoder_output.device)
                words = self._words(tokenizer, segments, own, frames[i])
            results[i] = TurnTranscript(
                text=" ".join(tokenizer.decode(s["tokens"]).strip() for s in segments),
                words=words,
                audio_seconds=seconds,
            )

    def _words(self, tokenizer, segments, own, frames: int) -> tuple[Word, ...]:
        """Word timings as transcribe computes them for one window. Aligned turn by turn:
        add_word_timestamps carries the previous window's last speech time into the next,
        which across independent turns would be wrong. `own` is this turn's encoder
        output alone."""
        self._model.add_word_timestamps(
            [segments], tokenizer, own, frames, PREPEND_PUNCTUATIONS, APPEND_PUNCTUATIONS, 0.0
        )
        return tuple(
            Word(
                w["word"].strip(),
                round(w["start"], 3),
                round(w["end"], 3),
                round(w["probability"], 3),
            )
            for s in segments
            for w in s["words"]
        )

    def _window_frames(self, longest: int) -> int:
        """The batch's window: its longest turn and MARGIN_FRAMES of silence after it
        (Whisper ends a transcript on a timestamp it sees room for), rounded up to the
        step, at most the full 30 s."""
        full = self._model.feature_extractor.nb_max_frames
        if self._window_seconds >= 30:
            return full
        step = int(self._window_seconds * 100)
        return min(full, -(-(longest + MARGIN_FRAMES) // step) * step)

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        if language not in self._tokenizers:
            multilingual = self._model.model.is_multilingual
            self._tokenizers[language] = Tokenizer(
                self._model.hf_tokenizer,
                multilingual,
                task="transcribe",
                language=language if multilingual else "en",
            )
        return self._tokenizers[language]

    @staticmethod
    def _suppressed(tokenizer) -> list[int]:
        from faster_whisper.transcribe import get_suppressed_tokens

        return get_suppressed_tokens(tokenizer, [-1])


def _host(storage) -> np.ndarray:
    """A CTranslate2 StorageView as a host array (copied from the GPU when there)."""
    import ctranslate2

    if storage.device == "cuda":
        return np.array(storage.to_device(ctranslate2.Device.cpu))
    return np.array(storage)


def _rows(host: np.ndarray, indexes: Sequence[int], device: str):
    """Some rows of a host array, as a StorageView on `device`."""
    import ctranslate2

    rows = ctranslate2.StorageView.from_array(np.ascontiguousarray(host[list(indexes)]))
    return rows.to_device(ctranslate2.Device.cuda) if device == "cuda" else rows


def _last_timestamp(tokens: Sequence[int], tokenizer) -> int:
    """The last timestamp token's position in frames (0 when there is none)."""
    stamps = [t for t in tokens if t >= tokenizer.timestamp_begin]
    return (stamps[-1] - tokenizer.timestamp_begin) * 2 if stamps else 0
