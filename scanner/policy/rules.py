"""Policy: check every person and recording against the consent records and raise findings.

Each rule has a stable id (used by CI dashboards, waivers and diffs between scans), a title, a
default severity and a remedy; the config file can change a severity or disable a rule. Findings
carry a fingerprint built from the rule, the person and the *content* of the recordings, so the same
problem keeps its fingerprint when files are renamed or unrelated recordings are added.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

from scanner.models import (
    Finding,
    Level,
    Modality,
    Person,
    RecordingAnalysis,
    RecordingContext,
    RecordingStatus,
    TimeRange,
    merge_ranges,
    timecode,
)
from scanner.policy.consent.records import ConsentOutcome, ConsentRecords, decide_consent
from scanner.policy.risk import DEFAULT_RUBRIC, Rubric, plan_reduction


@dataclass(frozen=True)
class Rule:
    """A policy rule: stable id (LKnnn), short name, title, default severity, remedy and description.

    The ids and names are a contract: waivers, SARIF and `likeness.toml` refer to rules by them.
    """

    id: str
    name: str
    title: str
    severity: Level
    remedy: str
    description: str


UNKNOWN_PERSON = Rule(
    "LK001", "unknown-person", "Unknown person",
    Level.HIGH,
    "Identify the person and obtain their consent, or redact their face and voice, or remove the "
    "recordings from the release.",
    "An identifiable face or voice that matches nobody in the consent records: nobody can show this "
    "person consented.",
)
CONSENT_WITHDRAWN = Rule(
    "LK002", "consent-withdrawn", "Consent withdrawn",
    Level.HIGH,
    "Stop using the recordings for this purpose: remove them from the release or redact the person; "
    "consider deleting the material as the withdrawal requires.",
    "The person withdrew the consent that covered this purpose.",
)
CONSENT_EXPIRED = Rule(
    "LK003", "consent-expired", "Consent expired",
    Level.MEDIUM,
    "Renew the consent before using the recordings for this purpose, or remove or redact them.",
    "The consent that covered this purpose has passed its expiry date.",
)
PURPOSE_NOT_COVERED = Rule(
    "LK004", "purpose-not-covered", "Purpose not covered by consent",
    Level.MEDIUM,
    "Ask the person to consent to this purpose, or use the recordings only for the purposes granted.",
    "The person consented to other purposes, not to this one.",
)
RISK_ABOVE_ACCEPTED = Rule(
    "LK005", "risk-above-accepted", "Cloning risk above the accepted level",
    Level.MEDIUM,
    "Reduce the material (remove the recordings that contribute most, lower resolution, redact) "
    "or obtain consent to the higher risk.",
    "Consent is in force, but the recordings hold more of the person's face or voice than the "
    "cloning risk they accepted.",
)
UNREADABLE_RECORDING = Rule(
    "LK006", "unreadable-recording", "Recording could not be read",
    Level.HIGH,
    "Repair or re-export the file and scan it again; until then the scan cannot show it is compliant.",
    "The file could not be decoded, so nobody can tell whose face or voice it holds.",
)
UNCONSENTED_FACE = Rule(
    "LK007", "unconsented-face", "Identifiable face without consent",
    Level.HIGH,
    "Obtain consent for the purpose, or blur or crop the face, or remove the recordings from the release.",
    "An enrolled person's identifiable face, with no consent on record for the purpose.",
)
UNCONSENTED_VOICE = Rule(
    "LK008", "unconsented-voiceprint", "Voiceprint without consent",
    Level.HIGH,
    "Obtain consent for the purpose, or remove or disguise the speech, or remove the recordings from the release.",
    "An enrolled person's identifiable voice, with no consent on record for the purpose.",
)
RETENTION_EXCEEDED = Rule(
    "LK009", "retention-exceeded", "Retention period exceeded",
    Level.MEDIUM,
    "Delete the recording (and its stored analysis with `likeness purge`) or document why it is still needed.",
    "The recording holds biometric identifiers and is older than its retention period "
    "(BIPA-style: destroy when the purpose is met or after a set period).",
)
WAIVER_EXPIRED = Rule(
    "LK010", "waiver-expired", "Waiver expired",
    Level.HIGH,
    "Review the waived finding: fix it, or renew the waiver with a new expiry date and approval.",
    "A waiver in the waivers file has passed its expiry date; the finding it accepted is open again.",
)
PARTIAL_RECORDING = Rule(
    "LK011", "partial-recording", "Recording only partly analysed",
    Level.MEDIUM,
    "Repair or re-export the file (or restore it from its source) and scan it again; until then "
    "nobody can tell whose face or voice the missing stretches hold.",
    "Part of the file could not be decoded (damaged data, a file that ends before its declared "
    "length): the stretches named were not analysed, so the scan cannot show they are compliant.",
)

RULES: tuple[Rule, ...] = (
    UNKNOWN_PERSON, CONSENT_WITHDRAWN, CONSENT_EXPIRED, PURPOSE_NOT_COVERED, RISK_ABOVE_ACCEPTED,
    UNREADABLE_RECORDING, UNCONSENTED_FACE, UNCONSENTED_VOICE, RETENTION_EXCEEDED, WAIVER_EXPIRED,
    PARTIAL_RECORDING,
)
RULES_BY_ID = {rule.id: rule for rule in RULES}

_RULE_FOR_OUTCOME = {
    ConsentOutcome.WITHDRAWN: CONSENT_WITHDRAWN,
    ConsentOutcome.EXPIRED: CONSENT_EXPIRED,
    ConsentOutcome.PURPOSE_NOT_COVERED: PURPOSE_NOT_COVERED,
}


@dataclass(frozen=True)
class PolicySettings:
    """Rule configuration (the config file's [policy] table).

    severities: rule id -> severity replacing the rule's default.
    disabled: rule ids that raise no findings.
    retention_days: default retention period of a recording; None keeps recordings forever.
        The default, three years, is the longest BIPA allows after the last interaction.
    """

    severities: dict[str, Level] = field(default_factory=dict)
    disabled: frozenset[str] = frozenset()
    retention_days: int | None = 3 * 365


@dataclass
class _Hits:
    """Where one person's consent for one outcome fails: the recordings and purposes involved."""

    recordings: list[RecordingAnalysis] = field(default_factory=list)
    purposes: list[str] = field(default_factory=list)
    detail: list[str] = field(default_factory=list)

    def add(self, rec: RecordingAnalysis, purpose: str, detail: str = "") -> None:
        if rec not in self.recordings:
            self.recordings.append(rec)
        if purpose not in self.purposes:
            self.purposes.append(purpose)
        if detail and detail not in self.detail:
            self.detail.append(detail)


def check_policy(
    people: list[Person],
    recordings: list[RecordingAnalysis],
    consent: ConsentRecords,
    contexts: dict[Path, RecordingContext],
    on: dt.date,
    settings: PolicySettings = PolicySettings(),
    root: Path | None = None,
    rubric: Rubric = DEFAULT_RUBRIC,
) -> list[Finding]:
    """All findings of a scan, severities and disabled rules applied, most severe first."""
    by_path = {rec.path: rec for rec in recordings}
    findings: list[Finding] = []
    for rec in recordings:
        if rec.status is RecordingStatus.UNREADABLE:
            findings.append(_unreadable_finding(rec))
        elif rec.status is RecordingStatus.PARTIAL and rec.coverage is not None:
            findings.append(_partial_finding(rec))
    for person in people:
        findings.extend(_person_findings(person, by_path, consent, contexts, on, root, rubric))
    findings.extend(_retention_findings(people, recordings, contexts, on, settings))
    findings = apply_settings(findings, settings)
    findings.sort(key=lambda f: (-f.severity.rank, f.rule_id, f.person_id or "", [str(r) for r in f.recordings]))
    return findings


def apply_settings(findings: list[Finding], settings: PolicySettings) -> list[Finding]:
    """Drop disabled rules and apply severity overrides (keeping the identity-based lowering)."""
    kept = []
    for finding in findings:
        if finding.rule_id in settings.disabled:
            continue
        override = settings.severities.get(finding.rule_id)
        if override is not None and finding.severity is RULES_BY_ID[finding.rule_id].severity:
            finding = replace(finding, severity=override)
        kept.append(finding)
    return kept


def _person_findings(
    person: Person,
    by_path: dict[Path, RecordingAnalysis],
    consent: ConsentRecords,
    contexts: dict[Path, RecordingContext],
    on: dt.date,
    root: Path | None,
    rubric: Rubric,
) -> list[Finding]:
    tier = person.risk.combined_tier if person.risk else Level.NONE
    recs = [by_path[p] for p in person.recordings if p in by_path]
    who_key = person_key(person, {p: rec.sha256 for p, rec in by_path.items()})
    if person.subject_id is None:
        message = (
            f"Unidentified person {person.person_id} is not in the consent records; the recordings are "
            f"used for: {', '.join(_purposes_of(recs, contexts))}."
        )
        severity = _lowered(UNKNOWN_PERSON.severity, tier)
        return [_finding(UNKNOWN_PERSON, person, recs, message, severity, "", who_key, _purposes_of(recs, contexts))]

    subject = consent.subject(person.subject_id)
    who = f"{person.display_name} ({person.person_id})" if person.display_name else person.person_id
    hits: dict[object, _Hits] = {}
    for rec in recs:
        relative = relative_path(rec.path, root)
        extra = consent.recording_grants(person.subject_id, relative, rec.sha256)
        for purpose in contexts.get(rec.path, _DEFAULT_CONTEXT).purposes:
            decision = decide_consent(subject, purpose, on, extra)
            if decision.outcome is ConsentOutcome.GRANTED:
                for modality in _modalities_in(person, rec.path):
                    accepted = decision.grant.max_risk.for_modality(modality) if decision.grant.max_risk else None
                    measured = _tier(person, modality)
                    if accepted is not None and measured > accepted:
                        hits.setdefault((RISK_ABOVE_ACCEPTED, modality), _Hits()).add(
                            rec, purpose, f"{modality.value}: {measured.value} > {accepted.value}"
                        )
            elif decision.outcome is ConsentOutcome.NO_CONSENT:
                for modality in _modalities_in(person, rec.path):
                    rule = UNCONSENTED_FACE if modality is Modality.FACE else UNCONSENTED_VOICE
                    hits.setdefault((rule, modality), _Hits()).add(rec, purpose)
            else:
                date = decision.grant.withdrawn if decision.outcome is ConsentOutcome.WITHDRAWN else (
                    decision.grant.expires if decision.grant else None
                )
                hits.setdefault((_RULE_FOR_OUTCOME[decision.outcome], None), _Hits()).add(
                    rec, purpose, date.isoformat() if date else ""
                )

    findings = []
    for (rule, modality), hit in hits.items():
        purposes = ", ".join(hit.purposes)
        if rule is RISK_ABOVE_ACCEPTED:
            measured, accepted = hit.detail[0].split(": ")[1].split(" > ")
            message = (
                f"{who}'s {modality.value} cloning risk is {measured}, above the {accepted} they accepted "
                f"for {purposes}."
            )
            plan = plan_reduction(person, modality, Level(accepted), rubric)
            if plan is not None:
                message += f" To meet it: {plan.describe()}."
            severity = rule.severity
        elif rule in (UNCONSENTED_FACE, UNCONSENTED_VOICE):
            message = f"{who} has no consent on record for {purposes}, and their {modality.value} is identifiable."
            severity = _lowered(rule.severity, _tier(person, modality))
        elif rule is CONSENT_WITHDRAWN:
            message = f"{who} withdrew consent for {purposes} on {', '.join(hit.detail)}."
            severity = _lowered(rule.severity, tier)
        elif rule is CONSENT_EXPIRED:
            message = f"{who}'s consent for {purposes} expired on {', '.join(hit.detail)}."
            severity = _lowered(rule.severity, tier)
        else:
            granted = sorted({p for g in (subject.grants if subject else []) for p in g.purposes})
            message = f"{who} consented to {', '.join(granted) or 'nothing'}, not to {purposes}."
            severity = _lowered(rule.severity, tier)
        detail = f"{purposes}|{modality.value if modality else ''}"
        findings.append(_finding(rule, person, hit.recordings, message, severity, detail, who_key, hit.purposes))
    return findings


_DEFAULT_CONTEXT = RecordingContext(("recording",))


def _purposes_of(recs: list[RecordingAnalysis], contexts: dict[Path, RecordingContext]) -> list[str]:
    return list(dict.fromkeys(p for rec in recs for p in contexts.get(rec.path, _DEFAULT_CONTEXT).purposes))


def _modalities_in(person: Person, recording: Path) -> list[Modality]:
    modalities = []
    if any(s.recording == recording for s in person.faces):
        modalities.append(Modality.FACE)
    if any(s.recording == recording for s in person.voices):
        modalities.append(Modality.VOICE)
    return modalities


def _tier(person: Person, modality: Modality) -> Level:
    if person.risk is None:
        return Level.NONE
    return person.risk.face_tier if modality is Modality.FACE else person.risk.voice_tier


def _lowered(severity: Level, tier: Level) -> Level:
    # A person who cannot be identified or cloned from the material is a lesser problem.
    return Level.LOW if tier is Level.NONE else severity


def _retention_findings(
    people: list[Person],
    recordings: list[RecordingAnalysis],
    contexts: dict[Path, RecordingContext],
    on: dt.date,
    settings: PolicySettings,
) -> list[Finding]:
    findings = []
    for rec in recordings:
        context = contexts.get(rec.path, _DEFAULT_CONTEXT)
        if rec.status is RecordingStatus.UNREADABLE or context.retention_days is None or context.recorded is None:
            continue
        present = [p for p in people if rec.path in p.recordings]
        if not present:
            continue
        keep_until = context.recorded + dt.timedelta(days=context.retention_days)
        if keep_until >= on:
            continue
        names = ", ".join(p.person_id for p in present)
        rule = RETENTION_EXCEEDED
        findings.append(Finding(
            rule_id=rule.id, rule_name=rule.name, severity=rule.severity, title=rule.title,
            message=(
                f"{rec.path} was recorded on {context.recorded.isoformat()} and kept past its "
                f"{context.retention_days}-day retention period (until {keep_until.isoformat()}); "
                f"it holds biometric identifiers of {names}."
            ),
            remedy=rule.remedy, person_id=None, subject_id=None, recordings=[rec.path],
            time_ranges={},
            evidence=[f"recording date from {context.metadata_source or 'metadata'}", f"sha256 {rec.sha256}"],
            fingerprint=fingerprint(rule.id, "", str(context.retention_days), [rec.sha256]),
        ))
    return findings


def _finding(
    rule: Rule, person: Person, recs: list[RecordingAnalysis], message: str, severity: Level, detail: str,
    who_key: str, purposes: list[str],
) -> Finding:
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
    paths = [rec.path for rec in recs]
    time_ranges: dict[str, list[TimeRange]] = {str(p): person.time_ranges_in(p) for p in paths}
    return Finding(
        rule_id=rule.id,
        rule_name=rule.name,
        severity=severity,
        title=rule.title,
        message=message,
        remedy=rule.remedy,
        person_id=person.person_id,
        subject_id=person.subject_id,
        recordings=paths,
        time_ranges=time_ranges,
        evidence=evidence,
        fingerprint=fingerprint(rule.id, who_key, detail, [rec.sha256 for rec in recs]),
        purposes=tuple(purposes),
    )


def _recording_finding(rule: Rule, rec: RecordingAnalysis, message: str, evidence: list[str],
                       time_ranges: dict[str, list[TimeRange]]) -> Finding:
    """A finding about one recording as a file (no person): unreadable, partly decoded."""
    return Finding(
        rule_id=rule.id,
        rule_name=rule.name,
        severity=rule.severity,
        title=rule.title,
        message=message,
        remedy=rule.remedy,
        person_id=None,
        subject_id=None,
        recordings=[rec.path],
        time_ranges=time_ranges,
        evidence=evidence,
        fingerprint=fingerprint(rule.id, "", "", [rec.sha256]),
    )


def _unreadable_finding(rec: RecordingAnalysis) -> Finding:
    return _recording_finding(UNREADABLE_RECORDING, rec, f"{rec.path} could not be read: {rec.error}",
                              [f"sha256 {rec.sha256}", f"{rec.size_bytes} bytes"], {})


def _partial_finding(rec: RecordingAnalysis) -> Finding:
    """LK011 for a recording decoded only in part: what was decoded of each stream, the stretches
    that were not (the finding's time ranges) and why."""
    coverage = rec.coverage
    shown = merge_ranges(coverage.missing, gap=1.0)  # neighbouring damage read as one stretch
    where = ", ".join(f"{timecode(r.start)}-{timecode(r.end)}" for r in shown[:5])
    if len(shown) > 5:
        where += f" and {len(shown) - 5} more"
    message = (f"{rec.path} was only partly analysed: {coverage.analysed_s:.1f} of {coverage.duration_s:.1f} s; "
               f"not analysed: {where or 'damaged packets'} ({'; '.join(coverage.causes)})")
    evidence = [describe_stream_coverage(stream) for stream in coverage.streams]
    evidence += [f"cause: {cause}" for cause in coverage.causes] + [f"sha256 {rec.sha256}"]
    return _recording_finding(PARTIAL_RECORDING, rec, message, evidence, {str(rec.path): list(coverage.missing)})


def describe_stream_coverage(stream) -> str:
    """One line on one stream's coverage: 'video: 19.8 of 20.0 s decoded (99.0%), 20 of 20 sampled
    frames, 4 damaged packets rejected'."""
    if stream.kind == "image":
        return f"image: {'decoded' if stream.frames_decoded else 'not decoded'}"
    share = 100.0 * stream.decoded_s / stream.duration_s if stream.duration_s else 100.0
    parts = [f"{stream.kind}: {stream.decoded_s:.1f} of {stream.duration_s:.1f} s decoded ({share:.1f}%)"]
    if stream.frames_planned is not None:
        parts.append(f"{stream.frames_decoded} of {stream.frames_planned} sampled frames")
    if stream.errors:
        parts.append(f"{stream.errors} damaged packet{'s' if stream.errors != 1 else ''} rejected")
    return ", ".join(parts)


def person_key(person: Person, content_hash: dict[Path, str]) -> str:
    """An identity for fingerprints that survives renames: the subject, or where an unknown was first seen.

    Unknown ids (`unknown-N`) are numbered by order of appearance and shift when recordings are
    added; the content hash, time and place of the person's earliest sighting do not. The place
    (the face's centre on a 32 px grid) keeps apart people who appear together, as in a meeting
    grid where everyone is seen from the first frame.
    """
    if person.subject_id:
        return f"subject:{person.subject_id}"
    sightings = [
        f"{content_hash.get(s.recording, '')}@{s.cluster.time_ranges[0].start if s.cluster.time_ranges else 0:.1f}"
        f"@face{_first_place(s.cluster)}"
        for s in person.faces
    ] + [
        f"{content_hash.get(s.recording, '')}@{s.speaker.turns[0].start if s.speaker.turns else 0:.1f}@voice"
        for s in person.voices
    ]
    return "unknown:" + min(sightings, default="")


def _first_place(cluster) -> str:
    if not cluster.detections:
        return ""
    top, right, bottom, left = min(cluster.detections, key=lambda d: d.time_s).box
    return f"@{(left + right) // 64},{(top + bottom) // 64}"


def fingerprint(rule_id: str, who: str, detail: str, content_hashes: list[str]) -> str:
    """A stable 128-bit id of a finding from its rule, its person and the content it concerns."""
    key = "\x1f".join([rule_id, who, detail, *sorted(content_hashes)])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def relative_path(path: Path, root: Path | None) -> str:
    """`path` relative to the scan root `root` in forward-slash form, as globs and reports name it;
    the path as given when it is not under `root` (or there is no root)."""
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()
