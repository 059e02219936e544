"""Live probes of a running deployment: what its listeners accept and refuse.

Each probe makes a real connection and reports what happened, in words that carry no
payload. gRPC's Python API cannot cap a client's TLS version, so the TLS 1.2 probe
speaks HTTP/2 itself (h2) over Python's ssl, to make a real gRPC call over TLS 1.2.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Probe:
    accepted: bool | None
    """True: the listener served the request; False: refused; None: not probed."""
    detail: str


NOT_PROBED = Probe(None, "no running gateway to probe")


def grpc_health(target: str, credentials: grpc.ChannelCredentials | None) -> Probe:
    """A Health/Check call: over TLS with these credentials, or plaintext (None)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = (
        grpc.insecure_channel(target)
        if credentials is None
        else grpc.secure_channel(target, credentials)
    )
    with channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=TIMEOUT_SECONDS
            )
        except grpc.RpcError as error:
            return Probe(False, f"refused ({error.code().name})")
    return Probe(True, "served")


def without_client_certificate(target: str, ca: Path) -> Probe:
    return grpc_health(target, grpc.ssl_channel_credentials(root_certificates=ca.read_bytes()))


def with_foreign_certificate(target: str, ca: Path) -> Probe:
    """A client certificate from a CA the gateway does not trust, made here."""
    cert, key = _self_signed_client()
    return grpc_health(
        target,
        grpc.ssl_channel_credentials(
            root_certificates=ca.read_bytes(), private_key=key, certificate_chain=cert
        ),
    )


def plaintext(target: str) -> Probe:
    return grpc_health(target, None)


def tls12_call(host: str, port: int, ca: Path, cert: Path, key: Path) -> Probe:
    """A gRPC Health/Check with a valid client certificate over TLS 1.2 at most."""
    import h2.config
    import h2.connection
    import h2.events

    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # the dev certificate names the machine's addresses
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    try:
        raw = socket.create_connection((host, port), timeout=TIMEOUT_SECONDS)
        tls = context.wrap_socket(raw, server_hostname=host)
    except (OSError, ssl.SSLError) as error:
        return Probe(False, f"TLS 1.2 handshake refused ({type(error).__name__})")
    with tls:
        connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        headers = [
            (":method", "POST"), (":scheme", "https"), (":path", HEALTH_CHECK),
            (":authority", f"{host}:{port}"), ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]  # fmt: skip
        connection.send_headers(stream, headers)
        connection.send_data(stream, b"\x00\x00\x00\x00\x00", end_stream=True)  # empty request
        tls.sendall(connection.data_to_send())
        status = None
        try:
            while status is None:
                data = tls.recv(65536)
                if not data:
                    break
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                        found = dict(event.headers).get(b"grpc-status")
                        status = int(found) if found is not None else status
                tls.sendall(connection.data_to_send())
        except (OSError, ssl.SSLError) as error:
            return Probe(False, f"TLS 1.2 connection closed ({type(error).__name__})")
    if status == 0:
        return Probe(True, "a gRPC call over TLS 1.2 was served")
    name = grpc.StatusCode.UNKNOWN.name
    for code in grpc.StatusCode:
        if code.value[0] == status:
            name = code.name
    return Probe(False, f"a gRPC call over TLS 1.2 was refused ({name})")


def tcp_open(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return False
    return True


def grpc_plaintext_accepted(address: str) -> Probe:
    """Whether a gRPC server (Ray's GCS) completes an HTTP/2 connection without TLS."""
    with grpc.insecure_channel(address) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=TIMEOUT_SECONDS)
        except grpc.FutureTimeoutError:
            return Probe(False, "a plaintext gRPC connection never became ready")
    return Probe(True, "a plaintext gRPC connection was accepted")


def _self_signed_client() -> tuple[bytes, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "confide-audit-probe")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(minutes=10))
        .sign(key, hashes.SHA256())
    )
    return (
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def spill_volume(directory: Path) -> str:
    """The filesystem under the spill directory, and whether it is dm-crypt (Linux)."""
    path = directory
    while not path.exists() and path != path.parent:
        path = path.parent
    best, device = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "mount table unreadable"
    for line in mounts:
        source, mount, fstype = line.split()[:3]
        if str(path.resolve()).startswith(mount) and len(mount) > len(best):
            best, device = mount, f"{source} ({fstype})"
    encrypted = device.startswith("/dev/mapper/") or device.startswith("/dev/dm-")
    return f"{device} at {best}" + (", device-mapper (dm-crypt?)" if encrypted else "")
