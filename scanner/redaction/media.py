"""Write redacted copies of recordings: faces covered in every frame, chosen speech silenced.

- Video: decoded with PyAV frame by frame, re-encoded as H.264 (libx264, yuv420p) in MP4 with the
  source's frame timestamps, so duration and audio sync are kept. Frames are held back
  `FaceFollower.lookahead_s` seconds (about 1.3 s of video in memory) because where a face is
  between two searches is only known once the next search ran. The first audio stream is
  re-encoded as AAC; other streams (subtitles, extra audio tracks, data) are not copied.
- Audio: the first audio stream, silenced where asked, written in the source's container and codec
  when FFmpeg here can write them (WAV/PCM, FLAC, MP3, M4A/AAC, Opus); anything else becomes AAC
  in an .m4a (`audio_target`).
- Still images: the same format (JPEG, PNG, ...), EXIF orientation applied (the boxes were measured
  on the upright picture), metadata not copied.

Covering (`cover_plane`): "blur" averages the region down to a few cells across and smooths it
back (no detail of the face survives); "pixelate" shows those cells as blocks; "box" fills it.
Silencing: "mute" sets the samples to zero; "noise" replaces them with white noise at -40 dBFS.

Duration: lossy codecs (AAC, MP3, Opus) code whole frames of samples, so a decoder hands back the
encoder's padding of the last frame (up to one frame: 21 ms of AAC at 48 kHz) beyond the duration
the container declares. `TailTrim` drops that padding, so the copy's audio is as long as the
source's declared audio (the re-encoded last frame's duration is written as its true length).
"""

from __future__ import annotations

import collections
import queue
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageFilter, ImageOps

from scanner.analysis.faces.boxes import merge_overlapping
from scanner.media.containers import declared_seconds
from scanner.models import TimeRange
from scanner.redaction.tracking import Box, FaceFollower, grow

FACE_MODES = ("blur", "pixelate", "box")
VOICE_MODES = ("mute", "noise")
#: Cells across the covered region for "blur" and "pixelate" (the face itself spans about 5 of 8).
COVER_CELLS = 8
NOISE_DBFS = -40.0

#: Audio containers FFmpeg reads -> (muxer, encoder) used for the redacted copy, by the source codec.
_AUDIO_WRITERS = {
    "pcm_s16le": ("wav", "pcm_s16le"), "pcm_s24le": ("wav", "pcm_s24le"), "pcm_s32le": ("wav", "pcm_s32le"),
    "pcm_f32le": ("wav", "pcm_f32le"), "pcm_u8": ("wav", "pcm_u8"),
    "flac": ("flac", "flac"), "mp3": ("mp3", "libmp3lame"), "mp3float": ("mp3", "libmp3lame"),
    "aac": ("ipod", "aac"), "opus": ("ogg", "libopus"),
}


@dataclass
class MediaOutcome:
    """What a redacted copy holds: frames in total and covered per person, seconds silenced."""

    frames: int = 0
    frames_covered: dict[str, int] = field(default_factory=dict)
    frames_any_covered: int = 0
    silenced: list[TimeRange] = field(default_factory=list)
    face_searches: int = 0


# --------------------------------------------------------------------------------------------
# Covering faces
# --------------------------------------------------------------------------------------------


def cover_plane(plane: np.ndarray, box: Box, mode: str, fill: int) -> None:
    """Cover `box` = (top, right, bottom, left) of a 2-D uint8 `plane` in place."""
    top, right, bottom, left = box
    if bottom <= top or right <= left:
        return
    region = plane[top:bottom, left:right]
    if mode == "box":
        region[...] = fill
        return
    h, w = region.shape
    cells = (COVER_CELLS, max(1, int(round(h * COVER_CELLS / w))))
    img = Image.fromarray(np.ascontiguousarray(region)).resize(cells, Image.Resampling.BOX)
    if mode == "pixelate":
        region[...] = np.asarray(img.resize((w, h), Image.Resampling.NEAREST))
        return
    # Smoothed at a few pixels per cell, then enlarged: as smooth as a wide Gaussian blur at a
    # fraction of its cost (the cost no longer grows with the face's size).
    mid = (cells[0] * 4, cells[1] * 4)
    smooth = img.resize(mid, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(2.5))
    region[...] = np.asarray(smooth.resize((w, h), Image.Resampling.BILINEAR))


def cover_frame(frame: av.VideoFrame, boxes: list[Box], mode: str) -> None:
    """Cover `boxes` (full-size pixels) in a yuv420p `frame`, in place.

    The frame's buffers are made writable first (a decoded frame may share them with the
    decoder's reference frames, which must not change); boxes that mostly overlap are covered as
    one (`merge_overlapping`).
    """
    frame.make_writable()
    width, height = frame.width, frame.height
    planes = [(_plane_array(frame.planes[0], height, width), 16, 1)]
    planes += [(_plane_array(frame.planes[i], (height + 1) // 2, (width + 1) // 2), 128, 2) for i in (1, 2)]
    for top, right, bottom, left in merge_overlapping(boxes):
        for plane, fill, scale in planes:
            cover_plane(plane, (top // scale, -(-right // scale), -(-bottom // scale), left // scale), mode, fill)


def _plane_array(plane, height: int, width: int) -> np.ndarray:
    """A writable (height, width) view of one plane of a writable frame."""
    return np.frombuffer(plane, np.uint8, count=plane.line_size * height).reshape(height, -1)[:, :width]


def redact_image(src: Path, dst: Path, boxes: list[Box], mode: str, margin_settings) -> MediaOutcome:
    """Write `src` with `boxes` (detector boxes, grown by the margins) covered, in its own format."""
    with Image.open(src) as img:
        fmt = img.format or "PNG"
        upright = ImageOps.exif_transpose(img)
        rgb = np.array(upright.convert("RGB"))
    for box in boxes:
        grown = grow(box, margin_settings, rgb.shape[:2])
        for c in range(3):
            cover_plane(rgb[..., c], grown, mode, 0)
    options = {"quality": 92} if fmt == "JPEG" else {}
    Image.fromarray(rgb).save(dst, format=fmt, **options)
    return MediaOutcome(frames=1, frames_any_covered=1 if boxes else 0)


# --------------------------------------------------------------------------------------------
# Silencing speech
# --------------------------------------------------------------------------------------------


class Silencer:
    """Silences sample ranges of an audio stream as its frames go by.

    Positions count samples from the first decoded one, as `scanner.media.audio.load_audio` (which the
    scan's speaker turns are measured on) does.
    """

    def __init__(self, ranges: list[TimeRange], mode: str, seed: int = 0):
        self.ranges = sorted(ranges, key=lambda r: r.start)
        self.mode = mode
        self.position = 0
        self.rng = np.random.default_rng(seed)

    def process(self, frame: av.AudioFrame) -> av.AudioFrame:
        n, rate = frame.samples, frame.sample_rate
        start, end = self.position, self.position + n
        self.position = end
        hits = [(max(start, int(r.start * rate)), min(end, int(np.ceil(r.end * rate)))) for r in self.ranges
                if r.start * rate < end and r.end * rate > start]
        if not hits:
            return frame
        data = frame.to_ndarray()
        planar = frame.format.is_planar
        channels = len(frame.layout.channels)
        for a, b in hits:
            i0, i1 = a - start, b - start
            if planar:
                target = data[:, i0:i1]
            else:
                target = data[:, i0 * channels: i1 * channels]
            if self.mode == "noise":
                level = 10 ** (NOISE_DBFS / 20)
                noise = self.rng.normal(0.0, level, size=target.shape)
                if data.dtype.kind == "f":
                    target[...] = noise.astype(data.dtype)
                else:
                    info = np.iinfo(data.dtype)
                    mid = (int(info.max) + int(info.min) + 1) // 2
                    target[...] = np.clip(mid + noise * info.max, info.min, info.max).astype(data.dtype)
            else:
                if data.dtype.kind == "u":
                    target[...] = (int(np.iinfo(data.dtype).max) + 1) // 2
                else:
                    target[...] = 0
        out = av.AudioFrame.from_ndarray(data, format=frame.format.name, layout=frame.layout.name)
        out.sample_rate = rate
        out.pts = frame.pts
        out.time_base = frame.time_base
        return out


class TailTrim:
    """Drops decoded samples beyond a stream's declared length, when they are the last frame's padding.

    `limit`: the declared length in samples (None: nothing dropped). `tolerance`: at most this many
    samples beyond `limit` are taken for padding (one codec frame); when more are decoded, the
    declaration was an estimate and every sample is kept. Samples past `limit` are therefore held
    back (at most `tolerance` of them) until `finish()`.
    """

    def __init__(self, limit: int | None, tolerance: int):
        self.limit = limit
        self.tolerance = tolerance
        self.position = 0
        self.held: list[av.AudioFrame] = []
        self.held_samples = 0
        self.overflow = False

    @classmethod
    def for_stream(cls, container, stream) -> TailTrim:
        rate = stream.codec_context.sample_rate
        seconds = declared_seconds(container, stream)
        frame_size = stream.codec_context.frame_size or 0
        if seconds is None or not rate or frame_size <= 0:  # PCM and the like: no padding to trim
            return cls(None, 0)
        return cls(int(round(seconds * rate)), frame_size)

    def process(self, frame: av.AudioFrame) -> list[av.AudioFrame]:
        """The frames (or parts of `frame`) to encode now."""
        start = self.position
        self.position += frame.samples
        if self.limit is None or self.overflow or self.position <= self.limit:
            return [frame]
        keep = max(0, self.limit - start)
        out = [_slice_frame(frame, 0, keep)] if keep else []
        self.held.append(_slice_frame(frame, keep, frame.samples) if keep else frame)
        self.held_samples += frame.samples - keep
        if self.held_samples > self.tolerance:  # more than padding: the declared length was wrong
            self.overflow = True
            out += self.held
            self.held = []
        return out

    def finish(self) -> list[av.AudioFrame]:
        """What is still held back and is not padding."""
        return [] if not self.overflow else self.held


def _slice_frame(frame: av.AudioFrame, a: int, b: int) -> av.AudioFrame:
    """Samples [a, b) of an audio frame, with its format, layout, rate and a matching pts."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    part = data[:, a:b] if frame.format.is_planar else data[:, a * channels: b * channels]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    if frame.pts is not None and frame.time_base is not None:
        out.time_base = frame.time_base
        out.pts = frame.pts + int(round(a / frame.sample_rate / frame.time_base))
    return out


def audio_target(src: Path, dst: Path) -> tuple[Path, str, str, str | None]:
    """(output path, muxer, encoder, note) for the redacted copy of an audio-only recording."""
    with av.open(str(src)) as container:
        codec = container.streams.audio[0].codec_context.name
    writer = _AUDIO_WRITERS.get(codec)
    if writer is not None:
        try:
            av.codec.Codec(writer[1], "w")
            return dst, writer[0], writer[1], None
        except Exception:  # noqa: BLE001 - this FFmpeg lacks the encoder: fall back below
            pass
    return (dst.with_suffix(".m4a"), "ipod", "aac",
            f"the source's audio codec ({codec}) cannot be written here: the copy is AAC in .m4a")


def redact_audio(src: Path, dst: Path, muxer: str, encoder: str, silence: list[TimeRange], mode: str) -> MediaOutcome:
    """Copy the first audio stream of `src` to `dst` with `silence` ranges silenced."""
    outcome = MediaOutcome(silenced=list(silence))
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=muxer) as out:
        ain = inp.streams.audio[0]
        aout = _audio_stream(out, ain, encoder)
        silencer = Silencer(silence, mode)
        trim = TailTrim.for_stream(inp, ain)
        for frame in inp.decode(ain):
            for part in trim.process(frame):
                for packet in aout.encode(silencer.process(part)):
                    out.mux(packet)
        for part in trim.finish():
            for packet in aout.encode(silencer.process(part)):
                out.mux(packet)
        for packet in aout.encode(None):
            out.mux(packet)
    return outcome


def _audio_stream(out, ain, encoder: str):
    rate = ain.codec_context.sample_rate
    if encoder == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
        rate = 48000
    aout = out.add_stream(encoder, rate=rate)
    layout = ain.codec_context.layout.name if ain.codec_context.layout else "mono"
    aout.layout = layout
    if encoder in ("aac", "libmp3lame") and ain.codec_context.bit_rate:
        aout.bit_rate = max(64000, int(ain.codec_context.bit_rate))
    return aout


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------


class _VideoEncoder:
    """Encodes video frames and muxes their packets on a thread of its own.

    x264 is most of a redaction's work; PyAV lets go of the GIL while it encodes, so decoding,
    face searches and covering (the caller's thread) go on meanwhile. `mux` is the only way
    either thread writes to the output container (it serialises the writes). At most `depth`
    frames wait to be encoded.
    """

    def __init__(self, out, stream, depth: int = 8):
        self.out, self.stream = out, stream
        self.lock = threading.Lock()
        self.frames: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="likeness-redact-encoder", daemon=True)
        self.thread.start()

    def mux(self, packets) -> None:
        with self.lock:
            for packet in packets:
                self.out.mux(packet)

    def put(self, frame: av.VideoFrame) -> None:
        if self.error is not None:
            raise self.error
        self.frames.put(frame)

    def close(self) -> None:
        """Flush the encoder and wait for it; raises what failed on the encoder's thread."""
        self.frames.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            while True:
                frame = self.frames.get()
                self.mux(self.stream.encode(frame))  # None flushes
                if frame is None:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread by put()/close()
            self.error = exc
            while self.frames.get() is not None:  # keep put() from blocking until close()
                pass


def redact_video(src: Path, dst: Path, follower: FaceFollower | None, silence: list[TimeRange], face_mode: str,
                 voice_mode: str, crf: int = 20, preset: str = "veryfast") -> MediaOutcome:
    """Re-encode `src` to `dst` (H.264/AAC MP4) with followed faces covered and `silence` silenced.

    `follower` (None: no face to cover) decides which frames it searches and what to cover on each.
    """
    outcome = MediaOutcome(silenced=list(silence))
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ain = inp.streams.audio[0] if inp.streams.audio else None
        width, height = vin.codec_context.width, vin.codec_context.height
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        vout.time_base = vin.time_base
        vout.codec_context.time_base = vin.time_base
        vout.options = {"preset": preset, "crf": str(crf)}
        vout.codec_context.thread_type = "AUTO"  # x264's frame threads: faster than its default slices here
        aout = _audio_stream(out, ain, "aac") if ain is not None else None
        silencer = Silencer(silence, voice_mode) if ain is not None else None
        trim = TailTrim.for_stream(inp, ain) if ain is not None else None
        pending: collections.deque = collections.deque()
        lookahead = follower.lookahead_s if follower is not None else 0.0

        def emit(item) -> None:
            time_s, frame = item
            covers = follower.covers(time_s) if follower is not None else {}
            if covers:
                cover_frame(frame, [b for bs in covers.values() for b in bs], face_mode)
                outcome.frames_any_covered += 1
                for person in covers:
                    outcome.frames_covered[person] = outcome.frames_covered.get(person, 0) + 1
            if frame.width != vout.width or frame.height != vout.height:
                frame = frame.reformat(width=vout.width, height=vout.height)
            frame.pict_type = av.video.frame.PictureType.NONE
            encoder.put(frame)
            outcome.frames += 1

        encoder = _VideoEncoder(out, vout)
        counter = 0
        first_pts = None
        frame_s = float(1 / rate)
        try:
            streams = [s for s in (vin, ain) if s is not None]
            for packet in inp.demux(*streams):
                for frame in packet.decode():
                    if packet.stream is ain:
                        for part in trim.process(frame):
                            encoder.mux(aout.encode(silencer.process(part)))
                        continue
                    if frame.format.name != "yuv420p":
                        frame = frame.reformat(format="yuv420p")
                    if frame.pts is not None and first_pts is None:
                        first_pts = vin.start_time if vin.start_time is not None else frame.pts
                    # seconds from the start of the stream, as the scan measured its samples
                    time_s = (float((frame.pts - first_pts) * vin.time_base) if frame.pts is not None
                              else counter * frame_s)
                    counter += 1
                    if follower is not None and follower.wants(time_s):
                        luma = np.frombuffer(frame.planes[0], np.uint8).reshape(-1, frame.planes[0].line_size)
                        follower.observe(time_s, luma[: frame.height, : frame.width])
                    pending.append((time_s, frame))
                    while pending and pending[0][0] < time_s - lookahead:
                        emit(pending.popleft())
                    if follower is not None and counter % 64 == 0:
                        follower.forget_before(pending[0][0] if pending else time_s)
            if follower is not None:
                follower.finish()
            while pending:
                emit(pending.popleft())
        finally:
            encoder.close()
        if aout is not None:
            for part in trim.finish():
                encoder.mux(aout.encode(silencer.process(part)))
            encoder.mux(aout.encode(None))
    if follower is not None:
        outcome.face_searches = follower.searches
    return outcome
