"""The Confide Serve application, built from the one typed configuration.

`build_app` is used by `confide up` and the tests; `app_builder` is the import path for
`serve deploy` / `serve run` with a Serve config file (`confide serve-config`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.serve import Application

from cluster.config import ConfideConfig, TranscriberConfig, load_config
from serve import dialogue, gateway, transcriber
from serve.server import TlsFiles
from serve.whisper_engine import TranscriptionEngine, WhisperEngine

APP_NAME = "confide"


def tls_files(config: ConfideConfig) -> TlsFiles:
    """The configured PEM files, or the development PKI (created if missing)."""
    tls = config.gateway.tls
    if tls.server_cert and tls.server_key and tls.client_ca:
        return TlsFiles(tls.server_cert, tls.server_key, tls.client_ca)
    from cluster.pki import DevPki

    pki = DevPki.ensure(config.state_path, [t.name for t in config.tenants], config.trust_domain)
    return TlsFiles(pki.server_cert, pki.server_key, pki.ca_cert)


def build_app(
    config: ConfideConfig,
    tls: TlsFiles | None = None,
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
    return gateway.Gateway.options(**gateway.serve_options(config.gateway)).bind(
        whisper, config, tls or tls_files(config), llm
    )


def app_builder(args: dict[str, Any]) -> Application:
    """Serve config entry point: `args: {config: /path/to/confide.yaml}` (optional)."""
    path = args.get("config")
    return build_app(load_config(Path(path) if path else None))


def serve_config(config: ConfideConfig, config_file: str | None) -> dict[str, Any]:
    """A Serve config document for `serve deploy` or a KubeRay RayService: the
    application, with each deployment's options derived from the typed config (the same
    options build_app sets, so the file shows what will run). config_file is where the
    Confide config will be readable on the cluster's nodes."""
    from cluster.lifecycle import SERVE_START_OPTIONS

    deployments = [
        {"name": "Gateway", **gateway.serve_options(config.gateway)},
        {"name": "Transcriber", **transcriber.serve_options(config.transcriber)},
    ]
    if config.dialogue.enabled:
        deployments.append({"name": "Dialogue", **dialogue.serve_options(config)})
    application = {
        "name": APP_NAME,
        "import_path": "serve.app:app_builder",
        "args": {"config": config_file} if config_file else {},
        "deployments": deployments,
    }
    return {**SERVE_START_OPTIONS, "applications": [application]}
