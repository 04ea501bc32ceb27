"""Proof that redaction worked: scan the copies again and look for every removed person.

The copies are scanned as any recordings are (`scanner.pipeline.scan.run_scan`, same analysis settings,
same consent records and purposes as the stored scan; the verification scan is not stored in the
scan database). Then, per removed person:

- face: a face cluster of a copy is still theirs when the scan's matcher ties it to their enrolled
  subject, or when its encodings are within the enrolment match tolerance (0.6) of the encodings
  the original scan stored for them (how an unknown person is recognised again). When the scan
  database no longer holds their encodings (purged), any face the rescan finds where theirs was
  (same copy, within a second, overlapping box) counts as theirs.
- voice: a speaker of a copy is still theirs when matched to their subject, or when the voiceprint
  is as similar to theirs as the scan's voice matching requires (`VoiceMatchSettings.threshold`),
  or (no stored voiceprint) when it speaks for at least half a second inside their original turns.
  It counts as identifiable only above the `none` cloneability tier.

The HTML and JSON reports of the verification scan are written to `OUT/verification/`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from scanner.analysis.recording import AnalysisSettings
from scanner.analysis.voices.voiceprints import DEFAULT_SETTINGS, voice_similarity
from scanner.identity.people import EnrolledSubject, match_face
from scanner.models import (
    FaceCluster,
    Level,
    Person,
    RecordingAnalysis,
    ScanResult,
    SpeakerCluster,
)
from scanner.outputs import write_reports
from scanner.pipeline.resources import default_memory_ceiling, default_workers
from scanner.pipeline.scan import ScanOptions, run_scan
from scanner.policy.consent.records import ConsentFileError, load_consent
from scanner.redaction.plan import RedactionPlan
from scanner.redaction.run import OutputRecord
from scanner.redaction.tracking import centre_near

REPORT_DIR = "verification"


class VerificationError(Exception):
    """The verification scan could not run (consent file gone, the scan failed)."""


@dataclasses.dataclass
class RemovedPersonReference:
    """What the original scan knew of one removed person, to recognise them in the copies."""

    person: Person
    encodings: np.ndarray  # (n, 128), empty when not stored any more
    voiceprints: list[tuple[np.ndarray, float]]  # (voiceprint, seconds of speech behind it)


def stored_cluster_encodings(store, rec: RecordingAnalysis, cluster: FaceCluster) -> np.ndarray | None:
    """The face encodings `store` (a Store, or None) holds for `cluster` of `rec`: (n, 128), or None."""
    for analysis in store.stored_analyses(rec.sha256) if store is not None else []:
        for c in analysis.faces.clusters if analysis.faces else []:
            if (c.cluster_id == cluster.cluster_id and len(c.detections) == len(cluster.detections)
                    and c.detections and c.detections[0].box == cluster.detections[0].box):
                return c.encodings
    return None


def stored_speaker_voiceprint(store, rec: RecordingAnalysis, speaker: SpeakerCluster) -> np.ndarray | None:
    """The voiceprint `store` (a Store, or None) holds for `speaker` of `rec`, or None."""
    for analysis in store.stored_analyses(rec.sha256) if store is not None else []:
        for s in analysis.voices.speakers if analysis.voices else []:
            if s.speaker_id == speaker.speaker_id and s.turns == speaker.turns and len(s.voiceprint):
                return s.voiceprint
    return None


def removed_people_references(plan: RedactionPlan, store) -> dict[str, RemovedPersonReference]:
    """Per person id the plan removes: the face encodings and voiceprints the scan stored of them."""
    by_path = {rec.path: rec for rec in plan.scan.recordings}
    chosen = {p.person_id for p in plan.people}
    refs = {}
    for person in plan.scan.people:
        if person.person_id not in chosen:
            continue
        encodings = [e for s in person.faces if s.recording in by_path
                     for e in [stored_cluster_encodings(store, by_path[s.recording], s.cluster)]
                     if e is not None and len(e)]
        voices = []
        for s in person.voices:
            if s.recording in by_path:
                vp = stored_speaker_voiceprint(store, by_path[s.recording], s.speaker)
                if vp is not None:
                    voices.append((vp, float(s.speaker.usable_speech_s or s.speaker.speech_s)))
        refs[person.person_id] = RemovedPersonReference(
            person, np.vstack(encodings) if encodings else np.zeros((0, 128)), voices)
    return refs


def _scan_options(scan: ScanResult, files: int, media_s: float):
    """The stored scan's analysis settings and purposes. Copies holding a minute of media or less
    are analysed in this process, one after the other (a worker process would load the models
    again, which costs more than analysing them); more, in worker processes."""
    recorded = scan.options.get("analysis") or {}
    fields = {f.name for f in dataclasses.fields(AnalysisSettings)}
    analysis = AnalysisSettings(**{k: v for k, v in recorded.items() if k in fields})
    purposes = list(dict.fromkeys([*scan.purposes, *(p for c in scan.contexts.values() for p in c.purposes)]))
    small = media_s <= 60.0
    workers = 1 if small else max(1, min(default_workers(), files))
    return ScanOptions(purposes=purposes, fail_on=Level.NONE, workers=workers, isolated=not small,
                       max_memory_bytes=default_memory_ceiling(workers), analysis=analysis, use_cache=False)


def _person_of(result: ScanResult, recording: Path, cluster=None, speaker=None) -> Person | None:
    for person in result.people:
        if cluster is not None and any(s.recording == recording and s.cluster is cluster for s in person.faces):
            return person
        if speaker is not None and any(s.recording == recording and s.speaker is speaker for s in person.voices):
            return person
    return None


def _voice_tier(person: Person | None, recording: Path) -> Level:
    if person is None:
        return Level.NONE
    for exposure in person.by_recording:
        if exposure.recording == recording:
            return exposure.voice_tier
    return person.voice.tier if person.voice else Level.NONE


def _near_original(cluster: FaceCluster, original: list[FaceCluster]) -> bool:
    """A face of the copy where the removed person's face was (same time within 1 s, boxes overlapping)."""
    return any(abs(d.time_s - o.time_s) <= 1.0 and centre_near(o.box, d.box, 0.5)
               for d in cluster.detections for c in original for o in c.detections)


def residue(plan: RedactionPlan, records: list[OutputRecord], result: ScanResult, store) -> dict[str, dict]:
    """What the verification `result` still holds of each removed person: {person_id: {face: [...], voice: [...]}}."""
    refs = removed_people_references(plan, store)
    source_of = {Path(r.output): Path(r.source) for r in records if r.output}
    found: dict[str, dict] = {p.person_id: {"face": [], "voice": []} for p in plan.people}
    for rec in result.recordings:
        source = source_of.get(Path(rec.path))
        for cluster in rec.faces.clusters if rec.faces else []:
            holder = _person_of(result, rec.path, cluster=cluster)
            for pid, ref in refs.items():
                how = None
                if ref.person.subject_id and holder is not None and holder.subject_id == ref.person.subject_id:
                    how = f"matched to subject {ref.person.subject_id}"
                elif len(ref.encodings) and len(cluster.encodings):
                    match = match_face(cluster.encodings, [EnrolledSubject(pid, pid, ref.encodings)], 0.6)
                    if match is not None:
                        how = f"face encoding distance {match.distance:.2f} to the original"
                elif not len(ref.encodings):
                    original = [s.cluster for s in ref.person.faces if s.recording == source]
                    if original and _near_original(cluster, original):
                        how = "a face where theirs was (no stored encodings to compare)"
                if how:
                    found[pid]["face"].append({
                        "output": str(rec.path), "detections": len(cluster.detections),
                        "time_ranges": [[round(r.start, 2), round(r.end, 2)] for r in cluster.time_ranges],
                        "how": how})
        for speaker in rec.voices.speakers if rec.voices else []:
            holder = _person_of(result, rec.path, speaker=speaker)
            tier = _voice_tier(holder, rec.path)
            for pid, ref in refs.items():
                how = None
                if ref.person.subject_id and holder is not None and holder.subject_id == ref.person.subject_id:
                    how = f"matched to subject {ref.person.subject_id}"
                elif ref.voiceprints and len(speaker.voiceprint):
                    speech = float(speaker.usable_speech_s or speaker.speech_s)
                    for vp, seconds in ref.voiceprints:
                        similarity = voice_similarity(vp, speaker.voiceprint)
                        if similarity >= DEFAULT_SETTINGS.threshold(seconds, speech):
                            how = f"voiceprint similarity {similarity:.2f} to the original"
                            break
                elif not ref.voiceprints:
                    turns = [t for s in ref.person.voices if s.recording == source for t in s.speaker.turns]
                    inside = sum(max(0.0, min(a.end, b.end) - max(a.start, b.start))
                                 for a in speaker.turns for b in turns)
                    if inside >= 0.5:
                        how = f"{inside:.1f} s of speech inside their original turns (no stored voiceprint)"
                if how:
                    found[pid]["voice"].append({
                        "output": str(rec.path), "speech_s": round(speaker.speech_s, 2), "tier": tier.value,
                        "identifiable": tier > Level.NONE, "how": how})
    return found


def verify_outputs(plan: RedactionPlan, records: list[OutputRecord], out_dir: Path, consent: Path | None,
                   say, warn, store=None) -> dict:
    """Scan the written copies, write the verification reports, print and return what is left of each person."""
    outputs = [Path(r.output) for r in records if r.output and not r.error]
    if not outputs:
        raise VerificationError("no copy was written")
    consent_path = consent or (Path(plan.scan.consent_file) if plan.scan.consent_file else None)
    records_doc = None
    if consent_path is not None:
        try:
            records_doc = load_consent(consent_path)
        except ConsentFileError as exc:
            raise VerificationError(f"{consent_path}: {'; '.join(str(p) for p in exc.problems)}") from None
        except OSError as exc:
            raise VerificationError(f"cannot read the consent file {consent_path}: {exc}") from None
    sources = {Path(r.source) for r in records if r.output and not r.error}
    media_s = sum(rec.media.duration_s for rec in plan.scan.recordings if rec.path in sources and rec.media)
    warn(f"Verifying: scanning {len(outputs)} cop{'y' if len(outputs) == 1 else 'ies'}")
    try:
        result = run_scan(outputs, records_doc, _scan_options(plan.scan, len(outputs), media_s))
    except Exception as exc:  # noqa: BLE001 - reported as a failed verification (exit 3)
        raise VerificationError(f"{type(exc).__name__}: {exc}") from None
    written = write_reports(result, out_dir / REPORT_DIR, ["html", "json"])
    found = residue(plan, records, result, store)
    identifiable = []
    for person in plan.people:
        left = found[person.person_id]
        faces = left["face"]
        voices = [v for v in left["voice"] if v["identifiable"]]
        if faces or voices:
            identifiable.append(person.person_id)
        parts = [f"face in {f['output']} ({f['detections']} sampled frames; {f['how']})" for f in faces]
        parts += [f"voice in {v['output']} ({v['speech_s']} s, {v['tier']} tier; {v['how']})" for v in voices]
        say(f"  {person.person_id}: " + ("still identifiable: " + "; ".join(parts) if parts else "not found"))
    return {
        "scan_id": result.scan_id,
        "reports": [str(p) for p in written],
        "people": found,
        "identifiable": identifiable,
        "people_found": [{"person_id": p.person_id, "subject_id": p.subject_id} for p in result.people],
        "unreadable": [str(r.path) for r in result.recordings if r.status.value == "unreadable"],
        "partial": [str(r.path) for r in result.recordings if r.status.value == "partial"],
    }
