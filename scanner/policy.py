"""Policy: check every person and recording against the consent records and raise findings.

Each rule has a stable id (used by CI dashboards, waivers and diffs between scans), a title, a
default severity and a remedy. Findings carry a fingerprint built from the rule, the person and
the recordings, so the same problem keeps the same fingerprint across reruns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from scanner.consent import (
    ConsentDecision,
    ConsentOutcome,
    ConsentRecords,
    decide_consent,
)
from scanner.models import (
    Finding,
    Level,
    Modality,
    Person,
    RecordingAnalysis,
    RecordingStatus,
)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    title: str
    severity: Level
    remedy: str


NO_CONSENT = Rule(
    "LK001", "no-consent", "No consent on record",
    Level.HIGH,
    "Obtain consent for the purpose from this person, or redact their face and voice, "
    "or remove the recordings from the release.",
)
CONSENT_WITHDRAWN = Rule(
    "LK002", "consent-withdrawn", "Consent withdrawn",
    Level.HIGH,
    "Stop using the recordings for this purpose: remove them from the release or redact the person; "
    "consider deleting the material as the withdrawal requires.",
)
CONSENT_EXPIRED = Rule(
    "LK003", "consent-expired", "Consent expired",
    Level.MEDIUM,
    "Renew the consent before using the recordings for this purpose, or remove or redact them.",
)
PURPOSE_NOT_COVERED = Rule(
    "LK004", "purpose-not-covered", "Purpose not covered by consent",
    Level.MEDIUM,
    "Ask the person to consent to this purpose, or use the recordings only for the purposes granted.",
)
RISK_ABOVE_ACCEPTED = Rule(
    "LK005", "risk-above-accepted", "Cloning risk above the accepted level",
    Level.MEDIUM,
    "Reduce the material (remove the recordings that contribute most, lower resolution, redact) "
    "or obtain consent to the higher risk.",
)
UNREADABLE_RECORDING = Rule(
    "LK006", "unreadable-recording", "Recording could not be read",
    Level.HIGH,
    "Repair or re-export the file and scan it again; until then the scan cannot show it is compliant.",
)

RULES: tuple[Rule, ...] = (
    NO_CONSENT, CONSENT_WITHDRAWN, CONSENT_EXPIRED, PURPOSE_NOT_COVERED, RISK_ABOVE_ACCEPTED,
    UNREADABLE_RECORDING,
)

_RULE_FOR_OUTCOME = {
    ConsentOutcome.NO_CONSENT: NO_CONSENT,
    ConsentOutcome.WITHDRAWN: CONSENT_WITHDRAWN,
    ConsentOutcome.EXPIRED: CONSENT_EXPIRED,
    ConsentOutcome.PURPOSE_NOT_COVERED: PURPOSE_NOT_COVERED,
}


def check_consent(
    people: list[Person],
    recordings: list[RecordingAnalysis],
    consent: ConsentRecords,
    purposes: list[str],
    on: dt.date,
    root: Path | None = None,
) -> list[Finding]:
    """All findings of a scan: consent problems per person and unreadable recordings.

    `root` makes recording paths in fingerprints relative, so moving an archive keeps them stable.
    """
    findings: list[Finding] = []
    for rec in recordings:
        if rec.status is RecordingStatus.UNREADABLE:
            findings.append(_unreadable_finding(rec, root))
    for person in people:
        findings.extend(_person_findings(person, consent, purposes, on, root))
    findings.sort(key=lambda f: (-f.severity.rank, f.rule_id, f.person_id or "", str(f.recordings)))
    return findings


def _person_findings(
    person: Person, consent: ConsentRecords, purposes: list[str], on: dt.date, root: Path | None
) -> list[Finding]:
    subject = consent.subject(person.subject_id) if person.subject_id else None
    decisions = [decide_consent(subject, purpose, on) for purpose in purposes]
    tier = person.risk.combined_tier if person.risk else Level.NONE
    who = _who(person)
    findings = []

    by_outcome: dict[ConsentOutcome, list[ConsentDecision]] = {}
    for decision in decisions:
        by_outcome.setdefault(decision.outcome, []).append(decision)

    for outcome, rule in _RULE_FOR_OUTCOME.items():
        if outcome not in by_outcome:
            continue
        purpose_list = ", ".join(d.purpose for d in by_outcome[outcome])
        grant = by_outcome[outcome][0].grant
        if outcome is ConsentOutcome.NO_CONSENT:
            detail = (
                "is not enrolled in the consent records" if subject is None
                else "has no consent grant in force"
            )
            message = f"{who} {detail}; recordings are used for: {purpose_list}."
        elif outcome is ConsentOutcome.WITHDRAWN:
            message = f"{who} withdrew consent for {purpose_list} on {grant.withdrawn.isoformat()}."
        elif outcome is ConsentOutcome.EXPIRED:
            message = f"{who}'s consent for {purpose_list} expired on {grant.expires.isoformat()}."
        else:
            granted = sorted({p for g in subject.grants for p in g.purposes})
            message = f"{who} consented to {', '.join(granted)}, not to {purpose_list}."
        findings.append(_finding(rule, person, message, _severity(rule, tier), root, purposes=purpose_list))

    for decision in by_outcome.get(ConsentOutcome.GRANTED, []):
        if decision.grant is None or decision.grant.max_risk is None:
            continue
        for modality, measured in ((Modality.FACE, person.risk.face_tier if person.risk else Level.NONE),
                                   (Modality.VOICE, person.risk.voice_tier if person.risk else Level.NONE)):
            accepted = decision.grant.max_risk.for_modality(modality)
            if accepted is not None and measured > accepted:
                message = (
                    f"{who}'s {modality.value} cloning risk is {measured.value}, above the {accepted.value} "
                    f"they accepted for {decision.purpose}."
                )
                findings.append(
                    _finding(RISK_ABOVE_ACCEPTED, person, message, RISK_ABOVE_ACCEPTED.severity, root,
                             purposes=f"{decision.purpose}:{modality.value}")
                )
    return findings


def _severity(rule: Rule, tier: Level) -> Level:
    # A person who cannot be identified or cloned from the material is a lesser problem.
    return Level.LOW if tier is Level.NONE else rule.severity


def _who(person: Person) -> str:
    if person.display_name:
        return f"{person.display_name} ({person.person_id})"
    return f"Unidentified person {person.person_id}"


def _finding(rule: Rule, person: Person, message: str, severity: Level, root: Path | None, purposes: str) -> Finding:
    recordings = person.recordings
    evidence = []
    if person.face:
        evidence.append(f"face: {person.face.tier.value}: " + "; ".join(person.face.reasons))
    if person.voice:
        evidence.append(f"voice: {person.voice.tier.value}: " + "; ".join(person.voice.reasons))
    if person.match:
        evidence.append(
            f"matched to subject '{person.match.subject_id}' by {person.match.modality.value} "
            f"(distance {person.match.distance:.3f}, confidence {person.match.confidence:.2f})"
        )
    return Finding(
        rule_id=rule.id,
        rule_name=rule.name,
        severity=severity,
        title=rule.title,
        message=message,
        remedy=rule.remedy,
        person_id=person.person_id,
        subject_id=person.subject_id,
        recordings=recordings,
        time_ranges={str(r): person.time_ranges_in(r) for r in recordings},
        evidence=evidence,
        fingerprint=_fingerprint(rule.id, person.person_id, purposes, recordings, root),
    )


def _unreadable_finding(rec: RecordingAnalysis, root: Path | None) -> Finding:
    return Finding(
        rule_id=UNREADABLE_RECORDING.id,
        rule_name=UNREADABLE_RECORDING.name,
        severity=UNREADABLE_RECORDING.severity,
        title=UNREADABLE_RECORDING.title,
        message=f"{rec.path} could not be read: {rec.error}",
        remedy=UNREADABLE_RECORDING.remedy,
        person_id=None,
        subject_id=None,
        recordings=[rec.path],
        time_ranges={},
        evidence=[f"sha256 {rec.sha256}", f"{rec.size_bytes} bytes"],
        fingerprint=_fingerprint(UNREADABLE_RECORDING.id, "", rec.sha256, [rec.path], root),
    )


def _fingerprint(rule_id: str, person_id: str, detail: str, recordings: list[Path], root: Path | None) -> str:
    def rel(p: Path) -> str:
        if root is not None:
            try:
                return p.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                pass
        return p.as_posix()

    key = "\x1f".join([rule_id, person_id, detail, *sorted(rel(p) for p in recordings)])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
