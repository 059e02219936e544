"""Network probes the integration tests share."""

from __future__ import annotations

import socket

import psutil


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


def exposed_listeners(processes) -> list[str]:
    """The listening TCP sockets of `processes` (psutil.Process) bound to anything but
    loopback, as "address:port process-name"."""
    import ipaddress

    exposed = []
    for process in processes:
        try:
            connections = process.net_connections(kind="inet")
            name = process.name()
        except psutil.Error:  # exited meanwhile
            continue
        for connection in connections:
            if connection.status != psutil.CONN_LISTEN:
                continue
            address = ipaddress.ip_address(connection.laddr.ip)
            mapped = getattr(address, "ipv4_mapped", None)
            if not (address.is_loopback or (mapped is not None and mapped.is_loopback)):
                exposed.append(f"{connection.laddr.ip}:{connection.laddr.port} {name}")
    return exposed


def plaintext_listeners(processes) -> list[str]:
    """The non-loopback listeners of `processes` that answer cleartext HTTP/2: what a
    peer on the network could talk to without TLS (probed on the loopback address,
    where a wildcard-bound port answers too)."""
    return [
        listener
        for listener in exposed_listeners(processes)
        if answers_plaintext_http2("127.0.0.1", int(listener.split()[0].rsplit(":", 1)[1]))
    ]


def ray_processes():
    """This machine's Ray processes (raylet, GCS, agents, workers, the autoscaler)."""
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if "site-packages/ray/" in command or command.startswith("ray::"):
            yield process
