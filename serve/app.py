"""The Confide Serve application, built from the one typed configuration.

`build_app` binds the deployments; cluster/deployment.py deploys it (`confide up`, the
tests) or describes it in a Serve config file (`confide serve-config`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ray.serve import Application

from serve import dialogue, gateway, transcriber
from serve.core.config import ConfideConfig, TlsFiles, TranscriberConfig
from serve.records import purge_loop, recorder
from serve.whisper_engine import TranscriptionEngine, WhisperEngine

APP_NAME = "confide"
# Ray Serve's HTTP/gRPC proxies speak plaintext: Confide runs none, and the dashboard (if
# enabled) listens on loopback only. The gateway's mTLS port is the one way in.
SERVE_START_OPTIONS = {"proxy_location": "Disabled", "http_options": {"host": "127.0.0.1"}}


def build_app(
    config: ConfideConfig,
    tls: TlsFiles,
    transcription_engine: Callable[[TranscriberConfig], TranscriptionEngine] = WhisperEngine,
) -> Application:
    """The gateway bound to a transcriber and (when enabled) a dialogue deployment.
    `transcription_engine` builds each transcriber replica's engine."""
    whisper = transcriber.Transcriber.options(**transcriber.serve_options(config.transcriber)).bind(
        config, transcription_engine
    )
    llm = None
    if config.dialogue.enabled:
        model_dir = config.dialogue_model_dir
        if not (model_dir / "config.json").exists():
            raise FileNotFoundError(
                f"no dialogue model at {model_dir}: run `confide models prepare`"
            )
        llm = dialogue.Dialogue.options(**dialogue.serve_options(config)).bind(config)
    records = None
    if config.records.enabled:
        records = gateway.RecordDeployments(
            recorder.Recorder.options(**recorder.serve_options(config)).bind(config),
            purge_loop.PurgeLoop.options(**purge_loop.serve_options(config)).bind(config),
        )
    return gateway.Gateway.options(**gateway.serve_options(config.gateway)).bind(
        whisper, config, tls, llm, records
    )


def deployment_options(config: ConfideConfig) -> list[dict[str, Any]]:
    """Each deployment's Serve options as build_app sets them, for a Serve config file."""
    deployments = [
        {"name": "Gateway", **gateway.serve_options(config.gateway)},
        {"name": "Transcriber", **transcriber.serve_options(config.transcriber)},
    ]
    if config.dialogue.enabled:
        deployments.append({"name": "Dialogue", **dialogue.serve_options(config)})
    if config.records.enabled:
        deployments.append({"name": "Recorder", **recorder.serve_options(config)})
        deployments.append({"name": "PurgeLoop", **purge_loop.serve_options(config)})
    return deployments
