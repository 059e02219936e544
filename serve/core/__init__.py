"""Confide's core: what every process shares, the CLI and each replica alike.

The typed config and the environment, the error hierarchy, the telemetry allowlist and
its HMAC key, envelope encryption with its key providers, audio codecs, WAV files and
word error rate. It imports nothing else of Confide and not Ray (import-linter checks
this in the test suite), so the operator's tools and the data plane build on it alike.
"""
