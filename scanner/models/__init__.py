"""Typed records that pass between the pipeline stages, one module per stage.

Decode -> faces / voices -> people -> risk -> consent -> report. Each stage takes and returns these
dataclasses; numpy arrays hold the numeric payloads. Biometric vectors (face encodings, voiceprints)
live only on the analysis records and are never copied into a report.

Every record is importable from `scanner.models` itself, where scan databases written before the
split name them in their pickles.
"""

from __future__ import annotations

from scanner.models.analysis import (
    FaceAnalysis,
    FaceCluster,
    FaceDetection,
    FaceVoiceLink,
    RecordingAnalysis,
    SpeakerCluster,
    VoiceAnalysis,
)
from scanner.models.common import (
    Level,
    TimeRange,
    merge_ranges,
    timecode,
)
from scanner.models.findings import (
    Finding,
    RecordingContext,
    ScanResult,
    SkippedFile,
    SuppressedFinding,
    Waiver,
)
from scanner.models.media import (
    AudioTrack,
    Coverage,
    Frame,
    MediaError,
    MediaInfo,
    MediaKind,
    NoAudio,
    NoVideoFrames,
    RecordingStatus,
    StreamCoverage,
    join_coverage,
)
from scanner.models.people import (
    FaceExposure,
    FaceSighting,
    IdentityMatch,
    Modality,
    Person,
    RecordingExposure,
    ReductionPlan,
    RiskAssessment,
    VoiceExposure,
    VoiceSighting,
)

__all__ = [
    "AudioTrack",
    "Coverage",
    "FaceAnalysis",
    "FaceCluster",
    "FaceDetection",
    "FaceExposure",
    "FaceSighting",
    "FaceVoiceLink",
    "Finding",
    "Frame",
    "IdentityMatch",
    "Level",
    "MediaError",
    "MediaInfo",
    "MediaKind",
    "Modality",
    "NoAudio",
    "NoVideoFrames",
    "Person",
    "RecordingAnalysis",
    "RecordingContext",
    "RecordingExposure",
    "RecordingStatus",
    "ReductionPlan",
    "RiskAssessment",
    "ScanResult",
    "SkippedFile",
    "SpeakerCluster",
    "StreamCoverage",
    "SuppressedFinding",
    "TimeRange",
    "VoiceAnalysis",
    "VoiceExposure",
    "VoiceSighting",
    "Waiver",
    "join_coverage",
    "merge_ranges",
    "timecode",
]
