"""Who is redacted from which recording: the plan `likeness redact` works from.

A stored scan (`Store.load_result`) knows who appears where: each person's face clusters (the
detections on the sampled frames: time and box) and speaker turns, per recording. `plan_redaction`
picks the people to remove and lists, per recording, the clusters to cover and the time ranges to
silence. Nothing here decodes media.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from scanner.models import (
    Level,
    MediaKind,
    Person,
    RecordingAnalysis,
    RecordingStatus,
    ScanResult,
    TimeRange,
    merge_ranges,
)


class SelectionError(ValueError):
    """The people asked for are not in the scan (the message names the unknown ids and the known ones)."""


@dataclass(frozen=True)
class SelectedPerson:
    """A person to remove: scan person id, enrolled subject id (None for an unknown person), why."""

    person_id: str
    subject_id: str | None
    name: str | None
    reason: str  # "finding LK001 high", or "asked for (--people)"


@dataclass
class RecordingPlan:
    """What to remove from one recording.

    `faces` maps a selected person id to the ids of their face clusters in this recording (the
    clusters' detections in the stored scan are where tracking starts); `silence` maps a selected
    person id to their speaker turns (seconds, not yet padded).
    """

    recording: RecordingAnalysis
    output: Path
    faces: dict[str, list[int]] = field(default_factory=dict)
    silence: dict[str, list[TimeRange]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.recording.path

    @property
    def kind(self) -> MediaKind | None:
        return self.recording.media.kind if self.recording.media else None

    @property
    def people(self) -> list[str]:
        return sorted(set(self.faces) | set(self.silence))

    @property
    def needs_change(self) -> bool:
        return bool(self.faces or self.silence)


@dataclass
class RedactionPlan:
    """The people to remove and what that means for every readable recording of the scan."""

    scan: ScanResult
    people: list[SelectedPerson]
    recordings: list[RecordingPlan]
    unreadable: list[RecordingAnalysis]  # unreadable or partial in the scan: not redacted (never proven clean)

    def changed(self) -> list[RecordingPlan]:
        return [r for r in self.recordings if r.needs_change]


def select_people(scan: ScanResult, people: list[str] | None, severity: Level) -> list[SelectedPerson]:
    """The people to redact.

    `people`: ids from the command line: a subject id, a person id (`unknown-3`), or `unknown`
    (every person not matched to an enrolled subject). None: every person with an open finding
    (waived findings do not count) at or above `severity`.

    Raises SelectionError for an id that names nobody in the scan.
    """
    by_id = {p.person_id: p for p in scan.people}
    if people is None:
        chosen: dict[str, SelectedPerson] = {}
        for finding in sorted(scan.findings, key=lambda f: f.severity, reverse=True):
            person = by_id.get(finding.person_id or "")
            if person is None or finding.severity < severity or person.person_id in chosen:
                continue
            chosen[person.person_id] = SelectedPerson(
                person.person_id, person.subject_id, person.display_name,
                f"finding {finding.rule_id} {finding.severity.value}")
        return [chosen[p.person_id] for p in scan.people if p.person_id in chosen]
    wanted: dict[str, str] = {}
    unknown_ids = []
    for item in people:
        item = item.strip()
        if not item:
            continue
        if item == "unknown":
            for p in scan.people:
                if p.subject_id is None:
                    wanted.setdefault(p.person_id, "asked for (--people unknown)")
            continue
        matches = [p for p in scan.people if p.person_id == item or p.subject_id == item]
        if not matches:
            unknown_ids.append(item)
        for p in matches:
            wanted.setdefault(p.person_id, "asked for (--people)")
    if unknown_ids:
        known = ", ".join(p.person_id for p in scan.people) or "nobody"
        raise SelectionError(f"not in scan {scan.scan_id}: {', '.join(unknown_ids)} (people in it: {known})")
    return [SelectedPerson(p.person_id, p.subject_id, p.display_name, wanted[p.person_id])
            for p in scan.people if p.person_id in wanted]


def output_path(recording: RecordingAnalysis, root: Path | None, out_dir: Path) -> Path:
    """Where the redacted copy of `recording` goes: its path relative to the scan root, under `out_dir`.

    Videos become MP4 (H.264/AAC); stills and audio keep their name (see `scanner.redaction.media`
    for the audio formats that cannot be written, which become .m4a).
    """
    path = Path(os.path.abspath(recording.path))
    relative = Path(path.name)
    if root is not None:
        try:
            relative = path.relative_to(Path(os.path.abspath(root)))
        except ValueError:
            relative = Path(path.name)
    if recording.media is not None and recording.media.kind is MediaKind.VIDEO and relative.suffix.lower() != ".mp4":
        relative = relative.with_name(relative.name + ".mp4") if relative.with_suffix(".mp4").name in _siblings(
            path) else relative.with_suffix(".mp4")
    return out_dir / relative


def _siblings(path: Path) -> set[str]:
    try:
        return {p.name for p in path.parent.iterdir()}
    except OSError:
        return set()


def plan_redaction(scan: ScanResult, selected: list[SelectedPerson], out_dir: Path) -> RedactionPlan:
    """Per recording of `scan` analysed whole (`ok`): the face clusters and speaker turns of the
    `selected` people. Recordings the scan could decode only in part (`partial`) are not redacted: who
    appears in their undecoded stretches is unknown, so no copy of them could be proven clean."""
    chosen = {s.person_id for s in selected}
    persons: dict[str, Person] = {p.person_id: p for p in scan.people if p.person_id in chosen}
    plans, unreadable = [], []
    for rec in scan.recordings:
        if rec.status is not RecordingStatus.OK or rec.media is None:
            unreadable.append(rec)
            continue
        plan = RecordingPlan(rec, output_path(rec, scan.root, out_dir))
        for person_id, person in persons.items():
            clusters = [s.cluster.cluster_id for s in person.faces if s.recording == rec.path]
            turns = [t for s in person.voices if s.recording == rec.path for t in s.speaker.turns]
            if clusters:
                plan.faces[person_id] = sorted(set(clusters))
            if turns:
                plan.silence[person_id] = merge_ranges(turns)
        plans.append(plan)
    return RedactionPlan(scan, selected, plans, unreadable)


def not_redacted_reason(rec: RecordingAnalysis) -> str:
    """Why `rec` (one of `RedactionPlan.unreadable`) gets no copy, in one line."""
    if rec.status is RecordingStatus.PARTIAL:
        return "only partly decoded in the scan: what its undecoded stretches show is unknown"
    return f"unreadable in the scan ({rec.error})" if rec.error else "unreadable in the scan"
