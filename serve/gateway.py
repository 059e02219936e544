"""The gateway deployment: Confide's own grpc.aio server, started inside a Serve replica.

Ray Serve's HTTP and gRPC proxies are plaintext, so Confide switches them off and
terminates mutual TLS here; turns go to the transcriber and conversations to the
dialogue deployment through DeploymentHandles, by way of the payload boundary
(serve/boundary.py), which seals them and translates every failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from ray import serve
from ray.serve.handle import DeploymentHandle

from serve.access import open_records_access
from serve.boundary import PayloadBoundary
from serve.core.config import ConfideConfig, GatewayConfig, TlsFiles
from serve.core.data_keys import data_key_cache
from serve.core.keys import key_provider
from serve.core.sealing import Sealer
from serve.messages import ReplyRequest, Sealed, TurnRequest
from serve.metrics import sealing_failure_counter
from serve.records.codec import RecordCodec
from serve.records.model import RecordWrite
from serve.redaction import Redactor
from serve.replica_loss import Resubmission
from serve.sealed import PayloadCodec
from serve.server import RunningServer, start_server
from serve.telemetry import GatewayTelemetry, configure_process


@dataclass(frozen=True)
class RecordDeployments:
    """The recorder the gateway writes to, and the purge loop (bound here so Serve
    deploys it with the application)."""

    recorder: DeploymentHandle
    purge_loop: DeploymentHandle


@serve.deployment
class Gateway:
    async def __init__(
        self,
        transcriber: DeploymentHandle,
        config: ConfideConfig,
        tls: TlsFiles,
        dialogue: DeploymentHandle | None = None,
        records: RecordDeployments | None = None,
    ) -> None:
        self._transcriber = transcriber
        self._dialogue = dialogue
        self._records = records
        self._config = config
        self._drained: asyncio.Future | None = None
        self._tracing = configure_process(config, "confide-gateway")
        self._telemetry = GatewayTelemetry.of(self._tracing)
        provider = key_provider(config.keys, config.state_path)
        # One data-key cache for payloads and records alike: a call's keys go together.
        sealer = Sealer(provider, data_keys=data_key_cache(config.keys))
        codec = PayloadCodec(
            sealer if config.keys.sealing else None,
            self._telemetry.hasher,
            sealing_failure_counter(),
        )
        boundary = PayloadBoundary(
            codec,
            self._telemetry.metrics,
            transcriber=self._transcribe,
            dialogue=self._reply if dialogue is not None else None,
            recorder=self._record if records is not None else None,
            records=RecordCodec(sealer) if records is not None else None,
            forget=sealer.forget,
            resubmission=Resubmission.of(config.transcriber),
        )
        self._boundary = boundary
        # spaCy takes seconds to load: off the event loop, once per replica
        redactor = (
            await asyncio.to_thread(Redactor, config.redaction.spacy_model)
            if config.redaction.enabled
            else None
        )
        # The RecordsService reads the store through the KMS and audits in its database.
        access = await asyncio.to_thread(open_records_access, config) if records else None
        self._running: RunningServer = await start_server(
            config, tls, boundary, self._telemetry, self._tracing.provider, redactor, access
        )

    async def _transcribe(self, request: TurnRequest) -> Sealed:
        return await self._transcriber.transcribe.remote(request)

    async def _record(self, write: RecordWrite) -> None:
        assert self._records is not None
        await self._records.recorder.write.remote(write)

    async def _reply(self, request: ReplyRequest) -> AsyncIterator[Sealed]:
        assert self._dialogue is not None
        stream = self._dialogue.reply.options(stream=True).remote(request)
        try:
            async for payload in stream:
                yield payload
        finally:
            # On barge-in this aborts the generation; on a rejected request it re-raises
            # the rejection, which the boundary has already translated.
            with contextlib.suppress(Exception):
                stream.cancel()

    async def port(self) -> int:
        """The bound port (useful when config asked for port 0)."""
        return self._running.port

    async def active_calls(self) -> int:
        return self._running.service.active_calls

    async def calls_handled(self) -> int:
        return self._running.service.calls_handled

    async def turns_resent(self) -> int:
        """Final turns sent again because their transcriber replica died."""
        return self._boundary.turns_resent

    async def transcriptions_in_flight(self) -> int:
        return self._boundary.transcriptions_in_flight

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

    async def drain(self) -> None:
        """Drain this replica (serve/server.py): what Serve's graceful shutdown does in
        __del__, callable first so that `confide down` can drain the gateways while
        the transcribers still run."""
        if self._drained is None:
            gateway = self._config.gateway
            self._drained = asyncio.ensure_future(
                self._running.stop(gateway.shutdown_grace_seconds, gateway.drain_finalise_seconds)
            )
        await asyncio.shield(self._drained)

    async def __del__(self) -> None:
        await self.drain()
        self._tracing.shutdown()


def serve_options(config: GatewayConfig) -> dict:
    """Ray Serve options for the gateway, derived from the typed config."""
    return {
        "num_replicas": config.num_replicas,
        "ray_actor_options": {"num_cpus": config.num_cpus, "resources": config.ray_resources},
        # Serve's own request queue is not on the call path (gRPC is), so keep it small.
        "max_ongoing_requests": 16,
        # Room for the drain (Gateway.drain) before Serve kills the replica.
        "graceful_shutdown_timeout_s": config.shutdown_grace_seconds
        + config.drain_finalise_seconds
        + 5,
    }
