"""Fixtures shared by all tests: the sample recordings, and a test PKI (a CA, the
gateway's certificate, and client certificates that are valid, unknown to the
gateway, from another CA, or expired)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from cluster.pki import Credential, create_ca, issue_client_cert, issue_server_cert
from serve.core.config import TlsFiles
from serve.core.wavfile import Recording, read_wav

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def two_channel_call() -> Recording:
    return read_wav(EXAMPLES / "two_channel_mulaw_8k.wav")


@pytest.fixture(scope="session")
def mono_recording() -> Recording:
    return read_wav(EXAMPLES / "mono_linear16_16k.wav")


TRUST_DOMAIN = "confide.test"


@dataclass(frozen=True)
class TestPki:
    server: TlsFiles
    clients: dict[str, TlsFiles]
    ca: Credential
    """The CA itself, for tests that craft their own client certificates."""
    root: Path


def _write(directory: Path, name: str, credential: Credential) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    credential.write(cert, key)
    return cert, key


def _nameless_client_cert(ca: Credential) -> Credential:
    """Valid and signed by the CA, but naming nobody: no SAN, an empty subject."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Credential(cert, key)


def _client_tls(root: Path, name: str, credential: Credential, ca_cert: Path) -> TlsFiles:
    cert, key = _write(root, f"client-{name}", credential)
    return TlsFiles(cert=cert, key=key, ca=ca_cert)


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
        "globex": issue_client_cert(ca, "globex", TRUST_DOMAIN),
        "acme-supervisor": issue_client_cert(ca, "acme", TRUST_DOMAIN, role="supervisor"),
        "rogue": issue_client_cert(rogue_ca, "acme", TRUST_DOMAIN),
        "expired": issue_client_cert(
            ca, "acme", TRUST_DOMAIN, not_before=long_ago, lifetime=dt.timedelta(days=1)
        ),
        "nameless": _nameless_client_cert(ca),
    }
    return TestPki(
        ca=ca,
        root=root,
        server=TlsFiles(cert=server_cert, key=server_key, ca=ca_cert),
        clients={
            name: _client_tls(root, name, credential, ca_cert)
            for name, credential in clients.items()
        },
    )


def _postgres_server(tls: tuple[bytes, bytes] | None = None):
    import shutil

    from tests.postgres import start_server

    server = start_server(tls=tls)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session; each test makes its own database."""
    yield from _postgres_server()


@pytest.fixture(scope="session")
def postgres_tls(test_pki):
    """A PostgreSQL server that accepts TLS connections only, with the test CA's server
    certificate (localhost, 127.0.0.1)."""
    yield from _postgres_server(
        (test_pki.server.cert.read_bytes(), test_pki.server.key.read_bytes())
    )


@pytest.fixture(scope="session")
def redactor():
    """The real redaction engine (spaCy and Presidio load once per test session)."""
    from serve.redaction import Redactor

    return Redactor()
