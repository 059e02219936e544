"""Starting, deploying and stopping a Confide cluster.

Two shapes: `embedded` runs a single-node Ray inside this process (the demo, the tests);
`confide up` starts a detached head node with `ray start` (or joins `--address`) so the
cluster outlives the command, and records where it is in <state_dir>/cluster.json.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cluster import ipc_sockets, shared_memory
from serve.core.allowlist import confide_logger, plain_type
from serve.core.config import ConfideConfig, TlsFiles
from serve.core.secret_files import write_secret

logger = confide_logger("confide.lifecycle")


@dataclass(frozen=True)
class ClusterState:
    ray_address: str
    gateway_port: int
    started_ray: bool
    """True when `confide up` started the Ray head itself (so `down` stops it)."""
    started_at: float = 0.0
    """time.time() when `up` started the head: `down` sweeps what was left since."""

    @staticmethod
    def path(config: ConfideConfig) -> Path:
        return config.state_path / "cluster.json"

    def save(self, config: ConfideConfig) -> None:
        self.path(config).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, config: ConfideConfig) -> ClusterState | None:
        path = cls.path(config)
        return cls(**json.loads(path.read_text())) if path.exists() else None


def _set_ray_environment(variables: dict[str, str]) -> dict[str, str]:
    """Ray reads these when it is imported and in every process it starts. A process that
    imported Ray before (tests running several clusters) has Ray re-read them, as Ray's
    own test utilities do."""
    changed = any(os.environ.get(name) != value for name, value in variables.items())
    os.environ.update(variables)
    if changed and "ray" in sys.modules:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    return variables


def use_ray_token_auth(config: ConfideConfig) -> dict[str, str]:
    """Turn on Ray token authentication with a token kept 0600 in the state directory."""
    token_path = config.state_path / "ray_auth_token"
    if not token_path.exists():
        write_secret(token_path, secrets.token_hex(32).encode())
    return _set_ray_environment({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)})


# Ray's switch for a cluster confined to one machine (named for Windows and macOS, where
# it is the default): the node IP is then loopback, so every port Ray opens, its gRPC
# servers, agents and the plain-HTTP Prometheus exporters alike, binds 127.0.0.1. With a
# routable node IP Ray 2.60 binds the exporters to all interfaces, and no option moves them.
_SINGLE_MACHINE = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def use_single_machine(confined: bool) -> dict[str, str]:
    """Ray on loopback only (`confined`), or reachable by other nodes."""
    variables = _set_ray_environment({_SINGLE_MACHINE: "0" if confined else "1"})
    if "ray" in sys.modules:  # the constant is read at import; this process already did
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = not confined
    return variables


def use_ray_tls(config: ConfideConfig) -> dict[str, str]:
    """Ray's TLS for all its internal gRPC, with a node certificate (IP SANs for every
    address of this machine) from Confide's PKI; see RayConfig.tls."""
    if config.ray.tls == "off":
        return _set_ray_environment({"RAY_USE_TLS": "0"})
    from cluster.pki import DevPki

    pki = DevPki.for_config(config)
    pki.ensure_ray_node()
    return _set_ray_environment(
        {
            "RAY_USE_TLS": "1",
            "RAY_TLS_SERVER_CERT": str(pki.ray_node_cert),
            "RAY_TLS_SERVER_KEY": str(pki.ray_node_key),
            "RAY_TLS_CA_CERT": str(pki.node_ca_cert),
        }
    )


def _ray_init_options(config: ConfideConfig) -> dict:
    options: dict = {
        "include_dashboard": config.ray.include_dashboard,
        "dashboard_host": "127.0.0.1",
        "log_to_driver": False,
        "logging_level": "WARNING",
        "configure_logging": True,
    }
    if config.ray.num_cpus is not None:
        options["num_cpus"] = config.ray.num_cpus
    if config.ray.object_store_memory_bytes is not None:
        options["object_store_memory"] = config.ray.object_store_memory_bytes
    if config.ray.object_spilling_directory is not None:
        options["object_spilling_directory"] = config.ray.object_spilling_directory
    return options


def deploy(config: ConfideConfig, tls: TlsFiles | None = None, **app_options: Any) -> int:
    """Deploy the Serve application on the connected cluster; return the gateway port
    once every deployment is healthy. app_options go to serve.app.build_app."""
    from ray import serve

    from cluster.deployment import gateway_tls
    from serve.app import APP_NAME, SERVE_START_OPTIONS, build_app

    serve.start(**SERVE_START_OPTIONS)
    app = build_app(config, tls or gateway_tls(config), **app_options)
    handle = serve.run(app, name=APP_NAME, route_prefix=None)
    return handle.port.remote().result()


@contextlib.contextmanager
def embedded(
    config: ConfideConfig,
    tls: TlsFiles | None = None,
    ray_system_config: dict | None = None,
    **app_options: Any,
) -> Iterator[int]:
    """A single-node Ray cluster in this process with Confide deployed; yields the port.

    ray_system_config passes Ray internals (tests use it to force object spilling);
    app_options go to serve.app.build_app (e.g. another transcription engine)."""
    use_ray_token_auth(config)
    use_ray_tls(config)
    use_single_machine(True)
    import ray
    from ray import serve

    options = _ray_init_options(config)
    if ray_system_config:
        options["_system_config"] = ray_system_config
    started = time.time()
    _init_embedded_ray(options)
    try:
        yield deploy(config, tls, **app_options)
    finally:
        try:
            drain_gateways(config)
        except Exception as error:  # the cluster is going anyway; say why it did not drain
            logger.warning("gateways not drained before shutdown: %s", plain_type(error))
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()
        _sweep_leftovers(started)


def _sweep_leftovers(since: float) -> None:
    """What the cluster's killed processes left on this machine since it started: shared
    memory that held prompt token ids, and vLLM's socket files (swept second: the first
    waits until no process of the cluster maps its segments, so none is still bound)."""
    shared_memory.sweep(since)
    ipc_sockets.sweep(since)


def drain_gateways(config: ConfideConfig) -> None:
    """Drain the gateway replicas (serve/server.py) while the transcribers still run:
    serve.shutdown() stops every deployment at once, so a gateway that drains only in
    its own shutdown could find no transcriber for its calls' open turns. One drain
    request per replica, sent together: Serve's router sends each to the less busy of
    two replicas, so with one or two replicas each drains; with more, a replica missed
    here still drains in its own shutdown."""
    from ray import serve

    from serve.app import APP_NAME

    handle = serve.get_app_handle(APP_NAME)
    replicas = config.gateway.num_replicas
    for response in [handle.drain.remote() for _ in range(replicas)]:
        response.result()


def _init_embedded_ray(options: dict, attempts: int = 2) -> None:
    """ray.init, tried again once when the local node times out during startup: on a
    busy 2-core machine Ray's GCS sometimes never reports its port (seen now and then in
    `make demo` and the tests here; a second start has worked each time)."""
    import ray

    for attempt in range(1, attempts + 1):
        try:
            ray.init(**options)
            return
        except Exception as error:  # Ray raises a bare Exception for this one
            if attempt == attempts or "timed out during startup" not in str(error):
                raise
            ray.shutdown()


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def up(config: ConfideConfig, address: str | None = None) -> ClusterState:
    """Start (or join) a cluster, deploy, wait until healthy, record the state."""
    use_ray_token_auth(config)
    use_ray_tls(config)
    import ray

    address = address or config.ray.address
    started_ray = address is None
    started_at = time.time()
    if started_ray:
        node_ip = config.ray.node_ip_address
        use_single_machine(node_ip is None)
        port = _free_port()
        command = [
            _ray_cli(),
            "start",
            "--head",
            f"--node-ip-address={node_ip or '127.0.0.1'}",
            f"--port={port}",
            "--disable-usage-stats",
            f"--include-dashboard={str(config.ray.include_dashboard).lower()}",
            "--dashboard-host=127.0.0.1",
        ]
        if config.ray.num_cpus is not None:
            command.append(f"--num-cpus={config.ray.num_cpus}")
        if config.ray.object_store_memory_bytes is not None:
            command.append(f"--object-store-memory={config.ray.object_store_memory_bytes}")
        if config.ray.object_spilling_directory is not None:
            command.append(f"--object-spilling-directory={config.ray.object_spilling_directory}")
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        address = f"{node_ip or '127.0.0.1'}:{port}"
    ray.init(address=address, log_to_driver=False, logging_level="WARNING")
    try:
        state = ClusterState(address, deploy(config), started_ray, started_at)
    finally:
        ray.shutdown()
    state.save(config)
    return state


def ray_client_environment(config: ConfideConfig) -> dict[str, str]:
    """What Ray's own CLIs (`ray`, `serve`) need to reach the cluster `up` recorded."""
    state = ClusterState.load(config)
    if state is None:
        raise FileNotFoundError("no cluster recorded: run `confide up` first")
    return {
        "RAY_ADDRESS": state.ray_address,
        **use_ray_token_auth(config),
        **use_ray_tls(config),
        **use_single_machine(_confined(config, state)),
    }


def _confined(config: ConfideConfig, state: ClusterState) -> bool:
    """Whether the recorded cluster is the loopback-only head that `up` started: a driver
    on this machine then takes loopback as its node IP too, or Ray finds no raylet."""
    return state.started_ray and config.ray.node_ip_address is None


class ClusterUnreachable(RuntimeError):
    """`down` could not reach the recorded cluster, so it kept the record."""


def down(config: ConfideConfig) -> bool:
    """Delete the application and stop the Ray head if `up` started it; False when no
    cluster is recorded. The record is deleted only once the cluster is known to be
    gone: a joined cluster that cannot be reached raises ClusterUnreachable."""
    state = ClusterState.load(config)
    if state is None:
        return False
    use_ray_token_auth(config)
    use_ray_tls(config)
    use_single_machine(_confined(config, state))
    removed = _shutdown_serve(state.ray_address, config)
    if state.started_ray:
        # The head is this machine's own process: `ray stop` ends it either way.
        stopped = subprocess.run([_ray_cli(), "stop"], check=False, stdout=subprocess.DEVNULL)
        removed = stopped.returncode == 0
        _sweep_leftovers(state.started_at)
    if not removed:
        raise ClusterUnreachable(
            f"could not reach the Ray cluster at {state.ray_address}; "
            f"kept {ClusterState.path(config)}"
        )
    ClusterState.path(config).unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def attached(config: ConfideConfig) -> Iterator[bool]:
    """This process connected to the cluster `up` recorded (True), for reading Serve's
    deployments; False when none is recorded or it does not answer. A process that
    already runs Ray (the embedded demo) stays as it is."""
    import ray

    state = ClusterState.load(config)
    if ray.is_initialized() or state is None or not _answers(state.ray_address):
        yield ray.is_initialized()
        return
    use_ray_token_auth(config)
    use_ray_tls(config)
    use_single_machine(_confined(config, state))
    try:
        ray.init(address=state.ray_address, log_to_driver=False, logging_level="WARNING")
    except Exception:  # Ray's connection errors have no common base class
        yield False
        return
    try:
        yield True
    finally:
        ray.shutdown()


def _answers(address: str) -> bool:
    """Whether a GCS listens there (ray.init would wait minutes for one that is not)."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError):
        return False
    return True


def _shutdown_serve(address: str, config: ConfideConfig) -> bool:
    """Drain the gateways, then remove Confide's Serve application; False if the cluster
    did not answer."""
    if not _answers(address):
        return False
    import ray
    from ray import serve
    from ray.serve.exceptions import RayServeException

    try:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        try:
            with contextlib.suppress(RayServeException):  # no application: no gateway
                drain_gateways(config)
            serve.shutdown()
        finally:
            ray.shutdown()
    except Exception:  # Ray's connection errors have no common base class
        return False
    return True


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
