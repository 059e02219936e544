"""What Confide deploys onto Ray: the Serve application with the gateway's TLS files,
and the same application as a Serve config document (`confide serve-config`) whose
import path, `cluster.deployment:app_builder`, `serve deploy` and KubeRay call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.serve import Application

from cluster.pki import DevPki
from serve.app import APP_NAME, SERVE_START_OPTIONS, build_app, deployment_options
from serve.core.config import ConfideConfig, TlsFiles, load_config


def gateway_tls(config: ConfideConfig) -> TlsFiles:
    """The configured PEM files, or the development PKI (created if missing)."""
    if config.gateway.tls is not None:
        return config.gateway.tls
    pki = DevPki.for_config(config)
    return pki.gateway_tls()


def app_builder(args: dict[str, Any]) -> Application:
    """Serve config entry point: `args: {config: /path/to/confide.yaml}` (optional)."""
    path = args.get("config")
    config = load_config(Path(path) if path else None)
    return build_app(config, gateway_tls(config))


def serve_config(config: ConfideConfig, config_file: str | None) -> dict[str, Any]:
    """A Serve config document for `serve deploy` or a KubeRay RayService: the
    application, with each deployment's options derived from the typed config (the same
    options build_app sets, so the file shows what will run). config_file is where the
    Confide config will be readable on the cluster's nodes."""
    application = {
        "name": APP_NAME,
        "import_path": "cluster.deployment:app_builder",
        "args": {"config": config_file} if config_file else {},
        "deployments": deployment_options(config),
    }
    return {**SERVE_START_OPTIONS, "applications": [application]}
