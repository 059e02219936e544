"""KMS calls per call minute, with and without the per-call data-key cache.

The gateway's mTLS server in-process, with the transcriber and dialogue stand-ins of the
unit tests (real sealing on both sides of every handle, no models), the records path
to a real SQLite store, and AWS KMS as moto emulates it in-process; every KMS request
is counted by botocore's event hook. The two-channel sample call is streamed (as fast
as it goes) with interim results and agent replies, once per variant, in one run.

    python -m loadtests.kms_calls [--out DIR]

Prints a table and writes kms_calls.csv.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from collections import Counter
from pathlib import Path

from loadtests.report import report

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


async def _one_call(cache_seconds: float, state: Path, kms_client, calls: Counter) -> float:
    from cluster.client import aio_channel, stream_call
    from cluster.pki import DevPki
    from confide.v1 import call_pb2_grpc
    from serve.boundary import PayloadBoundary
    from serve.core.allowlist import IdentifierHasher
    from serve.core.aws_kms import AwsKmsKeyProvider
    from serve.core.config import ConfideConfig
    from serve.core.data_keys import data_key_cache
    from serve.core.sealing import Sealer
    from serve.core.wavfile import read_wav
    from serve.records.codec import RecordCodec
    from serve.records.recorder import RecordWriter
    from serve.records.spool import Spool
    from serve.records.store import open_store
    from serve.sealed import PayloadCodec
    from serve.server import start_server
    from serve.telemetry import GatewayTelemetry
    from tests.unit.test_call_service import Dialogue, Recorder, Transcriber

    config = ConfideConfig.model_validate(
        {
            "state_dir": str(state),
            "gateway": {"host": "127.0.0.1", "port": 0},
            "redaction": {"enabled": False},
            "keys": {"data_key_cache_seconds": cache_seconds},
        }
    )
    provider = AwsKmsKeyProvider(kms_client)

    def sealer() -> Sealer:  # each process of a deployment has its own cache
        return Sealer(provider, data_keys=data_key_cache(config.keys))

    gateway_sealer = sealer()
    hasher = IdentifierHasher(os.urandom(32))
    replica_codec = PayloadCodec(sealer(), hasher)
    store = open_store(config.records, config.state_path)
    recorder = Recorder(RecordWriter(store, Spool(state / "spool", 1 << 24)))
    boundary = PayloadBoundary(
        PayloadCodec(gateway_sealer, hasher),
        transcriber=Transcriber(replica_codec),
        dialogue=Dialogue(replica_codec, deltas=tuple(f" word{n}" for n in range(24))),
        recorder=recorder,
        records=RecordCodec(gateway_sealer),
        forget=gateway_sealer.forget,
    )
    pki = DevPki.ensure(state, ["demo"], config.trust_domain, ["localhost", "127.0.0.1"])
    running = await start_server(
        config,
        pki.gateway_tls(),
        boundary,
        GatewayTelemetry.disabled(hasher),
    )
    recording = read_wav(EXAMPLES / "two_channel_mulaw_8k.wav")
    calls.clear()
    try:
        async with aio_channel(f"localhost:{running.port}", pki.client_tls("demo")) as channel:
            await stream_call(
                call_pb2_grpc.CallServiceStub(channel),
                recording,
                ["customer", "agent"],
                interim_results=True,
                realtime=False,
                agent_replies=True,
            )
    finally:
        await running.stop(0)
        store.close()
    return recording.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("loadtests/results"))
    args = parser.parse_args()
    import boto3
    from moto import mock_aws

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    rows = []
    with mock_aws():
        client = boto3.client("kms", region_name="eu-west-1")
        counted: Counter = Counter()
        client.meta.events.register(
            "before-call.kms.*", lambda model, **_: counted.update([model.name])
        )
        with tempfile.TemporaryDirectory() as tmp:
            for label, seconds in (
                ("off (a data key per blob)", 0.0),
                ("on (per call and purpose)", 60.0),
            ):
                audio = asyncio.run(_one_call(seconds, Path(tmp) / label[:3], client, counted))
                total = sum(counted.values())
                rows.append(
                    {
                        "data_key_cache": label,
                        "kms_calls": total,
                        "per_call_minute": round(total / (audio / 60), 1),
                        "by_operation": ";".join(f"{k}={v}" for k, v in sorted(counted.items())),
                    }
                )
    report(rows, args.out, "kms_calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
