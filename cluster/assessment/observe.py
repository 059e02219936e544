"""What the assessment reads from the running deployment: its listeners (probed), Ray
and Serve (through the cluster `confide up` recorded, or the one this process runs),
the purge loop's last pass, the audit log's verification, and this machine."""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cluster.assessment import probes
from cluster.assessment.probes import NOT_PROBED, Probe
from serve.core.config import ConfideConfig, TlsFiles

SERVE_PROXY_PORTS = (8000, 9000)
"""Serve's default HTTP and gRPC proxy ports."""
DASHBOARD_PORT = 8265
NO_RAY = Probe(None, "no Ray cluster reached")


@dataclass
class Observed:
    config: ConfideConfig
    gateway: str | None = None
    """host:port probed, or None when no gateway was found."""
    without_client_certificate: Probe = NOT_PROBED
    foreign_certificate: Probe = NOT_PROBED
    tls12: Probe = NOT_PROBED
    plaintext: Probe = NOT_PROBED
    serve_proxy_ports_open: list[int] = field(default_factory=list)
    ray_gcs: str | None = None
    ray_plaintext: Probe = NO_RAY
    dashboard_open: bool = False
    purge: dict | None = None
    """The purge loop's last pass (serve/records/purge_loop.py), None if not reached."""
    checkpoint: dict | None = None
    audit: object | None = None
    """serve.audit Verification, or the reason it could not run (str)."""
    holds: int | None = None
    """Calls on legal hold in the records store, None if it could not be read."""
    sample_hmac: str | None = None
    """What telemetry writes for the call id "audit-probe", None without a key."""
    public_addresses: list[str] = field(default_factory=list)
    spill: str = ""


def observe(config: ConfideConfig, target: str | None, client: TlsFiles | None) -> Observed:
    """Everything the controls need. `target` is the gateway (host:port); `client` a CA
    and client certificate to probe with (default: the development PKI's)."""
    seen = Observed(config)
    client = client or _dev_client(config)
    if target is not None and client is not None:
        _probe_gateway(seen, target, client)
    seen.serve_proxy_ports_open = [p for p in SERVE_PROXY_PORTS if probes.tcp_open("127.0.0.1", p)]
    seen.dashboard_open = probes.tcp_open("127.0.0.1", DASHBOARD_PORT)
    seen.public_addresses = _public_addresses()
    seen.spill = probes.spill_volume(_spill_directory(config))
    _read_cluster(seen)
    seen.audit = _verify_audit_log(config)
    seen.holds = _legal_holds(config)
    seen.sample_hmac = _sample_hmac(config)
    return seen


def _probe_gateway(seen: Observed, target: str, client: TlsFiles) -> None:
    host, _, port = target.rpartition(":")
    seen.gateway = target
    seen.without_client_certificate = probes.without_client_certificate(target, client.ca)
    seen.foreign_certificate = probes.with_foreign_certificate(target, client.ca)
    seen.tls12 = probes.tls12_call(host, int(port), client.ca, client.cert, client.key)
    seen.plaintext = probes.plaintext(target)


def _read_cluster(seen: Observed) -> None:
    """Ray's GCS address and the purge loop's state, when a cluster answers."""
    import ray

    if not ray.is_initialized():
        return
    from ray import serve

    from serve.app import APP_NAME

    seen.ray_gcs = ray.get_runtime_context().gcs_address
    seen.ray_plaintext = probes.grpc_plaintext_accepted(seen.ray_gcs)
    if seen.config.records.enabled:
        with contextlib.suppress(Exception):  # no purge loop deployed: reported as such
            purge = serve.get_deployment_handle("PurgeLoop", app_name=APP_NAME)
            seen.purge = purge.last_run.remote().result(timeout_s=10)
            seen.checkpoint = purge.last_checkpoint.remote().result(timeout_s=10)


def _verify_audit_log(config: ConfideConfig) -> object | None:
    if not config.records.enabled:
        return None
    from serve.audit import AuditUnavailable, open_audit_log
    from serve.core.database import DatabaseUnavailable

    try:
        return open_audit_log(config).verify()
    except (AuditUnavailable, DatabaseUnavailable) as error:
        return f"the audit log could not be read ({type(error).__name__})"


def _legal_holds(config: ConfideConfig) -> int | None:
    if not config.records.enabled:
        return None
    from serve.records.store import open_store

    try:
        store = open_store(config.records, config.state_path)
    except Exception:  # the store did not open: the control says so
        return None
    try:
        return sum(row.legal_hold for row in store.calls())
    except Exception:
        return None
    finally:
        store.close()


def _sample_hmac(config: ConfideConfig) -> str | None:
    """The telemetry key exists once a Confide process started; not created here."""
    if not (config.state_path / "keys" / "telemetry-hmac.sealed").exists():
        return None
    from serve.core.allowlist import IdentifierHasher
    from serve.core.telemetry_key import telemetry_key

    return IdentifierHasher(telemetry_key(config.keys, config.state_path))("audit-probe")


def _dev_client(config: ConfideConfig) -> TlsFiles | None:
    from cluster.pki import DevPki

    pki = DevPki(config.state_path / "pki")
    tenant = config.tenants[0].name
    files = TlsFiles(cert=pki.client_cert(tenant), key=pki.client_key(tenant), ca=pki.ca_cert)
    return files if all(p.exists() for p in (files.cert, files.key, files.ca)) else None


def _public_addresses() -> list[str]:
    """This machine's globally routable addresses (a gateway on 0.0.0.0 listens there)."""
    import psutil

    found = []
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(address.address.split("%")[0]).is_global:
                    found.append(address.address)
    return found


def _spill_directory(config: ConfideConfig) -> Path:
    if config.ray.object_spilling_directory:
        return Path(config.ray.object_spilling_directory)
    return Path("/tmp/ray")  # Ray's default session directory holds its spill files
