"""`confide audit` (cluster/assessment/): a deliberately weak deployment fails exactly the
controls it should, a strict one fails none, with real listeners probed (a real mTLS
gateway on a free port, a real TLS 1.2 gRPC call) and without a Ray cluster."""

from __future__ import annotations

import asyncio
import json
from concurrent import futures

import grpc

from cluster.assessment import CONTROLS, Status, observe, probes, score
from serve.boundary import PayloadBoundary
from serve.server import start_server
from serve.telemetry import GatewayTelemetry
from tests.unit.test_call_service import HASHER, Transcriber

WEAK = {
    "gateway": {"min_tls_version": "1.2", "common_name_identity": True},
    "keys": {"provider": "local"},
    "ray": {"tls": "off", "include_dashboard": True, "node_ip_address": "10.0.0.5"},
    "telemetry": {"traces": "console"},
    "records": {"purge_interval_seconds": 30 * 86400},
    "redaction": {"enabled": False},
}
WEAK_FAILS = {
    "transmission.tls_version",  # TLS 1.2 served
    "access.roles",  # any CN spelled like a tenant becomes it
    "storage.kms",  # KEKs in a file on a multi-node deployment
    "hosting.ray_ports",  # Ray without TLS, reachable from other nodes
    "hosting.dashboard",
    "logging.telemetry_allowlist",  # spans printed into logs
    "retention.purge_loop",  # a purge a month: text outlives its window
    "training.redacted_only",
}
STRICT = {"gateway": {"min_tls_version": "1.3"}, "records": {"enabled": False}}


def _assess(config, test_pki, codec):
    """Start a real gateway with `config`, observe it as `confide audit` does, score."""

    async def scenario():
        boundary = PayloadBoundary(codec, transcriber=Transcriber(codec))
        # The listener is what is probed; redaction (checked from the config) needs a
        # spaCy model to start, so the served copy runs without it.
        served = config.with_overrides(redaction={"enabled": False})
        running = await start_server(
            served, test_pki.server, boundary, GatewayTelemetry.disabled(HASHER)
        )
        try:
            target = f"127.0.0.1:{running.port}"
            client = test_pki.clients["acme"]
            return await asyncio.to_thread(observe, config, target, client)
        finally:
            await running.stop(0)

    return score(asyncio.run(scenario()))


def test_a_weak_deployment_fails_exactly_the_controls_it_should(config, test_pki, codec):
    report = _assess(config.with_overrides(**WEAK), test_pki, codec)
    assert set(report.failed()) == WEAK_FAILS, report.as_text()
    findings = {f.control: f for f in report.findings}
    assert "TLS 1.2 was served" in findings["transmission.tls_version"].evidence
    assert findings["transmission.tls_version"].fix == "gateway.min_tls_version: '1.3'"
    assert all(findings[c].fix for c in WEAK_FAILS)  # each fail says how to fix it


def test_a_strict_deployment_fails_none_and_shows_what_it_measured(config, test_pki, codec):
    report = _assess(config.with_overrides(**STRICT), test_pki, codec)
    assert report.failed() == [], report.as_text()
    findings = {f.control: f for f in report.findings}
    assert findings["transmission.mtls_required"].status is Status.PASS
    assert "refused" in findings["transmission.mtls_required"].evidence
    assert "refused (UNAUTHENTICATED)" in findings["transmission.tls_version"].evidence
    assert "refused" in findings["transmission.client_certificate"].evidence
    assert "refused" in findings["transmission.no_plaintext"].evidence
    assert findings["access.audit_log"].status is Status.NOT_APPLICABLE  # records off
    assert report.score == 100


def test_the_json_names_each_controls_requirements_and_disclaims_certification(
    config, test_pki, codec
):
    report = json.loads(_assess(config.with_overrides(**STRICT), test_pki, codec).as_json())
    assert {c["id"] for c in report["controls"]} == {c.id for c in CONTROLS}
    assert all(c["requirements"] for c in report["controls"])
    assert "not a certification" in report["note"]
    required = {r for c in report["controls"] for r in c["requirements"]}
    for requirement in ("HIPAA 164.312(a)(1)", "HIPAA 164.312(b)", "HIPAA 164.312(c)(1)",
                        "HIPAA 164.312(e)(1)", "PCI DSS 3.3.1", "PCI DSS 3.5",
                        "PCI DSS 4.2.1", "PCI DSS 7.2", "PCI DSS 10.2", "SOC 2 CC6.1",
                        "SOC 2 CC6.7", "SOC 2 CC7.2"):  # fmt: skip
        assert requirement in required


def test_without_a_gateway_the_probes_say_so_instead_of_passing(config):
    seen = observe(config.with_overrides(**STRICT), target=None, client=None)
    report = score(seen)
    findings = {f.control: f for f in report.findings}
    assert findings["transmission.mtls_required"].status is Status.NOT_APPLICABLE
    assert seen.without_client_certificate is probes.NOT_PROBED


def test_the_ray_probe_tells_a_plaintext_grpc_server_from_a_tls_one(test_pki):
    """The probe Ray's GCS gets, against real gRPC servers with and without TLS."""
    plaintext = grpc.server(futures.ThreadPoolExecutor(1))
    plain_port = plaintext.add_insecure_port("127.0.0.1:0")
    secured = grpc.server(futures.ThreadPoolExecutor(1))
    tls = test_pki.server
    credentials = grpc.ssl_server_credentials([(tls.key.read_bytes(), tls.cert.read_bytes())])
    tls_port = secured.add_secure_port("127.0.0.1:0", credentials)
    plaintext.start()
    secured.start()
    try:
        assert probes.grpc_plaintext_accepted(f"127.0.0.1:{plain_port}").accepted is True
        assert probes.grpc_plaintext_accepted(f"127.0.0.1:{tls_port}").accepted is False
    finally:
        plaintext.stop(0)
        secured.stop(0)
