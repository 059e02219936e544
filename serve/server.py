"""The gateway's gRPC server: mutual TLS only; CallService, RecordsService (where records
are on), standard health and reflection; every RPC through the access interceptor."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.sdk.trace import TracerProvider

from confide.v1 import call_pb2, call_pb2_grpc, records_pb2, records_pb2_grpc
from serve.access import AccessInterceptor, AccessPolicy, RecordsAccess, RecordsService
from serve.access.certificates import ReloadingCredentials, Revocations
from serve.boundary import PayloadBoundary
from serve.call_service import CallService
from serve.core.allowlist import Plain, confide_logger
from serve.core.config import ConfideConfig, TlsFiles
from serve.redaction import Redactor
from serve.telemetry import GatewayTelemetry

logger = confide_logger("confide.gateway")
SERVICE_NAME = call_pb2.DESCRIPTOR.services_by_name["CallService"].full_name
RECORDS_SERVICE_NAME = records_pb2.DESCRIPTOR.services_by_name["RecordsService"].full_name
_ENVELOPE_BYTES = 64 * 1024


class HealthService(health.aio.HealthServicer):
    """The standard health servicer, with List: grpcio-health-checking 1.85 serves the
    proto's List as the generated stub, which fails with the library's own text."""

    def __init__(self, services: tuple[str, ...]) -> None:
        super().__init__()
        self._services = ("", *services)

    async def List(self, request, context) -> health_pb2.HealthListResponse:
        statuses = {}
        for name in self._services:
            check = health_pb2.HealthCheckRequest(service=name)
            statuses[name] = await self.Check(check, context)
        return health_pb2.HealthListResponse(statuses=statuses)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    service: CallService
    health: health.aio.HealthServicer

    async def stop(self, grace: float, finalise: float = 0.0) -> None:
        """Drain: health NOT_SERVING, no new RPCs (gRPC sends GOAWAY and closes the
        port), live calls run for `grace` seconds, then are ended with a CallResume once
        their open turns are finalised (`finalise` seconds at most); whatever is still
        running after that is cancelled."""
        await self.health.enter_graceful_shutdown()
        stopping = asyncio.create_task(self.server.stop(grace + finalise))
        await self.service.drain(grace, finalise)
        await stopping


def server_options(config: ConfideConfig) -> list[tuple[str, int]]:
    """gRPC core's limits: message size, streams per connection, idle and age limits,
    keepalive enforcement, and no compression (a gzip message inflates 1,000-fold
    within the size limit): compressed requests are refused (UNIMPLEMENTED)."""
    gateway = config.gateway
    milliseconds = lambda seconds: int(seconds * 1000)  # noqa: E731
    return [
        ("grpc.max_receive_message_length", gateway.max_recording_bytes + _ENVELOPE_BYTES),
        ("grpc.max_send_message_length", gateway.max_recording_bytes + _ENVELOPE_BYTES),
        ("grpc.max_concurrent_streams", gateway.max_concurrent_streams),
        ("grpc.max_connection_idle_ms", milliseconds(gateway.max_connection_idle_seconds)),
        ("grpc.max_connection_age_ms", milliseconds(gateway.max_connection_age_seconds)),
        ("grpc.max_connection_age_grace_ms", milliseconds(gateway.max_call_seconds)),
        ("grpc.http2.min_ping_interval_without_data_ms",
         milliseconds(gateway.keepalive_min_ping_seconds)),
        ("grpc.http2.max_ping_strikes", 2),
        ("grpc.keepalive_time_ms", 60_000),  # the server pings idle clients too
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.compression_enabled_algorithms_bitset", 1),  # identity only
    ]  # fmt: skip


async def start_server(
    config: ConfideConfig,
    tls: TlsFiles,
    boundary: PayloadBoundary,
    telemetry: GatewayTelemetry | None = None,
    tracer_provider: TracerProvider | None = None,
    redactor: Redactor | None = None,
    records: RecordsAccess | None = None,
) -> RunningServer:
    """Start the mTLS server on config.gateway.host:port and return it with its bound
    port (port 0 picks a free one). There is no plaintext port. Turns and replies go
    through `boundary` (in Serve, to the model deployments; in tests, to stand-ins).
    With a tracer provider, opentelemetry-instrumentation-grpc adds a server span per
    RPC (through the same allowlist as every other span). With `records`, the
    RecordsService is served and refusals are audited."""
    for warning in config.security_warnings():
        logger.warning("SECURITY: %s", Plain(warning))
    telemetry = telemetry or GatewayTelemetry.disabled()
    policy = AccessPolicy(
        config.trust_domain,
        config.tenant_names,
        records.audit if records is not None else None,
        telemetry.metrics.refused,
        config.gateway.common_name_identity,
        config.gateway.first_message_seconds,
        Revocations(tls.crl, tls.denylist, tls.ca),
        min_tls_version=config.gateway.min_tls_version,
    )
    interceptors = []
    if tracer_provider is not None:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor

        interceptors.append(aio_server_interceptor(tracer_provider=tracer_provider))
    interceptors.append(AccessInterceptor(policy))
    server = grpc.aio.server(interceptors=interceptors, options=server_options(config))
    service = CallService(config, boundary, telemetry, redactor)
    call_pb2_grpc.add_CallServiceServicer_to_server(service, server)
    services = [SERVICE_NAME]
    if records is not None:
        records_pb2_grpc.add_RecordsServiceServicer_to_server(
            RecordsService(config, records, policy, telemetry.tracer), server
        )
        services.append(RECORDS_SERVICE_NAME)
    health_servicer = HealthService(tuple(services))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    # Server reflection, so grpcurl and Postman need no .proto files: only behind the
    # same mTLS as every other RPC, and it describes nothing but the public contract.
    reflection.enable_server_reflection(
        (*services, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"{config.gateway.host}:{config.gateway.port}"
    if ":" in config.gateway.host:
        address = f"[{config.gateway.host}]:{config.gateway.port}"
    # Certificate, key and client CA are re-read at the next handshake after they change.
    port = server.add_secure_port(address, ReloadingCredentials(tls).credentials())
    if port == 0:
        raise RuntimeError(f"could not bind the gateway to {address}")
    await server.start()
    for name in ("", *services):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server, port, service, health_servicer)
