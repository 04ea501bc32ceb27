"""Describe what a file contains (`probe`), detected from its bytes, and refuse what is beyond a limit.

A still image is anything Pillow identifies as one of the common photo formats
(`scanner.media.images`); everything else goes through FFmpeg. Headers beyond a limit
(`scanner.media.limits`) are refused here, before anything is decoded.
"""

from __future__ import annotations

import math
from pathlib import Path

import av

from scanner.media.containers import describe_av_error, open_container, stream_seconds
from scanner.media.files import check_readable_file
from scanner.media.images import probe_image
from scanner.media.limits import (
    DEFAULT_MAX_DURATION_S,
    DEFAULT_MAX_PIXELS,
    MAX_FPS,
    MAX_SAMPLE_RATE,
    MIN_FPS,
    MIN_SAMPLE_RATE,
    Deadline,
    active_deadline,
    check_deadline,
    format_duration,
)
from scanner.models import MediaError, MediaInfo, MediaKind


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
    deadline = active_deadline(deadline)
    check_deadline(deadline)
    check_readable_file(path)
    info = probe_image(path, max_pixels)
    if info is not None:
        return info
    info = _probe_container(path, deadline)
    _check_header_limits(info, max_pixels, max_duration_s)
    return info


def _check_header_limits(info: MediaInfo, max_pixels: int, max_duration_s: float | None) -> None:
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
            f"longer than the {format_duration(max_duration_s)} limit (the header says {format_duration(duration)}); "
            "refused rather than decoded"
        )


def _probe_container(path: Path, deadline: Deadline | None = None) -> MediaInfo:
    container = open_container(path)
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
            check_deadline(deadline)
            for _ in packet.decode():
                return
    except MediaError:
        raise
    except av.FFmpegError as exc:
        raise MediaError(describe_av_error(exc)) from None
    except Exception as exc:
        raise MediaError(f"cannot decode media: {exc}") from None
    raise MediaError(f"no decodable {stream.type} frame (truncated or corrupt file)")


def _container_duration(container, video, audio, deadline: Deadline | None = None) -> float:
    """Duration in seconds from the container header, falling back to the streams, then to a
    demux-only scan of packet timestamps (fast: no decoding) for headerless formats."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    candidates = [s for s in (stream_seconds(video), stream_seconds(audio)) if s]
    if candidates:
        return max(candidates)
    stream = video if video is not None else audio
    container.seek(0)
    end = 0.0
    try:
        for packet in container.demux(stream):
            check_deadline(deadline)
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.FFmpegError:
        pass  # a cut tail only shortens the estimate
    start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    return max(0.0, end - start)


