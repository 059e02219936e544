"""Confide's Prometheus metrics, exported through Ray's metrics endpoint next to Ray
Serve's own (Prometheus prefixes them with `ray_`).

Every label passes `serve.core.allowlist.metric_labels` on the way out: label keys are
declared here and nowhere else, tenants leave as keyed HMACs, and a value outside its
rule is counted as "other". Outside a Ray worker the recordings go nowhere.
"""

from __future__ import annotations

from collections.abc import Callable

from ray.util import metrics

from serve.core.allowlist import IdentifierHasher, metric_labels

LATENCY_BUCKETS_SECONDS = [0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]
RTF_BUCKETS = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0]


class GatewayMetrics:
    def __init__(self, hasher: IdentifierHasher) -> None:
        self._hasher = hasher
        self._active_calls = metrics.Gauge(
            "confide_active_calls", description="Calls in progress on this gateway replica."
        )
        self._calls = metrics.Counter(
            "confide_calls",
            description="Calls and RPCs that ended, by tenant and final status.",
            tag_keys=("tenant", "reason"),
        )
        self._refused = metrics.Counter(
            "confide_refused_calls",
            description="Calls refused before any audio was accepted, by status.",
            tag_keys=("reason",),
        )
        self._turns = metrics.Counter(
            "confide_turns",
            description="Turns cut by the VAD and sent for transcription.",
            tag_keys=("tenant", "role"),
        )
        self._final_latency = metrics.Histogram(
            "confide_turn_final_latency_seconds",
            description="From the end of a turn (VAD) to its final transcript being sent.",
            boundaries=LATENCY_BUCKETS_SECONDS,
            tag_keys=("tenant",),
        )
        self._queue_depth = metrics.Gauge(
            "confide_queue_depth",
            description="Requests this gateway has in flight to a model deployment.",
            tag_keys=("stage",),
        )
        self._redacted = metrics.Counter(
            "confide_redacted_entities",
            description="Entities redacted from finals, by tenant and type (counts only).",
            tag_keys=("tenant", "entity"),
        )
        self._redaction_failures = metrics.Counter(
            "confide_redaction_failures",
            description="Hypotheses delivered fully masked because redaction failed.",
            tag_keys=("tenant",),
        )
        self._turns_resent = metrics.Counter(
            "confide_turns_resent",
            description="Final turns sent again because their transcriber replica died.",
        )
        self._in_flight = {"transcription": 0, "dialogue": 0, "records": 0}

    def _tags(self, **labels: str) -> dict[str, str]:
        return metric_labels(labels, self._hasher)

    def active_calls(self, count: int) -> None:
        self._active_calls.set(count)

    def call_ended(self, tenant: str, status: str) -> None:
        self._calls.inc(tags=self._tags(tenant=tenant, reason=status.lower()))

    def refused(self, status: str) -> None:
        self._refused.inc(tags=self._tags(reason=status.lower()))

    def turn(self, tenant: str, role: str) -> None:
        self._turns.inc(tags=self._tags(tenant=tenant, role=role))

    def turn_resent(self) -> None:
        self._turns_resent.inc()

    def final_latency(self, tenant: str, seconds: float) -> None:
        self._final_latency.observe(seconds, tags=self._tags(tenant=tenant))

    def redacted(self, tenant: str, counts: dict[str, int], failures: int) -> None:
        for entity, count in counts.items():
            self._redacted.inc(count, tags=self._tags(tenant=tenant, entity=entity))
        if failures:
            self._redaction_failures.inc(failures, tags=self._tags(tenant=tenant))

    def request_started(self, stage: str) -> None:
        self._in_flight[stage] += 1
        self._queue_depth.set(self._in_flight[stage], tags=self._tags(stage=stage))

    def request_ended(self, stage: str) -> None:
        self._in_flight[stage] -= 1
        self._queue_depth.set(self._in_flight[stage], tags=self._tags(stage=stage))


class TranscriberMetrics:
    def __init__(self, hasher: IdentifierHasher, model: str) -> None:
        self._tags = metric_labels({"model": model}, hasher)
        self._rtf = metrics.Histogram(
            "confide_real_time_factor",
            description="Decode seconds per second of turn audio.",
            boundaries=RTF_BUCKETS,
            tag_keys=("model",),
        )

    def decoded(self, audio_seconds: float, decode_seconds: float) -> None:
        if audio_seconds > 0:
            self._rtf.observe(decode_seconds / audio_seconds, tags=self._tags)


def sealing_failure_counter() -> Callable[[str, str], None]:
    """Sealing and opening failures by operation and error type (fail closed)."""
    counter = metrics.Counter(
        "confide_sealing_failures",
        description="Payloads that could not be sealed or opened (fail closed).",
        tag_keys=("operation", "error"),
    )
    return lambda operation, error: counter.inc(
        tags=metric_labels({"operation": operation, "error": error})
    )
