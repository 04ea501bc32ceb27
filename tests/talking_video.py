"""Generated talking-head videos: a real face whose mouth opens with one voice, while another voice
speaks off screen. Real photo, real recorded voices (sample_data enrolment samples), real H.264/AAC."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

FPS = 25
SR = 16000


def _envelope(samples: np.ndarray, sr: int, t: float, window: float = 0.04) -> float:
    i = int(t * sr)
    half = int(window * sr / 2)
    chunk = samples[max(0, i - half): i + half]
    return float(np.sqrt(np.mean(chunk**2))) if len(chunk) else 0.0


def make_talking_video(
    path: Path,
    face_photo: Path,
    on_screen_voice: Path,
    off_screen_voice: Path,
    size: tuple[int, int] = (640, 480),
    segment_s: float = 5.0,
) -> dict:
    """Write the video; return the truth: when each voice speaks and which one the face mouths."""
    from scanner.analysis.faces.dlib_models import (
        face_api,  # imported through the scanner, which keeps Pillow's settings intact
    )

    photo = np.asarray(Image.open(face_photo).convert("RGB"))
    scale = size[1] * 0.9 / photo.shape[0]
    photo = np.asarray(Image.fromarray(photo).resize((int(photo.shape[1] * scale), int(photo.shape[0] * scale))))
    marks = face_api().face_landmarks(photo, model="large")[0]
    top_lip = np.array(marks["top_lip"], dtype=float)
    bottom_lip = np.array(marks["bottom_lip"], dtype=float)
    centre = np.vstack([top_lip, bottom_lip]).mean(axis=0)
    width = np.ptp(np.vstack([top_lip, bottom_lip])[:, 0])

    a, sr_a = sf.read(on_screen_voice, dtype="float32")
    b, sr_b = sf.read(off_screen_voice, dtype="float32")
    assert sr_a == sr_b == SR
    a = a[int(0.3 * SR): int((0.3 + segment_s) * SR)]
    b = b[int(0.3 * SR): int((0.3 + segment_s) * SR)]
    gap = 1.0
    start_a, start_b = 0.5, 0.5 + segment_s + gap
    duration = start_b + segment_s + 0.5
    track = np.zeros(int(duration * SR), dtype=np.float32)
    track[int(start_a * SR): int(start_a * SR) + len(a)] += a
    track[int(start_b * SR): int(start_b * SR) + len(b)] += b
    peak = max(np.abs(a).max(), 1e-6)

    with av.open(str(path), mode="w", format="mp4") as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"preset": "veryfast", "crf": "23"}
        audio = out.add_stream("aac", rate=SR)
        audio.layout = "mono"
        x0 = (size[0] - photo.shape[1]) // 2
        y0 = (size[1] - photo.shape[0]) // 2
        for i in range(int(duration * FPS)):
            t = i / FPS
            level = _envelope(a, SR, t - start_a) / peak if start_a <= t < start_a + segment_s else 0.0
            frame = _open_mouth(photo, centre, width, min(1.0, 2.5 * level))
            canvas = np.full((size[1], size[0], 3), 40, dtype=np.uint8)
            canvas[max(0, y0): y0 + frame.shape[0], max(0, x0): x0 + frame.shape[1]] = frame[
                max(0, -y0): size[1] - y0, max(0, -x0): size[0] - x0
            ]
            for packet in video.encode(av.VideoFrame.from_ndarray(canvas, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for start in range(0, len(track), 1024):
            chunk = track[start: start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
            frame.sample_rate = SR
            frame.pts = start
            frame.time_base = Fraction(1, SR)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)
    return {
        "on_screen": (start_a, start_a + segment_s),
        "off_screen": (start_b, start_b + segment_s),
        "duration": duration,
    }


def _open_mouth(photo: np.ndarray, centre: np.ndarray, width: float, amount: float) -> np.ndarray:
    """Drop the jaw by up to 0.45 mouth widths: shift everything below the lips down, dark gap between."""
    drop = int(round(amount * 0.45 * width))
    if drop <= 0:
        return photo
    frame = photo.copy()
    cy = int(centre[1])
    x_lo = int(centre[0] - 1.4 * width)
    x_hi = int(centre[0] + 1.4 * width)
    region = photo[cy:, x_lo:x_hi]
    frame[cy + drop:, x_lo:x_hi] = region[: frame.shape[0] - cy - drop]
    frame[cy: cy + drop, x_lo:x_hi] = photo[cy: cy + 1, x_lo:x_hi]  # stretched skin at the sides
    ys, xs = np.mgrid[cy: cy + drop, x_lo:x_hi]
    inside = ((xs - centre[0]) / (0.42 * width)) ** 2 + ((ys - (cy + drop / 2)) / max(drop / 2, 1)) ** 2 <= 1.0
    frame[cy: cy + drop, x_lo:x_hi][inside] = (45, 20, 25)
    return frame
