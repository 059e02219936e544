"""Fixtures of the gateway's unit tests (test_call_service.py and the tests built on its
stand-ins): a one-tenant config on port 0 and its payload codec."""

from __future__ import annotations

import pytest

from serve.core.config import ConfideConfig
from serve.sealed import PayloadCodec
from tests.conftest import TRUST_DOMAIN


@pytest.fixture
def config(tmp_path) -> ConfideConfig:
    return ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "trust_domain": TRUST_DOMAIN,
            "tenants": [{"name": "acme"}],
            "gateway": {"host": "127.0.0.1", "port": 0, "max_concurrent_calls": 2},
        }
    )


@pytest.fixture
def codec(config) -> PayloadCodec:
    return PayloadCodec.build(config.keys, config.state_path)
