"""The gateway's certificates while it runs: files reloaded when they change, and client
certificates checked against a revocation list on every RPC.

gRPC asks `ReloadingCredentials` for the server certificate, key and client CA bundle
at each new handshake; a changed file is read then, so new connections use the new
certificate and calls already connected go on. grpcio has no CRL support, so
`Revocations` checks each RPC's peer certificate (serve/access/policy.py) against the
CRL file of the tenant CA (its signature verified) and a denylist of SHA-256
fingerprints or serial numbers; both files are re-read when they change.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from serve.core.config import TlsFiles


def _stamp(paths: list[Path | None]) -> tuple:
    """What changes when any of the files is replaced or rewritten."""
    stamps = []
    for path in paths:
        try:
            status = os.stat(path) if path is not None else None
        except FileNotFoundError:
            status = None
        stamps.append(None if status is None else (status.st_mtime_ns, status.st_size))
    return tuple(stamps)


class ReloadingCredentials:
    """Server credentials whose certificate, key and client CA follow the files."""

    def __init__(self, tls: TlsFiles) -> None:
        self._tls = tls
        self._stamp = _stamp([tls.cert, tls.key, tls.ca])

    def _configuration(self):
        return grpc.ssl_server_certificate_configuration(
            [(self._tls.key.read_bytes(), self._tls.cert.read_bytes())],
            root_certificates=self._tls.ca.read_bytes(),
        )

    def _fetch(self):
        """Called by gRPC at each handshake: a new configuration when a file changed."""
        stamp = _stamp([self._tls.cert, self._tls.key, self._tls.ca])
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        return self._configuration()

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(), self._fetch, require_client_authentication=True
        )


class Revocations:
    def __init__(self, crl: Path | None, denylist: Path | None, ca: Path) -> None:
        self._crl_path = crl
        self._denylist_path = denylist
        self._ca_path = ca
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._serials: frozenset[int] = frozenset()
        self._denied: frozenset[str] = frozenset()

    def _reload(self) -> None:
        stamp = _stamp([self._crl_path, self._denylist_path, self._ca_path])
        if stamp == self._stamp:
            return
        serials: set[int] = set()
        if self._crl_path is not None and self._crl_path.exists():
            crl = x509.load_pem_x509_crl(self._crl_path.read_bytes())
            issuers = x509.load_pem_x509_certificates(self._ca_path.read_bytes())
            if not any(crl.is_signature_valid(ca.public_key()) for ca in issuers):
                raise ValueError(f"{self._crl_path} is not signed by the tenant CA")
            serials = {revoked.serial_number for revoked in crl}
        denied: set[str] = set()
        if self._denylist_path is not None and self._denylist_path.exists():
            for line in self._denylist_path.read_text().splitlines():
                entry = line.split("#", 1)[0].strip().lower().replace(":", "")
                if entry:
                    denied.add(entry)
        self._serials, self._denied, self._stamp = frozenset(serials), frozenset(denied), stamp

    def revoked(self, certificate: x509.Certificate) -> bool:
        with self._lock:
            self._reload()
        fingerprint = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
        return (
            certificate.serial_number in self._serials
            or fingerprint in self._denied
            or format(certificate.serial_number, "x") in self._denied
        )
