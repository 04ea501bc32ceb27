"""The units of work a worker runs: a whole recording, one face window or the voices of a split
video, and the join of a split video's parts. Each is a (function, *args) tuple that pickles, so the
same call runs in this process, in a local worker process or on a Dask worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from scanner.analysis.recording import (
    AnalysisSettings,
    accounted,
    analyze_faces,
    analyze_recording,
    analyze_voices,
    link_faces_to_voices,
    unreadable,
)
from scanner.media.limits import time_limit
from scanner.models import (
    FaceAnalysis,
    MediaInfo,
    NoVideoFrames,
    RecordingAnalysis,
    RecordingStatus,
    VoiceAnalysis,
    join_coverage,
)
from scanner.pipeline.objects import analyze_object
from scanner.pipeline.planning import Job, SplitVideo
from scanner.pipeline.worker_setup import load_models, steady_allocator


def whole_task(job: Job, settings: AnalysisSettings) -> tuple:
    """(function, *args) that analyses `job` as one task: `analyze_recording` on a local file,
    `objects.analyze_object` (copy, then analyse) on an object."""
    if job.storage is not None:
        return analyze_object, job.path, settings, job.storage, job.sha256, job.size
    return analyze_recording, job.path, settings, job.sha256


def window_faces(path: Path, info: MediaInfo, settings: AnalysisSettings, start: float, end: float):
    """Faces of one window, or None when not one frame of it decodes: a file whose data ends early
    (an interrupted download) keeps what its other windows found, as the whole-file analysis would."""
    with time_limit(settings.time_limit_s):
        try:
            return analyze_faces(path, info, settings, start_s=start, end_s=None if end == float("inf") else end)
        except NoVideoFrames:
            return None


def split_voices(path: Path, info: MediaInfo, settings: AnalysisSettings):
    """The voices of a split video, analysed whole within the per-file time limit."""
    with time_limit(settings.time_limit_s):
        return analyze_voices(path, info, settings)


def join_split(
    path: Path, digest: str, size: int, info: MediaInfo, settings: AnalysisSettings,
    face_parts: list[FaceAnalysis | None], voices: VoiceAnalysis | None,
) -> RecordingAnalysis:
    """One recording's analysis from its parts: face windows joined (None: a window with no decodable
    frame; unreadable only when no window has one), voices linked to faces."""
    from scanner.analysis.faces.grouping import (
        merge_analyses,  # deferred: scipy and the face stage, needed by split videos only
    )

    try:
        face_parts = [part for part in face_parts if part is not None]
        if not face_parts:
            raise NoVideoFrames("no decodable video frame (truncated or corrupt file)")
        with time_limit(settings.time_limit_s):
            faces = merge_analyses(face_parts)
            faces.coverage = join_coverage([p.coverage for p in face_parts if p.coverage is not None])
            links = link_faces_to_voices(path, info, settings, faces, voices)
    except Exception as exc:  # noqa: BLE001 - one hostile file must not end the scan
        return unreadable(path, digest, size, exc)
    return accounted(RecordingAnalysis(
        Path(path), digest, RecordingStatus.OK, media=info, faces=faces, voices=voices, size_bytes=size, links=links
    ))


@dataclass(frozen=True)
class Task:
    """One unit of pool work: a whole recording, one face window or the voices of a split, or its join."""

    kind: str  # "whole", "faces", "voices" or "join"
    owner: Job | SplitVideo
    index: int | None = None

    def call(self, settings: AnalysisSettings) -> tuple:
        """(function, *args) that runs this task in a worker."""
        if self.kind == "whole":
            return whole_task(self.owner, settings)
        split = self.owner
        if self.kind == "faces":
            start, end = split.windows[self.index]
            return window_faces, split.job.path, split.info, settings, start, end
        if self.kind == "voices":
            return split_voices, split.job.path, split.info, settings
        parts = split.face_parts()
        return join_split, split.job.path, split.digest, split.size, split.info, settings, parts, split.voices

    @property
    def job(self) -> Job:
        """The recording this task is part of."""
        return self.owner if self.kind == "whole" else self.owner.job


def on_dask_worker(function, *args):
    """Run one analysis task on a Dask worker (whose allocator its nanny configured; see steady_allocator).

    The scan's `dask_worker.ModelLoader` has normally loaded the models on the worker's main thread
    already; then these calls return at once."""
    steady_allocator()
    load_models()
    return function(*args)
