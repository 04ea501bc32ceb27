"""Open a recording with FFmpeg (PyAV) and read what its headers declare.

Whatever goes wrong inside PyAV becomes a `MediaError` whose message is a one-line reason fit for a
report ("truncated or corrupt MP4/MOV file (moov atom not found)").
"""

from __future__ import annotations

import wave
from pathlib import Path

import av

from scanner.models import MediaError

# FFmpeg demuxers that will "open" arbitrary bytes (text shown as ANSI art, raw streams). A
# recording detected as one of these is not a recording.
NON_MEDIA_DEMUXERS = frozenset({"tty", "data", "bin", "srt", "ass", "webvtt", "subviewer", "subviewer1"})


def container_signature(path: Path) -> str | None:
    """Name of the container family the file's first bytes announce ("MP4/MOV", "Ogg", ...), if any.

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


def open_container(path: Path) -> av.container.InputContainer:
    """Open `path` for reading with FFmpeg; the caller closes it.

    Raises MediaError (naming the container family when the first bytes announce one) for a file
    FFmpeg cannot open, and for bytes only a catch-all demuxer accepts (`NON_MEDIA_DEMUXERS`).
    """
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        family = container_signature(path)
        if family is not None:
            reason = str(getattr(exc, "strerror", None) or exc).strip()
            raise MediaError(f"truncated or corrupt {family} file ({reason})") from None
        raise MediaError(describe_av_error(exc)) from None
    except Exception as exc:  # PyAV can raise plain ValueError/OSError on odd inputs
        raise MediaError(f"not a readable media file: {exc}") from None
    if container.format.name in NON_MEDIA_DEMUXERS:
        container.close()
        raise MediaError("not a media file (no audio or video content recognised)")
    return container


def describe_av_error(exc: Exception) -> str:
    """A one-line reason for an FFmpeg error, for a report ("truncated or corrupt container (...)")."""
    text = str(getattr(exc, "strerror", None) or exc).strip()
    lowered = text.lower()
    if "moov atom not found" in lowered or "end of file" in lowered:
        return f"truncated or corrupt container ({text})"
    if "invalid data" in lowered:
        return "not a media file (FFmpeg found no audio or video it can read)"
    return f"cannot decode media ({text})"


def short_av_error(exc: BaseException) -> str:
    """The first clause of an FFmpeg error ("Invalid data found when processing input"), for causes."""
    text = str(getattr(exc, "strerror", None) or exc).strip()
    return text.split(":")[0].strip() or type(exc).__name__


def stream_seconds(stream: av.stream.Stream | None) -> float | None:
    """The duration a stream's own header states, in seconds; None when it states none."""
    if stream is None or stream.duration is None or stream.time_base is None:
        return None
    return float(stream.duration * stream.time_base)


def wav_header_seconds(path: str) -> float | None:
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


def declared_seconds(container, stream) -> float | None:
    """The stream's length from the headers, in seconds: a PCM WAV's data chunk size, else the
    stream's own duration, a Matroska DURATION tag, else the container's duration (less the
    stream's start offset); None when nothing states it."""
    if container.format.name == "wav":
        pcm = wav_header_seconds(container.name)
        if pcm is not None:
            return pcm
    own = stream_seconds(stream)
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
