"""Decoding of real media files generated with PyAV/Pillow (see media_factory.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scanner.media.audio import load_audio
from scanner.media.files import sha256_file
from scanner.media.frames import iter_frames
from scanner.media.probe import probe
from scanner.models import MediaError, MediaKind
from tests.media_factory import make_png, make_video, make_wav, sine, truncate_copy


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def video(media_dir) -> Path:
    """3 s, 640x360 at 30 fps, H.264 + 44.1 kHz stereo AAC."""
    return make_video(media_dir / "clip.mp4", frames=90, fps=30, size=(640, 360), audio_seconds=3.0)


@pytest.fixture(scope="module")
def wav(media_dir) -> Path:
    """2 s stereo 22.05 kHz PCM."""
    tone = sine(2.0, 22050)
    return make_wav(media_dir / "tone.wav", np.stack([tone, tone * 0.5], axis=1), 22050)


@pytest.fixture(scope="module")
def png(media_dir) -> Path:
    return make_png(media_dir / "still.png", size=(200, 100))


# ------------------------------------------------------------------------------- probe


def test_probe_video_fields(video):
    info = probe(video)
    assert info.kind == MediaKind.VIDEO
    assert (info.width, info.height) == (640, 360)
    assert info.fps == pytest.approx(30.0)
    assert info.duration_s == pytest.approx(3.0, abs=0.1)
    assert info.audio_sample_rate == 44100
    assert info.audio_channels == 2
    assert "mp4" in info.container


def test_probe_wav_is_audio(wav):
    info = probe(wav)
    assert info.kind == MediaKind.AUDIO
    assert info.duration_s == pytest.approx(2.0, abs=0.01)
    assert info.audio_sample_rate == 22050
    assert info.audio_channels == 2
    assert info.width is None and info.fps is None


def test_probe_image(png):
    info = probe(png)
    assert info.kind == MediaKind.IMAGE
    assert (info.width, info.height) == (200, 100)
    assert info.duration_s == 0.0
    assert info.container == "png"


def test_detection_is_by_content_not_extension(media_dir, video, png):
    # A video named .png and an image named .mp4 are still what their bytes say.
    disguised_video = media_dir / "video.png"
    disguised_video.write_bytes(video.read_bytes())
    disguised_image = media_dir / "image.mp4"
    disguised_image.write_bytes(png.read_bytes())
    assert probe(disguised_video).kind == MediaKind.VIDEO
    assert probe(disguised_image).kind == MediaKind.IMAGE


# ------------------------------------------------------------------------------- errors


def test_zero_byte_file(media_dir):
    empty = media_dir / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        probe(empty)


def test_text_file_named_mp4(media_dir):
    text = media_dir / "notes.mp4"
    text.write_text("Meeting notes: nothing to see here.\n" * 50)
    with pytest.raises(MediaError, match="not a media file"):
        probe(text)


def test_truncated_mp4(media_dir, video):
    cut = truncate_copy(video, media_dir / "cut.mp4", 0.3)
    with pytest.raises(MediaError, match="truncated or corrupt"):
        probe(cut)


def test_truncated_faststart_mp4_decodes_what_is_there(media_dir):
    # With the index at the front a cut-off download still opens: the frames before the cut
    # are analysed rather than lost.
    full = make_video(media_dir / "fast.mp4", frames=90, fps=30, size=(320, 240), faststart=True)
    cut = truncate_copy(full, media_dir / "fast_cut.mp4", 0.6)
    info = probe(cut)
    frames = list(iter_frames(cut, info, sample_fps=2.0))
    assert 1 <= len(frames) < 6


def test_image_above_pixel_limit(media_dir):
    big = media_dir / "big.png"
    Image.new("L", (5000, 4000)).save(big)  # 20 MP, compresses to a few kB
    with pytest.raises(MediaError, match="too large"):
        probe(big, max_pixels=10_000_000)
    with pytest.raises(MediaError, match="too large"):
        list(iter_frames(big, probe(big), max_pixels=10_000_000))
    assert probe(big).kind == MediaKind.IMAGE  # within the default 100 MP limit


def test_decompression_bomb_above_default_limit(media_dir):
    bomb = media_dir / "bomb.png"
    Image.new("1", (12_000, 10_000)).save(bomb)  # 120 MP of nothing: ~20 kB on disk
    assert bomb.stat().st_size < 200_000
    with pytest.raises(MediaError, match="too large"):
        probe(bomb)


def test_truncated_jpeg(media_dir):
    rng = np.random.default_rng(0)
    photo = media_dir / "noise.jpg"
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(photo, quality=90)
    cut = truncate_copy(photo, media_dir / "noise_cut.jpg", 0.5)
    with pytest.raises(MediaError, match="truncated or corrupt"):
        probe(cut)


def test_missing_file(media_dir):
    with pytest.raises(MediaError, match="cannot read"):
        probe(media_dir / "does-not-exist.mp4")


def test_container_without_audio_or_video(media_dir):
    # An MP4 holding only a subtitle track has nothing to analyse.
    import av

    path = media_dir / "subs.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("mov_text")
        assert stream.type == "subtitle"
    with pytest.raises(MediaError):
        probe(path)


# ------------------------------------------------------------------------------- frames


def test_frames_sampled_times_and_sizes(video):
    info = probe(video)
    frames = list(iter_frames(video, info, sample_fps=2.0, max_width=320))
    assert [round(f.time_s, 2) for f in frames] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert [f.index for f in frames] == [0, 15, 30, 45, 60, 75]
    for f in frames:
        assert f.image.shape == (180, 320, 3)
        assert f.image.dtype == np.uint8
        assert f.scale == pytest.approx(2.0)
    # Frames carry their own content (the generator encodes the frame number in the red level).
    reds = [float(f.image[120:, 200:, 0].mean()) for f in frames]
    assert np.allclose(reds, [(f.index * 8) % 256 for f in frames], atol=6)


def test_frames_not_upscaled(video):
    frames = list(iter_frames(video, probe(video), sample_fps=1.0, max_width=1280))
    assert [round(f.time_s, 2) for f in frames] == [0.0, 1.0, 2.0]
    assert frames[0].image.shape == (360, 640, 3) and frames[0].scale == 1.0


def test_frames_at_non_integer_rate(media_dir):
    # 29.97 fps sources should still sample close to the 0.5 s grid.
    from fractions import Fraction

    import av

    path = media_dir / "ntsc.mp4"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(90):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    exact = [f.time_s for f in iter_frames(path, probe(path), sample_fps=2.0, skip_nonref=False)]
    assert len(exact) == 6
    assert np.allclose(exact, np.arange(6) * 0.5, atol=1 / 29.97)
    # Skipping non-reference B-frames (the default) lands within two frames of the grid.
    times = [f.time_s for f in iter_frames(path, probe(path), sample_fps=2.0)]
    assert len(times) == 6
    assert np.allclose(times, np.arange(6) * 0.5, atol=2.01 / 29.97)


def test_time_windows_tile_the_video(media_dir):
    """Windows [0, 1) and [1, 3) yield the samples of the whole video, and nothing twice."""
    path = make_video(media_dir / "windows.mp4", frames=90, fps=30, size=(160, 120))
    info = probe(path)
    whole = [f.index for f in iter_frames(path, info, sample_fps=2.0, skip_nonref=False)]
    parts = [
        f.index
        for lo, hi in ((0.0, 1.0), (1.0, 3.0))
        for f in iter_frames(path, info, sample_fps=2.0, start_s=lo, end_s=hi, skip_nonref=False)
    ]
    assert whole == parts == [0, 15, 30, 45, 60, 75]
    late = list(iter_frames(path, info, sample_fps=2.0, start_s=2.2))
    assert [round(f.time_s, 2) for f in late] == [2.5]


def test_prefetched_frames_equal_direct_ones_and_stop_cleanly(video, media_dir):
    """Decoding ahead in a thread yields the same frames; stopping early ends the thread; a
    decoding error after the first frame still ends the iteration quietly, one before it raises."""
    import threading

    info = probe(video)
    direct = list(iter_frames(video, info, sample_fps=4.0))
    ahead = list(iter_frames(video, info, sample_fps=4.0, prefetch=2))
    assert [f.index for f in ahead] == [f.index for f in direct] and len(direct) == 12
    assert all(np.array_equal(a.image, d.image) for a, d in zip(ahead, direct))
    frames = iter_frames(video, info, sample_fps=4.0, prefetch=1)
    next(frames)
    frames.close()
    assert not [t for t in threading.enumerate() if t.name == "likeness-decode"]
    full = make_video(media_dir / "fast2.mp4", frames=90, fps=30, size=(320, 240), faststart=True)
    cut = truncate_copy(full, media_dir / "fast2_cut.mp4", 0.6)
    assert 1 <= len(list(iter_frames(cut, probe(cut), sample_fps=2.0, prefetch=2))) < 6
    with pytest.raises(MediaError):
        list(iter_frames(video, info, sample_fps=2.0, prefetch=2, start_s=99.0))


def _bframe_video(path: Path, seconds: float = 4.0, fps: int = 30) -> Path:
    """x264 defaults (B-frames, B-pyramid): moving shapes so that B-frames are real predictions."""
    import av

    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 320, 240, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "23"}
        yy, xx = np.mgrid[0:240, 0:320]
        for i in range(int(seconds * fps)):
            img = np.zeros((240, 320, 3), dtype=np.uint8)
            img[..., 0] = (xx + 3 * i) % 256
            img[..., 1] = (yy * 2 + i) % 256
            img[((xx - 40 - 4 * i) ** 2 + (yy - 120) ** 2) < 900] = 255
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
    return path


def test_b_frames_skipped_only_where_exact(media_dir, video):
    """On x264 output with B-frames, sparse sampling skips every B-frame: the frames it yields
    are bit-identical to the same frames decoded from the full stream, one per grid second."""
    from scanner.media.frames import bframes_unreferenced_by_p

    path = _bframe_video(media_dir / "bframes.mp4")
    info = probe(path)
    assert bframes_unreferenced_by_p(path, 0)
    assert not bframes_unreferenced_by_p(video, 0)  # no B-frames at all: nothing to gain
    sampled = list(iter_frames(path, info, sample_fps=1.0, skip_bframes=True))
    full = {f.index: f.image for f in iter_frames(path, info, sample_fps=0, skip_nonref=False)}
    assert len(full) == 120 and len(sampled) == 4
    for i, frame in enumerate(sampled):
        assert i <= frame.time_s < i + 0.2
        assert np.array_equal(frame.image, full[frame.index])


def test_image_yields_one_downscaled_frame(png):
    frames = list(iter_frames(png, probe(png), max_width=100))
    assert len(frames) == 1
    frame = frames[0]
    assert frame.time_s == 0.0 and frame.index == 0
    assert frame.image.shape == (50, 100, 3)
    assert frame.scale == pytest.approx(2.0)
    assert tuple(frame.image[25, 50]) == (200, 50, 50)


def test_exif_orientation_applied(media_dir):
    img = Image.new("RGB", (120, 60), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: displayed as 60 wide, 120 tall
    path = media_dir / "rotated.jpg"
    img.save(path, exif=exif)
    info = probe(path)
    assert (info.width, info.height) == (60, 120)
    (frame,) = iter_frames(path, info)
    assert frame.image.shape == (120, 60, 3)


# ------------------------------------------------------------------------------- audio


def test_audio_from_video_is_mono_resampled(video):
    track = load_audio(video, sample_rate=16000)
    assert track is not None
    assert track.samples.ndim == 1 and track.samples.dtype == np.float32
    assert track.sample_rate == 16000 and track.original_sample_rate == 44100
    assert track.duration_s == pytest.approx(3.0, abs=0.05)  # AAC adds a few ms of padding
    # The 440 Hz tone survives resampling.
    spectrum = np.abs(np.fft.rfft(track.samples[1600:33600]))
    peak_hz = np.argmax(spectrum) * 16000 / 32000
    assert peak_hz == pytest.approx(440, abs=2)


def test_audio_from_wav(wav):
    track = load_audio(wav, sample_rate=8000)
    assert track.original_sample_rate == 22050 and track.sample_rate == 8000
    assert len(track.samples) == pytest.approx(16000, abs=40)
    # Stereo (1.0 and 0.5 amplitude) is averaged to mono.
    assert np.abs(track.samples).max() == pytest.approx(0.375, abs=0.02)


def test_audio_duration_limit(wav):
    track = load_audio(wav, sample_rate=16000, max_duration_s=0.5)
    assert track.duration_s == pytest.approx(0.5)


def test_no_audio_stream(media_dir, png):
    silent = make_video(media_dir / "silent.mp4", frames=10, fps=10, size=(64, 48))
    assert probe(silent).audio_sample_rate is None
    assert load_audio(silent) is None
    assert load_audio(png) is None


def test_audio_errors_are_media_errors(media_dir):
    text = media_dir / "speech.wav"
    text.write_text("not audio at all\n" * 20)
    with pytest.raises(MediaError):
        load_audio(text)


# ------------------------------------------------------------------------------- hashing


def test_sha256_streams_whole_file(video):
    expected = hashlib.sha256(video.read_bytes()).hexdigest()
    assert sha256_file(video) == expected
    assert sha256_file(video, chunk_size=1000) == expected
