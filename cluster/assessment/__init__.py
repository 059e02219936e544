"""`confide audit`: the enterprise voice-AI security checklist, scored against the
running deployment.

    from cluster.assessment import assess
    report = assess(config, target="localhost:50051")
    print(report.as_text())

It probes the gateway's live listener (mTLS, a foreign certificate, TLS 1.2, plaintext),
reads Ray and Serve through the cluster (Ray's GCS with plaintext, the dashboard port,
the purge loop's last pass), verifies the audit log, and reads the configuration the
deployment runs with; each control in cluster/assessment/controls.py turns that into
pass / fail / not applicable with its evidence and fix. A score is evidence for an
assessor, not a certification.
"""

from __future__ import annotations

from cluster.assessment.controls import CONTROLS, Control
from cluster.assessment.observe import Observed, observe
from cluster.assessment.report import NOT_A_CERTIFICATION, Finding, Report, Status
from serve.core.config import ConfideConfig, TlsFiles

__all__ = [
    "CONTROLS",
    "NOT_A_CERTIFICATION",
    "Control",
    "Finding",
    "Observed",
    "Report",
    "Status",
    "assess",
    "score",
]


def assess(config: ConfideConfig, target: str | None, client: TlsFiles | None = None) -> Report:
    """Observe the deployment running with `config` (its gateway at `target`, Ray through
    this process's connection if any) and score every control."""
    return score(observe(config, target, client))


def score(seen: Observed) -> Report:
    return Report(tuple(control.assess(seen) for control in CONTROLS))
