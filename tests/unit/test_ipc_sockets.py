"""The sweep of vLLM's socket files after a cluster stops: only sockets with vLLM's names
that nothing is bound to any more, changed since the cluster started, are removed."""

import os
import socket
import time
import uuid

from cluster.ipc_sockets import bound_paths, scan, sweep


def _socket_file(directory, name, age_seconds=0.0):
    """A socket file that nothing is bound to any more, as a killed process leaves it."""
    path = directory / name
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # closing does not unlink it
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(path, (then, then))
    return path


def test_only_orphaned_vllm_sockets_of_this_cluster_are_swept(tmp_path):
    started = time.time() - 60
    orphans = sorted(_socket_file(tmp_path, str(uuid.uuid4())) for _ in range(2))
    older = _socket_file(tmp_path, str(uuid.uuid4()), age_seconds=3600)  # before the cluster
    other = _socket_file(tmp_path, "postgres.sock")  # not a name vLLM gives
    not_a_socket = tmp_path / str(uuid.uuid4())
    not_a_socket.write_text("a file")
    live = tmp_path / str(uuid.uuid4())
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(live))
        listener.listen()
        assert str(live) in bound_paths()
        assert scan(started, tmp_path) == orphans
        assert sweep(started, tmp_path) == 2
        assert live.exists()  # a live process listens on it
    assert not any(path.exists() for path in orphans)
    assert older.exists() and other.exists() and not_a_socket.exists()
    assert sweep(started, tmp_path) == 1 and not live.exists()  # once nothing is bound
