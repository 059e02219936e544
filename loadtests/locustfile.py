"""A contact-center platform as a Locust user: it opens StreamCall over mutual TLS and
streams a real recorded call in real time, as a live call would arrive.

Custom request events (request_type "grpc"):
- StreamCall: one per call, response time = call duration; a refusal fails it, with the
  status code as the error.
- end_of_turn_to_final: per final transcript, from the moment the turn's last audio was
  sent (segment end offset, which includes the VAD pad) to the final's arrival.
- interim: per interim transcript, from the moment the growing turn's last audio was
  sent to the interim's arrival (the count says how many interims a load delivers).
With --agent (the call asks for agent replies), per customer turn answered:
- end_of_turn_to_first_reply_token: turn's last audio sent -> first AgentReply delta.
- final_to_first_reply_token: the turn's final transcript -> first delta (the dialogue
  path's first-token latency as a client sees it).
- agent_reply: one per reply; response_length is the number of deltas (tokens).
- reply_ms_per_token: per reply, (last delta - first delta) / (deltas - 1).
- call_error: per error event (a turn or reply that failed), the code as the error.
- call_turns, call_finals: per call that ended with its summary, response_length is the
  turns the gateway cut (summary.turns) and the finals this user received: a turn
  without a final (nor an error event) is a lost final.
- call_wer: per call with a reference (the recording's .json), response time is the
  word error rate of its finals in percent, all referenced channels together (as the
  client receives them: redacted names count as errors, the same in every variant).
- send_lag: per call, how late the user sent its most delayed chunk against the
  recording's clock: a load generator that cannot keep pace shows here first, and its
  lateness would count as the server's latency.
- resume_gap: when a draining gateway ended the call with a CallResume, from that event
  to the first event of the resumed StreamCall (the user resumes as `confide call` does).

A records reader as a second Locust user (RecordsReader, one of it, when named on the
command line with a supervisor certificate as reader.pem/reader.key in --tls-dir): it
lists the tenant's calls and reads one every --read-interval seconds; request events
"ListCalls" and "GetCall" time each (each read is also one audit record).

With --steady-state, the latencies count only while every user is in a call: from one
call length after the start (the first calls start spread over that long) until the run
time ends (afterwards the last calls wind down), so a level's percentiles are its full load.

Run through `python -m loadtests.bench`, which starts the cluster and passes the options.
"""

from __future__ import annotations

import itertools
import random
import time
import uuid
from pathlib import Path

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, events, task

from cluster.client import CHUNK_MS, call_requests, ended_by_status
from confide.v1 import call_pb2 as pb
from confide.v1 import call_pb2_grpc, records_pb2, records_pb2_grpc
from loadtests.corpus import call_references, call_wer
from serve.core.config import TlsFiles
from serve.core.wavfile import read_wav

grpc_gevent.init_gevent()  # grpcio must cooperate with Locust's gevent loop


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    parser.add_argument("--tls-dir", required=True, help="ca.pem, client.pem, client.key")
    parser.add_argument("--recording", required=True, help="WAV call to stream")
    parser.add_argument("--roles", default="customer,agent")
    parser.add_argument("--interim", action="store_true", help="ask for interim results")
    parser.add_argument("--agent", action="store_true", help="ask for agent replies")
    parser.add_argument(
        "--chunk-ms", type=int, default=CHUNK_MS, help="audio per StreamCall message, milliseconds"
    )
    parser.add_argument("--read-interval", type=float, default=2.0, help="RecordsReader pace")
    parser.add_argument(
        "--steady-state",
        action="store_true",
        help="time finals and replies only once every user's first call has started (one "
        "call length after the start) and until the run time ends, not while calls ramp "
        "up or wind down",
    )


_started_at = 0.0
"""When the load began (test_start), on the monotonic clock."""


@events.test_start.add_listener
def _load_started(**_) -> None:
    global _started_at
    _started_at = time.monotonic()


class ContactCenterCall(User):
    """Each user is one live call after another on one gRPC channel."""

    _users = itertools.count()

    def on_start(self) -> None:
        options = self.environment.parsed_options
        tls_dir = Path(options.tls_dir)
        tls = TlsFiles(
            cert=tls_dir / "client.pem", key=tls_dir / "client.key", ca=tls_dir / "ca.pem"
        )
        self._channel = grpc.secure_channel(self.host, tls.channel_credentials())
        self._stub = call_pb2_grpc.CallServiceStub(self._channel)
        self._recording = read_wav(Path(options.recording))
        self._roles = options.roles.split(",")[: self._recording.channels]
        self._interim = options.interim
        self._agent = options.agent
        self._chunk_ms = options.chunk_ms
        self._references = call_references(Path(options.recording), self._roles)
        # Live calls do not start in lockstep: the first calls start spread over one
        # call length, at the golden ratio's multiples, which stay evenly spread for any
        # number of users and are the same in every run (with random phases, two runs of
        # one configuration at 16 calls gave p95 6.8 s and 1.8 s: turns clustered
        # differently).
        phase = (next(self._users) * 0.6180339887498949) % 1.0
        time.sleep(phase * self._recording.seconds)
        self._measured = (-float("inf"), float("inf"))
        if options.steady_state:
            self._measured = (
                _started_at + self._recording.seconds,
                _started_at + options.run_time,
            )

    def on_stop(self) -> None:
        self._channel.close()

    def _fire(
        self,
        name: str,
        milliseconds: float,
        exception: Exception | None = None,
        response_length: int = 0,
    ) -> None:
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=milliseconds,
            response_length=response_length,
            exception=exception,
            context={},
        )

    def _fire_latency(self, name: str, milliseconds: float, now: float) -> None:
        """A latency, counted only inside the measured window (--steady-state)."""
        if self._measured[0] <= now <= self._measured[1]:
            self._fire(name, milliseconds)

    @task
    def stream_call(self) -> None:
        call_id = f"load-{uuid.uuid4().hex}"
        replies = _ReplyClock(self._fire, self._fire_latency)
        started = time.monotonic()
        resume: pb.CallResume | None = None
        resumed_at: float | None = None
        finals = 0
        heard: dict[int, list[str]] = {}
        lag = 0.0  # how late the latest chunk went out, seconds

        def paced(requests):
            nonlocal lag
            for seconds, request in requests:
                delay = started + seconds - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # gevent-patched: yields to other calls
                lag = max(lag, -delay)
                yield request

        while True:  # one StreamCall per segment: a draining gateway hands the call on
            requests = call_requests(
                self._recording,
                self._roles,
                call_id,
                self._interim,
                chunk_ms=self._chunk_ms,
                agent_replies=self._agent,
                resume=resume,
            )
            ended_by_drain = False
            try:
                calls = self._stub.StreamCall(paced(requests), wait_for_ready=resume is not None)
                for event in calls:
                    now = time.monotonic()
                    if resumed_at is not None:  # the first event of a resumed segment
                        self._fire("resume_gap", (now - resumed_at) * 1000)
                        resumed_at = None
                    kind = event.WhichOneof("event")
                    ended_by_drain = kind == "resume"
                    if kind == "transcript" and event.transcript.is_final:
                        finals += 1
                        heard.setdefault(event.transcript.channel, []).append(event.transcript.text)
                        turn_end = started + event.transcript.end_seconds
                        self._fire_latency("end_of_turn_to_final", (now - turn_end) * 1000, now)
                        replies.final(event.transcript, turn_end, now)
                    elif kind == "transcript":  # an interim
                        turn_end = started + event.transcript.end_seconds
                        self._fire_latency("interim", (now - turn_end) * 1000, now)
                    elif kind == "agent_reply":
                        replies.reply(event.agent_reply, now)
                    elif kind == "error":
                        self._fire("call_error", 0, RuntimeError(event.error.code))
                    elif kind == "resume":
                        resume, resumed_at = event.resume, now
                    elif kind == "summary":
                        self._fire("call_turns", 0, response_length=event.summary.turns)
                        self._fire("send_lag", lag * 1000)
                        self._fire("call_finals", 0, response_length=finals)
                        if self._references:
                            self._fire("call_wer", call_wer(self._references, heard))
            except grpc.RpcError as error:
                if ended_by_drain and ended_by_status(error.code(), ended_by_drain):
                    continue
                self._fire(
                    "StreamCall",
                    (time.monotonic() - started) * 1000,
                    RuntimeError(error.code().name),
                )
                return
            break
        self._fire("StreamCall", (time.monotonic() - started) * 1000)


class RecordsReader(User):
    """A supervisor reading stored calls while calls go on."""

    fixed_count = 1

    def on_start(self) -> None:
        options = self.environment.parsed_options
        tls_dir = Path(options.tls_dir)
        tls = TlsFiles(
            cert=tls_dir / "reader.pem", key=tls_dir / "reader.key", ca=tls_dir / "ca.pem"
        )
        self._channel = grpc.secure_channel(self.host, tls.channel_credentials())
        self._records = records_pb2_grpc.RecordsServiceStub(self._channel)
        self._interval = options.read_interval

    def on_stop(self) -> None:
        self._channel.close()

    def _timed(self, name: str, call):
        started = time.monotonic()
        try:
            result = call()
        except grpc.RpcError as error:
            self._fire(name, started, RuntimeError(error.code().name))
            return None
        self._fire(name, started)
        return result

    def _fire(self, name: str, started: float, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.monotonic() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )

    @task
    def read_a_call(self) -> None:
        listed = self._timed(
            "ListCalls", lambda: self._records.ListCalls(records_pb2.ListCallsRequest())
        )
        readable = [call for call in listed.calls if not call.text_purged] if listed else []
        if readable:
            call_id = random.choice(readable).call_id
            request = records_pb2.GetCallRequest(call_id=call_id, purpose="quality review")
            self._timed("GetCall", lambda: self._records.GetCall(request))
        time.sleep(self._interval)


class _ReplyClock:
    """Times agent replies against the customer turns they answer."""

    def __init__(self, fire, fire_latency) -> None:
        self._fire = fire
        self._fire_latency = fire_latency
        self._turns: dict[int, tuple[float, float]] = {}  # turn -> (turn end, final seen)
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._deltas: dict[int, int] = {}

    def final(self, segment, turn_end: float, now: float) -> None:
        if segment.role == pb.SPEAKER_ROLE_CUSTOMER:
            self._turns[segment.turn_index] = (turn_end, now)

    def reply(self, reply, now: float) -> None:
        turn = reply.turn_index
        if not reply.is_final:
            if turn not in self._first and turn in self._turns:
                turn_end, final_seen = self._turns[turn]
                self._first[turn] = now
                self._fire_latency("end_of_turn_to_first_reply_token", (now - turn_end) * 1000, now)
                self._fire_latency("final_to_first_reply_token", (now - final_seen) * 1000, now)
            self._deltas[turn] = self._deltas.get(turn, 0) + 1
            self._last[turn] = now
            return
        deltas = self._deltas.pop(turn, 0)
        first, last = self._first.pop(turn, None), self._last.pop(turn, None)
        self._fire_reply(deltas)
        if first is not None and last is not None and deltas > 1:
            self._fire("reply_ms_per_token", (last - first) * 1000 / (deltas - 1))

    def _fire_reply(self, deltas: int) -> None:
        self._fire("agent_reply", 0.0, response_length=deltas)
