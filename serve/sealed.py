"""Sealing at the deployment-handle boundary: plaintext payloads in, Sealed out, and back.

The gateway seals turn audio and prompts; the transcriber and dialogue replicas open
them, and seal what they return (transcripts, reply deltas), which only the gateway
opens. Ray's object store and its spill files therefore only ever hold ciphertext.
Reply deltas are a few bytes and always travel inline, but they are sealed too, so
there is one rule and no measurement to trust.

Blobs are bound to the call's keyed HMAC, never to the client's call id: the binding is
also the AWS KMS encryption context, which CloudTrail keeps (often for years, in an
Object Lock bucket that no purge reaches). Records bind to the same HMAC.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from serve.core.allowlist import IdentifierHasher
from serve.core.config import KeysConfig
from serve.core.data_keys import data_key_cache
from serve.core.envelope import Binding, EnvelopeError, MalformedBlob
from serve.core.keys import key_provider
from serve.core.sealing import Sealer
from serve.core.telemetry_key import telemetry_key
from serve.messages import (
    DialogueRequest,
    ReplyRequest,
    Sealed,
    TurnAudio,
    TurnRequest,
    TurnTranscript,
    Word,
)

TURN_AUDIO = "turn-audio"
TRANSCRIPT = "transcript"
PROMPT = "prompt"
REPLY = "reply"


class PayloadCodec:
    def __init__(
        self,
        sealer: Sealer | None,
        call_key: Callable[[str], str],
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        """`call_key` turns a call id into what blobs are bound to (its keyed HMAC)."""
        self._sealer = sealer
        self._call_key = call_key
        self._on_failure = on_failure or (lambda operation, error: None)

    @classmethod
    def build(
        cls,
        keys: KeysConfig,
        state_dir: Path,
        on_failure: Callable[[str, str], None] | None = None,
        call_key: Callable[[str], str] | None = None,
    ) -> PayloadCodec:
        """`call_key` defaults to the telemetry HMAC; a process that already holds it
        (its Tracing's hasher) passes it, so the key is not opened through the KMS twice."""
        call_key = call_key or IdentifierHasher(telemetry_key(keys, state_dir))
        if not keys.sealing:
            return cls(None, call_key, on_failure)
        sealer = Sealer(key_provider(keys, state_dir), data_keys=data_key_cache(keys))
        return cls(sealer, call_key, on_failure)

    # -- bytes --------------------------------------------------------------------------

    def seal(self, data: bytes, tenant: str, call_id: str, purpose: str) -> Sealed:
        if self._sealer is None:
            return Sealed(tenant, call_id, purpose, data, sealed=False)
        try:
            blob = self._sealer.seal(data, self._binding(tenant, call_id, purpose))
        except EnvelopeError as exc:
            self._on_failure("seal", type(exc).__name__)
            raise
        return Sealed(tenant, call_id, purpose, blob)

    def open(self, payload: Sealed, purpose: str) -> bytes:
        try:
            return self._open(payload, purpose)
        except EnvelopeError as exc:
            self._on_failure("open", type(exc).__name__)
            raise

    def _open(self, payload: Sealed, purpose: str) -> bytes:
        if payload.purpose != purpose:
            raise MalformedBlob(f"expected a {purpose} payload, got {payload.purpose}")
        if self._sealer is None:
            if payload.sealed:
                raise MalformedBlob("a sealed payload reached a deployment with sealing off")
            return payload.blob
        if not payload.sealed:  # fail closed: never accept plaintext when sealing is on
            raise MalformedBlob("refusing an unsealed payload: sealing is on")
        binding = self._binding(payload.tenant, payload.call_id, purpose)
        return self._sealer.open(payload.blob, binding)

    def _binding(self, tenant: str, call_id: str, purpose: str) -> Binding:
        return Binding(tenant, self._call_key(call_id), purpose)

    # -- typed payloads -----------------------------------------------------------------

    def seal_turn(
        self, turn: TurnAudio, trace_context: dict[str, str] | None = None
    ) -> TurnRequest:
        audio = self.seal(turn.pcm16, turn.tenant, turn.call_id, TURN_AUDIO)
        return TurnRequest(audio, turn.language, turn.word_timestamps, trace_context or {})

    def open_turn(self, request: TurnRequest) -> TurnAudio:
        pcm16 = self.open(request.audio, TURN_AUDIO)
        return TurnAudio(
            pcm16,
            request.language,
            request.word_timestamps,
            request.audio.tenant,
            request.audio.call_id,
        )

    def seal_transcript(self, transcript: TurnTranscript, tenant: str, call_id: str) -> Sealed:
        return self.seal(json.dumps(asdict(transcript)).encode(), tenant, call_id, TRANSCRIPT)

    def open_transcript(self, payload: Sealed) -> TurnTranscript:
        data = json.loads(self.open(payload, TRANSCRIPT))
        words = tuple(Word(**word) for word in data.pop("words"))
        return TurnTranscript(words=words, **data)

    def seal_prompt(
        self, request: DialogueRequest, trace_context: dict[str, str] | None = None
    ) -> ReplyRequest:
        content = {"system_prompt": request.system_prompt, "turns": request.turns}
        prompt = self.seal(json.dumps(content).encode(), request.tenant, request.call_id, PROMPT)
        return ReplyRequest(prompt, request.request_id, request.max_tokens, trace_context or {})

    def open_prompt(self, request: ReplyRequest) -> DialogueRequest:
        content = json.loads(self.open(request.prompt, PROMPT))
        return DialogueRequest(
            request_id=request.request_id,
            system_prompt=content["system_prompt"],
            turns=tuple((role, text) for role, text in content["turns"]),
            max_tokens=request.max_tokens,
            tenant=request.prompt.tenant,
            call_id=request.prompt.call_id,
        )

    def seal_reply(self, delta: str, tenant: str, call_id: str) -> Sealed:
        return self.seal(delta.encode(), tenant, call_id, REPLY)

    def open_reply(self, payload: Sealed) -> str:
        return self.open(payload, REPLY).decode()
