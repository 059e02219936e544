"""The gateway deployment: Confide's own grpc.aio server, started inside a Serve replica.

Ray Serve's HTTP and gRPC proxies are plaintext, so Confide switches them off and
terminates mutual TLS here; turns go to the transcriber and conversations to the
dialogue deployment through DeploymentHandles. Errors from those calls are translated
here, at the boundary, into Confide errors with fixed messages: a remote traceback can
quote model input and never travels on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from ray import serve
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle

from cluster.allowlist import confide_logger, plain_type
from cluster.config import ConfideConfig, GatewayConfig
from serve.errors import EngineUnavailable, ResourceExhausted
from serve.messages import DialogueRequest, TurnAudio, TurnTranscript
from serve.metrics import sealing_failure_counter
from serve.sealed import PayloadCodec
from serve.server import RunningServer, TlsFiles, start_server
from serve.telemetry import GatewayTelemetry, configure_process, current_trace_context

logger = confide_logger("confide.gateway")


@serve.deployment
class Gateway:
    async def __init__(
        self,
        transcriber: DeploymentHandle,
        config: ConfideConfig,
        tls: TlsFiles,
        dialogue: DeploymentHandle | None = None,
    ) -> None:
        self._transcriber = transcriber
        self._dialogue = dialogue
        self._config = config
        self._codec = PayloadCodec.build(config.keys, config.state_path, sealing_failure_counter())
        self._tracing = configure_process(config, "confide-gateway")
        self._telemetry = GatewayTelemetry.of(self._tracing)
        self._running: RunningServer = await start_server(
            config,
            tls,
            self._transcribe,
            self._reply if dialogue is not None else None,
            self._telemetry,
            self._tracing.provider,
        )

    async def _transcribe(self, turn: TurnAudio) -> TurnTranscript:
        """Seal the turn and send it with the current span's traceparent."""
        metrics = self._telemetry.metrics
        metrics.request_started("transcription")
        try:
            request = self._codec.seal_turn(turn, current_trace_context())
            return self._codec.open_transcript(await self._transcriber.transcribe.remote(request))
        except BackPressureError:
            raise ResourceExhausted("the transcriber is at capacity") from None
        except Exception as exc:
            logger.warning("transcriber call failed: %s", plain_type(exc))
            raise EngineUnavailable("the transcriber failed") from None
        finally:
            metrics.request_ended("transcription")

    async def _reply(self, request: DialogueRequest) -> AsyncIterator[str]:
        assert self._dialogue is not None
        sealed = self._codec.seal_prompt(request, current_trace_context())
        stream = self._dialogue.reply.options(stream=True).remote(sealed)
        metrics = self._telemetry.metrics
        metrics.request_started("dialogue")
        try:
            async for payload in stream:
                yield self._codec.open_reply(payload)
        except BackPressureError:
            raise ResourceExhausted("the dialogue model is at capacity; reply skipped") from None
        except Exception as exc:
            logger.warning("dialogue call failed: %s", plain_type(exc))
            raise EngineUnavailable("the dialogue model failed") from None
        finally:
            metrics.request_ended("dialogue")
            # On barge-in this aborts the generation; on a rejected request it re-raises
            # the rejection, which was already translated above.
            with contextlib.suppress(Exception):
                stream.cancel()

    async def port(self) -> int:
        """The bound port (useful when config asked for port 0)."""
        return self._running.port

    async def active_calls(self) -> int:
        return self._running.service.active_calls

    async def calls_handled(self) -> int:
        return self._running.service.calls_handled

    async def check_health(self) -> None:
        """Raise unless the mTLS port still accepts connections (Serve then restarts us)."""
        host = self._config.gateway.host
        host = "127.0.0.1" if host in {"0.0.0.0", "::", ""} else host
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, self._running.port), timeout=2
            )
        except (OSError, TimeoutError) as exc:
            raise RuntimeError(f"gateway port {self._running.port} is not accepting") from exc
        writer.close()
        await writer.wait_closed()

    async def __del__(self) -> None:
        await self._running.stop(self._config.gateway.shutdown_grace_seconds)
        self._tracing.shutdown()


def serve_options(config: GatewayConfig) -> dict:
    """Ray Serve options for the gateway, derived from the typed config."""
    return {
        "num_replicas": config.num_replicas,
        "ray_actor_options": {"num_cpus": config.num_cpus, "resources": config.ray_resources},
        # Serve's own request queue is not on the call path (gRPC is), so keep it small.
        "max_ongoing_requests": 16,
    }
