"""The Node.js example client (examples/clients/node), written from the proto and the
README alone, streams the two-channel sample over mTLS to a gateway on port 0 (the
transcriber is the unit tests' stand-in: this is about the contract, not the model)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from serve.core.config import ConfideConfig
from serve.sealed import PayloadCodec
from tests.conftest import EXAMPLES, ROOT, TRUST_DOMAIN
from tests.unit.test_call_service import Transcriber, serving

pytestmark = pytest.mark.integration

CLIENT = ROOT / "examples" / "clients" / "node"


@pytest.fixture(scope="module")
def node_client():
    if shutil.which("node") is None:
        pytest.fail("node is not installed: `make setup` installs it")
    if not (CLIENT / "node_modules" / "@grpc" / "grpc-js").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=CLIENT,
            check=True,
            timeout=300,
        )
    return CLIENT / "client.js"


def _run(config, test_pki, client_name: str, node_client, *extra: str, node_flags=()):
    codec = PayloadCodec.build(config.keys, config.state_path)
    tls = test_pki.clients[client_name]

    async def scenario():
        async with serving(config, test_pki, codec, Transcriber(codec)) as (running, _):
            process = await asyncio.create_subprocess_exec(
                "node", *node_flags, str(node_client), "--target", f"127.0.0.1:{running.port}",
                "--server-name", "localhost", "--ca", str(tls.ca), "--cert", str(tls.cert),
                "--key", str(tls.key), "--fast", *extra,
                str(EXAMPLES / "two_channel_mulaw_8k.wav"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, err = await asyncio.wait_for(process.communicate(), 120)
            return process.returncode, out.decode(), err.decode()

    return asyncio.run(scenario())


@pytest.fixture
def config(tmp_path) -> ConfideConfig:
    return ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "trust_domain": TRUST_DOMAIN,
            "tenants": [{"name": "acme"}],
            "gateway": {"host": "127.0.0.1", "port": 0},
            "redaction": {"enabled": False},
        }
    )


def test_the_node_client_streams_a_call_and_prints_its_events(config, test_pki, node_client):
    code, out, err = _run(config, test_pki, "acme", node_client)
    assert code == 0, err
    finals = [line for line in out.splitlines() if " final " in line]
    assert len(finals) >= 5
    assert {"customer", "agent"} <= {line.split("] ", 1)[1].split()[0] for line in finals}
    assert "summary:" in out and "status: OK" in out


def test_the_node_client_shows_a_refusal_by_its_status(config, test_pki, node_client):
    code, out, _ = _run(config, test_pki, "initech", node_client)  # not a configured tenant
    assert code == 1 and "status: PERMISSION_DENIED" in out


@pytest.mark.parametrize("minimum, status", [("1.2", "OK"), ("1.3", "UNAUTHENTICATED")])
def test_a_tls_1_2_client_is_refused_where_the_gateway_requires_1_3(
    config, test_pki, node_client, minimum, status
):
    """Node's --tls-max-v1.2 makes a real gRPC client that cannot speak TLS 1.3."""
    config = config.with_overrides(gateway={"min_tls_version": minimum})
    code, out, err = _run(config, test_pki, "acme", node_client, node_flags=["--tls-max-v1.2"])
    assert f"status: {status}" in out, out + err
    assert code == (0 if status == "OK" else 1)
    if status != "OK":
        assert "TLSv1.2 is below the gateway's minimum" in out
