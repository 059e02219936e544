"""A scored assessment: one finding per control, printed as lines or JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class Finding:
    control: str
    """Dotted id, e.g. "transmission.mtls_required"."""
    group: str
    title: str
    requirements: tuple[str, ...]
    status: Status
    evidence: str
    """What was measured or read, never a payload."""
    fix: str = ""
    """For a fail: what to change."""


@dataclass(frozen=True)
class Report:
    findings: tuple[Finding, ...]

    @property
    def score(self) -> float:
        """Percent of the controls that apply which pass."""
        applied = [f for f in self.findings if f.status is not Status.NOT_APPLICABLE]
        if not applied:
            return 100.0
        return 100 * sum(f.status is Status.PASS for f in applied) / len(applied)

    def count(self, status: Status) -> int:
        return sum(f.status is status for f in self.findings)

    def failed(self) -> list[str]:
        return [f.control for f in self.findings if f.status is Status.FAIL]

    def as_json(self) -> str:
        return json.dumps(
            {
                "score": round(self.score, 1),
                "note": NOT_A_CERTIFICATION,
                "controls": [
                    {
                        "id": f.control,
                        "group": f.group,
                        "title": f.title,
                        "requirements": list(f.requirements),
                        "status": f.status.value,
                        "evidence": f.evidence,
                        "fix": f.fix or None,
                    }
                    for f in self.findings
                ],
            },
            indent=2,
        )

    def as_text(self) -> str:
        lines, group = [], None
        for finding in self.findings:
            if finding.group != group:
                group = finding.group
                lines.append(f"\n{group}")
            lines.append(f"  {finding.status.value.upper():4}  {finding.title}: {finding.evidence}")
            if finding.fix:
                lines.append(f"        fix: {finding.fix}")
        lines.append("")
        lines.append(self.summary())
        return "\n".join(lines).lstrip("\n")

    def summary(self) -> str:
        return (
            f"score {self.score:.0f}%: {self.count(Status.PASS)} pass, "
            f"{self.count(Status.FAIL)} fail, {self.count(Status.NOT_APPLICABLE)} not applicable"
            + (f" (failed: {', '.join(self.failed())})" if self.failed() else "")
            + f"\n{NOT_A_CERTIFICATION}"
        )


NOT_A_CERTIFICATION = (
    "A score is evidence for an assessor about this deployment, not a certification."
)
