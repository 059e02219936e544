"""One real local Ray cluster with Confide deployed, for the call-path tests in a module.

Certificates are made here: a CA, the gateway's server certificate, and client
certificates that are valid, unknown to the gateway, from another CA, or expired.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from cluster.client import ClientTls
from cluster.config import ConfideConfig
from cluster.pki import Credential, create_ca, issue_client_cert, issue_server_cert
from serve.server import TlsFiles

TRUST_DOMAIN = "confide.test"


@dataclass(frozen=True)
class TestPki:
    server: TlsFiles
    clients: dict[str, ClientTls]


def _write(directory: Path, name: str, credential: Credential) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    credential.write(cert, key)
    return cert, key


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory) -> TestPki:
    root = tmp_path_factory.mktemp("pki")
    ca = create_ca("Confide test CA")
    ca_cert, _ = _write(root, "ca", ca)
    server_cert, server_key = _write(
        root, "server", issue_server_cert(ca, ["localhost", "127.0.0.1"])
    )
    rogue_ca = create_ca("Some other CA")
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    clients = {
        "acme": issue_client_cert(ca, "acme", TRUST_DOMAIN),
        "initech": issue_client_cert(ca, "initech", TRUST_DOMAIN),
        "rogue": issue_client_cert(rogue_ca, "acme", TRUST_DOMAIN),
        "expired": issue_client_cert(
            ca, "acme", TRUST_DOMAIN, not_before=long_ago, lifetime=dt.timedelta(days=1)
        ),
    }
    return TestPki(
        server=TlsFiles(server_cert, server_key, ca_cert),
        clients={
            name: ClientTls(ca_cert, *_write(root, f"client-{name}", credential))
            for name, credential in clients.items()
        },
    )


def call_path_config(tmp_path: Path) -> ConfideConfig:
    return ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "trust_domain": TRUST_DOMAIN,
            "tenants": [{"name": "acme"}],
            "gateway": {
                "host": "0.0.0.0",
                "port": 0,
                "max_concurrent_calls": 6,
                "max_recording_bytes": 2 * 1024 * 1024,
            },
            "ray": {"num_cpus": 4},
            "dialogue": {"enabled": False},  # test_dialogue.py deploys the LLM
        }
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M prepared from its PyPI package, as `confide models prepare` does."""
    from cluster import models

    target = tmp_path_factory.mktemp("models") / "smollm2"
    models.prepare(target, progress=False)
    return target
