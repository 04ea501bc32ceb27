"""Decode recordings and still images into the arrays the analysis stages need.

Everything here speaks `MediaError` to its callers: whatever goes wrong inside PyAV (FFmpeg) or
Pillow, the caller gets one exception type whose message is a one-line reason fit for a report
("truncated or corrupt container: moov atom not found"). The scan records such a file as
unreadable instead of crashing.

Files are recognised by their content, never by their extension: a still image is anything Pillow
identifies as one of the common photo formats, everything else goes through FFmpeg.

Functions
---------
probe(path)                      -> MediaInfo
iter_frames(path, info, ...)     -> Iterator[Frame]     (streamed, bounded memory)
load_audio(path, ...)            -> AudioTrack | None   (its `coverage`: what was decoded)
decode_log()                     -> context manager: collects the `StreamCoverage` of every
                                    video pass (iter_frames) made inside it
sha256_file(path)                -> str
time_limit(seconds)              -> context manager: per-file time limit for the decoders
memory_limit(bytes)              -> context manager: per-file resident memory ceiling
check_limits()                   -> raise MediaError past either limit (between analysis steps)

Limits (hostile or broken files must end as a one-line reason, never as a hang or an
exhausted machine; every limit is a parameter with the default below):

- pixels per frame (`max_pixels`, 100 megapixels): checked on the image header or the video
  stream's dimensions before any pixel is decoded (decompression bombs: a 16000x16000 PNG, a
  tiny PNG or JPEG that declares huge dimensions, a video with giant frames);
- duration (`max_duration_s`, 4 hours): checked at probe time on the container header, so a
  file claiming absurd length is refused ("longer than the 4 h limit") instead of decoded;
- plausible timing: a video frame rate outside 0.01-1000 fps or an audio sample rate outside
  1-768 kHz in the header is corrupt or hostile metadata and refused at probe time (a WAV
  declaring 1 Hz would otherwise be upsampled to gigabytes);
- memory: frames are decoded and downscaled one at a time; audio stops at `max_duration_s`
  (4 h at 16 kHz is 920 MB of float32);
- time: `time_limit(seconds)` (or an explicit `deadline=`) makes probe, iter_frames and
  load_audio raise MediaError("took longer than the N s per-file limit") between frames;
- resident memory: `memory_limit(bytes)` makes them (and `check_limits()`) raise MediaError
  ("needed more memory than the N GB allowed per worker process") between frames;
- only regular files are opened (a named pipe or a device named like a video would block or
  never end).

Decode accounting (coverage): a packet the decoder rejects does not end decoding; the stream
goes on from the next packet, and every pass records what it delivered (`StreamCoverage`): the
stretches it could not decode (rejected packets; data ending before the declared duration;
more than `GAP_TOLERANCE_S` without any data between packets of known length), the count of
rejected packets, the causes in words, and for video the sampled frames planned and decoded.
Audio keeps its time line: a rejected stretch becomes silence of the same length.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import logging
import math
import os
import queue
import re
import stat
import threading
import time
import warnings
import wave
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from scanner.models import (
    AudioTrack,
    Frame,
    MediaError,
    MediaInfo,
    MediaKind,
    NoAudio,
    NoVideoFrames,
    StreamCoverage,
    TimeRange,
    merge_ranges,
)

log = logging.getLogger(__name__)

#: Default ceiling on the pixel count of a still image (100 megapixels). Larger images are refused:
#: decoding them could exhaust memory (decompression bombs) and no real photo of a person needs it.
DEFAULT_MAX_PIXELS = 100_000_000

#: Default ceiling on the audio decoded from one recording (4 hours at the analysis rate).
DEFAULT_MAX_AUDIO_S = 4 * 3600.0

#: Default ceiling on a recording's duration as its header states it. Longer files are refused
#: at probe time: a header claiming years of media is broken or hostile, and more than the audio
#: ceiling could not be analysed whole anyway.
DEFAULT_MAX_DURATION_S = DEFAULT_MAX_AUDIO_S

#: Frame rates and sample rates outside these ranges are corrupt or hostile timing metadata.
MIN_FPS, MAX_FPS = 0.01, 1000.0
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000

# Still formats handled by Pillow. The list is explicit because some Pillow plugins (TGA, for
# example) accept almost any byte prefix and would claim text files or audio as "images".
_IMAGE_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP", "MPO", "PPM")

# FFmpeg demuxers that will "open" arbitrary bytes (text shown as ANSI art, raw streams). A
# recording detected as one of these is not a recording.
_NON_MEDIA_DEMUXERS = {"tty", "data", "bin", "srt", "ass", "webvtt", "subviewer", "subviewer1"}

_HASH_CHUNK = 1 << 20

#: Stretches without data shorter than this (seconds) are the normal slack of container timing
#: (the last frame's length, audio encoder priming, rounding in a header's duration), not a gap.
GAP_TOLERANCE_S = 0.5

#: At most this many missing stretches are kept per stream: past it, neighbours are joined
#: (a file rejected every other packet would otherwise list thousands).
MAX_MISSING_RANGES = 200


# --------------------------------------------------------------------------------------------
# Per-file time limit
# --------------------------------------------------------------------------------------------


class Deadline:
    """A point in time after which decoding of the current file stops with a MediaError.

    `Deadline(seconds)` starts counting now. `check()` is called between decoded frames and
    packets, so the limit is honoured within one frame's decoding time.
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.expires = time.monotonic() + self.seconds

    def expired(self) -> bool:
        return time.monotonic() > self.expires

    def check(self) -> None:
        if self.expired():
            raise MediaError(f"took longer than the {self.seconds:g} s per-file limit")


_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("likeness_media_deadline", default=None)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[Deadline | None]:
    """Within this block, probe/iter_frames/load_audio stop with MediaError after `seconds`.

    For the analysis of one file: ``with media.time_limit(300): ...``. None or <= 0: no limit.
    Code that decodes through other modules (the face analyser calls `iter_frames`) is covered
    without passing anything along.
    """
    deadline = Deadline(seconds) if seconds and seconds > 0 else None
    token = _DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        _DEADLINE.reset(token)


def _deadline(explicit: Deadline | None) -> Deadline | None:
    return explicit if explicit is not None else _DEADLINE.get()


def _check_deadline(deadline: Deadline | None) -> None:
    if deadline is not None:
        deadline.check()
    ceiling = _CEILING.get()
    if ceiling is not None:
        ceiling.check()


# --------------------------------------------------------------------------------------------
# Per-file memory ceiling
# --------------------------------------------------------------------------------------------

#: Every memory-ceiling reason starts with this (a scan does not reuse such a result from its cache:
#: with more memory allowed, the file may well be analysed).
MEMORY_CEILING_REASON = "needed more memory than"

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident memory (RSS) in bytes, from /proc/self/statm; 0 where that is missing."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def memory_ceiling_message(limit_bytes: int) -> str:
    """The one-line reason reported for a file whose analysis passed the per-worker memory ceiling."""
    return (f"{MEMORY_CEILING_REASON} the {limit_bytes / 2**30:.1f} GB allowed per worker process "
            "(--max-memory); analysis stopped before the system ran out")


class MemoryCeiling:
    """A ceiling on this process's resident memory while one file is analysed.

    `check()` is called between decoded frames and between analysis stages (with the deadline), and
    reads the resident size at most every `every_s` seconds (default 0.05 s; a read costs about 10 us).
    Past the ceiling it raises MediaError with `memory_ceiling_message`.
    """

    def __init__(self, limit_bytes: int, every_s: float = 0.05):
        self.limit_bytes = int(limit_bytes)
        self.every_s = every_s
        self._next = 0.0

    def exceeded(self) -> bool:
        return resident_bytes() > self.limit_bytes

    def check(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        if self.exceeded():
            raise MediaError(memory_ceiling_message(self.limit_bytes))


_CEILING: contextvars.ContextVar[MemoryCeiling | None] = contextvars.ContextVar("likeness_memory_ceiling",
                                                                                 default=None)


@contextlib.contextmanager
def memory_limit(limit_bytes: int | None) -> Iterator[MemoryCeiling | None]:
    """Within this block, decoding (and every `check_limits()`) stops with MediaError once this
    process holds more than `limit_bytes` of resident memory. None or <= 0: no ceiling."""
    ceiling = MemoryCeiling(limit_bytes) if limit_bytes and limit_bytes > 0 else None
    token = _CEILING.set(ceiling)
    try:
        yield ceiling
    finally:
        _CEILING.reset(token)


def current_memory_ceiling() -> MemoryCeiling | None:
    """The ceiling of the enclosing `memory_limit` block, if any."""
    return _CEILING.get()


def check_limits() -> None:
    """Raise MediaError if the enclosing `time_limit` has expired or `memory_limit` is exceeded.

    For long computations outside the decoders (the analysis stages call it between steps).
    """
    _check_deadline(_DEADLINE.get())


# --------------------------------------------------------------------------------------------
# Decode accounting
# --------------------------------------------------------------------------------------------


class StreamTally:
    """What one decoding pass over one stream delivered, packet by packet.

    Times are seconds from `origin` (the stream's start, in its time base units), counted within
    the stretch [start_s, end_s) (the whole stream, or a window of it). `accepted(packet)` and
    `rejected(packet, exc)` are called for every demuxed packet; `stopped(exc)` when the
    container cannot be read further. `result()` turns it into a `StreamCoverage`.

    Packets of known length cover their own span; a packet of unknown length (0) covers up to the
    next packet (nothing shows data missing there). Spans closer than `gap_s` are joined.
    """

    def __init__(self, kind: str, time_base, origin: int | None, start_s: float, end_s: float,
                 nominal_s: float = 0.04, gap_s: float = GAP_TOLERANCE_S):
        self.kind = kind
        self.time_base = time_base or Fraction(1, 1)
        self.origin = origin
        self.start_s = start_s
        self.end_s = end_s
        self.nominal_s = nominal_s
        self.gap_s = gap_s
        self.covered: list[list[float]] = []  # [start, end], mostly in order
        self.failed: list[TimeRange] = []
        self.errors = 0
        self.causes: dict[str, None] = {}
        self._open = False  # the last accepted packet had no length: it reaches the next one
        self.limit_s: float | None = None
        self.stopped_by: BaseException | None = None

    def _span(self, packet) -> tuple[float, float] | None:
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is None:
            return None
        if self.origin is None:
            self.origin = pts
        start = float((pts - self.origin) * self.time_base)
        length = float(packet.duration * self.time_base) if packet.duration else 0.0
        return start, start + length

    def accepted(self, packet) -> None:
        span = self._span(packet)
        if span is None:
            return
        start, end = span
        last = self.covered[-1] if self.covered else None
        if last is not None and (self._open or last[0] - self.gap_s <= start <= last[1] + self.gap_s):
            last[0], last[1] = min(last[0], start), max(last[1], end)
        else:
            self.covered.append([start, end])
        self._open = end <= start

    def rejected(self, packet, exc: BaseException) -> None:
        self.errors += 1
        self.causes.setdefault(f"the decoder rejected damaged data ({_short_av_error(exc)})", None)
        span = self._span(packet)
        if span is not None:
            start, end = span
            self.failed.append(TimeRange(start, end if end > start else start + self.nominal_s))
        self._open = False

    def stopped(self, exc: BaseException) -> None:
        self.stopped_by = exc
        self.causes.setdefault(f"the container could not be read further ({_short_av_error(exc)})", None)

    def cut(self, at_s: float, cause: str) -> None:
        """Decoding stops at `at_s` on purpose (a limit): the rest counts as missing, for `cause`."""
        self.limit_s = at_s
        self.causes.setdefault(cause, None)

    def result(self, frames_planned: int | None = None, frames_decoded: int | None = None) -> StreamCoverage:
        lo, hi = self.start_s, self.end_s
        spans = merge_ranges([TimeRange(a, b) for a, b in self.covered], gap=self.gap_s)
        holes: list[TimeRange] = []
        at = lo
        for span in spans:
            if span.start - at > self.gap_s:
                holes.append(TimeRange(at, min(span.start, hi)))
            at = max(at, span.end)
        if self.limit_s is not None and self.limit_s < hi:
            holes.append(TimeRange(min(at, self.limit_s), hi))
        elif hi - at > self.gap_s:
            if not spans and not self.errors:
                self.causes.setdefault("no decodable data", None)
            elif spans and not self.stopped_by:
                self.causes.setdefault(f"the data ends at {at:.1f} s of the {hi:.1f} s the header declares "
                                       "(truncated file)", None)
            holes.append(TimeRange(at, hi))
        if any(h.start > lo + 1e-9 and h.end < hi - 1e-9 for h in holes) and not self.errors:
            self.causes.setdefault("stretches without any data between packets", None)
        missing = [TimeRange(max(lo, r.start), min(hi, r.end)) for r in [*holes, *self.failed]]
        missing = merge_ranges([r for r in missing if r.end > r.start])
        gap = 1.0
        while len(missing) > MAX_MISSING_RANGES:
            missing, gap = merge_ranges(missing, gap=gap), gap * 4
        return StreamCoverage(
            kind=self.kind, start_s=lo, end_s=hi, missing=tuple(missing), errors=self.errors,
            causes=tuple(self.causes), frames_planned=frames_planned, frames_decoded=frames_decoded,
        )


def _wav_header_seconds(path: str) -> float | None:
    """The length a PCM WAV's header declares (its data chunk size), None when it states none.

    FFmpeg trims a WAV's duration to the bytes present, which hides a cut file; the standard
    library's reader takes the header at its word. Recorders that write a placeholder size while
    recording (0 or 0xFFFFFFFF) and formats `wave` does not read state nothing.
    """
    try:
        with wave.open(path, "rb") as pcm:
            frames, rate = pcm.getnframes(), pcm.getframerate()
            block = pcm.getsampwidth() * pcm.getnchannels()
    except (wave.Error, EOFError, OSError, ValueError):
        return None
    if not rate or not frames or frames * block >= 0xFFFFFFFF - 64:
        return None
    return frames / rate


def _short_av_error(exc: BaseException) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip()
    return text.split(":")[0].strip() or type(exc).__name__


def declared_seconds(container, stream) -> float | None:
    """The stream's length from the headers: a PCM WAV's data chunk size, else the stream's own
    duration, a Matroska DURATION tag, else the container's duration (less the stream's start
    offset); None when nothing states it."""
    if container.format.name == "wav":
        pcm = _wav_header_seconds(container.name)
        if pcm is not None:
            return pcm
    own = _stream_seconds(stream)
    if own:
        return own
    tag = (stream.metadata or {}).get("DURATION") or (stream.metadata or {}).get("duration")
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        except ValueError:
            pass
    if container.duration:
        offset = 0.0
        if stream.start_time is not None and stream.time_base is not None and container.start_time is not None:
            offset = max(0.0, float(stream.start_time * stream.time_base) - container.start_time / av.time_base)
        return max(0.0, container.duration / av.time_base - offset)
    return None


class DecodeLog:
    """The `StreamCoverage` of every video pass made inside a `decode_log()` block, in order."""

    def __init__(self) -> None:
        self.video: list[StreamCoverage] = []

    def video_coverage(self) -> StreamCoverage | None:
        from scanner.models import join_coverage

        return join_coverage(self.video)


_LOG: contextvars.ContextVar[DecodeLog | None] = contextvars.ContextVar("likeness_decode_log", default=None)


@contextlib.contextmanager
def decode_log() -> Iterator[DecodeLog]:
    """Within this block, every `iter_frames` pass records its accounting in the yielded log.

    For the face pass of one file (``with media.decode_log() as log: ...``); passes made by code
    the caller does not wrap (lip reading) are not counted.
    """
    log_ = DecodeLog()
    token = _LOG.set(log_)
    try:
        yield log_
    finally:
        _LOG.reset(token)


def _record(coverage: StreamCoverage) -> None:
    log_ = _LOG.get()
    if log_ is not None:
        log_.video.append(coverage)


# --------------------------------------------------------------------------------------------
# Probing
# --------------------------------------------------------------------------------------------


def probe(
    path: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    deadline: Deadline | None = None,
) -> MediaInfo:
    """Describe what a file contains, detected from its bytes.

    Parameters
    ----------
    path : Path
        The file to inspect.
    max_pixels : int, default=100_000_000
        Still images and video streams with more pixels per frame than this are refused
        (decompression-bomb guard).
    max_duration_s : float or None, default=14400 (4 hours)
        Recordings whose header states a longer duration are refused. None: no limit.
    deadline : Deadline or None
        Stop with MediaError once it expires (default: the enclosing `time_limit`).

    Returns
    -------
    MediaInfo
        kind IMAGE (duration 0), VIDEO (has a video stream; may also have audio) or AUDIO.

    Raises
    ------
    MediaError
        Missing or empty file, not a media file, a truncated or corrupt container, a container
        with neither audio nor video, an image or video frame above `max_pixels`, a duration
        above `max_duration_s`, implausible timing metadata, or the deadline passed.
    """
    path = Path(path)
    deadline = _deadline(deadline)
    _check_deadline(deadline)
    _check_file(path)
    info = _probe_image(path, max_pixels)
    if info is not None:
        return info
    info = _probe_av(path, deadline)
    _check_limits(info, max_pixels, max_duration_s)
    return info


def _check_limits(info: MediaInfo, max_pixels: int, max_duration_s: float | None) -> None:
    """Refuse a probed recording whose header is beyond a limit or not physically plausible."""
    duration = info.duration_s
    if not math.isfinite(duration) or duration < 0:
        raise MediaError(f"implausible duration in the header ({duration})")
    if info.width and info.height and info.width * info.height > max_pixels:
        raise MediaError(
            f"video frames too large: {info.width}x{info.height} = {info.width * info.height / 1e6:.0f} "
            f"megapixels (limit {max_pixels / 1e6:.0f})"
        )
    if info.fps is not None and not (MIN_FPS <= info.fps <= MAX_FPS):
        raise MediaError(
            f"implausible frame rate in the header ({info.fps:.6g} fps; expected {MIN_FPS:g}-{MAX_FPS:g}): "
            "corrupt or hostile timing metadata"
        )
    rate = info.audio_sample_rate
    if rate is not None and not (MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE):
        raise MediaError(
            f"implausible audio sample rate in the header ({rate} Hz; expected "
            f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz): corrupt or hostile metadata"
        )
    if max_duration_s is not None and duration > max_duration_s:
        raise MediaError(
            f"longer than the {_hours(max_duration_s)} limit (the header says {_hours(duration)}); "
            "refused rather than decoded"
        )


def _hours(seconds: float) -> str:
    """A duration for a message: '4 h', '2.5 h', '12.0 min', '2.1 s', '2.78e+08 h'."""
    if seconds >= 3600:
        hours = seconds / 3600
        return f"{hours:.3g} h" if hours >= 1e6 else f"{hours:.2f}".rstrip("0").rstrip(".") + " h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise MediaError(f"not a regular file ({file_type(st.st_mode)})")
    if st.st_size == 0:
        raise MediaError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError("cannot read file: permission denied")


def file_type(mode: int) -> str:
    """What a non-regular file is, in words, from its `st_mode` (for messages)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def _open_image(path: Path, max_pixels: int) -> Image.Image | None:
    """Open a still image lazily (header only), or return None when it is not an image.

    The pixel limit is checked on the header before any pixel is decoded. Pillow's own global
    decompression-bomb limit is left untouched (changing it would affect every thread); its
    warning is silenced and its hard error reported as "too large".
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.init()  # registers all plugins (idempotent); open() needs them to filter formats
            formats = [f for f in _IMAGE_FORMATS if f in Image.OPEN]
            img = Image.open(path, formats=formats)
    except UnidentifiedImageError:
        return None
    except Image.DecompressionBombError as exc:
        # Pillow's own hard limit (2x its warning size) fires before the header is returned.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        declared = f"{int(found.group(1)) / 1e6:.0f} megapixels" if found else "a huge size"
        raise MediaError(
            f"image too large: the header declares {declared} (limit {max_pixels / 1e6:.0f}); "
            "not decoded (decompression bomb guard)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        # Recognised as an image but the header is broken.
        raise MediaError(f"corrupt image: {exc}") from None
    width, height = img.size
    if width <= 0 or height <= 0:
        img.close()
        raise MediaError(f"corrupt image: invalid size {width}x{height}")
    if width * height > max_pixels:
        img.close()
        raise MediaError(
            f"image too large: {width}x{height} = {width * height / 1e6:.0f} megapixels "
            f"(limit {max_pixels / 1e6:.0f})"
        )
    return img


def _probe_image(path: Path, max_pixels: int) -> MediaInfo | None:
    img = _open_image(path, max_pixels)
    if img is None:
        return None
    with img:
        fmt = (img.format or "image").lower()
        width, height = _display_size(img)
        try:
            # A reduced decode proves the pixel data is present (catches truncated files) at a
            # fraction of the cost; draft() only helps JPEG, other formats decode fully.
            img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            img.load()
        except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error, ...
            raise MediaError(f"truncated or corrupt {fmt} image: {exc}") from None
    return MediaInfo(kind=MediaKind.IMAGE, duration_s=0.0, width=width, height=height, container=fmt)


def _display_size(img: Image.Image) -> tuple[int, int]:
    """Size as the image is meant to be viewed: EXIF orientations 5-8 swap width and height."""
    width, height = img.size
    try:
        orientation = img.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def _container_signature(path: Path) -> str | None:
    """Name of the container family the file's first bytes announce, if any.

    Only used to word error messages: "a truncated MP4" helps more than "invalid data" when
    the header is right but the rest is missing.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide"):
        return "MP4/MOV"
    if head[:4] == b"RIFF":
        return "RIFF (WAV/AVI)"
    if head[:4] == b"\x1aE\xdf\xa3":
        return "Matroska/WebM"
    if head[:4] == b"OggS":
        return "Ogg"
    if head[:4] == b"fLaC":
        return "FLAC"
    if head[:3] == b"ID3" or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "MP3"
    return None


def _open_container(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        family = _container_signature(path)
        if family is not None:
            reason = str(getattr(exc, "strerror", None) or exc).strip()
            raise MediaError(f"truncated or corrupt {family} file ({reason})") from None
        raise MediaError(_describe_av_error(exc)) from None
    except Exception as exc:  # PyAV can raise plain ValueError/OSError on odd inputs
        raise MediaError(f"not a readable media file: {exc}") from None
    if container.format.name in _NON_MEDIA_DEMUXERS:
        container.close()
        raise MediaError("not a media file (no audio or video content recognised)")
    return container


def _describe_av_error(exc: Exception) -> str:
    text = str(getattr(exc, "strerror", None) or exc).strip()
    lowered = text.lower()
    if "moov atom not found" in lowered or "end of file" in lowered:
        return f"truncated or corrupt container ({text})"
    if "invalid data" in lowered:
        return "not a media file (FFmpeg found no audio or video it can read)"
    return f"cannot decode media ({text})"


def _probe_av(path: Path, deadline: Deadline | None = None) -> MediaInfo:
    container = _open_container(path)
    with container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        if video is None and audio is None:
            raise MediaError("no audio or video stream in the container")
        # Opening only reads headers; decoding one frame proves the content is really there
        # (a text file can sometimes pass as a raw stream, a cut file as a valid header).
        _decode_first_frame(container, video if video is not None else audio, deadline)

        width = height = None
        fps = None
        if video is not None:
            cc = video.codec_context
            width, height = int(cc.width or 0) or None, int(cc.height or 0) or None
            rate = video.average_rate or video.guessed_rate or video.base_rate
            fps = float(rate) if rate else None
        sample_rate = channels = None
        if audio is not None:
            sample_rate = int(audio.codec_context.sample_rate or 0) or None
            channels = int(audio.codec_context.channels or 0) or None
        duration = _container_duration(container, video, audio, deadline)
        kind = MediaKind.VIDEO if video is not None else MediaKind.AUDIO
        return MediaInfo(
            kind=kind,
            duration_s=duration,
            width=width,
            height=height,
            fps=fps,
            audio_sample_rate=sample_rate,
            audio_channels=channels,
            container=container.format.name,
        )


def _decode_first_frame(
    container: av.container.InputContainer, stream: av.stream.Stream, deadline: Deadline | None = None
) -> None:
    try:
        for packet in container.demux(stream):
            _check_deadline(deadline)
            for _ in packet.decode():
                return
    except MediaError:
        raise
    except av.FFmpegError as exc:
        raise MediaError(_describe_av_error(exc)) from None
    except Exception as exc:
        raise MediaError(f"cannot decode media: {exc}") from None
    raise MediaError(f"no decodable {stream.type} frame (truncated or corrupt file)")


def _stream_seconds(stream: av.stream.Stream | None) -> float | None:
    if stream is None or stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def _container_duration(container, video, audio, deadline: Deadline | None = None) -> float:
    """Duration in seconds from the container header, falling back to the streams, then to a
    demux-only scan of packet timestamps (fast: no decoding) for headerless formats."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    candidates = [s for s in (_stream_seconds(video), _stream_seconds(audio)) if s]
    if candidates:
        return max(candidates)
    stream = video if video is not None else audio
    container.seek(0)
    end = 0.0
    try:
        for packet in container.demux(stream):
            _check_deadline(deadline)
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.FFmpegError:
        pass  # a cut tail only shortens the estimate
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    return max(0.0, end - start)


# --------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------


def _target_size(width: int, height: int, max_width: int) -> tuple[int, int, float]:
    """Output size with width <= max_width (aspect kept, even dimensions for the scaler) and the
    factor that maps output pixels back to original ones."""
    if max_width <= 0 or width <= max_width:
        return width, height, 1.0
    out_w = int(max_width)
    out_h = max(1, int(round(height * out_w / width)))
    return out_w, out_h, width / out_w


def iter_frames(
    path: Path,
    info: MediaInfo,
    sample_fps: float = 2.0,
    max_width: int = 1280,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    start_s: float | None = None,
    end_s: float | None = None,
    skip_nonref: bool = True,
    deadline: Deadline | None = None,
    prefetch: int = 0,
    skip_bframes: bool = False,
) -> Iterator[Frame]:
    """Yield RGB frames sampled about `sample_fps` times per second, one at a time.

    Parameters
    ----------
    path : Path
        The recording or still image.
    info : MediaInfo
        Result of `probe(path)`; decides between the image and the video path.
    sample_fps : float, default=2.0
        Frames kept per second of video. The first frame at or after each multiple of
        1/sample_fps is kept, so times are within one source frame of the grid. Values <= 0
        keep every frame.
    max_width : int, default=1280
        Kept frames wider than this are downscaled (aspect preserved); `Frame.scale` maps their
        pixels back to the original resolution. 0 disables downscaling.
    max_pixels : int, default=100_000_000
        Pixel limit for still images (see `probe`).
    start_s, end_s : float or None
        Only frames with start_s <= time < end_s (a window, so that one long video can be split
        over several workers). The decoder seeks to the keyframe before `start_s`. The sampling
        grid stays anchored at time 0, so windows that tile a video yield exactly the frames the
        whole video would.
    skip_nonref : bool, default=True
        When sampling at most half the source frame rate, the decoder skips frames that no
        other frame references (FFmpeg ``skip_frame=NONREF``: the non-reference B-frames, about
        half of a typical H.264 stream), which roughly halves decoding time (60 s of 720p30
        from x264 defaults: 1.0 instead of 1.8 CPU s). Samples then land on the nearest
        decoded frame at or after each grid point (within a frame or two). Streams without
        B-frames decode every frame either way.
    deadline : Deadline or None
        Stop with MediaError once it expires, checked before each decoded frame (default: the
        `time_limit` in force when iteration starts).
    skip_bframes : bool, default=False
        With `skip_nonref`, when sampling at most an eighth of the frame rate and the stream's
        P-frames are shown not to depend on B-frames (`_bframes_unreferenced_by_p`, true of
        x264 output), skip every B-frame: 0.55 instead of 1.0 CPU s for the minute of 720p30
        above, the decoded pictures bit-identical. Samples then land within a few frames of
        the grid (the B-frames between two P-frames, 3 with x264 defaults).
    prefetch : int, default=0
        When > 0, a background thread decodes ahead, holding at most this many sampled frames
        (FFmpeg releases the GIL while decoding, so decoding runs on a second core while the
        caller analyses the previous frame), and FFmpeg's own threads are left off. 0 decodes
        in the caller's thread, with FFmpeg's frame threads.

    Yields
    ------
    Frame
        `index` is the frame's position in the video stream (0 for an image), `time_s` its
        presentation time in seconds from the start of the stream.

    Raises
    ------
    MediaError
        No frame at all could be decoded (NoVideoFrames), or the deadline passed. A packet the
        decoder rejects is skipped and decoding goes on; a container that cannot be read further
        ends the iteration quietly: what was read is analysed.

    Inside a `decode_log()` block each pass (run to its end) records its `StreamCoverage`.
    """
    path = Path(path)
    deadline = _deadline(deadline)
    _check_deadline(deadline)
    if info.kind == MediaKind.IMAGE:
        frame = _image_frame(path, max_width, max_pixels)
        _record(StreamCoverage("image", 0.0, 0.0, frames_planned=1, frames_decoded=1))
        yield frame
        return
    if info.kind != MediaKind.VIDEO:
        return
    # With a prefetch thread that thread is the second core's work: FFmpeg's own frame threads
    # would only add CPU (measured: 1.2 instead of 1.0 CPU s for 60 s of 720p30).
    frames = _video_frames(
        path, sample_fps, max_width, start_s, end_s, skip_nonref, deadline, prefetch <= 0, skip_bframes
    )
    yield from (_prefetched(frames, prefetch) if prefetch > 0 else frames)


_END = object()


class _Failed:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _prefetched(source: Iterator[Frame], depth: int) -> Iterator[Frame]:
    """Run `source` in a background thread, at most `depth` items ahead of the consumer.

    Errors are re-raised in the consumer's thread. When the consumer stops early (an
    exception, a closed generator), the thread stops after the frame it is decoding and
    closes `source` (which closes the container).
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for frame in source:
                if not put(frame):
                    return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(_Failed(exc))
        finally:
            source.close()

    # The thread sees this thread's per-file limits (context variables), as the caller would.
    worker = threading.Thread(target=contextvars.copy_context().run, args=(run,), name="likeness-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item
    finally:
        stop.set()
        worker.join()


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode a still image to an RGB uint8 array (EXIF orientation applied).

    Raises MediaError for anything that is not a readable image within `max_pixels`.
    """
    path = Path(path)
    _check_file(path)
    img = _open_image(path, max_pixels)
    if img is None:
        raise MediaError("not an image file (format not recognised)")
    with img:
        try:
            upright = ImageOps.exif_transpose(img)
            return np.asarray(upright.convert("RGB"))
        except Exception as exc:
            raise MediaError(f"truncated or corrupt image: {exc}") from None


def _image_frame(path: Path, max_width: int, max_pixels: int) -> Frame:
    rgb = load_image(path, max_pixels)
    height, width = rgb.shape[:2]
    out_w, out_h, scale = _target_size(width, height, max_width)
    if scale != 1.0:
        rgb = np.asarray(Image.fromarray(rgb).resize((out_w, out_h), Image.Resampling.BILINEAR, reducing_gap=2.0))
    return Frame(index=0, time_s=0.0, image=rgb, scale=scale)


#: Start of a video (seconds) decoded twice by `_bframes_unreferenced_by_p`.
_BFRAME_CHECK_S = 1.0
_PICT_B = 3  # AVPictureType AV_PICTURE_TYPE_B


def _bframes_unreferenced_by_p(
    path: Path,
    stream_index: int,
    check_s: float = _BFRAME_CHECK_S,
    max_frames: int = 240,
    deadline: Deadline | None = None,
) -> bool:
    """Whether skipping every B-frame leaves the I- and P-frames bit-identical.

    x264 (and most encoders with B-frames) never predicts a P-frame from a B-frame, even where
    B-frames serve as references for other B-frames ("B-pyramid"). Then decoding only I- and
    P-frames is exact and, on 720p30 from x264 defaults, takes half the time of skipping only
    the non-reference frames (0.55 instead of 1.0 CPU s per minute). Encoders that do predict
    P-frames from B-frames would give corrupted pictures, so this decodes the first `check_s`
    seconds both ways and compares the luma planes of the common frames (at most `max_frames`
    frames each way, so broken timestamps cannot make it decode the whole file). False when the
    start holds no reference B-frame (nothing to gain, and nothing shown about the rest) or on
    any decoding error.
    """

    def decode(skip: str) -> dict:
        planes: dict = {}
        container = _open_container(path)
        try:
            stream = container.streams.video[0]
            for s in container.streams.video:
                if s.index == stream_index:
                    stream = s
            stream.codec_context.skip_frame = skip
            time_base = stream.time_base or Fraction(1, 1)
            first = None
            for count, frame in enumerate(container.decode(stream)):
                _check_deadline(deadline)
                if frame.pts is None:
                    return {}
                first = frame.pts if first is None else first
                if float((frame.pts - first) * time_base) > check_s or count >= max_frames:
                    break
                plane = frame.planes[0]
                rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
                planes[frame.pts] = (int(frame.pict_type), rows[:, : plane.width].copy())
        finally:
            container.close()
        return planes

    try:
        reference = decode("NONREF")
        if not any(kind == _PICT_B for kind, _ in reference.values()):
            return False
        reduced = decode("BIDIR")
    except (av.FFmpegError, ValueError, OSError, MediaError):
        return False
    common = [pts for pts in reduced if pts in reference]
    return bool(common) and all(np.array_equal(reduced[pts][1], reference[pts][1]) for pts in common)


def _grid_points(lo: float, hi: float, interval: float) -> int:
    """Sampling-grid points (multiples of `interval` > 0) in [lo, hi)."""
    if not math.isfinite(hi) or hi <= lo:
        return 0
    return max(0, math.ceil(hi / interval - 1e-9) - math.ceil(lo / interval - 1e-9))


def _planned(coverage: StreamCoverage, interval: float, decoded: int) -> StreamCoverage:
    """`coverage` with the sampled frames decoded and planned: the decoded ones plus the grid points
    in missing stretches. A frame shown across several grid points (a still screen in a variable
    frame rate video) is one picture, sampled once. `interval` 0 (every frame kept): the missing
    stretches are not counted in frames."""
    lost = sum(_grid_points(r.start, r.end, interval) for r in coverage.missing) if interval else 0
    return dataclasses.replace(coverage, frames_planned=decoded + lost, frames_decoded=decoded)


def _video_frames(
    path: Path,
    sample_fps: float,
    max_width: int,
    start_s: float | None = None,
    end_s: float | None = None,
    skip_nonref: bool = True,
    deadline: Deadline | None = None,
    decoder_threads: bool = True,
    skip_bframes: bool = False,
) -> Iterator[Frame]:
    container = _open_container(path)
    yielded = 0
    try:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        if decoder_threads:
            # Frame-level threads let FFmpeg decode several frames at once; we only touch the kept ones.
            stream.thread_type = "AUTO"
        time_base = stream.time_base or Fraction(1, 1)
        start = stream.start_time if stream.start_time is not None else None
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        rate = min(max(rate, MIN_FPS), MAX_FPS)  # probe refuses worse; callers may skip probe
        interval = 1.0 / sample_fps if sample_fps > 0 else 0.0
        if skip_nonref and interval and sample_fps <= rate / 2:
            stream.codec_context.skip_frame = "NONREF"
            if (
                skip_bframes
                and sample_fps <= rate / 8
                and _bframes_unreferenced_by_p(path, stream.index, deadline=deadline)
            ):
                stream.codec_context.skip_frame = "BIDIR"
        # Half a source frame of slack, so a 2 fps grid on 29.97 fps video lands on the nearest
        # frame rather than skipping to the next one.
        slack = 0.5 / rate
        if interval:
            slack = min(slack, interval / 2)  # a very low frame rate must not swallow the grid
        next_t = 0.0
        lo = max(0.0, float(start_s or 0.0))
        hi = float(end_s) if end_s is not None else math.inf
        if lo > 0:
            next_t = math.ceil((lo - slack) / interval) * interval if interval else lo
            try:
                offset = start if start is not None else 0
                container.seek(offset + int(lo / time_base), stream=stream, backward=True, any_frame=False)
            except (av.FFmpegError, ValueError, OSError):
                container.seek(0)
        size = None
        index = -1
        declared = declared_seconds(container, stream)
        end = min(hi, declared) if declared is not None else hi
        tally = StreamTally("video", time_base, start, lo, end, nominal_s=1.0 / rate)
        try:
            for packet in container.demux(stream):
                _check_deadline(deadline)
                try:
                    decoded = packet.decode()
                except (av.FFmpegError, ValueError) as exc:
                    # One damaged packet ends nothing: the stream goes on (and is accounted).
                    tally.rejected(packet, exc)
                    continue
                tally.accepted(packet)
                past_window = False
                for frame in decoded:
                    index += 1
                    if frame.pts is not None:
                        if start is None:
                            start = frame.pts
                        t = float((frame.pts - start) * time_base)
                        index = int(round(t * rate))
                    else:
                        t = index / rate
                    if t + slack >= hi:
                        past_window = True
                        break
                    if t + slack < max(next_t, lo):
                        continue
                    if size is None:
                        size = _target_size(frame.width, frame.height, max_width)
                    out_w, out_h, scale = size
                    if scale != 1.0:
                        image = frame.to_ndarray(format="rgb24", width=out_w, height=out_h, interpolation="AREA")
                    else:
                        image = frame.to_ndarray(format="rgb24")
                    yield Frame(index=index, time_s=max(0.0, t), image=image, scale=scale)
                    yielded += 1
                    if interval:
                        # Next grid point strictly after this frame (skips grid points inside gaps).
                        next_t = (math.floor((t + slack) / interval) + 1) * interval
                if past_window:
                    break
        except (av.FFmpegError, ValueError, OSError) as exc:
            tally.stopped(exc)
            if yielded == 0:
                coverage = _planned(tally.result(), interval, 0)
                _record(coverage)
                raise NoVideoFrames(f"no decodable video frame: {_describe_av_error(exc)}", coverage) from None
            log.warning("%s: video decoding stopped early after %d frames: %s", path, yielded, exc)
        if tally.end_s == math.inf:  # no declared length: what the data held is the length
            tally.end_s = max((b for _, b in tally.covered), default=lo)
        coverage = _planned(tally.result(), interval, yielded)
        _record(coverage)
        if yielded == 0:
            raise NoVideoFrames("no decodable video frame (truncated or corrupt file)", coverage)
    finally:
        container.close()


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


def load_audio(
    path: Path,
    sample_rate: int = 16000,
    max_duration_s: float = DEFAULT_MAX_AUDIO_S,
    deadline: Deadline | None = None,
) -> AudioTrack | None:
    """Decode the first audio stream to mono float32 at `sample_rate`.

    Parameters
    ----------
    path : Path
        Any container FFmpeg reads (video files included).
    sample_rate : int, default=16000
        Output rate in Hz; 16 kHz is what speech models expect.
    max_duration_s : float, default=14400 (4 hours)
        Decoding stops after this much audio, bounding memory (4 h at 16 kHz is 920 MB of
        float32... so callers scanning long archives may want less).
    deadline : Deadline or None
        Stop with MediaError once it expires, checked before each decoded audio frame
        (default: the enclosing `time_limit`).

    Returns
    -------
    AudioTrack or None
        None when the file has no audio stream (or is a still image).

    Raises
    ------
    MediaError
        Unreadable file, an audio stream from which no sample could be decoded, an implausible
        sample rate, or the deadline passed.
    """
    path = Path(path)
    deadline = _deadline(deadline)
    _check_deadline(deadline)
    _check_file(path)
    if _open_image(path, DEFAULT_MAX_PIXELS * 10) is not None:
        return None  # still images have no sound; FFmpeg's image demuxer need not be involved
    container = _open_container(path)
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        original_rate = int(stream.codec_context.sample_rate or 0)
        if original_rate and not (MIN_SAMPLE_RATE <= original_rate <= MAX_SAMPLE_RATE):
            raise MediaError(f"implausible audio sample rate in the header ({original_rate} Hz)")
        # Resample with the channel layout kept and average the channels ourselves: FFmpeg's own
        # downmix adds the channels at -3 dB each, which lifts identical channels above full
        # scale and would show up as false clipping in the voice analysis.
        resampler = av.AudioResampler(format="fltp", layout=None, rate=int(sample_rate))
        limit = int(max_duration_s * sample_rate)
        # Samples go straight into one buffer sized from the declared duration (grown if the
        # stream runs longer): joining a list of chunks at the end would hold the track twice.
        declared = _stream_seconds(stream) or (container.duration / av.time_base if container.duration else 0.0)
        buffer = np.empty(min(limit, int(max(1.0, declared) * sample_rate * 1.01) + sample_rate), dtype=np.float32)
        total = 0
        heard = 0  # decoded samples, the silence put in for rejected stretches not counted

        def take(frames, raw: bool = False) -> bool:
            nonlocal total, buffer, heard
            for out in frames:
                data = (out if raw else out.to_ndarray()).mean(axis=0, dtype=np.float32)
                heard += 0 if raw else data.size
                if total + data.size > buffer.size:
                    grown = np.empty(max(total + data.size, int(buffer.size * 1.5)), dtype=np.float32)
                    grown[:total] = buffer[:total]
                    buffer = grown
                buffer[total: total + data.size] = data
                total += data.size
            return total >= limit

        time_base = stream.time_base or Fraction(1, int(sample_rate))
        length = declared_seconds(container, stream)
        tally = StreamTally("audio", time_base, stream.start_time, 0.0, length if length is not None else math.inf)

        def silence(seconds: float) -> None:
            # A rejected packet becomes silence of its length, so later time codes stay true.
            n = int(round(seconds * sample_rate))
            if n > 0:
                take([np.zeros((1, n), dtype=np.float32)], raw=True)

        try:
            full = False
            for packet in container.demux(stream):
                _check_deadline(deadline)
                try:
                    frames = packet.decode()
                except (av.FFmpegError, ValueError) as exc:
                    tally.rejected(packet, exc)
                    if tally.failed:
                        silence(tally.failed[-1].duration)
                    continue
                tally.accepted(packet)
                for frame in frames:
                    frame.pts = None  # let the resampler count samples itself (avoids pts-gap errors)
                    if take(resampler.resample(frame)):
                        full = True
                        break
                if full:
                    tally.cut(limit / sample_rate, f"decoding stops at the {_hours(max_duration_s)} audio limit")
                    break
            if not full:
                take(resampler.resample(None))
        except (av.FFmpegError, ValueError, OSError) as exc:
            tally.stopped(exc)
            if heard == 0:
                raise NoAudio(f"no decodable audio: {_describe_av_error(exc)}", _audio_result(tally)) from None
            log.warning("%s: audio decoding stopped early after %.1f s: %s", path, total / sample_rate, exc)
        coverage = _audio_result(tally)
        if heard == 0:
            raise NoAudio("audio stream holds no decodable samples (truncated or corrupt file)", coverage)
        samples = buffer[: min(total, limit)]
        if samples.size < 0.9 * buffer.size:  # a declared duration far too long: give the slack back
            samples = samples.copy()
        del buffer
        np.clip(samples, -1.0, 1.0, out=samples)
        return AudioTrack(samples=samples, sample_rate=int(sample_rate), original_sample_rate=original_rate,
                          coverage=coverage)


def _audio_result(tally: StreamTally) -> StreamCoverage:
    if tally.end_s == math.inf:  # no declared length: what the data held is the length
        tally.end_s = max((b for _, b in tally.covered), default=0.0)
    return tally.result()


# --------------------------------------------------------------------------------------------
# Hashing
# --------------------------------------------------------------------------------------------


def sha256_file(path: Path, chunk_size: int = _HASH_CHUNK) -> str:
    """Hex SHA-256 of a file's bytes, read in `chunk_size` pieces (default 1 MiB)."""
    digest = hashlib.sha256()
    try:
        # O_NONBLOCK: a named pipe put where a recording was expected must not hang the scan;
        # the fstat below then refuses anything that is not a regular file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise MediaError(f"not a regular file ({file_type(mode)})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            while block := fh.read(chunk_size):
                digest.update(block)
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return digest.hexdigest()
