"""The call API's enums in Confide's terms: one table for encodings, one for roles.

The gateway reads them from requests; Confide's client writes them. Both directions come
from these two tables.
"""

from __future__ import annotations

from confide.v1 import call_pb2 as pb
from serve.core.audio import Encoding

ENCODINGS: dict[int, Encoding] = {
    pb.AUDIO_ENCODING_LINEAR16: Encoding.LINEAR16,
    pb.AUDIO_ENCODING_MULAW: Encoding.MULAW,
    pb.AUDIO_ENCODING_ALAW: Encoding.ALAW,
}
PROTO_ENCODINGS: dict[Encoding, int] = {encoding: value for value, encoding in ENCODINGS.items()}

ROLE_NAMES: dict[int, str] = {
    pb.SPEAKER_ROLE_CUSTOMER: "customer",
    pb.SPEAKER_ROLE_AGENT: "agent",
    pb.SPEAKER_ROLE_UNSPECIFIED: "unspecified",
}
SPEAKER_ROLES: dict[str, int] = {
    name: role for role, name in ROLE_NAMES.items() if role != pb.SPEAKER_ROLE_UNSPECIFIED
}
"""The roles a speaker can be named with: a channel's, or a Converse turn's."""


def role_name(role: int) -> str:
    return ROLE_NAMES.get(role, "unspecified")
