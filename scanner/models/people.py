"""The people of a scan and their risk: who was seen and heard where, and how easily they could be cloned.

Made by `scanner.identity.people` (people, sightings, identity matches) and `scanner.policy.risk`
(exposures, risk assessments, reduction plans); read by the policy rules and the outputs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

from scanner.models.analysis import FaceCluster, SpeakerCluster
from scanner.models.common import Level, TimeRange, merge_ranges


class Modality(str, enum.Enum):
    """The biometric identifier: a face or a voice."""

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
    """How easily a person could be cloned from all their material (`scanner.policy.risk`).

    Tiers per modality and combined, a 0-100 score, and the reasons in plain words.
    """

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
        """The plan in one sentence for the report ("remove a.mp4 and the face drops from high to low")."""
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
        """The recordings the person was seen or heard in, in order of first sighting."""
        seen: dict[Path, None] = {}
        for sighting in [*self.faces, *self.voices]:
            seen.setdefault(sighting.recording, None)
        return list(seen)

    def time_ranges_in(self, recording: Path) -> list[TimeRange]:
        """Where in `recording` the person is seen or heard (merged ranges, seconds)."""
        ranges = [r for s in self.faces if s.recording == recording for r in s.cluster.time_ranges]
        ranges += [r for s in self.voices if s.recording == recording for r in s.speaker.turns]
        return merge_ranges(ranges)
