"""What a scan decides: findings, waivers that accept them, and the scan result the writers render.

Made by `scanner.policy` (findings, waivers, recording contexts) and `scanner.pipeline.scan`
(`ScanResult`); read by the outputs, the store and the library API.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from scanner.models.analysis import RecordingAnalysis
from scanner.models.common import Level, TimeRange
from scanner.models.people import Person


@dataclass
class Finding:
    """A policy violation with everything needed to act on it."""

    rule_id: str
    rule_name: str
    severity: Level
    title: str
    message: str
    remedy: str
    person_id: str | None
    subject_id: str | None
    recordings: list[Path]
    time_ranges: dict[str, list[TimeRange]]  # recording path -> ranges
    evidence: list[str]
    fingerprint: str
    # the purposes a consent finding is about (all the recordings' purposes for an unknown person);
    # empty for findings about no purpose (unreadable recordings, retention, expired waivers)
    purposes: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecordingContext:
    """What the policy needs to know about one recording besides its content."""

    purposes: tuple[str, ...]
    recorded: dt.date | None = None
    retention_days: int | None = None
    metadata_source: str | None = None  # the file that said so, for the report


@dataclass(frozen=True)
class Waiver:
    """An accepted finding: who accepted it, why, and until when (see scanner/policy/waivers.py)."""

    reason: str
    approved_by: str
    expires: str  # ISO date
    fingerprint: str | None = None
    rule_id: str | None = None
    person_id: str | None = None
    path_glob: str | None = None
    line: int | None = None  # where the waiver stands in its file


@dataclass
class SuppressedFinding:
    """A finding a waiver in force accepts: listed in every output, never failing the build."""

    finding: Finding
    waiver: Waiver


@dataclass
class SkippedFile:
    """A file found while walking a folder that is not media (kept so nothing vanishes silently)."""

    path: Path
    reason: str


@dataclass
class ScanResult:
    """Everything one scan decided, ready for the report writers."""

    scan_id: str
    started_at: str
    finished_at: str
    inputs: list[str]
    options: dict
    purposes: list[str]
    as_of: str
    consent_file: str | None
    consent_sha256: str | None
    recordings: list[RecordingAnalysis]
    people: list[Person]
    findings: list[Finding]
    fail_on: Level
    skipped: list[SkippedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    root: Path | None = None
    suppressed: list[SuppressedFinding] = field(default_factory=list)
    show_from: Level = Level.LOW  # findings below this severity are left out of the outputs
    contexts: dict[Path, RecordingContext] = field(default_factory=dict)

    def shown_findings(self) -> list[Finding]:
        """Findings at or above `show_from`: what the outputs list (failing is decided separately)."""
        return [f for f in self.findings if f.severity >= self.show_from]

    def failing_findings(self) -> list[Finding]:
        """Findings at or above the `fail_on` level (`none` fails nothing)."""
        if self.fail_on is Level.NONE:
            return []
        return [f for f in self.findings if f.severity >= self.fail_on]
