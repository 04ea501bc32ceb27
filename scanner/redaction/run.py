"""Carry out a `RedactionPlan`: write the redacted copies and `redaction.json`.

Each copy is written to a temporary file beside its destination and renamed into place when
complete, so a stopped run never leaves half a file under the output name. A source whose content
no longer matches the scan (its SHA-256 changed) is not redacted: the scan's idea of who appears
where no longer holds for it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scanner import __version__
from scanner.media.files import sha256_file
from scanner.models import MediaError, MediaKind, TimeRange, merge_ranges
from scanner.redaction.media import (
    MediaOutcome,
    audio_target,
    redact_audio,
    redact_image,
    redact_video,
)
from scanner.redaction.plan import RecordingPlan, RedactionPlan, not_redacted_reason
from scanner.redaction.tracking import Anchor, FaceFollower, FollowSettings

REPORT_NAME = "redaction.json"
SCHEMA = "likeness-redaction/1"


@dataclass(frozen=True)
class RedactSettings:
    """How faces are covered and voices silenced.

    face: "blur" (default), "pixelate" or "box" (see `scanner.redaction.media.cover_plane`).
    voice: "mute" (default) or "noise".
    follow: how faces are followed between the scan's samples and how far the cover extends
        beyond the detector's box (`FollowSettings`).
    voice_pad_s: each speaker turn is silenced from this many seconds before to this many after
        (turn boundaries are measured on 10-20 ms frames and smoothed; the pad keeps the first and
        last syllables from surviving). Default 0.25.
    crf, preset: x264 quality and speed of re-encoded video (default 20, "veryfast").
    """

    face: str = "blur"
    voice: str = "mute"
    follow: FollowSettings = FollowSettings()
    voice_pad_s: float = 0.25
    crf: int = 20
    preset: str = "veryfast"


@dataclass
class OutputRecord:
    """One redacted copy (or an untouched copy with `--copy-all`), for redaction.json."""

    source: str
    source_sha256: str
    output: str | None
    output_sha256: str | None
    kind: str
    redacted: list[str]
    frames: int = 0
    frames_covered: dict[str, int] = field(default_factory=dict)
    frames_any_covered: int = 0
    silenced: list[list[float]] = field(default_factory=list)
    seconds_silenced: float = 0.0
    face_searches: int = 0
    note: str | None = None
    error: str | None = None


def silence_ranges(plan: RecordingPlan, pad_s: float) -> list[TimeRange]:
    """The selected people's turns in this recording, padded and merged, within the recording."""
    duration = plan.recording.media.duration_s if plan.recording.media else 0.0
    padded = [TimeRange(max(0.0, t.start - pad_s), min(duration or t.end + pad_s, t.end + pad_s))
              for turns in plan.silence.values() for t in turns]
    return merge_ranges(padded)


def follower_for(plan: RecordingPlan, settings: RedactSettings) -> FaceFollower | None:
    """A `FaceFollower` seeded with every face the scan saw in this recording (None: no face to cover)."""
    faces = plan.recording.faces
    media = plan.recording.media
    if not plan.faces or faces is None or media is None:
        return None
    owner = {cid: person for person, cids in plan.faces.items() for cid in cids}
    anchors = [Anchor(d.time_s, d.box, owner.get(c.cluster_id), c.cluster_id) for c in faces.clusters
               for d in c.detections]
    interval = 1.0 / faces.sample_fps if faces.sample_fps else 1.0
    fps = media.fps or 25.0
    return FaceFollower(anchors, interval, 1.0 / fps, (media.height or 0, media.width or 0), settings.follow)


def redact_recording(plan: RecordingPlan, settings: RedactSettings) -> OutputRecord:
    """Write the redacted copy of one recording to `plan.output` (the source is only read)."""
    src = plan.path
    kind = plan.kind.value if plan.kind else "unknown"
    record = OutputRecord(str(src), plan.recording.sha256, None, None, kind, plan.people)
    try:
        digest = sha256_file(src)
    except (MediaError, OSError) as exc:
        record.error = f"cannot read the source: {exc}"
        return record
    if digest != plan.recording.sha256:
        record.error = "the file changed since the scan (its SHA-256 differs): scan it again, then redact"
        return record
    dst = plan.output
    dst.parent.mkdir(parents=True, exist_ok=True)
    silence = silence_ranges(plan, settings.voice_pad_s)
    note = None
    if plan.kind is MediaKind.AUDIO:
        dst, muxer, encoder, note = audio_target(src, dst)
    if _same_file(src, dst):
        record.error = f"the copy would overwrite the source ({dst}): choose another --out"
        return record
    tmp = dst.with_name(f".{dst.name}.partial-{os.getpid()}{dst.suffix}")
    try:
        if plan.kind is MediaKind.IMAGE:
            boxes = [d.box for c in (plan.recording.faces.clusters if plan.recording.faces else [])
                     if any(c.cluster_id in cids for cids in plan.faces.values()) for d in c.detections]
            outcome = redact_image(src, tmp, boxes, settings.face, settings.follow)
            outcome.frames_covered = {p: 1 for p in plan.faces}
        elif plan.kind is MediaKind.AUDIO:
            outcome = redact_audio(src, tmp, muxer, encoder, silence, settings.voice)
        else:
            outcome = redact_video(src, tmp, follower_for(plan, settings), silence, settings.face, settings.voice,
                                   settings.crf, settings.preset)
        os.replace(tmp, dst)
    except Exception as exc:  # noqa: BLE001 - one file's failure is reported, the others still written
        try:
            tmp.unlink()
        except OSError:
            pass
        record.error = f"could not write the copy: {type(exc).__name__}: {exc}"
        return record
    _fill(record, outcome, dst, note)
    return record


def _fill(record: OutputRecord, outcome: MediaOutcome, dst: Path, note: str | None) -> None:
    record.output = str(dst)
    record.output_sha256 = sha256_file(dst)
    record.frames = outcome.frames
    record.frames_covered = dict(sorted(outcome.frames_covered.items()))
    record.frames_any_covered = outcome.frames_any_covered
    record.silenced = [[round(r.start, 3), round(r.end, 3)] for r in outcome.silenced]
    record.seconds_silenced = round(sum(r.duration for r in outcome.silenced), 3)
    record.face_searches = outcome.face_searches
    record.note = note


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def copy_unchanged(plan: RecordingPlan) -> OutputRecord:
    """`--copy-all`: a byte copy of a recording nobody is removed from."""
    record = OutputRecord(str(plan.path), plan.recording.sha256, None, None,
                          plan.kind.value if plan.kind else "unknown", [])
    dst = plan.output if plan.kind is not MediaKind.VIDEO else plan.output.with_suffix(plan.path.suffix)
    if _same_file(plan.path, dst):
        record.error = f"the copy would overwrite the source ({dst}): choose another --out"
        return record
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plan.path, dst)
    record.output, record.output_sha256 = str(dst), sha256_file(dst)
    record.note = "nobody redacted: copied unchanged"
    return record


def carry_out(plan: RedactionPlan, settings: RedactSettings, copy_all: bool = False,
              progress: Callable[[RecordingPlan, OutputRecord], None] | None = None) -> list[OutputRecord]:
    """Write every copy the plan calls for; returns one record per recording handled."""
    records = []
    for rec_plan in plan.recordings:
        if rec_plan.needs_change:
            record = redact_recording(rec_plan, settings)
        elif copy_all:
            record = copy_unchanged(rec_plan)
        else:
            continue
        records.append(record)
        if progress is not None:
            progress(rec_plan, record)
    return records


def write_report(out_dir: Path, plan: RedactionPlan, settings: RedactSettings, records: list[OutputRecord],
                 verification: dict | None = None) -> Path:
    """Write `redaction.json` into `out_dir`: sources, outputs, who was removed, the settings.

    No face encodings or voiceprints: only ids, paths, hashes, counts and time ranges.
    """
    doc = {
        "schema": SCHEMA,
        "tool_version": __version__,
        "scan_id": plan.scan.scan_id,
        "consent_file": plan.scan.consent_file,
        "consent_sha256": plan.scan.consent_sha256,
        "people": [asdict(p) for p in plan.people],
        "settings": {
            "face": settings.face,
            "voice": settings.voice,
            "voice_pad_s": settings.voice_pad_s,
            "follow": asdict(settings.follow),
            "video": {"codec": "h264", "crf": settings.crf, "preset": settings.preset, "audio": "aac"},
        },
        "outputs": [asdict(r) for r in records],
        "not_redacted": [{"source": str(r.path), "reason": not_redacted_reason(r)}
                         for r in plan.unreadable],
        "verification": verification,
    }
    path = out_dir / REPORT_NAME
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path
