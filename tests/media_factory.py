"""Build small real media files for tests (PyAV/FFmpeg encoders, Pillow, numpy).

Nothing here is mocked: the files are genuine H.264/AAC MP4s, PCM WAVs and PNGs that the
decoder under test must read like any recording.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image


def frame_with_counter(index: int, width: int, height: int) -> np.ndarray:
    """An RGB frame whose mean red level encodes `index` (so tests can tell frames apart)."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[..., 0] = (index * 8) % 256
    img[..., 1] = 128
    img[: height // 4, : width // 4, 2] = 255  # a corner block to make scaling visible
    return img


def make_video(
    path: Path,
    frames: int | Iterable[np.ndarray] = 30,
    fps: int = 30,
    size: tuple[int, int] = (320, 240),
    audio_seconds: float | None = None,
    audio_rate: int = 44100,
    audio_channels: int = 2,
    tone_hz: float = 440.0,
    faststart: bool = False,
) -> Path:
    """Write an H.264 (+ optional AAC) MP4.

    Parameters
    ----------
    frames : int or iterable of RGB arrays, default=30
        A count of synthetic frames (`frame_with_counter`) or the frames themselves; given frames
        must all have the size `size` = (width, height).
    fps : int, default=30
    size : (width, height), default=(320, 240); both even (yuv420p).
    audio_seconds : float or None, default=None
        Add an AAC sine-tone track of this length.
    faststart : bool, default=False
        Put the index (moov) at the start of the file, as web-optimised MP4s do.
    """
    path = Path(path)
    width, height = size
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), mode="w", format="mp4", options=options) as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "tune": "zerolatency"}
        as_ = None
        if audio_seconds:
            as_ = out.add_stream("aac", rate=audio_rate)
            as_.layout = "stereo" if audio_channels == 2 else "mono"
        source = (frame_with_counter(i, width, height) for i in range(frames)) if isinstance(frames, int) else frames
        for rgb in source:
            for packet in vs.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if as_ is not None:
            _encode_tone(out, as_, audio_seconds, audio_rate, audio_channels, tone_hz)
    return path


def _encode_tone(out, stream, seconds: float, rate: int, channels: int, tone_hz: float) -> None:
    total = int(seconds * rate)
    block = 1024
    layout = "stereo" if channels == 2 else "mono"
    for start in range(0, total, block):
        n = min(block, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        wave = (0.5 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)
        planar = np.repeat(wave[None, :], channels, axis=0)
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def make_wav(path: Path, samples: np.ndarray, sr: int = 16000) -> Path:
    """Write 16-bit PCM WAV; `samples` is float in [-1, 1], shape (n,) or (n, channels)."""
    path = Path(path)
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    channels = data.shape[1]
    pcm = (np.clip(data, -1, 1) * 32767).astype(np.int16)
    layout = {1: "mono", 2: "stereo"}[channels]
    with av.open(str(path), mode="w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=sr)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = sr
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def sine(seconds: float, sr: int, hz: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def make_png(path: Path, size: tuple[int, int] = (64, 48), color=(200, 50, 50)) -> Path:
    """Write an RGB PNG of `size` = (width, height)."""
    path = Path(path)
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def truncate_copy(src: Path, dst: Path, fraction: float) -> Path:
    """Copy the first `fraction` of `src`'s bytes to `dst` (a cut-off download)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def letterbox(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Fit `img` inside width x height, centred on a grey background."""
    h, w = img.shape[:2]
    s = min(width / w, height / h)
    nw, nh = max(1, int(w * s)), max(1, int(h * s))
    resized = np.asarray(Image.fromarray(img).resize((nw, nh), Image.Resampling.BILINEAR))
    canvas = np.full((height, width, 3), 90, dtype=np.uint8)
    y, x = (height - nh) // 2, (width - nw) // 2
    canvas[y : y + nh, x : x + nw] = resized
    return canvas


def face_crops(sample_data: Path, size: int = 96) -> list[np.ndarray]:
    """Square RGB crops (`size` px, the face about two thirds of it) of the real faces in the sample
    recordings: the meeting grid's three, the team photo's two and the enrolment photo."""
    import face_recognition

    from scanner.media.frames import iter_frames
    from scanner.media.images import load_image
    from scanner.media.probe import probe

    grid = sample_data / "recordings" / "meeting_grid.mp4"
    frame = next(iter(iter_frames(grid, probe(grid), 1.0, 1280, start_s=5.0))).image
    images = [frame, load_image(sample_data / "recordings" / "team_photo.jpg"),
              load_image(sample_data / "enrol" / "obama.jpg")]
    crops = []
    for image in images:
        for top, right, bottom, left in face_recognition.face_locations(image, 1):
            pad = (right - left) // 4
            t, l = max(0, top - pad), max(0, left - pad)
            crop = Image.fromarray(image[t: bottom + pad, l: right + pad]).resize((size, size), Image.BILINEAR)
            crops.append(np.asarray(crop))
    return crops


_TILE_COLOURS = [(90, 100, 112), (150, 120, 80), (70, 120, 90), (120, 90, 140), (160, 160, 150), (60, 70, 130)]


def make_reshuffled_gallery(path: Path, faces: list[np.ndarray], seconds: float, speech: np.ndarray | None = None,
                            sr: int = 16000, fps: int = 2, size: tuple[int, int] = (640, 360),
                            shuffle_s: float = 3.0) -> Path:
    """An H.264 (+ AAC speech) gallery of `faces` in a 4x2 grid whose seats rotate every `shuffle_s`
    seconds: every rotation ends every face track and starts new ones, as layout changes do in
    meeting recordings. `speech` (mono at `sr`) is looped to the length of the video."""
    width, height = size
    cols, rows = 4, 2
    tw, th = width // cols, height // rows
    seats = [(c * tw + (tw - faces[0].shape[1]) // 2, r * th + (th - faces[0].shape[0]) // 2)
             for r in range(rows) for c in range(cols)]
    with av.open(str(path), mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "ultrafast", "tune": "zerolatency"}
        stream = None
        if speech is not None:
            stream = out.add_stream("aac", rate=sr)
            stream.layout = "mono"
        layouts = {}
        for i in range(int(seconds * fps)):
            turn = int(i / fps // shuffle_s)
            if turn not in layouts:
                layouts.clear()
                img = np.full((height, width, 3), 20, dtype=np.uint8)
                for s, (x, y) in enumerate(seats):
                    who = (s + turn) % len(faces)
                    # Each participant's own camera background moves with them, as in a real gallery.
                    c, r = s % cols, s // cols
                    colour = _TILE_COLOURS[who % len(_TILE_COLOURS)]
                    img[r * th + 2: (r + 1) * th - 2, c * tw + 2: (c + 1) * tw - 2] = colour
                    face = faces[who]
                    img[y: y + face.shape[0], x: x + face.shape[1]] = face
                layouts[turn] = img
            for packet in vs.encode(av.VideoFrame.from_ndarray(layouts[turn], format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if stream is not None:
            total = int(seconds * sr)
            looped = np.resize(speech.astype(np.float32), total)
            for start in range(0, total, 1024):
                frame = av.AudioFrame.from_ndarray(looped[None, start: start + 1024], format="fltp", layout="mono")
                frame.sample_rate = sr
                frame.pts = start
                frame.time_base = Fraction(1, sr)
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    return path


def bitflip_copy(src: Path, dst: Path, offsets: Iterable[int], length: int = 4096, every: int = 7) -> Path:
    """Copy `src` to `dst` with every `every`-th byte of `length` bytes from each offset XORed with
    0x5A (damaged storage or transfer: the container's structure around the damage stays intact)."""
    data = bytearray(Path(src).read_bytes())
    for offset in offsets:
        for i in range(offset, min(offset + length, len(data)), every):
            data[i] ^= 0x5A
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


def packet_offsets(path: Path, kind: str, fractions: Iterable[float]) -> list[tuple[int, float]]:
    """(byte offset, time in s) of the `kind` ("video" or "audio") packets found at `fractions` of the
    stream's packets: where to damage a file to hit known times."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        packets = [(p.pos, float((p.pts - (stream.start_time or 0)) * stream.time_base))
                   for p in container.demux(stream) if p.size and p.pos is not None and p.pts is not None]
    packets.sort(key=lambda p: p[0])
    return [packets[min(len(packets) - 1, int(f * len(packets)))] for f in fractions]


def make_vfr_video(path: Path, durations_s: list[float], size: tuple[int, int] = (160, 120)) -> Path:
    """Write an H.264 MP4 whose frame `i` is shown for `durations_s[i]` seconds (variable frame rate,
    as screen recorders and phones write: a still screen holds one frame for seconds)."""
    path = Path(path)
    width, height = size
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        t = 0.0
        for i, seconds in enumerate(durations_s):
            frame = av.VideoFrame.from_ndarray(frame_with_counter(i, width, height), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
            t += seconds
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_aac(path: Path, seconds: float, rate: int = 22050) -> Path:
    """Write a mono AAC sine tone in an MP4 (.m4a) container."""
    path = Path(path)
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        _encode_tone(out, stream, seconds, rate, 1, 440.0)
    return path


def looped_copy(src: Path, dst: Path, times: int) -> Path:
    """`src` played `times` times in a row, remuxed without re-encoding: each pass repeats the video
    and audio packets with timestamps shifted by the length of the passes before it."""
    with av.open(str(src)) as first:
        starts, ends = {}, {}
        for packet in first.demux():
            if packet.pts is None or packet.stream.type not in ("video", "audio"):
                continue
            index = packet.stream.index
            starts[index] = min(starts.get(index, packet.pts), packet.pts)
            ends[index] = max(ends.get(index, packet.pts), packet.pts + (packet.duration or 0))
        spans = {index: ends[index] - starts[index] for index in starts}
    with av.open(str(dst), "w") as out:
        targets = {}
        for k in range(times):
            with av.open(str(src)) as inp:
                for stream in inp.streams:
                    if stream.index in spans and stream.index not in targets:
                        targets[stream.index] = out.add_stream_from_template(stream)
                for packet in inp.demux():
                    if packet.pts is None or packet.stream.index not in targets:
                        continue
                    shift = k * spans[packet.stream.index]
                    packet.pts += shift
                    packet.dts = None if packet.dts is None else packet.dts + shift
                    packet.stream = targets[packet.stream.index]
                    out.mux(packet)
    return dst
