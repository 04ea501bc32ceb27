"""Plan a scan's analysis work: one task per recording, largest first, long videos split into windows.

With several workers, a video longer than two windows (`Splitting`, 10 min by default) is split:
its voices are analysed as one task, handed out first, its faces in windows on any free worker, and
a last task joins the windows and links voices to faces. One long recording then keeps every worker busy
instead of one. When there are fewer recordings than workers, shorter videos are split the same
way into windows of 20 s or more, one per spare worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from scanner.analysis.recording import AnalysisSettings, probe_recording
from scanner.media.objstore import StorageSettings
from scanner.models import FaceAnalysis, MediaInfo, MediaKind, VoiceAnalysis


@dataclass(frozen=True)
class Splitting:
    """When one long video is split over several workers.

    window_s: length of the face windows, 300 s. Each window finds and encodes its people again
        (about a second of work), negligible against the minute or so a 5-minute window takes,
        but not against a 30 s one. Videos shorter than two windows stay whole; 0 never splits.
    min_bytes: files smaller than this (5 MB) are never probed for splitting: no video this small
        lasts 10 minutes at a bitrate worth scanning, and probing thousands of small files one by
        one in the parent process costs more than it could win.
    """

    window_s: float = 300.0
    min_bytes: int = 5_000_000
    spare_window_s: float = 20.0
    """When there are fewer recordings than workers, a video lasting at least two of these windows is
    split anyway, into as many windows as the spare workers can take (each at least this long, in
    seconds): a scan of one short video then uses every core (measured in bench/README.md, "A lone
    video uses every worker"). 0 never splits short videos."""
    voice_fixed_s: float = 25.0
    voice_per_s: float = 0.16
    """The voice task's cost in seconds of video whose faces take as long: `voice_fixed_s` for its
    imports and models, plus `voice_per_s` per second of audio (measured on gallery meetings:
    bench/README.md, "Voices first" and "Voices without librosa"). When a short video with sound is
    split over spare workers, the last window, which the worker that ran the voice task takes, is
    shorter by this much, so that every worker finishes at about the same time (at least half of
    `spare_window_s`)."""


@dataclass(frozen=True)
class Job:
    """One recording to analyse; `sha256` when already known (it is not computed again).

    storage: set for an object in object storage (`path` is then an `objstore.ObjectURL`): the worker
        copies it to a local temporary file and analyses that (objects are never split).
    size: bytes, when known without a `stat` (the listing's size of an object).
    """

    path: Path
    sha256: str | None = None
    storage: StorageSettings | None = None
    size: int | None = None


@dataclass
class SplitVideo:
    """A long video analysed in parts: face windows and the voice track, then joined."""

    job: Job
    digest: str
    size: int
    info: MediaInfo
    windows: list[tuple[float, float]]
    faces: dict[int, FaceAnalysis | None] = field(default_factory=dict)
    voices: VoiceAnalysis | None = None
    voices_done: bool = False
    error: BaseException | None = None

    def complete(self) -> bool:
        """Whether every part has come back, or one failed."""
        return self.error is not None or (self.voices_done and len(self.faces) == len(self.windows))

    def face_parts(self) -> list[FaceAnalysis]:
        """The face windows' analyses in time order, those without a decodable frame left out."""
        return [self.faces[i] for i in range(len(self.windows)) if self.faces[i] is not None]


def plan_jobs(
    jobs: list[Job], settings: AnalysisSettings, splitting: Splitting = Splitting(), workers: int = 1
) -> tuple[list[Job], list[SplitVideo]]:
    """(whole jobs, split videos), largest files first; videos longer than two windows become a
    `SplitVideo` (the rest stay whole), and so do shorter videos when `workers` outnumber the
    recordings (`Splitting.spare_window_s`)."""
    sizes = {job.path: job_size(job) for job in jobs}
    ordered = sorted(jobs, key=lambda job: sizes[job.path], reverse=True)
    spare = workers // len(jobs) if jobs and splitting.spare_window_s > 0 else 0
    whole, splits = [], []
    for job in ordered:
        split = _split_of(job, sizes[job.path], settings, splitting, spare)
        if split is None:
            whole.append(job)
        else:
            splits.append(split)
    return whole, splits


def job_size(job: Job) -> int:
    """A job's size in bytes: the listed size of an object, else the file's (0 when it cannot be read)."""
    return job.size if job.size is not None else _size(job.path)


def _size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _split_of(
    job: Job, size: int, settings: AnalysisSettings, splitting: Splitting, spare: int = 0
) -> SplitVideo | None:
    """The windows of one video, or None to analyse it whole; `spare`: workers free for this file alone."""
    if job.sha256 is None or job.storage is not None:
        return None
    long_ok = splitting.window_s > 0 and size >= splitting.min_bytes
    if not long_ok and spare < 2:
        return None
    try:
        info = probe_recording(job.path, settings)
    except Exception:  # noqa: BLE001 - the whole-file analysis reports what is wrong with it
        return None
    if info.kind is not MediaKind.VIDEO or not info.duration_s:
        return None
    if long_ok and info.duration_s >= 2 * splitting.window_s:
        count = int(info.duration_s // splitting.window_s)
        edges = [i * info.duration_s / count for i in range(count + 1)]
    else:
        count = min(spare, int(info.duration_s // splitting.spare_window_s)) if spare >= 2 else 0
        edges = _spare_edges(info, count, splitting)
    if count < 2:
        return None
    # The last window is open-ended: a declared duration can be shorter than the last frame's time.
    windows = [(edges[i], edges[i + 1] if i < count - 1 else float("inf")) for i in range(count)]
    return SplitVideo(job, job.sha256, size, info, windows)


def _spare_edges(info: MediaInfo, count: int, splitting: Splitting) -> list[float]:
    """Edges of `count` windows over one video, one window per worker: equal without sound; with
    sound the last window is shorter by the voice task's estimated share (`Splitting.voice_fixed_s`,
    `voice_per_s`), since the worker that analyses the voices first takes it last."""
    duration = info.duration_s
    if count < 2:
        return []
    if not info.audio_sample_rate:
        return [i * duration / count for i in range(count + 1)]
    voices = splitting.voice_fixed_s + splitting.voice_per_s * duration
    last = (duration + voices) / count - voices
    last = min(max(last, splitting.spare_window_s / 2), duration / count)
    step = (duration - last) / (count - 1)
    return [i * step for i in range(count)] + [duration]
