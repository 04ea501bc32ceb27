"""Typed records that pass between the pipeline stages.

Decode -> faces / voices -> people -> risk -> consent -> report. Each stage takes and returns these
dataclasses; numpy arrays hold the numeric payloads. Biometric vectors (face encodings, voiceprints)
live only on the analysis records and are never copied into a report.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class Level(str, enum.Enum):
    """An ordered level used for cloneability tiers, finding severities and `--fail-on`."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _LEVEL_ORDER.index(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank >= other.rank

    def lowered(self, steps: int = 1) -> "Level":
        return _LEVEL_ORDER[max(0, self.rank - steps)]


_LEVEL_ORDER = [Level.NONE, Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL]


@dataclass(frozen=True)
class TimeRange:
    """A span of a recording in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)


def timecode(seconds: float) -> str:
    """A time in a recording as people read it: 0:01.0, 12:05.3, 1:02:03.4 (from seconds)."""
    seconds = max(0.0, float(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:04.1f}"
    return f"{minutes}:{secs:04.1f}"


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


class MediaKind(str, enum.Enum):
    VIDEO = "video"
    AUDIO = "audio"
    IMAGE = "image"


@dataclass(frozen=True)
class MediaInfo:
    """What a recording contains, read from its container (not its file name)."""

    kind: MediaKind
    duration_s: float
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    container: str | None = None


@dataclass
class Frame:
    """One sampled video frame (or a still image), RGB uint8, possibly downscaled.

    `scale` maps coordinates in `image` back to the original resolution: original = image * scale.
    """

    index: int
    time_s: float
    image: np.ndarray
    scale: float = 1.0


@dataclass
class AudioTrack:
    """Mono float32 samples in [-1, 1] resampled to `sample_rate` for analysis.

    Stretches the decoder rejected are silence of their length (so time codes stay true);
    `coverage` says which they are.
    """

    samples: np.ndarray
    sample_rate: int
    original_sample_rate: int
    coverage: "StreamCoverage | None" = None

    @property
    def duration_s(self) -> float:
        return len(self.samples) / float(self.sample_rate) if self.sample_rate else 0.0


class MediaError(Exception):
    """A recording could not be decoded; the message names the problem for the report."""


class NoVideoFrames(MediaError):
    """Not one video frame of the requested stretch decodes (truncated or corrupt data there).

    `coverage`, when set, is the accounting of the attempt (all of the stretch missing, and why).
    """

    def __init__(self, message: str, coverage: "StreamCoverage | None" = None):
        super().__init__(message)
        self.coverage = coverage


class NoAudio(MediaError):
    """The audio stream holds not one decodable sample; `coverage` as for NoVideoFrames."""

    def __init__(self, message: str, coverage: "StreamCoverage | None" = None):
        super().__init__(message)
        self.coverage = coverage


# --------------------------------------------------------------------------------------------
# Coverage: how much of a recording was actually decoded
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamCoverage:
    """How much of one stream of a recording was decoded, and so analysed.

    kind: "video", "audio" or "image".
    start_s, end_s: the stretch this accounting is about, in seconds from the stream's start:
        the whole stream (0 to its declared duration), or one window of a video split over
        workers. For an image both are 0.
    missing: stretches (seconds from the stream's start) that were not decoded: data the decoder
        rejected, data that ends before the declared duration, or longer than
        `media.GAP_TOLERANCE_S` (0.5 s) without any data. Sorted, not overlapping.
    errors: packets (compressed frames) the decoder rejected.
    causes: what made each kind of stretch missing, in words, in order of first appearance.
    frames_planned, frames_decoded: video and images: frames the sampling grid asks for within
        the stretch (one every 1/sample_fps s; 1 for an image) and frames decoded for it. None
        for audio.
    """

    kind: str
    start_s: float
    end_s: float
    missing: tuple[TimeRange, ...] = ()
    errors: int = 0
    causes: tuple[str, ...] = ()
    frames_planned: int | None = None
    frames_decoded: int | None = None

    @property
    def duration_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    @property
    def missing_s(self) -> float:
        return min(self.duration_s, sum(r.duration for r in self.missing))

    @property
    def decoded_s(self) -> float:
        return self.duration_s - self.missing_s

    @property
    def complete(self) -> bool:
        """Nothing missing and nothing rejected by the decoder."""
        if self.kind == "image":
            return bool(self.frames_decoded)
        return not self.missing and not self.errors

    @property
    def empty(self) -> bool:
        """Nothing at all decoded."""
        if self.frames_decoded is not None:
            return self.frames_decoded == 0
        return self.decoded_s <= 0.0 and self.duration_s > 0.0


def join_coverage(parts: list[StreamCoverage]) -> StreamCoverage | None:
    """One stream's accounting from the accountings of consecutive windows of it (None for none)."""
    if not parts:
        return None
    parts = sorted(parts, key=lambda p: p.start_s)
    planned = [p.frames_planned for p in parts if p.frames_planned is not None]
    decoded = [p.frames_decoded for p in parts if p.frames_decoded is not None]
    causes: dict[str, None] = {}
    for part in parts:
        causes.update(dict.fromkeys(part.causes))
    return StreamCoverage(
        kind=parts[0].kind,
        start_s=parts[0].start_s,
        end_s=max(p.end_s for p in parts),
        missing=tuple(merge_ranges([r for p in parts for r in p.missing])),
        errors=sum(p.errors for p in parts),
        causes=tuple(causes),
        frames_planned=sum(planned) if planned else None,
        frames_decoded=sum(decoded) if decoded else None,
    )


# --------------------------------------------------------------------------------------------
# Faces
# --------------------------------------------------------------------------------------------


@dataclass
class FaceDetection:
    """One face on one sampled frame, measured in original-resolution pixels."""

    time_s: float
    box: tuple[int, int, int, int]  # top, right, bottom, left (face_recognition order)
    size_px: float  # face box width
    eye_distance_px: float
    sharpness: float  # variance of the Laplacian on a normalised crop
    yaw_deg: float
    eyes_open: bool = True
    usable: bool = True  # sharp, eyes open, near-frontal enough to serve a face swap


@dataclass
class FaceCluster:
    """One person's face within one recording: detections grouped by identity.

    `encodings` are the 128-d face_recognition encodings of the best detections (biometric data:
    kept out of every report). `thumbnail` is a small RGB crop of the best detection.
    """

    cluster_id: int
    detections: list[FaceDetection]
    encodings: np.ndarray  # shape (k, 128)
    time_ranges: list[TimeRange]
    thumbnail: np.ndarray | None = None
    thumbnail_time_s: float | None = None  # time code of the thumbnail's frame (0.0 for a photo)

    def pose_bins(self, frontal_deg: float = 15.0, profile_deg: float = 45.0) -> dict[str, int]:
        """Detections per head-pose bin by |yaw|: frontal <= 15 deg < three_quarter <= 45 deg < profile."""
        bins = {"frontal": 0, "three_quarter": 0, "profile": 0}
        for d in self.detections:
            yaw = abs(d.yaw_deg)
            bins["frontal" if yaw <= frontal_deg else "three_quarter" if yaw <= profile_deg else "profile"] += 1
        return bins

    @property
    def usable_frames(self) -> int:
        return sum(1 for d in self.detections if d.usable)

    @property
    def best_face_px(self) -> float:
        usable = [d.size_px for d in self.detections if d.usable]
        return max(usable) if usable else 0.0

    @property
    def best_eye_distance_px(self) -> float:
        return max((d.eye_distance_px for d in self.detections), default=0.0)

    @property
    def best_frontal_face_px(self) -> float:
        """Largest usable face within 15 degrees of frontal (the rubric's 'frontal')."""
        frontal = [d.size_px for d in self.detections if d.usable and abs(d.yaw_deg) <= 15.0]
        return max(frontal) if frontal else 0.0

    @property
    def sharpness(self) -> float:
        return max((d.sharpness for d in self.detections), default=0.0)

    @property
    def yaw_range(self) -> tuple[float, float]:
        yaws = [d.yaw_deg for d in self.detections]
        return (min(yaws), max(yaws)) if yaws else (0.0, 0.0)


@dataclass
class FaceAnalysis:
    clusters: list[FaceCluster]
    frames_sampled: int
    sample_fps: float | None
    coverage: StreamCoverage | None = None  # what of the picture was decoded (set by scanner.analysis.recording)


# --------------------------------------------------------------------------------------------
# Voices
# --------------------------------------------------------------------------------------------


@dataclass
class SpeakerCluster:
    """One speaker within one recording, with a voiceprint and the quality of their speech.

    `voiceprint` is the speaker encoder's 256-d GE2E embedding of the speaker's speech (biometric data:
    kept out of every report; compared in `scanner.analysis.voices.voiceprints`).
    """

    speaker_id: int
    turns: list[TimeRange]
    voiceprint: np.ndarray
    usable_speech_s: float
    longest_clean_s: float
    snr_db: float
    bandwidth_hz: float
    clipping_ratio: float = 0.0
    overlap_s: float = 0.0

    @property
    def speech_s(self) -> float:
        return sum(t.duration for t in self.turns)


@dataclass
class VoiceAnalysis:
    speakers: list[SpeakerCluster]
    speech_s: float
    coverage: StreamCoverage | None = None  # what of the sound was decoded (set by scanner.analysis.recording)


# --------------------------------------------------------------------------------------------
# Per-recording result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceVoiceLink:
    """Face cluster `cluster_id` and speaker `speaker_id` of one recording are the same person.

    Found by scanner/analysis/linking.py; `evidence` says how:
    - "lips": the mouth moves with the voice: `correlation` between how much the mouth moves and when
      the speaker talks, over `overlap_s` seconds where the face was visible and the voice active;
    - "sole-face": the only face on screen while the recording's only voice speaks, for `overlap_s`
      seconds, its mouth moving (`correlation` is 0: not measured).
    `mouth_movement`: for a sole-face link, how much the lips moved on their own while the voice spoke
    (`scanner.analysis.linking.lip_movement_ratio`); None for lip links.
    """

    cluster_id: int
    speaker_id: int
    correlation: float
    overlap_s: float
    evidence: str = "lips"
    mouth_movement: float | None = None


class RecordingStatus(str, enum.Enum):
    """How much of a recording was analysed: all of it, some of it (`Coverage.status`), nothing."""

    OK = "ok"
    PARTIAL = "partial"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Coverage:
    """What of one recording was decoded: its video (or image) and its audio, each accounted.

    The status rule: `unreadable` when no stream yielded anything, `partial` when any stream has
    a missing stretch or a rejected packet (`StreamCoverage.complete`), `ok` otherwise.
    """

    video: StreamCoverage | None = None
    audio: StreamCoverage | None = None

    @property
    def streams(self) -> list[StreamCoverage]:
        return [s for s in (self.video, self.audio) if s is not None]

    @property
    def status(self) -> RecordingStatus:
        streams = self.streams
        if streams and all(s.empty for s in streams):
            return RecordingStatus.UNREADABLE
        if any(not s.complete for s in streams):
            return RecordingStatus.PARTIAL
        return RecordingStatus.OK

    @property
    def duration_s(self) -> float:
        """The recording's length: its longest stream's."""
        return max((s.duration_s for s in self.streams), default=0.0)

    @property
    def missing(self) -> list[TimeRange]:
        """Stretches where some stream was not decoded (union over the streams)."""
        return merge_ranges([r for s in self.streams for r in s.missing])

    @property
    def analysed_s(self) -> float:
        """Seconds of the recording where every stream it has there was decoded."""
        return max(0.0, self.duration_s - sum(r.duration for r in self.missing))

    @property
    def causes(self) -> list[str]:
        return list(dict.fromkeys(c for s in self.streams for c in s.causes))


@dataclass
class RecordingAnalysis:
    """Everything measured in one recording, before people are resolved across the scan."""

    path: Path
    sha256: str
    status: RecordingStatus
    error: str | None = None
    media: MediaInfo | None = None
    faces: FaceAnalysis | None = None
    voices: VoiceAnalysis | None = None
    size_bytes: int = 0
    links: list[FaceVoiceLink] = field(default_factory=list)
    coverage: Coverage | None = None  # None: not accounted (unreadable before decoding, or an older scan)


# --------------------------------------------------------------------------------------------
# People, risk and findings (scan-wide)
# --------------------------------------------------------------------------------------------


class Modality(str, enum.Enum):
    FACE = "face"
    VOICE = "voice"


@dataclass(frozen=True)
class IdentityMatch:
    """How a person was tied to an enrolled subject."""

    modality: Modality
    subject_id: str
    distance: float  # face: encoding distance; voice: 1 - cosine similarity, or 1 - confidence when normalised
    confidence: float  # 0..1


@dataclass
class FaceSighting:
    """One face cluster of one recording, attributed to a person."""

    recording: Path
    cluster: FaceCluster


@dataclass
class VoiceSighting:
    """One speaker of one recording, attributed to a person."""

    recording: Path
    speaker: SpeakerCluster


@dataclass
class FaceExposure:
    """How much usable face material of one person the scanned recordings hold."""

    usable_frames: int
    detections: int
    best_face_px: float
    best_frontal_face_px: float
    best_eye_distance_px: float
    sharpness: float
    yaw_range: tuple[float, float]
    tier: Level
    reasons: list[str]


@dataclass
class VoiceExposure:
    """How much usable speech of one person the scanned recordings hold."""

    speech_s: float
    usable_speech_s: float
    longest_clean_s: float
    snr_db: float
    bandwidth_hz: float
    tier: Level
    reasons: list[str]


@dataclass
class RiskAssessment:
    face_tier: Level
    voice_tier: Level
    combined_tier: Level
    score: int
    reasons: list[str]


@dataclass
class RecordingExposure:
    """One person's material in one recording, graded on its own (the corpus view's rows)."""

    recording: Path
    face_tier: Level
    voice_tier: Level
    combined_tier: Level
    score: int
    usable_frames: int = 0
    best_face_px: float = 0.0
    usable_speech_s: float = 0.0
    longest_clean_s: float = 0.0


@dataclass
class ReductionPlan:
    """Recordings whose removal brings one modality of a person down to `tier_after`."""

    modality: Modality
    remove: list[Path]
    tier_before: Level
    tier_after: Level

    def describe(self) -> str:
        names = ", ".join(p.name for p in self.remove)
        return (
            f"remove {names} and the {self.modality.value} drops from {self.tier_before.value} "
            f"to {self.tier_after.value}"
        )


@dataclass
class Person:
    """Someone identifiable in the scan: enrolled subject or a stable unknown."""

    person_id: str
    subject_id: str | None
    display_name: str | None
    match: IdentityMatch | None
    faces: list[FaceSighting] = field(default_factory=list)
    voices: list[VoiceSighting] = field(default_factory=list)
    face: FaceExposure | None = None
    voice: VoiceExposure | None = None
    risk: RiskAssessment | None = None
    by_recording: list[RecordingExposure] = field(default_factory=list)
    reductions: list[ReductionPlan] = field(default_factory=list)

    @property
    def recordings(self) -> list[Path]:
        seen: dict[Path, None] = {}
        for sighting in [*self.faces, *self.voices]:
            seen.setdefault(sighting.recording, None)
        return list(seen)

    def time_ranges_in(self, recording: Path) -> list[TimeRange]:
        ranges = [r for s in self.faces if s.recording == recording for r in s.cluster.time_ranges]
        ranges += [r for s in self.voices if s.recording == recording for r in s.speaker.turns]
        return merge_ranges(ranges)


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


def merge_ranges(ranges: list[TimeRange], gap: float = 0.0) -> list[TimeRange]:
    """Union of time ranges; ranges closer than `gap` seconds are joined."""
    merged: list[TimeRange] = []
    for r in sorted(ranges, key=lambda r: (r.start, r.end)):
        if merged and r.start <= merged[-1].end + gap:
            last = merged[-1]
            merged[-1] = TimeRange(last.start, max(last.end, r.end))
        else:
            merged.append(r)
    return merged


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
