"""The scan as a plain document: the versioned shape of results.json, also fed to the HTML report.

Only measured facts and decisions go in; face encodings and voiceprints never do.
"""

from __future__ import annotations

from scanner import __version__
from scanner.models import (
    Coverage,
    Finding,
    Level,
    Person,
    RecordingAnalysis,
    RecordingStatus,
    ScanResult,
    StreamCoverage,
    TimeRange,
    Waiver,
    timecode,
)

SCHEMA_VERSION = "1.2"


def build_document(result: ScanResult) -> dict:
    """The results.json document for `result`."""
    face_owner, voice_owner = _owners(result.people)
    failing = result.failing_findings()
    return {
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "scan": {
            "id": result.scan_id,
            "started_at": result.started_at,
            "finished_at": result.finished_at,
            "inputs": result.inputs,
            "options": result.options,
            "purposes": result.purposes,
            "as_of": result.as_of,
            "consent_file": result.consent_file,
            "consent_sha256": result.consent_sha256,
        },
        "recordings": [_recording(r, result, face_owner, voice_owner) for r in result.recordings],
        "people": [_person(p) for p in result.people],
        "findings": [_finding(f) for f in result.shown_findings()],
        "suppressed": [{**_finding(s.finding), "waiver": _waiver(s.waiver)} for s in result.suppressed],
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in result.skipped],
        "warnings": list(result.warnings),
        "summary": {
            "recordings": len(result.recordings),
            "unreadable": sum(1 for r in result.recordings if r.status is RecordingStatus.UNREADABLE),
            "partial": sum(1 for r in result.recordings if r.status is RecordingStatus.PARTIAL),
            "skipped": len(result.skipped),
            "media_seconds": round(sum(r.media.duration_s for r in result.recordings if r.media), 2),
            "analysed_seconds": round(sum(analysed_seconds(r) for r in result.recordings), 2),
            "people": len(result.people),
            "unknown_people": sum(1 for p in result.people if p.subject_id is None),
            "people_by_tier": _count(p.risk.combined_tier for p in result.people if p.risk),
            "findings": len(result.shown_findings()),
            "findings_by_severity": _count(f.severity for f in result.shown_findings()),
            "suppressed": len(result.suppressed),
            "fail_on": result.fail_on.value,
            "failing_findings": len(failing),
            "verdict": "fail" if failing else "pass",
        },
    }


def _count(levels) -> dict[str, int]:
    counts = {level.value: 0 for level in Level}
    for level in levels:
        counts[level.value] += 1
    return counts


def _owners(people: list[Person]) -> tuple[dict[int, str], dict[int, str]]:
    # Keyed by object identity: clusters are per recording and carry no global id of their own.
    faces = {id(s.cluster): p.person_id for p in people for s in p.faces}
    voices = {id(s.speaker): p.person_id for p in people for s in p.voices}
    return faces, voices


def _ranges(ranges: list[TimeRange]) -> list[dict]:
    return [{"start": round(r.start, 2), "end": round(r.end, 2)} for r in ranges]


def _recording(rec: RecordingAnalysis, result: ScanResult, face_owner: dict, voice_owner: dict) -> dict:
    context = result.contexts.get(rec.path)
    purposes = list(context.purposes) if context else list(result.purposes)
    appearances = []
    speech = []
    if rec.faces:
        for cluster in rec.faces.clusters:
            for r in cluster.time_ranges:
                appearances.append({"start": round(r.start, 2), "end": round(r.end, 2),
                                    "person_id": face_owner.get(id(cluster))})
    if rec.voices:
        for speaker in rec.voices.speakers:
            for r in speaker.turns:
                speech.append({"start": round(r.start, 2), "end": round(r.end, 2),
                               "person_id": voice_owner.get(id(speaker))})
    clusters = {c.cluster_id: c for c in rec.faces.clusters} if rec.faces else {}
    links = [
        {"person_id": face_owner.get(id(clusters[k.cluster_id])), "evidence": getattr(k, "evidence", "lips"),
         "correlation": k.correlation, "overlap_s": k.overlap_s}
        for k in rec.links if k.cluster_id in clusters
    ]
    appearances.sort(key=lambda a: (a["start"], a["person_id"] or ""))
    speech.sort(key=lambda a: (a["start"], a["person_id"] or ""))
    media = None
    if rec.media:
        media = {
            "kind": rec.media.kind.value,
            "container": rec.media.container,
            "duration_s": round(rec.media.duration_s, 3),
            "width": rec.media.width,
            "height": rec.media.height,
            "fps": round(rec.media.fps, 3) if rec.media.fps else None,
            "audio_sample_rate": rec.media.audio_sample_rate,
            "audio_channels": rec.media.audio_channels,
        }
    return {
        "path": str(rec.path),
        "sha256": rec.sha256,
        "size_bytes": rec.size_bytes,
        "status": rec.status.value,
        "error": rec.error,
        "media": media,
        "purposes": purposes,
        "recorded": context.recorded.isoformat() if context and context.recorded else None,
        "retention_days": context.retention_days if context else None,
        "metadata_source": context.metadata_source if context else None,
        "frames_analysed": rec.faces.frames_sampled if rec.faces else 0,
        "coverage": _coverage(rec.coverage),
        "appearances": appearances,
        "speech": speech,
        "voice_face_links": links,
    }


def analysed_seconds(rec: RecordingAnalysis) -> float:
    """Seconds of `rec` that were analysed: all of an `ok` recording of an older scan (no coverage
    recorded), none of an unreadable one."""
    if rec.status is RecordingStatus.UNREADABLE:
        return 0.0
    if rec.coverage is not None and rec.coverage.streams:
        return rec.coverage.analysed_s
    return rec.media.duration_s if rec.media else 0.0


def _span(r: TimeRange) -> dict:
    return {"start": round(r.start, 2), "end": round(r.end, 2)}


def _stream(stream: StreamCoverage | None) -> dict | None:
    if stream is None:
        return None
    return {
        "kind": stream.kind,
        "duration_s": round(stream.duration_s, 3),
        "decoded_s": round(stream.decoded_s, 3),
        "missing": [_span(r) for r in stream.missing],
        "errors": stream.errors,
        "causes": list(stream.causes),
        "frames_planned": stream.frames_planned,
        "frames_decoded": stream.frames_decoded,
    }


def _coverage(coverage: Coverage | None) -> dict | None:
    if coverage is None:
        return None
    return {
        "duration_s": round(coverage.duration_s, 3),
        "analysed_s": round(coverage.analysed_s, 3),
        "missing": [_span(r) for r in coverage.missing],
        "causes": coverage.causes,
        "video": _stream(coverage.video),
        "audio": _stream(coverage.audio),
    }


def _person(person: Person) -> dict:
    face = person.face
    voice = person.voice
    risk = person.risk
    return {
        "person_id": person.person_id,
        "subject_id": person.subject_id,
        "name": person.display_name,
        "match": None if person.match is None else {
            "modality": person.match.modality.value,
            "subject_id": person.match.subject_id,
            "distance": person.match.distance,
            "confidence": person.match.confidence,
        },
        "recordings": [str(p) for p in person.recordings],
        "face": None if face is None else {
            "detections": face.detections,
            "usable_frames": face.usable_frames,
            "best_face_px": face.best_face_px,
            "best_frontal_face_px": face.best_frontal_face_px,
            "best_eye_distance_px": face.best_eye_distance_px,
            "sharpness": face.sharpness,
            "yaw_range": list(face.yaw_range),
            "pose_bins": _pose_bins(person),
            "thumbnail": _thumbnail_source(person),
            "tier": face.tier.value,
            "evidence": face.reasons,
        },
        "voice": None if voice is None else {
            "speech_s": voice.speech_s,
            "usable_speech_s": voice.usable_speech_s,
            "longest_clean_s": voice.longest_clean_s,
            "snr_db": voice.snr_db,
            "bandwidth_hz": voice.bandwidth_hz,
            "tier": voice.tier.value,
            "evidence": voice.reasons,
        },
        "by_recording": [
            {
                "recording": str(e.recording), "face_tier": e.face_tier.value, "voice_tier": e.voice_tier.value,
                "combined_tier": e.combined_tier.value, "score": e.score, "usable_frames": e.usable_frames,
                "best_face_px": e.best_face_px, "usable_speech_s": e.usable_speech_s,
                "longest_clean_s": e.longest_clean_s,
            }
            for e in person.by_recording
        ],
        "reductions": [
            {"modality": r.modality.value, "remove": [str(p) for p in r.remove], "tier_before": r.tier_before.value,
             "tier_after": r.tier_after.value, "text": r.describe()}
            for r in person.reductions
        ],
        "risk": None if risk is None else {
            "face_tier": risk.face_tier.value,
            "voice_tier": risk.voice_tier.value,
            "combined_tier": risk.combined_tier.value,
            "score": risk.score,
            "evidence": risk.reasons,
        },
    }


def _pose_bins(person: Person) -> dict[str, int]:
    totals: dict[str, int] = {}
    for sighting in person.faces:
        for name, count in sighting.cluster.pose_bins().items():
            totals[name] = totals.get(name, 0) + count
    return totals


def _thumbnail_source(person: Person) -> dict | None:
    """Where the report's thumbnail comes from: the recording and time code of the best face."""
    clusters = [s for s in person.faces if s.cluster.thumbnail is not None]
    if not clusters:
        return None
    best = max(clusters, key=lambda s: s.cluster.best_face_px)
    return {"recording": str(best.recording), "time_s": best.cluster.thumbnail_time_s}


def _finding(finding: Finding) -> dict:
    return {
        "rule_id": finding.rule_id,
        "rule_name": finding.rule_name,
        "severity": finding.severity.value,
        "title": finding.title,
        "message": finding.message,
        "person_id": finding.person_id,
        "subject_id": finding.subject_id,
        "recordings": [str(p) for p in finding.recordings],
        "time_ranges": [
            {"recording": rec, **r} for rec, ranges in finding.time_ranges.items() for r in _ranges(ranges)
        ],
        "evidence": finding.evidence,
        "remedy": finding.remedy,
        "fingerprint": finding.fingerprint,
        "purposes": list(finding.purposes),
    }


def _waiver(waiver: Waiver) -> dict:
    return {
        "reason": waiver.reason,
        "approved_by": waiver.approved_by,
        "expires": waiver.expires,
        "fingerprint": waiver.fingerprint,
        "rule_id": waiver.rule_id,
        "person_id": waiver.person_id,
        "path": waiver.path_glob,
    }


def format_ranges(ranges: list[dict]) -> str:
    """Time ranges of the document ({"start", "end"} dicts) as '0:01.0-0:18.5; 0:20.0-0:22.1'.

    A range of no duration (a still image) is one time code.
    """
    parts = []
    for r in ranges:
        start, end = timecode(r["start"]), timecode(r["end"])
        parts.append(start if start == end else f"{start}-{end}")
    return "; ".join(parts)


def ranges_by_recording(finding: dict) -> dict[str, list[dict]]:
    """A document finding's time ranges grouped by recording, in the finding's recording order."""
    grouped: dict[str, list[dict]] = {rec: [] for rec in finding["recordings"]}
    for r in finding["time_ranges"]:
        grouped.setdefault(r["recording"], []).append(r)
    return grouped
