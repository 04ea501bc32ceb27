"""What decoding gives: the media facts, frames and audio of one recording, and what of it was decoded.

Made by `scanner.media`; read by the analysis stages (frames, audio) and by the policy and outputs
(coverage: a recording not decoded to the end is a finding, not a crash).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from scanner.models.common import TimeRange, merge_ranges


class MediaKind(str, enum.Enum):
    """What a recording holds: moving pictures (with or without sound), sound only, or one still image."""

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
        """Length of the decoded audio, in seconds."""
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
        """Length of the stream, in seconds (`end_s - start_s`)."""
        return max(0.0, self.end_s - self.start_s)

    @property
    def missing_s(self) -> float:
        """Seconds of the stream in `missing` (not decoded)."""
        return min(self.duration_s, sum(r.duration for r in self.missing))

    @property
    def decoded_s(self) -> float:
        """Seconds of the stream that were decoded."""
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
        """The streams accounted (video or image first, then audio)."""
        return [s for s in (self.video, self.audio) if s is not None]

    @property
    def status(self) -> RecordingStatus:
        """ok, partial or unreadable, by the rule above."""
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
        """Why stretches were not decoded (decoder messages, once each, in order)."""
        return list(dict.fromkeys(c for s in self.streams for c in s.causes))
