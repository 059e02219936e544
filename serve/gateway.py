"""The gateway deployment: Confide's own grpc.aio server, started inside a Serve replica.

Ray Serve's HTTP and gRPC proxies are plaintext, so Confide switches them off and
terminates mutual TLS here; turns go to the transcriber through a DeploymentHandle.
"""

from __future__ import annotations

from ray import serve
from ray.serve.handle import DeploymentHandle

from cluster.config import ConfideConfig, GatewayConfig
from serve.messages import TurnAudio, TurnTranscript
from serve.server import RunningServer, TlsFiles, start_server


@serve.deployment
class Gateway:
    async def __init__(
        self, transcriber: DeploymentHandle, config: ConfideConfig, tls: TlsFiles
    ) -> None:
        self._transcriber = transcriber
        self._config = config
        self._running: RunningServer = await start_server(config, tls, self._transcribe)

    async def _transcribe(self, turn: TurnAudio) -> TurnTranscript:
        return await self._transcriber.transcribe.remote(turn)

    async def port(self) -> int:
        """The bound port (useful when config asked for port 0)."""
        return self._running.port

    async def active_calls(self) -> int:
        return self._running.service.active_calls

    async def calls_handled(self) -> int:
        return self._running.service.calls_handled

    async def check_health(self) -> None:
        # A stopped server has no bound ports left; Serve restarts the replica.
        if self._running.server is None:
            raise RuntimeError("gateway server is not running")

    async def __del__(self) -> None:
        await self._running.stop(self._config.gateway.shutdown_grace_seconds)


def serve_options(config: GatewayConfig) -> dict:
    """Ray Serve options for the gateway, derived from the typed config."""
    return {
        "num_replicas": config.num_replicas,
        "ray_actor_options": {"num_cpus": 0.5},
        # Serve's own request queue is not on the call path (gRPC is), so keep it small.
        "max_ongoing_requests": 16,
    }
