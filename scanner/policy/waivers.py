"""Waivers: findings a named person accepted, with a reason and an expiry date.

The waivers file is reviewed like code (as detect-secrets' baseline or `.trivyignore`). An entry
names a finding by its fingerprint, or by rule, person and a path glob:

```yaml
waivers:
  - fingerprint: 3c0c5ef0d69e4c4225ffc1c64b7b95a
    reason: Actor contract 2026-14 covers training use
    approved_by: Jane Doe (DPO)
    expires: 2027-01-31
  - rule: LK001
    person: unknown-3          # optional; subject ids work too
    path: "archive/2019/**"    # optional; glob relative to the scan root
    reason: Archive is being deleted under ticket PRIV-88
    approved_by: Sam Lee
    expires: 2026-12-31
```

A waiver in force moves the findings it matches to the suppressed list (shown in every output,
never failing the build). An expired waiver suppresses nothing and is itself a finding (LK010).
An entry that matches no finding is reported as a warning, so stale waivers get cleaned up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scanner.media.fileformat import Problem, line_of, load_yaml_model
from scanner.models import Finding, SuppressedFinding, Waiver
from scanner.policy.rules import RULES_BY_ID, WAIVER_EXPIRED, fingerprint, relative_path


class WaiverEntry(BaseModel):
    """One waiver as written: the finding it accepts (a fingerprint, or a rule with optional
    person and path glob), the reason, who approved it and until when.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    fingerprint: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    rule: str | None = None
    person: str | None = None
    path: str | None = None
    reason: str = Field(min_length=3)
    approved_by: str = Field(min_length=2)
    expires: dt.date

    @model_validator(mode="after")
    def _names_a_finding(self) -> "WaiverEntry":
        if self.fingerprint is None and self.rule is None:
            raise ValueError("a waiver needs a 'fingerprint', or a 'rule' (with optional 'person' and 'path')")
        return self


class WaiversDocument(BaseModel):
    """A waivers file as written: a list of waivers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    waivers: list[WaiverEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class WaiverFile:
    """A loaded waivers file: its waivers (with their lines) and warnings such as unknown rule ids."""

    path: Path
    waivers: tuple[Waiver, ...]
    warnings: tuple[Problem, ...] = ()


def load_waivers(path: Path) -> WaiverFile:
    """Read a waivers file; raise FileFormatError listing its problems by line."""
    path = Path(path)
    document, root = load_yaml_model(path, WaiversDocument)
    waivers = []
    warnings = []
    for i, entry in enumerate(document.waivers):
        line = line_of(root, ("waivers", i))
        if entry.rule is not None and entry.rule not in RULES_BY_ID:
            warnings.append(Problem(path, line_of(root, ("waivers", i, "rule")), f"waivers.{i}.rule",
                                    f"unknown rule id '{entry.rule}'", is_error=False))
        waivers.append(Waiver(
            reason=entry.reason, approved_by=entry.approved_by, expires=entry.expires.isoformat(),
            fingerprint=entry.fingerprint, rule_id=entry.rule, person_id=entry.person, path_glob=entry.path,
            line=line,
        ))
    return WaiverFile(path, tuple(waivers), tuple(warnings))


@dataclass
class WaiverOutcome:
    """Findings split by waivers: still open (expired-waiver findings included) and suppressed, with warnings."""

    findings: list[Finding]  # still open, expired-waiver findings included
    suppressed: list[SuppressedFinding]
    warnings: list[str]


def apply_waivers(
    findings: list[Finding], waivers: WaiverFile, on: dt.date, root: Path | None = None
) -> WaiverOutcome:
    """Split `findings` into open and suppressed ones; expired waivers become findings."""
    open_findings: list[Finding] = []
    suppressed: list[SuppressedFinding] = []
    used: set[int] = set()
    active = [(i, w) for i, w in enumerate(waivers.waivers) if dt.date.fromisoformat(w.expires) >= on]
    for finding in findings:
        match = next(((i, w) for i, w in active if _matches(w, finding, root)), None)
        if match is None:
            open_findings.append(finding)
        else:
            used.add(match[0])
            suppressed.append(SuppressedFinding(finding, match[1]))

    warnings = [str(w) for w in waivers.warnings]
    for i, waiver in enumerate(waivers.waivers):
        where = f"{waivers.path}:{waiver.line}" if waiver.line else str(waivers.path)
        if dt.date.fromisoformat(waiver.expires) < on:
            open_findings.append(_expired_finding(waiver, where, waivers.path))
        elif i not in used:
            warnings.append(f"{where}: warning: waiver matches no finding of this scan (remove it if it is stale)")
    return WaiverOutcome(open_findings, suppressed, warnings)


def _matches(waiver: Waiver, finding: Finding, root: Path | None) -> bool:
    if waiver.fingerprint is not None:
        return waiver.fingerprint == finding.fingerprint
    if waiver.rule_id != finding.rule_id:
        return False
    if waiver.person_id is not None and waiver.person_id not in (finding.person_id, finding.subject_id):
        return False
    if waiver.path_glob is not None:
        return any(_glob(relative_path(p, root), waiver.path_glob) for p in finding.recordings)
    return True


def _glob(relative: str, pattern: str) -> bool:
    return fnmatchcase(relative, pattern) or fnmatchcase(relative, pattern.replace("**/", ""))


def _expired_finding(waiver: Waiver, where: str, waivers_path: Path) -> Finding:
    rule = WAIVER_EXPIRED
    target = waiver.fingerprint or " ".join(
        part for part in (waiver.rule_id, waiver.person_id, waiver.path_glob) if part
    )
    return Finding(
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        title=rule.title,
        message=(
            f"The waiver at {where} for {target} expired on {waiver.expires} "
            f"(approved by {waiver.approved_by}: {waiver.reason})."
        ),
        remedy=rule.remedy,
        person_id=waiver.person_id,
        subject_id=None,
        recordings=[waivers_path],
        time_ranges={},
        evidence=[f"waiver: {target}", f"expired {waiver.expires}"],
        fingerprint=fingerprint(rule.id, "", f"{target}|{waiver.expires}", []),
    )

