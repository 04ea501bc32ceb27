"""What the analysis of one recording finds: face clusters, speakers, their links, and the whole record.

Made by `scanner.analysis`; `RecordingAnalysis` is what the store caches and every later stage reads.
Biometric vectors (face encodings, voiceprints) live only on these records, never in a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scanner.models.common import TimeRange
from scanner.models.media import Coverage, MediaInfo, RecordingStatus, StreamCoverage


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
        """Detections good enough to build a face model from (`FaceDetection.usable`)."""
        return sum(1 for d in self.detections if d.usable)

    @property
    def best_face_px(self) -> float:
        """Largest usable face-box width, in original-resolution pixels (0 without one)."""
        usable = [d.size_px for d in self.detections if d.usable]
        return max(usable) if usable else 0.0

    @property
    def best_eye_distance_px(self) -> float:
        """Largest distance between the eyes over all detections, in pixels."""
        return max((d.eye_distance_px for d in self.detections), default=0.0)

    @property
    def best_frontal_face_px(self) -> float:
        """Largest usable face within 15 degrees of frontal (the rubric's 'frontal')."""
        frontal = [d.size_px for d in self.detections if d.usable and abs(d.yaw_deg) <= 15.0]
        return max(frontal) if frontal else 0.0

    @property
    def sharpness(self) -> float:
        """The sharpest detection's sharpness (variance of the Laplacian on the face crop)."""
        return max((d.sharpness for d in self.detections), default=0.0)

    @property
    def yaw_range(self) -> tuple[float, float]:
        """(least, greatest) head yaw over the detections, in degrees; (0, 0) without any."""
        yaws = [d.yaw_deg for d in self.detections]
        return (min(yaws), max(yaws)) if yaws else (0.0, 0.0)


@dataclass
class FaceAnalysis:
    """The faces of one recording: its face clusters and how many frames were searched.

    `sample_fps` is the rate frames were sampled at (None for a still image).
    """

    clusters: list[FaceCluster]
    frames_sampled: int
    sample_fps: float | None
    coverage: StreamCoverage | None = None  # what of the picture was decoded (set by scanner.analysis.recording)


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
        """Seconds of the speaker's turns (usable or not)."""
        return sum(t.duration for t in self.turns)


@dataclass
class VoiceAnalysis:
    """The voices of one recording: its speakers and its total speech, in seconds."""

    speakers: list[SpeakerCluster]
    speech_s: float
    coverage: StreamCoverage | None = None  # what of the sound was decoded (set by scanner.analysis.recording)


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
