"""Confide's control plane: configuration, PKI, cluster lifecycle and the `confide` CLI."""

from serve.core.config import ConfideConfig, load_config

__all__ = ["ConfideConfig", "load_config"]
