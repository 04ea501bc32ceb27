"""Video frames and still images as RGB arrays, sampled on a time grid and decoded one at a time.

`iter_frames(path, info, ...)` streams the frames the face stage analyses (bounded memory: each
frame is decoded and downscaled alone); inside a `coverage.decode_log()` block each pass records
what it decoded. Decoder settings that skip work (non-reference frames, B-frames, a prefetch
thread) are measured in bench/README.md ("Video decoding").
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from scanner.media.containers import declared_seconds, describe_av_error, open_container
from scanner.media.coverage import StreamTally, decoded_packets, record_video_pass, with_planned_frames
from scanner.media.images import load_image
from scanner.media.limits import (
    DEFAULT_MAX_PIXELS,
    MAX_FPS,
    MIN_FPS,
    Deadline,
    active_deadline,
    check_deadline,
)
from scanner.media.prefetch import prefetched
from scanner.models import Frame, MediaError, MediaInfo, MediaKind, NoVideoFrames, StreamCoverage

log = logging.getLogger(__name__)


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
    decoder_threads: bool | None = None,
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
        half of a typical H.264 stream), which roughly halves decoding time. Samples then land
        on the nearest decoded frame at or after each grid point (within a frame or two).
        Streams without B-frames decode every frame either way.
    deadline : Deadline or None
        Stop with MediaError once it expires, checked before each decoded frame (default: the
        `time_limit` in force when iteration starts).
    skip_bframes : bool, default=False
        With `skip_nonref`, when sampling at most an eighth of the frame rate and the stream's
        P-frames are shown not to depend on B-frames (`bframes_unreferenced_by_p`, true of
        x264 output), skip every B-frame too, the decoded pictures bit-identical. Samples then
        land within a few frames of the grid (the B-frames between two P-frames, 3 with x264
        defaults).
    prefetch : int, default=0
        When > 0, a background thread decodes ahead, holding at most this many sampled frames
        (FFmpeg releases the GIL while decoding, so decoding runs on a second core while the
        caller analyses the previous frame), and FFmpeg's own threads are left off. 0 decodes
        in the caller's thread, with FFmpeg's frame threads.
    decoder_threads : bool or None, default=None
        Whether FFmpeg decodes several frames at once in threads of its own; None: only without a
        prefetch thread. Short windows gain nothing from them: each seek refills their pipeline
        (bench/README.md, "Voices first, cheaper starts and ends").

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
    deadline = active_deadline(deadline)
    check_deadline(deadline)
    if info.kind == MediaKind.IMAGE:
        frame = _image_frame(path, max_width, max_pixels)
        record_video_pass(StreamCoverage("image", 0.0, 0.0, frames_planned=1, frames_decoded=1))
        yield frame
        return
    if info.kind != MediaKind.VIDEO:
        return
    # With a prefetch thread that thread is the second core's work: FFmpeg's own frame threads
    # would only add CPU (bench/README.md, "Video decoding").
    threads = prefetch <= 0 if decoder_threads is None else decoder_threads
    frames = _video_frames(path, sample_fps, max_width, start_s, end_s, skip_nonref, deadline, threads, skip_bframes)
    yield from (prefetched(frames, prefetch) if prefetch > 0 else frames)


def _image_frame(path: Path, max_width: int, max_pixels: int) -> Frame:
    """A still image as the one frame of `iter_frames`, downscaled to `max_width`."""
    rgb = load_image(path, max_pixels)
    height, width = rgb.shape[:2]
    out_w, out_h, scale = _target_size(width, height, max_width)
    if scale != 1.0:
        rgb = np.asarray(Image.fromarray(rgb).resize((out_w, out_h), Image.Resampling.BILINEAR, reducing_gap=2.0))
    return Frame(index=0, time_s=0.0, image=rgb, scale=scale)


#: Start of a video (seconds) decoded twice by `bframes_unreferenced_by_p`.
BFRAME_CHECK_S = 1.0
_PICT_B = 3  # AVPictureType AV_PICTURE_TYPE_B


def bframes_unreferenced_by_p(
    path: Path,
    stream_index: int,
    check_s: float = BFRAME_CHECK_S,
    max_frames: int = 240,
    deadline: Deadline | None = None,
) -> bool:
    """Whether skipping every B-frame leaves the I- and P-frames bit-identical.

    x264 (and most encoders with B-frames) never predicts a P-frame from a B-frame, even where
    B-frames serve as references for other B-frames ("B-pyramid"). Then decoding only I- and
    P-frames is exact and takes about half the time of skipping only the non-reference frames
    (bench/README.md, "Video decoding"). Encoders that do predict
    P-frames from B-frames would give corrupted pictures, so this decodes the first `check_s`
    seconds both ways and compares the luma planes of the common frames (at most `max_frames`
    frames each way, so broken timestamps cannot make it decode the whole file). False when the
    start holds no reference B-frame (nothing to gain, and nothing shown about the rest) or on
    any decoding error.
    """

    def decode(skip: str) -> dict:
        planes: dict = {}
        container = open_container(path)
        try:
            stream = container.streams.video[0]
            for s in container.streams.video:
                if s.index == stream_index:
                    stream = s
            stream.codec_context.skip_frame = skip
            time_base = stream.time_base or Fraction(1, 1)
            first = None
            for count, frame in enumerate(container.decode(stream)):
                check_deadline(deadline)
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
    """The sampled frames of a video's first stream (see `iter_frames`, which checks the kind and
    adds the prefetch thread); `decoder_threads` lets FFmpeg decode several frames at once."""
    container = open_container(path)
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
                and bframes_unreferenced_by_p(path, stream.index, deadline=deadline)
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
            # One damaged packet ends nothing: the stream goes on (and is accounted).
            for decoded in decoded_packets(container, stream, tally, deadline):
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
                coverage = with_planned_frames(tally.result(), interval, 0)
                record_video_pass(coverage)
                raise NoVideoFrames(f"no decodable video frame: {describe_av_error(exc)}", coverage) from None
            log.warning("%s: video decoding stopped early after %d frames: %s", path, yielded, exc)
        tally.close_open_end()
        coverage = with_planned_frames(tally.result(), interval, yielded)
        record_video_pass(coverage)
        if yielded == 0:
            raise NoVideoFrames("no decodable video frame (truncated or corrupt file)", coverage)
    finally:
        container.close()

