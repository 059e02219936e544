"""Network probes the integration tests share."""

from __future__ import annotations

import socket


def answers_plaintext_http2(host: str, port: int, timeout: float = 3.0) -> bool:
    """Whether the port speaks cleartext HTTP/2 (gRPC without TLS): a TLS server answers
    the HTTP/2 preface with an alert or silence, a cleartext one with a SETTINGS frame."""
    with socket.create_connection((host, port), timeout=timeout) as plain:
        plain.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        plain.settimeout(timeout)
        try:
            reply = plain.recv(64)
        except (TimeoutError, ConnectionResetError):
            return False
    return len(reply) >= 9 and reply[3] == 0x04  # frame type 4: SETTINGS
