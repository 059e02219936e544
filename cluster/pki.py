"""Development PKI: a CA, the gateway's server certificate and one client certificate
per tenant, made with `cryptography`. Private keys are written 0600.

Production deployments bring certificates from their own CA; the gateway only needs the
three PEM files of `gateway.tls` (`serve.core.config.TlsFiles`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from serve.core.config import ConfideConfig, TlsFiles
from serve.core.secret_files import write_secret

CA_VALIDITY = dt.timedelta(days=5 * 365)
PLATFORM = "platform"
"""The role of the call path's certificates (serve/access/roles.py lists them all)."""
LEAF_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class Credential:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def write(self, cert_path: Path, key_path: Path) -> None:
        cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_path.write_bytes(self.cert_pem)
        write_secret(key_path, self.key_pem)

    @classmethod
    def read(cls, cert_path: Path, key_path: Path) -> Credential:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path}: expected an EC private key")
        return cls(x509.load_pem_x509_certificate(cert_path.read_bytes()), key)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key, not_before: dt.datetime, lifetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def create_ca(
    common_name: str = "Confide development CA",
    not_before: dt.datetime | None = None,
    lifetime: dt.timedelta = CA_VALIDITY,
) -> Credential:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(name, name, key.public_key(), not_before or _now(), lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Credential(cert, key)


def _issue(
    ca: Credential,
    common_name: str,
    sans: list[x509.GeneralName],
    usages: list[x509.ObjectIdentifier],
    not_before: dt.datetime | None,
    lifetime: dt.timedelta,
) -> Credential:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        _builder(subject, ca.cert.subject, key.public_key(), not_before or _now(), lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    return Credential(cert, key)


def issue_server_cert(
    ca: Credential,
    hosts: list[str],
    not_before: dt.datetime | None = None,
    lifetime: dt.timedelta = LEAF_VALIDITY,
) -> Credential:
    """A TLS server certificate for host names and IP addresses (IP SANs for IPs)."""
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    return _issue(ca, hosts[0], _host_sans(hosts), usages, not_before, lifetime)


def _host_sans(hosts: list[str]) -> list[x509.GeneralName]:
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return sans


def issue_client_cert(
    ca: Credential,
    tenant: str,
    trust_domain: str,
    not_before: dt.datetime | None = None,
    lifetime: dt.timedelta = LEAF_VALIDITY,
    role: str = PLATFORM,
) -> Credential:
    """A client certificate whose SPIFFE URI SAN names the tenant and role (the scheme
    is serve/access/identity.py's); its CN names them too, for people reading it."""
    from serve.access.identity import spiffe_id  # the gRPC side: only when issuing

    sans: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(spiffe_id(trust_domain, tenant, role))
    ]
    name = tenant if role == PLATFORM else f"{tenant} {role}"
    return _issue(ca, name, sans, [ExtendedKeyUsageOID.CLIENT_AUTH], not_before, lifetime)


def issue_node_cert(
    ca: Credential,
    hosts: list[str],
    not_before: dt.datetime | None = None,
    lifetime: dt.timedelta = LEAF_VALIDITY,
) -> Credential:
    """A Ray node certificate: Ray's TLS uses one certificate as server and as client,
    with IP SANs for the addresses nodes reach each other on."""
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    return _issue(ca, hosts[0], _host_sans(hosts), usages, not_before, lifetime)


def node_hosts() -> list[str]:
    """This machine's names and every address it has (loopback included)."""
    import psutil

    hosts = default_server_hosts()
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                ip = address.address.split("%")[0]
                if ip not in hosts:
                    hosts.append(ip)
    return hosts


def default_server_hosts() -> list[str]:
    hosts = ["localhost", "127.0.0.1", "::1"]
    hostname = socket.gethostname()
    if hostname and hostname not in hosts:
        hosts.append(hostname)
    return hosts


def _stem(tenant: str, role: str) -> str:
    """The platform's certificate keeps the tenant's name; other roles add theirs."""
    return tenant if role == PLATFORM else f"{tenant}.{role}"


@dataclass(frozen=True)
class DevPki:
    """The development PKI's files under <state_dir>/pki."""

    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"

    @property
    def node_ca_cert(self) -> Path:
        """Ray nodes' own CA: a node certificate (which must be a TLS client too) is
        never signed by the CA the gateway trusts for tenants, so it can never act as
        one."""
        return self.root / "ray-ca.pem"

    @property
    def node_ca_key(self) -> Path:
        return self.root / "ray-ca.key"

    @property
    def ray_node_cert(self) -> Path:
        return self.root / "ray-node.pem"

    @property
    def ray_node_key(self) -> Path:
        return self.root / "ray-node.key"

    def ensure_ray_node(self) -> None:
        """The node CA and certificate for Ray's TLS (created if missing; a node
        certificate from before the node CA existed is reissued from it)."""
        if not self.node_ca_cert.exists():
            create_ca("Confide development Ray node CA").write(self.node_ca_cert, self.node_ca_key)
            self.ray_node_cert.unlink(missing_ok=True)
        if not self.ray_node_cert.exists():
            node_ca = Credential.read(self.node_ca_cert, self.node_ca_key)
            issue_node_cert(node_ca, node_hosts()).write(self.ray_node_cert, self.ray_node_key)

    def client_cert(self, tenant: str, role: str = PLATFORM) -> Path:
        return self.root / "tenants" / f"{_stem(tenant, role)}.pem"

    def client_key(self, tenant: str, role: str = PLATFORM) -> Path:
        return self.root / "tenants" / f"{_stem(tenant, role)}.key"

    @property
    def crl(self) -> Path:
        """The tenant CA's revocation list (`confide certs revoke` writes it)."""
        return self.root / "tenants.crl.pem"

    def gateway_tls(self) -> TlsFiles:
        """The gateway's side: its server certificate, this CA for tenants, its CRL."""
        return TlsFiles(cert=self.server_cert, key=self.server_key, ca=self.ca_cert, crl=self.crl)

    def rotate_server(self, hosts: list[str]) -> Path:
        """A new gateway certificate (and key); a running gateway uses it from its next
        handshake on. Written key first, each file atomically."""
        credential = issue_server_cert(self.ca(), hosts)
        staged_cert, staged_key = self.root / ".server.pem.new", self.root / ".server.key.new"
        credential.write(staged_cert, staged_key)
        os.replace(staged_key, self.server_key)
        os.replace(staged_cert, self.server_cert)
        return self.server_cert

    def revoke(self, tenant: str, role: str = PLATFORM) -> int:
        """Add a client certificate to the tenant CA's CRL; returns its serial number."""
        certificate = x509.load_pem_x509_certificate(self.client_cert(tenant, role).read_bytes())
        ca = self.ca()
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(ca.cert.subject)
            .last_update(now)
            .next_update(now + dt.timedelta(days=7))
        )
        if self.crl.exists():
            for revoked in x509.load_pem_x509_crl(self.crl.read_bytes()):
                builder = builder.add_revoked_certificate(revoked)
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(certificate.serial_number)
            .revocation_date(now)
            .build()
        )
        crl = builder.sign(ca.key, hashes.SHA256())
        staged = self.root / ".tenants.crl.pem.new"
        staged.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        os.replace(staged, self.crl)
        return certificate.serial_number

    def client_tls(self, tenant: str, role: str = PLATFORM) -> TlsFiles:
        """A tenant client's side: its certificate, and this CA for the gateway."""
        return TlsFiles(
            cert=self.client_cert(tenant, role), key=self.client_key(tenant, role), ca=self.ca_cert
        )

    def ca(self) -> Credential:
        return Credential.read(self.ca_cert, self.ca_key)

    def issue_tenant(self, tenant: str, trust_domain: str, role: str = PLATFORM) -> Path:
        """Issue (or re-issue) a tenant's client certificate for a role; returns its path."""
        issue_client_cert(self.ca(), tenant, trust_domain, role=role).write(
            self.client_cert(tenant, role), self.client_key(tenant, role)
        )
        return self.client_cert(tenant, role)

    def role_tls(self, tenant: str, role: str, trust_domain: str) -> TlsFiles:
        """A client certificate for the tenant and role, issued on first use."""
        if not self.client_cert(tenant, role).exists():
            self.issue_tenant(tenant, trust_domain, role)
        return self.client_tls(tenant, role)

    @classmethod
    def for_config(cls, config: ConfideConfig) -> DevPki:
        """The development PKI of a configuration: its tenants, its trust domain, and a
        gateway certificate for every address of this machine plus
        gateway.certificate_hosts (the gateway binds 0.0.0.0 by default)."""
        hosts = node_hosts() + list(config.gateway.certificate_hosts)
        return cls.ensure(
            config.state_path, [t.name for t in config.tenants], config.trust_domain, hosts
        )

    @classmethod
    def ensure(
        cls, state_dir: Path, tenants: list[str], trust_domain: str, hosts: list[str] | None = None
    ) -> DevPki:
        """Create whatever is missing: CA, server certificate, tenant certificates."""
        pki = cls(state_dir / "pki")
        pki.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(state_dir, 0o700)
        if not pki.ca_cert.exists():
            create_ca().write(pki.ca_cert, pki.ca_key)
        ca = pki.ca()
        if not pki.server_cert.exists():
            issue_server_cert(ca, hosts or default_server_hosts()).write(
                pki.server_cert, pki.server_key
            )
        for tenant in tenants:
            if not pki.client_cert(tenant).exists():
                pki.issue_tenant(tenant, trust_domain)
        return pki
