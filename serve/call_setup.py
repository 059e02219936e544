"""A call's setup as the client asked for it, validated: the first thing a call does.

Messages name fields and never echo payloads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from confide.v1 import call_pb2 as pb
from serve.core.audio import SUPPORTED_RATES, Encoding
from serve.core.errors import InvalidArgument
from serve.wire import ENCODINGS

_CALL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_LANGUAGE = re.compile(r"^([a-z]{2,3})(-[A-Za-z0-9]{2,8})*$")


@dataclass(frozen=True)
class CallSetup:
    """A validated AudioFormat (and call id)."""

    call_id: str
    encoding: Encoding
    sample_rate: int
    roles: tuple[int, ...]
    language: str
    interim_results: bool
    agent_replies: bool = False


def parse_setup(
    call_id: str,
    audio: pb.AudioFormat,
    interim_results: bool,
    agent_replies: bool = False,
    english_only: bool = False,
) -> CallSetup:
    """The validated setup; `english_only` when the configured model is an English-only
    Whisper model (its name ends in ".en"), which would answer any language in English."""
    if not _CALL_ID.match(call_id):
        raise InvalidArgument("call_id must be 1-128 characters of [A-Za-z0-9._:-]")
    if audio.encoding not in ENCODINGS:
        raise InvalidArgument("unsupported encoding: use LINEAR16, MULAW or ALAW")
    if audio.sample_rate_hertz not in SUPPORTED_RATES:
        raise InvalidArgument("unsupported sample rate: use 8000 or 16000")
    if len(audio.channels) not in (1, 2):
        raise InvalidArgument("channels must list 1 or 2 channel configs")
    language = audio.language_code or "en"
    match = _LANGUAGE.match(language)
    if not match:
        raise InvalidArgument("language_code must be a BCP-47 tag such as en-US")
    if english_only and match.group(1) != "en":
        raise InvalidArgument("language_code: the configured model transcribes English only")
    return CallSetup(
        call_id=call_id,
        encoding=ENCODINGS[audio.encoding],
        sample_rate=audio.sample_rate_hertz,
        roles=tuple(channel.role for channel in audio.channels),
        language=match.group(1),
        interim_results=interim_results,
        agent_replies=agent_replies,
    )
