"""A contact-center platform as a Locust user: it opens StreamCall over mutual TLS and
streams a real recorded call in real time, as a live call would arrive.

Custom request events (request_type "grpc"):
- StreamCall: one per call, response time = call duration; a refusal fails it, with the
  status code as the error.
- end_of_turn_to_final: per final transcript, from the moment the turn's last audio was
  sent (segment end offset, which includes the VAD pad) to the final's arrival.

Run through `python -m loadtests.bench`, which starts the cluster and passes the options.
"""

from __future__ import annotations

import random
import time
import uuid
from pathlib import Path

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, events, task

from cluster.client import ClientTls, call_requests
from cluster.wavfile import read_wav
from confide.v1 import call_pb2_grpc

grpc_gevent.init_gevent()  # grpcio must cooperate with Locust's gevent loop


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--tls-dir", required=True, help="ca.pem, client.pem, client.key")
    parser.add_argument("--recording", required=True, help="WAV call to stream")
    parser.add_argument("--roles", default="customer,agent")
    parser.add_argument("--interim", action="store_true", help="ask for interim results")


class ContactCenterCall(User):
    """Each user is one live call after another on one gRPC channel."""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        tls_dir = Path(options.tls_dir)
        tls = ClientTls(tls_dir / "ca.pem", tls_dir / "client.pem", tls_dir / "client.key")
        self._channel = grpc.secure_channel(self.host, tls.credentials())
        self._stub = call_pb2_grpc.CallServiceStub(self._channel)
        self._recording = read_wav(Path(options.recording))
        self._roles = options.roles.split(",")[: self._recording.channels]
        self._interim = options.interim
        # Live calls do not start in lockstep: spread first calls over one call length.
        time.sleep(random.uniform(0, self._recording.seconds))

    def on_stop(self) -> None:
        self._channel.close()

    def _fire(self, name: str, milliseconds: float, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=milliseconds,
            response_length=0,
            exception=exception,
            context={},
        )

    @task
    def stream_call(self) -> None:
        requests = call_requests(
            self._recording, self._roles, f"load-{uuid.uuid4().hex}", self._interim
        )
        started = time.monotonic()

        def paced():
            for seconds, request in requests:
                delay = started + seconds - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # gevent-patched: yields to other calls
                yield request

        try:
            for event in self._stub.StreamCall(paced()):
                if event.WhichOneof("event") == "transcript" and event.transcript.is_final:
                    turn_end = started + event.transcript.end_seconds
                    self._fire("end_of_turn_to_final", (time.monotonic() - turn_end) * 1000)
        except grpc.RpcError as error:
            self._fire(
                "StreamCall", (time.monotonic() - started) * 1000, RuntimeError(error.code().name)
            )
            return
        self._fire("StreamCall", (time.monotonic() - started) * 1000)
