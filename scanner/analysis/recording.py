"""Analyse one recording: decode it, find faces and voices, measure them.

This is the unit of work the executor hands to workers, so it takes only picklable arguments
and returns a `RecordingAnalysis`; a file that cannot be decoded comes back `unreadable` with
the reason instead of raising, and one decoded only in part comes back `partial`, its coverage
(what of the picture and the sound was decoded, what was not and why) on the record.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from scanner.media.audio import load_audio
from scanner.media.coverage import decode_log
from scanner.media.files import sha256_file
from scanner.media.limits import (
    DEFAULT_MAX_DURATION_S,
    DEFAULT_MAX_PIXELS,
    MEMORY_CEILING_REASON,
    check_limits,
    current_memory_ceiling,
    memory_ceiling_message,
    time_limit,
)
from scanner.media.probe import probe
from scanner.models import (
    Coverage,
    FaceAnalysis,
    FaceVoiceLink,
    MediaError,
    MediaInfo,
    MediaKind,
    NoAudio,
    NoVideoFrames,
    RecordingAnalysis,
    RecordingStatus,
    VoiceAnalysis,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalysisSettings:
    """How recordings are sampled and analysed.

    sample_fps: video frames searched for faces per second; faces are tracked in between, and
        1 a second finds everyone visible for 2 s or more (bench/faces.md).
    max_width: frames are downscaled to this width before face detection, never so far that a face of
        60 px measures under 40 px (`FaceSearch.frame_width`; faces of 60 px and more are found at
        any resolution).
    face_detector: "hog" (fast, default) or "cnn" (much slower, finds harder faces).
    audio_sample_rate: analysis rate for speech; 16 kHz keeps everything a voice clone needs.
    link_voices: watch lips to tie voices to faces in videos (about 10 mouth samples a second).
    max_pixels: frames or images with more pixels are refused (decompression bombs), 100 MP.
    max_duration_s: recordings declaring a longer duration are refused, 4 h.
    time_limit_s: analysis of one file stops (as unreadable, naming the limit) after this long,
        checked between frames; None for no limit. 10 min is far beyond any sane file's need.
    """

    sample_fps: float = 1.0
    max_width: int = 1280
    face_detector: str = "hog"
    audio_sample_rate: int = 16000
    link_voices: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_duration_s: float = DEFAULT_MAX_DURATION_S
    time_limit_s: float | None = 600.0


def analyze_recording(
    path: Path, settings: AnalysisSettings = AnalysisSettings(), sha256: str | None = None
) -> RecordingAnalysis:
    """Decode one file and return what it holds; never raises for a bad file.

    `sha256` is the content hash when the caller already computed it (to look up the scan
    database); otherwise the file is hashed here.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        digest = sha256 or sha256_file(path)
    except OSError as exc:
        return RecordingAnalysis(path, "", RecordingStatus.UNREADABLE, error=f"cannot open file: {exc.strerror or exc}")
    except MediaError as exc:
        return RecordingAnalysis(path, "", RecordingStatus.UNREADABLE, error=str(exc))

    try:
        with time_limit(settings.time_limit_s):
            info = probe_recording(path, settings)
            faces = analyze_faces(path, info, settings)
            check_limits()
            voices = analyze_voices(path, info, settings)
            check_limits()
            links = link_faces_to_voices(path, info, settings, faces, voices)
    except Exception as exc:  # noqa: BLE001 - one hostile file must not end the scan
        return unreadable(path, digest, size, exc)
    return accounted(RecordingAnalysis(
        path, digest, RecordingStatus.OK, media=info, faces=faces, voices=voices, size_bytes=size, links=links
    ))


def accounted(rec: RecordingAnalysis) -> RecordingAnalysis:
    """`rec` with its coverage (from its face and voice passes) and the status it gives.

    Status (`Coverage.status`): `ok` when every stream was decoded whole, `partial` when some of
    it was not, `unreadable` when nothing was (the reason then is the decoder's).
    """
    coverage = Coverage(
        video=rec.faces.coverage if rec.faces is not None else None,
        audio=rec.voices.coverage if rec.voices is not None else None,
    )
    rec.coverage = coverage
    rec.status = coverage.status
    if rec.status is RecordingStatus.UNREADABLE:
        rec.error = "; ".join(coverage.causes) or "nothing in the file could be decoded"
        rec.faces = rec.voices = None
        rec.links = []
    return rec


def probe_recording(path: Path, settings: AnalysisSettings) -> MediaInfo:
    """What the file holds (streams, duration, size), within the settings' limits; MediaError if refused."""
    return probe(path, max_pixels=settings.max_pixels, max_duration_s=settings.max_duration_s)


def analyze_faces(
    path: Path, info: MediaInfo, settings: AnalysisSettings, start_s: float | None = None, end_s: float | None = None
) -> FaceAnalysis | None:
    """Faces of a video or image (None for audio), optionally of the window [start_s, end_s) only."""
    # Deferred, as the voice and linking stages below: the analysis stacks (SciPy, dlib, librosa,
    # onnxruntime) load only in processes that analyse, not in the command that starts them.
    from scanner.analysis.faces.analyzer import FaceAnalyzer
    from scanner.analysis.faces.settings import FaceSettings

    if info.kind not in (MediaKind.VIDEO, MediaKind.IMAGE) or not info.width:
        return None
    analyzer = FaceAnalyzer(
        FaceSettings(sample_fps=settings.sample_fps, max_width=settings.max_width, detector=settings.face_detector)
    )
    with decode_log() as log:
        try:
            faces = analyzer.analyze(path, info, start_s=start_s, end_s=end_s)
        except NoVideoFrames as exc:
            if exc.coverage is None:
                raise
            # The picture is lost here; the sound (and the other windows) may still be analysed.
            faces = FaceAnalysis(clusters=[], frames_sampled=0, sample_fps=settings.sample_fps)
            log.video = [exc.coverage]
    faces.coverage = log.video_coverage()
    return faces


def analyze_voices(path: Path, info: MediaInfo, settings: AnalysisSettings) -> VoiceAnalysis | None:
    """Speakers of the file's audio track (None without audio or with an empty track)."""
    from scanner.analysis.voices.analyzer import VoiceAnalyzer

    if not info.audio_sample_rate:
        return None
    try:
        audio = load_audio(path, sample_rate=settings.audio_sample_rate, max_duration_s=settings.max_duration_s)
    except NoAudio as exc:
        if exc.coverage is None:
            raise
        # The sound is lost; the picture may still be analysed.
        return VoiceAnalysis(speakers=[], speech_s=0.0, coverage=exc.coverage)
    if audio is None or not len(audio.samples):
        return None
    voices = VoiceAnalyzer().analyze(audio)
    voices.coverage = audio.coverage
    return voices


def link_faces_to_voices(
    path: Path, info: MediaInfo, settings: AnalysisSettings, faces: FaceAnalysis | None, voices: VoiceAnalysis | None
) -> list[FaceVoiceLink]:
    """Which face speaks with which voice (lip sync); empty when linking is off or impossible."""
    from scanner.analysis.linking import LipSyncLinker

    if faces is None or voices is None or not settings.link_voices:
        return []
    try:
        return LipSyncLinker(max_width=settings.max_width).link(path, info, faces, voices)
    except MediaError as exc:
        if "per-file limit" in str(exc) or str(exc).startswith(MEMORY_CEILING_REASON):
            raise
        # the faces and voices stand; only the linking is lost
        log.warning("%s: voices not linked to faces: %s", path, exc)
        return []


def unreadable(path: Path, digest: str, size: int | None, exc: BaseException) -> RecordingAnalysis:
    """The analysis of a file that could not be analysed, naming the reason."""
    if isinstance(exc, MediaError):
        error = str(exc)
    elif isinstance(exc, MemoryError):
        ceiling = current_memory_ceiling()
        error = memory_ceiling_message(ceiling.limit_bytes) if ceiling else "analysis ran out of memory"
    else:
        log.debug("analysis of %s failed", path, exc_info=exc)
        error = f"analysis failed: {type(exc).__name__}: {exc}"
    return RecordingAnalysis(Path(path), digest, RecordingStatus.UNREADABLE, error=error, size_bytes=size)
