"""What the load commands share: a client certificate directory for Locust, the Locust
command line, and the worker processes of a deployment's replicas."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import psutil

from cluster.pki import DevPki
from serve.core.config import ConfideConfig, TlsFiles

HERE = Path(__file__).resolve().parent


def client_tls_dir(config: ConfideConfig) -> Path:
    """ca.pem, client.pem and client.key of the config's first tenant, from the dev PKI
    of an embedded cluster, in the directory the Locust user reads (--tls-dir)."""
    pki = DevPki(config.state_path / "pki")
    tenant = config.tenants[0].name
    tls_dir = config.state_path / "client"
    tls_dir.mkdir(exist_ok=True)
    shutil.copy(pki.ca_cert, tls_dir / "ca.pem")
    shutil.copy(pki.client_cert(tenant), tls_dir / "client.pem")
    shutil.copy(pki.client_key(tenant), tls_dir / "client.key")
    return tls_dir


def client_tls(tls_dir: Path) -> TlsFiles:
    return TlsFiles(cert=tls_dir / "client.pem", key=tls_dir / "client.key", ca=tls_dir / "ca.pem")


def locust_command(
    calls: int,
    seconds: int,
    target: str,
    tls_dir: Path,
    recording: Path,
    csv_prefix: Path,
    stop_timeout: int,
    *options: str,
) -> list[str]:
    """Locust, headless, running `calls` ContactCenterCall users for `seconds`."""
    return [
        sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"),
        "--headless", "--only-summary", "-u", str(calls), "-r", str(calls),
        "--run-time", f"{seconds}s", "--stop-timeout", str(stop_timeout),
        "--host", target, "--csv", str(csv_prefix),
        "--tls-dir", str(tls_dir), "--recording", str(recording),
        "--loglevel", "WARNING", *options, "ContactCenterCall",
    ]  # fmt: skip


def replica_niceness() -> int:
    """The CPU niceness of Confide's replicas. Ray starts its workers nicer than the
    processes around them (RAY_worker_niceness, 15 here); a load generator on the same
    machine should run at the same, or it takes the shared cores first and the server
    is measured with less CPU than it was given."""
    processes = replica_processes("Gateway")
    return processes[0].nice() if processes else 0


def replica_processes(deployment: str, children: bool = False) -> list[psutil.Process]:
    """The worker processes of a deployment's replicas (Ray titles each one
    `ray::ServeReplica:confide:<deployment>`); with `children`, their child processes
    too (vLLM runs its engine core in one)."""
    title = f"ray::ServeReplica:confide:{deployment}"
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if " ".join(process.info["cmdline"] or []).startswith(title):
            found.append(process)
            if children:
                found += process.children(recursive=True)
    return found
