"""What telemetry may carry: an explicit allowlist, applied when data leaves a process.

Spans, metric labels and log lines are filtered the way Vault's audit devices treat
requests: a fixed set of plaintext keys, identifiers that could be personal (call ids
chosen by clients, tenant names) replaced by keyed HMACs (`hmac-sha256:<hex>`), and
everything else dropped. Nothing is matched against a blocklist of "sensitive" words:
an attribute, label or log argument that nobody allowlisted never leaves.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from serve.core.config import ENTITY_TYPES
from serve.core.signed_tokens import SignedTokens

REDACTED = "[redacted]"
HMAC_PREFIX = "hmac-sha256:"


class IdentifierHasher:
    """Keyed HMAC-SHA256 of identifiers; the key comes from the KMS layer
    (serve/telemetry.py), so the same id hashes alike across processes and restarts and
    an operator holding the key can look one up (`confide telemetry hash`)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the telemetry HMAC key must be at least 32 bytes")
        self._key = key

    def __call__(self, value: str) -> str:
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()
        return HMAC_PREFIX + digest

    def signed_tokens(self, purpose: str) -> SignedTokens:
        """Tokens signed under a key derived from this one for `purpose`: every process
        holding the telemetry key (every gateway replica) can read them back."""
        return SignedTokens(self._key, purpose)


# -- attribute rules ------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """How one allowlisted attribute may appear: a number, a flag, one of a fixed set of
    strings, a string matching a strict pattern, or an identifier that is HMAC'd."""

    kind: str  # "number" | "flag" | "enum" | "pattern" | "hmac"
    values: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None


NUMBER = Rule("number")
FLAG = Rule("flag")
HMAC = Rule("hmac")


def enum(values: Iterable[str]) -> Rule:
    return Rule("enum", values=frozenset(values))


def pattern(regex: str) -> Rule:
    return Rule("pattern", pattern=re.compile(regex))


_CALL_SERVICE = "confide.v1.CallService"
_HEALTH_SERVICE = "grpc.health.v1.Health"
RPC_METHODS = {
    _CALL_SERVICE: ("StreamCall", "Transcribe", "Converse"),
    "confide.v1.RecordsService": (
        "ListCalls",
        "GetCallStats",
        "GetCall",
        "DeleteCall",
        "SetLegalHold",
        "ExportTrainingData",
        "GetAuditLog",
    ),
    _HEALTH_SERVICE: ("Check", "Watch"),
    "grpc.reflection.v1alpha.ServerReflection": ("ServerReflectionInfo",),
    "grpc.reflection.v1.ServerReflection": ("ServerReflectionInfo",),
}
STATUS_NAMES = frozenset(code.name for code in grpc.StatusCode)

SPAN_ATTRIBUTES: dict[str, Rule] = {
    # OpenTelemetry RPC conventions, as opentelemetry-instrumentation-grpc sets them.
    # It also sets rpc.user_agent and net.peer.*, which are left off on purpose.
    "rpc.system": enum({"grpc"}),
    "rpc.service": enum(RPC_METHODS),
    "rpc.method": enum(m for methods in RPC_METHODS.values() for m in methods),
    "rpc.grpc.status_code": NUMBER,
    # Confide's own spans.
    "confide.tenant": HMAC,
    "confide.call_id": HMAC,
    "confide.status": enum(STATUS_NAMES),
    "confide.error_id": pattern(r"^[0-9a-f]{16}$"),
    "confide.encoding": enum({"LINEAR16", "MULAW", "ALAW"}),
    "confide.sample_rate_hz": NUMBER,
    "confide.channels": NUMBER,
    "confide.channel": NUMBER,
    "confide.role": enum({"customer", "agent", "unspecified"}),
    "confide.turn_index": NUMBER,
    "confide.turns": NUMBER,
    "confide.segment": NUMBER,
    "confide.final_segments": NUMBER,
    "confide.audio_seconds": NUMBER,
    "confide.speech_seconds": NUMBER,
    "confide.vad_cpu_ms": NUMBER,
    "confide.audio_lag_ms": NUMBER,
    "confide.audio_bytes": NUMBER,
    "confide.sealed_bytes": NUMBER,
    "confide.decode_ms": NUMBER,
    "confide.rtf": NUMBER,
    "confide.words": NUMBER,
    "confide.text_chars": NUMBER,
    "confide.prompt_turns": NUMBER,
    "confide.deltas": NUMBER,
    "confide.first_delta_ms": NUMBER,
    "confide.interrupted": FLAG,
    "confide.interim": FLAG,
    "confide.redacted_entities": NUMBER,
    "confide.redaction_failures": NUMBER,
    "confide.held": FLAG,
    "confide.paused_seconds": NUMBER,
    "confide.dtmf_events": NUMBER,
    "confide.model": pattern(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"),
}

RESOURCE_ATTRIBUTES = frozenset(
    {
        "service.name",
        "service.namespace",
        "service.version",
        "service.instance.id",
        "telemetry.sdk.language",
        "telemetry.sdk.name",
        "telemetry.sdk.version",
    }
)

# Span names are fixed strings in Confide's code, plus the gRPC method paths the
# instrumentation uses. Anything else (a library's span named after its input) is renamed.
SPAN_NAMES = frozenset(
    {
        "confide.call",
        "confide.records",
        "confide.vad",
        "confide.final",
        "confide.transcribe",
        "confide.transcriber.decode",
        "confide.redact",
        "confide.record",
        "confide.reply",
        "confide.dialogue.generate",
    }
    | {f"/{service}/{m}" for service, methods in RPC_METHODS.items() for m in methods}
)
UNLISTED_SPAN_NAME = "unlisted"


def allowed_value(rule: Rule, value: object, hasher: IdentifierHasher | None) -> object | None:
    """The value as it may be exported under `rule`, or None to drop it (fail closed)."""
    if rule.kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return value if ok else None
    if rule.kind == "flag":
        return value if isinstance(value, bool) else None
    if not isinstance(value, str):
        return None
    if rule.kind == "enum":
        return value if value in rule.values else None
    if rule.kind == "pattern":
        assert rule.pattern is not None
        return value if rule.pattern.fullmatch(value) else None
    if rule.kind == "hmac":
        if hasher is None:
            raise ValueError("an identifier needs the telemetry HMAC key")
        return hasher(value)
    return None


def filter_attributes(
    attributes: dict[str, object] | None,
    rules: dict[str, Rule],
    hasher: IdentifierHasher,
) -> dict[str, object]:
    kept: dict[str, object] = {}
    for key, value in (attributes or {}).items():
        rule = rules.get(key)
        if rule is None:
            continue
        allowed = allowed_value(rule, value, hasher)
        if allowed is not None:
            kept[key] = allowed
    return kept


# -- metric labels --------------------------------------------------------------------

METRIC_LABELS: dict[str, Rule] = {
    "tenant": HMAC,
    "role": enum({"customer", "agent", "unspecified"}),
    "reason": enum({name.lower() for name in STATUS_NAMES}),
    "stage": enum({"transcription", "dialogue", "records"}),
    "outcome": enum({"stored", "spooled", "refused"}),
    "model": SPAN_ATTRIBUTES["confide.model"],
    "operation": enum({"seal", "open"}),
    "error": pattern(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"),
    "entity": enum(set(ENTITY_TYPES)),
}


def metric_labels(labels: dict[str, str], hasher: IdentifierHasher | None = None) -> dict[str, str]:
    """Labels as they may be exported; an unlisted key is a programming error, and a
    value outside its rule becomes "other" so the series still counts."""
    exported = {}
    for key, value in labels.items():
        rule = METRIC_LABELS.get(key)
        if rule is None:
            raise KeyError(f"metric label {key!r} is not on the allowlist")
        allowed = allowed_value(rule, value, hasher)
        exported[key] = "other" if allowed is None else str(allowed)
    return exported


# -- logs -----------------------------------------------------------------------------


class Plain(str):
    """A log argument that is allowlisted plaintext: an error id, a status code name, an
    exception type name. Any other string argument is redacted."""

    __slots__ = ()


def plain_type(exc: BaseException) -> Plain:
    return Plain(type(exc).__name__)


class RedactingFilter(logging.Filter):
    """On Confide's loggers: format strings are literals in our code (ruff's G rules
    reject f-strings and concatenation in log calls); arguments pass only when they are
    numbers or Plain, exception text and tracebacks never pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not isinstance(record.msg, str):
            record.msg, record.args = REDACTED, ()
        elif record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_allowed_argument(arg) for arg in args)
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.msg} [{record.exc_info[0].__name__}]"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _allowed_argument(arg: object) -> object:
    if isinstance(arg, Plain | bool | int | float) or arg is None:
        return arg
    return REDACTED


_REDACTING_FILTER = RedactingFilter()


def confide_logger(name: str) -> logging.Logger:
    """A logger under "confide." with the redacting filter attached (filters on a
    parent logger do not see a child's records, so each logger gets its own)."""
    if not name.startswith("confide."):
        raise ValueError("Confide's loggers are named confide.<component>")
    logger = logging.getLogger(name)
    if _REDACTING_FILTER not in logger.filters:
        logger.addFilter(_REDACTING_FILTER)
    return logger
