"""The `confide` command line. Imports stay light: Ray and the models load only in the
subcommands that need them."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import uuid
from pathlib import Path

from serve.core.config import ConfideConfig, TlsFiles, documented_defaults, load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLINIC_CALL = EXAMPLES / "clinic_call_mulaw_8k.wav"
"""The demo's call: a clinic's appointment line (examples/make_samples.py)."""
CARD_CALL = EXAMPLES / "card_call_mulaw_8k.wav"
REDACTION_CASES = EXAMPLES.parent / "tests" / "redaction" / "cases.jsonl"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="confide", description=__doc__)
    parser.add_argument("--config", type=Path, help="YAML config (default: CONFIDE_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="start (or join) a cluster and deploy Confide")
    up.add_argument("--address", help="join this Ray cluster instead of starting one")
    commands.add_parser("down", help="remove Confide and stop the cluster `up` started")

    call = commands.add_parser("call", help="stream a recording to the gateway in real time")
    _add_call_options(call)
    call.add_argument("--target", help="gateway host:port (default: from `confide up`)")

    demo = commands.add_parser(
        "demo", help="embedded cluster, stream a sample call, print the transcript, stop"
    )
    _add_call_options(demo, default_file=CLINIC_CALL)
    shown = demo.add_mutually_exclusive_group()
    shown.add_argument(
        "--trace", action="store_true", help="print the call's whole trace, span by span"
    )
    shown.add_argument(
        "--no-trace", action="store_true", help="no latency summary or trace afterwards"
    )

    certs = commands.add_parser("certs", help="development PKI")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True)
    issue = certs_commands.add_parser("issue", help="issue a tenant client certificate")
    issue.add_argument("--tenant", required=True)
    issue.add_argument(
        "--role",
        default="platform",
        help="platform (calls; default), supervisor, analyst, compliance, admin or trainer",
    )
    revoke = certs_commands.add_parser(
        "revoke", help="revoke a client certificate (the gateway refuses it at once)"
    )
    revoke.add_argument("--tenant", required=True)
    revoke.add_argument("--role", default="platform")
    certs_commands.add_parser(
        "rotate", help="a new gateway certificate; the gateway uses it for new connections"
    )

    keys = commands.add_parser("keys", help="key-encryption keys (one per tenant and month)")
    keys_commands = keys.add_subparsers(dest="keys_command", required=True)
    for action, text in (
        ("rotate", "add a KEK version; new blobs use it, old ones still open"),
        ("disable", "stop a KEK: sealing and opening under it fail (closed)"),
        ("enable", "allow a disabled KEK again"),
        ("destroy", "crypto-shred a period: its blobs become unrecoverable"),
    ):
        command = keys_commands.add_parser(action, help=text)
        command.add_argument("--tenant", required=True)
        command.add_argument("--period", help="YYYY-MM (default: this month)")
    rewrap = keys_commands.add_parser(
        "rewrap", help="move sealed files to their KEK's newest version (body untouched)"
    )
    rewrap.add_argument("files", nargs="+", type=Path)
    rewrap.add_argument("--tenant", required=True)
    rewrap.add_argument("--call-id", required=True)
    rewrap.add_argument("--purpose", required=True)

    records = commands.add_parser("records", help="stored call records (sealed transcripts)")
    records_commands = records.add_subparsers(dest="records_command", required=True)
    _add_records_verbs(records_commands)
    purge = records_commands.add_parser("purge", help="apply retention now (the cluster also does)")
    purge.add_argument("--dry-run", action="store_true", help="show what would go, and why")

    audit_log = commands.add_parser("audit-log", help="the tamper-evident audit log")
    audit_commands = audit_log.add_subparsers(dest="audit_command", required=True)
    audit_commands.add_parser(
        "verify", help="check every record's hash and link, and every signed checkpoint"
    )
    audit_commands.add_parser("checkpoint", help="sign the log's head now")
    show_log = audit_commands.add_parser("show", help="print the newest records")
    show_log.add_argument("--tenant", help="one tenant's records only")
    show_log.add_argument("--last", type=int, default=20, help="how many (default 20)")

    audit = commands.add_parser(
        "audit", help="score the running deployment against the security checklist"
    )
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument(
        "--min-score", type=float, default=0, help="exit 1 below this score (percent)"
    )
    audit.add_argument("--target", help="gateway host:port (default: from `confide up`)")
    audit.add_argument(
        "--tls-dir",
        type=Path,
        help="ca.pem, client.pem and client.key to probe the gateway with (default: the "
        "development PKI's first tenant)",
    )
    redaction = commands.add_parser("redaction", help="card numbers and personal data")
    redaction_commands = redaction.add_subparsers(dest="redaction_command", required=True)
    evaluate = redaction_commands.add_parser(
        "eval", help="precision and recall per entity type on a labelled set"
    )
    evaluate.add_argument("--cases", type=Path, default=REDACTION_CASES, help="JSON lines")
    evaluate.add_argument("--show-errors", action="store_true", help="print missed and spurious")
    redact = redaction_commands.add_parser("text", help="redact one line of text, as a final")
    redact.add_argument("text")
    redact.add_argument("--tenant", default=None, help="whose policy (default: the first)")

    models = commands.add_parser("models", help="the private dialogue model")
    models_commands = models.add_subparsers(dest="models_command", required=True)
    models_commands.add_parser(
        "prepare", help="build the local model directory from the packaged GGUF (idempotent)"
    )

    config = commands.add_parser("config", help="configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser("defaults", help="print every field, documented, as YAML")
    config_commands.add_parser("show", help="print the effective configuration")
    telemetry = commands.add_parser("telemetry", help="traces and metrics")
    telemetry_commands = telemetry.add_subparsers(dest="telemetry_command", required=True)
    hash_command = telemetry_commands.add_parser(
        "hash", help="the hmac-sha256 that traces and metrics show for a call id or tenant"
    )
    hash_command.add_argument("value")
    serve_config = commands.add_parser(
        "serve-config", help="print a Serve config file for `serve deploy` or a RayService"
    )
    serve_config.add_argument(
        "--config-file", help="where the config file is on the cluster (default: --config)"
    )
    commands.add_parser(
        "ray-env", help="print the environment Ray's CLIs need for this cluster (eval it)"
    )
    return parser


def _add_records_verbs(records: argparse._SubParsersAction) -> None:
    """The verbs that go through the RecordsService (cluster/records_cli.py)."""
    listing = records.add_parser("list", help="calls recorded, without their text")
    listing.add_argument("--since", help="YYYY-MM-DD (UTC)")
    stats = records.add_parser("stats", help="counts and durations, no call ids")
    stats.add_argument("--since", help="YYYY-MM-DD (UTC)")
    for action, text in (
        ("show", "print a call's transcript and replies (redacted; --raw for compliance)"),
        ("hold", "put a call on legal hold: retention never purges it"),
        ("release", "lift a call's legal hold"),
        ("delete", "erase a call's record on request"),
    ):
        command = records.add_parser(action, help=text)
        command.add_argument("call_id")
        if action == "show":
            command.add_argument(
                "--raw", action="store_true", help="also the raw finals, where stored"
            )
    for command in records.choices.values():
        command.add_argument("--tenant", help="whose records (default: the first tenant)")
        command.add_argument(
            "--as", dest="role", help="act as this role (default: the least that may)"
        )
        command.add_argument("--purpose", default="", help="why (required for raw, hold, delete)")
        command.add_argument("--target", help="gateway host:port (default: from `confide up`)")


def _add_call_options(parser: argparse.ArgumentParser, default_file: Path | None = None) -> None:
    parser.add_argument(
        "file",
        type=Path,
        nargs=None if default_file is None else "?",
        default=default_file,
        help="WAV recording: PCM16, mu-law or A-law; 1 or 2 channels",
    )
    parser.add_argument("--tenant", default=None, help="tenant certificate to use")
    parser.add_argument("--encoding", choices=["mulaw", "alaw", "linear16"])
    parser.add_argument("--rate", type=int, choices=[8000, 16000])
    parser.add_argument(
        "--roles", default=None, help="comma-separated channel roles (default customer,agent)"
    )
    parser.add_argument("--no-interim", action="store_true", help="finals only")
    parser.add_argument(
        "--no-agent", action="store_true", help="no agent replies from the dialogue model"
    )
    parser.add_argument("--fast", action="store_true", help="send as fast as possible")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # gRPC's fork handlers serve processes that fork and keep using gRPC; this one only
    # starts other programs (Ray), and with the handlers on, each start while a channel is
    # busy logs "skipping fork() handlers". Set before gRPC is first imported.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    try:
        return _run(args)
    except (OSError, ValueError) as error:
        # Input the operator can fix (a missing or unreadable file, a WAV that is not
        # one, a bad config value or date): one line, never a traceback. Messages come
        # from file names and formats, never from a call's content.
        print(f"confide {args.command}: {_first_line(error)}", file=sys.stderr)
        return 1


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    handler = {
        "up": _up,
        "down": _down,
        "call": _call,
        "demo": _demo,
        "certs": _certs,
        "models": _models,
        "keys": _keys,
        "records": _records,
        "audit-log": _audit_log,
        "audit": _audit,
        "redaction": _redaction,
        "config": _config,
        "telemetry": _telemetry,
        "serve-config": _serve_config,
        "ray-env": _ray_env,
    }[args.command]
    return handler(config, args)


def _keys(config: ConfideConfig, args: argparse.Namespace) -> int:
    import datetime as dt

    from serve.core.envelope import Binding
    from serve.core.keys import key_provider, period_kek_id
    from serve.core.sealing import Sealer

    provider = key_provider(config.keys, config.state_path)
    if args.keys_command == "rewrap":
        from serve.core.allowlist import IdentifierHasher
        from serve.core.telemetry_key import telemetry_key

        call_key = IdentifierHasher(telemetry_key(config.keys, config.state_path))(args.call_id)
        if not _audit_key_operation(config, "rewrap", args.tenant, call_key, len(args.files)):
            return 1
        sealer = Sealer(provider)
        binding = Binding(args.tenant, call_key, args.purpose)  # blobs bind the call's HMAC
        for path in args.files:
            path.write_bytes(sealer.rewrap(path.read_bytes(), binding))
            print(f"re-wrapped {path}")
        return 0
    when = dt.datetime.now(dt.UTC)
    if args.period:
        when = dt.datetime.strptime(args.period, "%Y-%m").replace(tzinfo=dt.UTC)
    kek_id = period_kek_id(args.tenant, when)
    if not _audit_key_operation(config, args.keys_command, args.tenant, kek_id):
        return 1
    if args.keys_command == "rotate":
        print(f"{kek_id}: now at version {provider.rotate(kek_id)}")
    else:
        getattr(provider, args.keys_command)(kek_id)
        print(f"{kek_id}: {args.keys_command}d")
    return 0


def _audit_key_operation(
    config: ConfideConfig, operation: str, tenant: str, target: str, files: int = 0
) -> bool:
    """Audit a key operation before it happens (where there is an audit log: records
    on); False, with the reason printed, when it cannot be audited (fail closed)."""
    if not config.records.enabled:
        return True
    from serve.audit import Actor, AuditEvent, AuditUnavailable, events, open_audit_log
    from serve.core.database import DatabaseUnavailable

    action = getattr(events, f"KEY_{operation.upper()}")
    detail = {"files": files} if files else {}
    try:
        open_audit_log(config).record(
            AuditEvent(Actor.operator(), action, tenant, target, detail=detail)
        )
    except (AuditUnavailable, DatabaseUnavailable) as error:
        print(f"confide keys: not done, it cannot be audited: {error}", file=sys.stderr)
        return False
    return True


def _records(config: ConfideConfig, args: argparse.Namespace) -> int:
    if args.records_command == "purge":
        return _purge(config, args)
    from cluster import records_cli

    target = _gateway_target(config, args.target)
    if target is None:
        return 2
    return asyncio.run(records_cli.run_verb(config, args, target))


def _purge(config: ConfideConfig, args: argparse.Namespace) -> int:
    """Retention now, by the operator on a host with the state directory; the purge
    audits what it deletes and destroys under the operator's name."""
    from serve.audit import Actor, AuditUnavailable
    from serve.records import RecordsError
    from serve.records.purge_loop import build_purger

    try:
        purger = build_purger(config, actor=Actor.operator())
        if args.dry_run:
            print("\n".join(purger.plan().describe()))
            return 0
        report = purger.run()
    except (RecordsError, AuditUnavailable) as error:
        print(f"confide records: {error}", file=sys.stderr)
        return 1
    if not report.ran:
        print("another purge is running; try again later", file=sys.stderr)
        return 1
    print(
        f"deleted the text of {report.expired} calls, shredded {report.shredded} "
        f"tenant-months ({report.unreadable} rows did not open)"
    )
    return 0


def _audit_log(config: ConfideConfig, args: argparse.Namespace) -> int:
    import datetime as dt

    from serve.audit import AuditUnavailable, open_audit_log
    from serve.core.database import DatabaseUnavailable

    try:
        log = open_audit_log(config)
        if args.audit_command == "checkpoint":
            checkpoint = log.checkpoint()
            print("the log is empty" if checkpoint is None else f"signed record {checkpoint.seq}")
            return 0
        if args.audit_command == "show":
            records = log.entries(args.tenant)[-args.last :] if args.last > 0 else []
            for record in records:
                when = dt.datetime.fromtimestamp(record.at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
                print(
                    f"{record.seq:6} {when} {record.action:16} {record.outcome:9} "
                    f"{record.tenant or '-':10} {record.actor_role or '-':10} "
                    f"{record.target[:24] or '-':24} {record.purpose}"
                )
            return 0
        result = log.verify()
    except (AuditUnavailable, DatabaseUnavailable) as error:
        print(f"confide audit-log: {error}", file=sys.stderr)
        return 1
    for problem in result.problems:
        print(f"FAIL {problem}")
    print(
        f"{result.records} records, {result.checkpoints} signed checkpoints, "
        f"{result.unsigned_tail} records after the newest checkpoint: "
        + ("verified" if result.ok else f"{len(result.problems)} problems")
    )
    return 0 if result.ok else 1


def _audit(config: ConfideConfig, args: argparse.Namespace) -> int:
    """`confide audit`: probe and score the deployment `confide up` started."""
    from cluster import lifecycle
    from cluster.assessment import assess

    target = _gateway_target(config, args.target)
    if target is None:
        return 2
    client = None
    if args.tls_dir is not None:
        client = TlsFiles(
            cert=args.tls_dir / "client.pem", key=args.tls_dir / "client.key",
            ca=args.tls_dir / "ca.pem",
        )  # fmt: skip
    with lifecycle.attached(config):
        report = assess(config, target, client)
    print(report.as_json() if args.json else report.as_text())
    return 1 if report.score < args.min_score else 0


def _redaction(config: ConfideConfig, args: argparse.Namespace) -> int:
    from serve.redaction import RedactionError, Redactor

    try:
        redactor = Redactor(config.redaction.spacy_model)
    except RedactionError as error:
        print(f"confide redaction: {error}", file=sys.stderr)
        return 1
    if args.redaction_command == "text":
        try:
            tenant = config.tenant(args.tenant or config.tenants[0].name)
        except KeyError as error:
            print(f"confide redaction: {error.args[0]}", file=sys.stderr)
            return 1
        redaction = redactor.redact(args.text.split(), frozenset(tenant.redaction.entities))
        print(redaction.text)
        return 0
    from serve.redaction.evaluation import evaluate, meets_targets, table

    if not args.cases.is_file():
        print(f"confide redaction: no labelled cases at {args.cases}", file=sys.stderr)
        return 1
    try:
        scores = evaluate(args.cases, redactor)
    except (ValueError, KeyError) as error:
        print(f"confide redaction: {args.cases} is not a labelled set: {error}", file=sys.stderr)
        return 1
    for line in table(scores):
        print(line)
    if args.show_errors:
        for entity, score in scores.items():
            for text in score.missed:
                print(f"missed   {entity:20} {text}")
            for text in score.spurious:
                print(f"spurious {entity:20} {text}")
    misses = meets_targets(scores)
    cases = sum(1 for _ in args.cases.open())
    print(f"{cases} cases; targets: recall >= 0.99 (cards, security codes, SSNs), >= 0.95")
    print(f"(others), precision >= 0.95: {'met' if not misses else 'missed: ' + ', '.join(misses)}")
    return 0 if not misses else 1


def _models(config: ConfideConfig, args: argparse.Namespace) -> int:
    from cluster import models

    target = config.dialogue_model_dir
    digest = models.prepare(target)
    print(f"model: {target}\nsha256 of its files: {digest}")
    return 0


def _prepare_dialogue_model(config: ConfideConfig) -> None:
    """The default model directory is built on first use (a no-op once it is there)."""
    if config.dialogue.enabled and config.dialogue.model_dir is None:
        from cluster import models

        models.prepare(config.dialogue_model_dir)


def _quiet_ray_serve() -> None:
    """Serve's driver-side progress lines would interleave with the call's output. Its
    logger is configured (at INFO) when ray.serve is first imported, so import it first."""
    import logging

    import ray.serve  # noqa: F401

    logging.getLogger("ray.serve").setLevel(logging.WARNING)


def _up(config: ConfideConfig, args: argparse.Namespace) -> int:
    from cluster import lifecycle

    _prepare_dialogue_model(config)
    _quiet_ray_serve()
    for warning in config.security_warnings():
        print(f"WARNING: {warning}", file=sys.stderr)
    state = lifecycle.up(config, args.address)
    print(f"Confide is up. Gateway (mTLS gRPC): {config.gateway.host}:{state.gateway_port}")
    print(f"Ray: {state.ray_address}  state: {config.state_path}")
    return 0


def _down(config: ConfideConfig, args: argparse.Namespace) -> int:
    from cluster import lifecycle

    try:
        stopped = lifecycle.down(config)
    except lifecycle.ClusterUnreachable as error:
        print(f"confide down: {error}", file=sys.stderr)
        return 1
    print("Confide is down." if stopped else "No cluster recorded; nothing to stop.")
    return 0


def _gateway_target(config: ConfideConfig, target: str | None) -> str | None:
    """--target, or the gateway `confide up` recorded; None (and a message) without."""
    from cluster.lifecycle import ClusterState

    if target is not None:
        return target
    state = ClusterState.load(config)
    if state is None:
        print("no cluster recorded: run `confide up` or pass --target", file=sys.stderr)
        return None
    return f"localhost:{state.gateway_port}"


def _call(config: ConfideConfig, args: argparse.Namespace) -> int:
    target = _gateway_target(config, args.target)
    if target is None:
        return 2
    return asyncio.run(_stream_and_print(config, args, target))


def _demo(config: ConfideConfig, args: argparse.Namespace) -> int:
    from cluster import lifecycle
    from cluster.trace_receiver import TraceReceiver
    from serve.core.wavfile import read_wav

    read_wav(args.file)  # a file that is no call fails now, not after the cluster started
    config = config.with_overrides(gateway={"host": "127.0.0.1", "port": 0})
    _prepare_dialogue_model(config)
    _quiet_ray_serve()
    with contextlib.ExitStack() as stack:
        receiver = None
        if config.telemetry.traces == "off" and not args.no_trace:
            # No collector configured: receive the spans here and print the call's trace.
            receiver = stack.enter_context(TraceReceiver())
            config = config.with_overrides(
                telemetry={
                    "traces": "otlp-http",
                    "otlp_endpoint": receiver.http_endpoint,
                    "export_delay_ms": 200,
                }
            )
        print("Starting an embedded Ray cluster and deploying Confide ...", flush=True)
        with lifecycle.embedded(config) as port:
            print(f"Gateway (mTLS gRPC) on 127.0.0.1:{port}. Streaming {args.file.name} ...\n")
            call_id = f"demo-{uuid.uuid4().hex[:8]}"
            status = asyncio.run(_stream_and_print(config, args, f"localhost:{port}", call_id))
            if receiver is not None:
                _print_call_trace(receiver, whole=args.trace)
            if status == 0 and config.records.enabled:
                _print_stored_call(
                    config, args.tenant or config.tenants[0].name, call_id, f"localhost:{port}"
                )
            if status == 0 and args.file == CLINIC_CALL and config.redaction.enabled:
                status = _demo_card_call(config, args, f"localhost:{port}")
            _print_audit_summary(config, f"localhost:{port}")
            print("\nStopping the cluster.")
    return status


def _print_audit_summary(config: ConfideConfig, target: str) -> None:
    """The demo cluster scored against the security checklist (`confide audit`)."""
    from cluster.assessment import Status, assess

    report = assess(config, target)
    print("\nSecurity checklist (confide audit; --json for the evidence of every control):")
    for finding in report.findings:
        if finding.status is Status.FAIL:
            print(f"  FAIL  {finding.title}: {finding.evidence}\n        fix: {finding.fix}")
    print("  " + report.summary().replace("\n", "\n  "))


def _demo_card_call(config: ConfideConfig, args: argparse.Namespace, target: str) -> int:
    """A second, short call: the customer reads a card number in two turns; the gateway
    redacts it before the client, the record, the model or telemetry see it."""
    print(
        f"\nA second call ({CARD_CALL.name}): the customer reads a test card number in two"
        " turns. The gateway redacts every hypothesis before it goes anywhere:\n"
    )
    card_args = argparse.Namespace(**{**vars(args), "file": CARD_CALL, "no_agent": True})
    call_id = f"demo-card-{uuid.uuid4().hex[:8]}"
    status = asyncio.run(_stream_and_print(config, card_args, target, call_id))
    if status == 0 and config.records.enabled:
        _print_stored_call(config, args.tenant or config.tenants[0].name, call_id, target)
    return status


def _print_call_trace(receiver, whole: bool) -> None:
    """The StreamCall's per-stage latencies, or (`whole`) its trace span by span, as the
    collector received it (ids hashed, no text)."""
    import time

    from cluster.trace_receiver import stage_summary, trace_tree

    deadline = time.monotonic() + 15
    calls = []
    while time.monotonic() < deadline and not calls:
        calls = [s for s in receiver.spans if s.name == "/confide.v1.CallService/StreamCall"]
        time.sleep(0.5)
    if not calls:
        print("\nno trace arrived from the cluster", file=sys.stderr)
        return
    time.sleep(1.0)  # the replicas' last export batches
    trace_id = calls[-1].trace_id
    if whole:
        print(f"\ntrace {trace_id} (what an OpenTelemetry collector receives):")
        lines = trace_tree(receiver.spans, trace_id)
    else:
        print(f"\nlatency by stage (trace {trace_id[:16]}…; --trace prints every span):")
        lines = stage_summary(receiver.spans, trace_id)
    for line in lines:
        print(line)


def _print_stored_call(config: ConfideConfig, tenant: str, call_id: str, target: str) -> None:
    """What the record store kept of the call, read back as a supervisor would."""
    from cluster import records_cli

    print(f"\nThe stored record (confide records show {call_id} --tenant {tenant}):")
    args = argparse.Namespace(
        records_command="show", call_id=call_id, raw=False, purpose="demo", tenant=tenant, role=None
    )
    asyncio.run(records_cli.run_verb(config, args, target))


async def _stream_and_print(
    config: ConfideConfig, args: argparse.Namespace, target: str, call_id: str | None = None
) -> int:
    import grpc

    from cluster.client import aio_channel, stream_call, transcode
    from cluster.pki import DevPki
    from confide.v1 import call_pb2_grpc
    from serve.core.audio import Encoding
    from serve.core.scoring import word_error_rate
    from serve.core.wavfile import read_wav
    from serve.wire import role_name

    recording = read_wav(args.file)
    if args.encoding or args.rate:
        encoding = Encoding(args.encoding) if args.encoding else recording.encoding
        recording = transcode(recording, encoding, args.rate or recording.sample_rate)
    roles = (args.roles or "customer,agent").split(",")[: recording.channels]
    tenant = args.tenant or config.tenants[0].name
    pki = DevPki(config.state_path / "pki")
    tls = pki.client_tls(tenant)

    def show(event, sent_seconds: float) -> None:
        kind = event.WhichOneof("event")
        if kind == "transcript":
            segment = event.transcript
            label = "final  " if segment.is_final else f"interim {segment.stability:.2f}"
            print(
                f"[{sent_seconds:6.2f}s] {role_name(segment.role):8} {label:12} "
                f"{segment.start_seconds:6.2f}-{segment.end_seconds:6.2f}  {segment.text}",
                flush=True,
            )
        elif kind == "agent_reply" and event.agent_reply.is_final:
            reply = event.agent_reply
            cut = " (interrupted by the customer)" if reply.interrupted else ""
            print(
                f"[{sent_seconds:6.2f}s] AI agent replies to turn {reply.turn_index}{cut}: "
                f"{reply.text}",
                flush=True,
            )
        elif kind == "error":
            print(f"[{sent_seconds:6.2f}s] error {event.error.code}: {event.error.message}")
        elif kind == "summary":
            s = event.summary
            extras = [f"{s.redacted_entities} entities redacted"] if s.redacted_entities else []
            if s.paused_seconds:
                extras.append(f"{s.paused_seconds:.1f} s paused (PCI)")
            if s.recorded:
                extras.append("recorded (sealed)")
            print(
                f"\nsummary: {s.audio_seconds:.1f} s of audio, {s.turns} turns, "
                f"{s.final_segments} final segments" + "".join(f", {x}" for x in extras)
            )

    async with aio_channel(target, tls) as channel:
        try:
            result = await stream_call(
                call_pb2_grpc.CallServiceStub(channel),
                recording,
                roles,
                call_id=call_id,
                interim_results=not args.no_interim,
                realtime=not args.fast,
                on_event=show,
                agent_replies=config.dialogue.enabled and not args.no_agent,
            )
        except grpc.aio.AioRpcError as error:
            print(f"call failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    for index, role in enumerate(roles):
        turns = _reference(args.file).get(role)
        if turns:
            text = " ".join(turn["text"] for turn in turns)
            print(f"word error rate, {role}: {word_error_rate(text, result.text(index)):.1%}")
    return 0


def _reference(recording: Path) -> dict[str, list[dict[str, str]]]:
    """The reference transcript beside a sample call (examples/*.json), by role; empty
    for any other file there, such as a platform's own metadata."""
    try:
        reference = json.loads(recording.with_suffix(".json").read_text())["reference"]
        return {
            role: [{"text": str(turn["text"])} for turn in turns]
            for role, turns in reference.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _certs(config: ConfideConfig, args: argparse.Namespace) -> int:
    import re

    from cluster.pki import DevPki, node_hosts
    from serve.access.identity import spiffe_id
    from serve.access.roles import ROLES
    from serve.core.config import TENANT_NAME_PATTERN

    pki = DevPki.for_config(config)
    if args.certs_command == "rotate":
        path = pki.rotate_server(node_hosts() + list(config.gateway.certificate_hosts))
        print(f"new gateway certificate: {path} (used from the next connection on)")
        return 0
    if args.role not in ROLES:
        print(f"confide certs: --role must be one of {', '.join(ROLES)}", file=sys.stderr)
        return 2
    if not re.fullmatch(TENANT_NAME_PATTERN, args.tenant):
        print("confide certs: --tenant must be lower-case letters, digits, '-'", file=sys.stderr)
        return 2
    if args.certs_command == "revoke":
        if not pki.client_cert(args.tenant, args.role).exists():
            print(f"confide certs: no {args.role} certificate of {args.tenant}", file=sys.stderr)
            return 1
        serial = pki.revoke(args.tenant, args.role)
        print(f"revoked serial {serial:x}; the gateway refuses it from its next RPC ({pki.crl})")
        return 0
    path = pki.issue_tenant(args.tenant, config.trust_domain, args.role)
    print(f"certificate: {path}\nprivate key: {pki.client_key(args.tenant, args.role)} (0600)")
    print(f"identity: {spiffe_id(config.trust_domain, args.tenant, args.role)}")
    if args.tenant not in {t.name for t in config.tenants}:
        print(f"note: add tenant {args.tenant!r} to `tenants` in the config to authorize it")
    return 0


def _config(config: ConfideConfig, args: argparse.Namespace) -> int:
    import yaml

    if args.config_command == "defaults":
        print(documented_defaults(), end="")
    else:
        print(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), end="")
    return 0


def _ray_env(config: ConfideConfig, args: argparse.Namespace) -> int:
    import shlex

    from cluster.lifecycle import ray_client_environment

    for name, value in ray_client_environment(config).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _telemetry(config: ConfideConfig, args: argparse.Namespace) -> int:
    from serve.core.allowlist import IdentifierHasher
    from serve.core.telemetry_key import telemetry_key

    print(IdentifierHasher(telemetry_key(config.keys, config.state_path))(args.value))
    return 0


def _serve_config(config: ConfideConfig, args: argparse.Namespace) -> int:
    import yaml

    from cluster.deployment import serve_config

    config_file = args.config_file or (str(args.config.resolve()) if args.config else None)
    print(yaml.safe_dump(serve_config(config, config_file), sort_keys=False), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
