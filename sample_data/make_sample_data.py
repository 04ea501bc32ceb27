"""Build the bundled sample data for `likeness demo` and the test-suite.

Run from the repository root:

    uv run python sample_data/make_sample_data.py [--cache DIR]

It writes, into ``sample_data/``:

* ``recordings/``  interview.mp4, meeting_grid.mp4, lobby.mp4, webinar.mp4 (H.264 + AAC),
  voice_memo.m4a (AAC), phone_call.wav (8 kHz PCM), team_photo.jpg
* ``enrol/``       obama.jpg, obama.wav, carol.wav, dave.wav, erin.wav (16 kHz mono)
* ``consent.yaml`` consent records in the product's core shape
* ``ground_truth.yaml`` what was rendered where (computed while rendering)
* ``SOURCES.md``   provenance and licences

Everything is deterministic: fixed seeds, pinned source packages checked by SHA-256, no clock.

Sources (nothing else is used; no media from anywhere else is copied):

Faces, real photographs shipped inside packages on PyPI, fetched with ``pip download`` into a
temporary directory (or read from ``--cache DIR`` when the same file is already there):

* ``face_recognition==1.3.0`` sdist (``face_recognition-1.3.0.tar.gz``, MIT licence),
  files ``face_recognition-1.3.0/tests/test_images/obama.jpg``, ``obama2.jpg``, ``obama3.jpg``,
  ``biden.jpg`` (official US government photographs, public domain).
* ``matplotlib==3.9.2`` wheel (manylinux2014_x86_64, cp311; Matplotlib licence, PSF-style),
  file ``matplotlib/mpl-data/sample_data/grace_hopper.jpg`` (US Navy photograph, public domain).
* ``scikit-image==0.24.0`` wheel (manylinux2014_x86_64, cp311; BSD-3-Clause),
  file ``skimage/data/astronaut.png`` (NASA photograph of Eileen Collins, public domain).

Voices, synthesised with Debian packages (each voice is a recording of a different real speaker):

* ``flite`` 2.2 (Debian package ``flite`` 2.2-5, CMU Flite licence, BSD-style): built-in voices
  ``awb`` (obama's voice in this data set), ``slt`` (carol), ``rms`` (dave), ``kal`` (erin).
* ``festival`` 2.5.0 (Debian ``festival`` 1:2.5.0-9) with ``festvox-kdlpc16k`` 1.4.0-6.1
  (voice ``ked_diphone``, free licence of the Festival/Festvox project, MIT-style): ``ked``.

Processing uses numpy, scipy, Pillow, librosa (resampling) and PyAV (H.264/AAC encoding) from the
project environment.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import av
import librosa
import numpy as np
import soundfile as sf
import yaml
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from scipy import signal

OUT = Path(__file__).resolve().parent
REC = OUT / "recordings"
ENROL = OUT / "enrol"
FPS = 25
SR = 16000  # internal mixing rate
VIDEO_AUDIO_SR = 48000

# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------

FR_SDIST = "face_recognition-1.3.0.tar.gz"
FR_SDIST_SHA = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
WHEEL_PLATFORM = ["--platform", "manylinux2014_x86_64", "--python-version", "3.11",
                  "--implementation", "cp", "--abi", "cp311"]
MPL_WHEEL = "matplotlib-3.9.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
SKI_WHEEL = "scikit_image-0.24.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"

# file name -> (package file, member inside it, sha256 of the member)
PHOTOS = {
    "obama.jpg": (FR_SDIST, "face_recognition-1.3.0/tests/test_images/obama.jpg",
                  "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6"),
    "obama2.jpg": (FR_SDIST, "face_recognition-1.3.0/tests/test_images/obama2.jpg",
                   "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6"),
    "obama3.jpg": (FR_SDIST, "face_recognition-1.3.0/tests/test_images/obama3.jpg",
                   "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3"),
    "biden.jpg": (FR_SDIST, "face_recognition-1.3.0/tests/test_images/biden.jpg",
                  "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c"),
    "grace_hopper.jpg": (MPL_WHEEL, "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                         "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130"),
    "astronaut.png": (SKI_WHEEL, "skimage/data/astronaut.png",
                      "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"),
}


def _pip_cmd() -> list[str]:
    """A pip that can run `pip download` (the uv venv usually has none, so fall back)."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for exe in ("pip3", "pip"):
        if shutil.which(exe):
            return [shutil.which(exe)]
    for py in ("python3", "python"):
        p = shutil.which(py)
        if p and subprocess.run([p, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return [p, "-m", "pip"]
    raise SystemExit("pip is needed to download the face photos (pip download)")


def fetch_packages(dest: Path, cache: Path | None) -> None:
    wanted = {
        FR_SDIST: ["--no-deps", "--no-binary", ":all:", "face_recognition==1.3.0"],
        MPL_WHEEL: ["--no-deps", "--only-binary", ":all:", *WHEEL_PLATFORM, "matplotlib==3.9.2"],
        SKI_WHEEL: ["--no-deps", "--only-binary", ":all:", *WHEEL_PLATFORM, "scikit-image==0.24.0"],
    }
    for fname, args in wanted.items():
        if cache is not None and (cache / fname).exists():
            shutil.copy(cache / fname, dest / fname)
            continue
        print(f"pip download {args[-1]} ...", flush=True)
        subprocess.run([*_pip_cmd(), "download", "-q", "-d", str(dest), *args], check=True)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            shutil.copy(dest / fname, cache / fname)
    got = hashlib.sha256((dest / FR_SDIST).read_bytes()).hexdigest()
    if got != FR_SDIST_SHA:
        raise SystemExit(f"{FR_SDIST}: unexpected sha256 {got}")


def load_photos(pkgdir: Path) -> dict[str, bytes]:
    out = {}
    for name, (pkg, member, sha) in PHOTOS.items():
        if pkg.endswith(".tar.gz"):
            with tarfile.open(pkgdir / pkg) as tf:
                data = tf.extractfile(member).read()
        else:
            with zipfile.ZipFile(pkgdir / pkg) as zf:
                data = zf.read(member)
        if hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit(f"{pkg}:{member}: unexpected sha256")
        out[name] = data
    return out


# --------------------------------------------------------------------------------------------
# Faces: a crop of each photo (head, hair, shoulders) plus the face box found by dlib's HOG
# detector (face_recognition.face_locations, upsample 1) on the original photo, measured once.
# --------------------------------------------------------------------------------------------


@dataclass
class FaceSrc:
    photo: str
    crop: tuple[int, int, int, int]  # left, top, right, bottom in the photo
    face: tuple[int, int, int, int]  # left, top, right, bottom of the HOG face box in the photo

    @property
    def face_w(self) -> int:
        return self.face[2] - self.face[0]


FACES = {
    "obama2": FaceSrc("obama2.jpg", (40, 110, 570, 700), (171, 290, 438, 558)),
    "obama3": FaceSrc("obama3.jpg", (430, 80, 1160, 900), (633, 277, 954, 598)),
    "biden": FaceSrc("biden.jpg", (230, 40, 930, 860), (419, 241, 740, 562)),
    "hopper": FaceSrc("grace_hopper.jpg", (60, 0, 490, 480), (180, 139, 366, 325)),
    # astronaut.png: HOG also fires on the helmet lower down (y 335-425), kept out of the crop
    "astronaut": FaceSrc("astronaut.png", (105, 8, 335, 262), (175, 76, 265, 166)),
}


class Sprite:
    """A face crop with soft edges that can be drawn at any scale and position."""

    def __init__(self, photos: dict[str, bytes], src: FaceSrc, max_scale: float, feather: int = 10):
        self.src = src
        img = Image.open(io.BytesIO(photos[src.photo])).convert("RGB").crop(src.crop)
        self.max_scale = max_scale
        w = round(img.width * max_scale)
        h = round(img.height * max_scale)
        img = img.resize((w, h), Image.LANCZOS)
        mask = Image.new("L", (w, h), 0)
        f = max(2, round(feather * max_scale))
        ImageDraw.Draw(mask).rounded_rectangle((f, f, w - 1 - f, h - 1 - f), radius=4 * f, fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(f / 2))
        self.rgba = img.copy()
        self.rgba.putalpha(mask)

    def size(self, scale: float) -> tuple[int, int]:
        cw = self.src.crop[2] - self.src.crop[0]
        ch = self.src.crop[3] - self.src.crop[1]
        return max(1, round(cw * scale)), max(1, round(ch * scale))

    def draw(self, canvas: Image.Image, scale: float, face_cx: float, face_cy: float,
             clip: tuple[int, int, int, int] | None = None):
        """Draw so that the centre of the face box lands at (face_cx, face_cy).

        Returns the face box (l, t, r, b) in canvas coordinates."""
        s = self.src
        w, h = self.size(scale)
        fcx = ((s.face[0] + s.face[2]) / 2 - s.crop[0]) * scale
        fcy = ((s.face[1] + s.face[3]) / 2 - s.crop[1]) * scale
        x0 = round(face_cx - fcx)
        y0 = round(face_cy - fcy)
        im = self.rgba.resize((w, h), Image.BILINEAR) if (w, h) != self.rgba.size else self.rgba
        if clip is None:
            canvas.paste(im, (x0, y0), im)
        else:
            cx0, cy0, cx1, cy1 = clip
            tile = canvas.crop(clip)
            tile.paste(im, (x0 - cx0, y0 - cy0), im)
            canvas.paste(tile, (cx0, cy0))
        fl = x0 + (s.face[0] - s.crop[0]) * scale
        ft = y0 + (s.face[1] - s.crop[1]) * scale
        return (fl, ft, fl + s.face_w * scale, ft + (s.face[3] - s.face[1]) * scale)


def gradient(w: int, h: int, top: tuple[int, int, int], bottom: tuple[int, int, int],
             side: float = 0.0) -> Image.Image:
    y = np.linspace(0.0, 1.0, h)[:, None, None]
    x = np.linspace(-1.0, 1.0, w)[None, :, None]
    a = np.array(top, float)[None, None, :]
    b = np.array(bottom, float)[None, None, :]
    img = a + (b - a) * y + side * 40.0 * x
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def smoothstep(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def inside(box, area) -> bool:
    return box[0] >= area[0] and box[1] >= area[1] and box[2] <= area[2] and box[3] <= area[3]


@dataclass
class Track:
    """Frames in which one identity's face is fully visible, and its rendered width."""

    who: str
    frames: list[int] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)

    def add(self, i: int, box, area):
        if inside(box, area):
            self.frames.append(i)
            self.widths.append(box[2] - box[0])

    def appearances(self) -> list[dict]:
        """Contiguous runs of frames -> [start, end) in seconds."""
        out = []
        if not self.frames:
            return out
        runs = [[self.frames[0], self.frames[0]]]
        for f in self.frames[1:]:
            if f == runs[-1][1] + 1:
                runs[-1][1] = f
            else:
                runs.append([f, f])
        for a, b in runs:
            ws = [w for f, w in zip(self.frames, self.widths) if a <= f <= b]
            out.append({"who": self.who, "start": round(a / FPS, 3), "end": round((b + 1) / FPS, 3),
                        "face_px": [round(min(ws)), round(max(ws))]})
        return out


# --------------------------------------------------------------------------------------------
# Speech
# --------------------------------------------------------------------------------------------

VOICES = {  # identity -> (engine, voice)
    "obama": ("flite", "awb"),
    "carol": ("flite", "slt"),
    "dave": ("flite", "rms"),
    "erin": ("flite", "kal"),
    "ked": ("festival", "ked_diphone"),
}

ENROL_TEXT = {
    "obama": "I am recording this sample so the system can learn how my voice sounds. "
             "The weather this morning was clear and cold, and the traffic into the city moved "
             "faster than usual. After lunch we will go through the budget figures together, "
             "line by line, and then decide which projects can wait until spring.",
    "carol": "This is my reference recording for the voice enrolment. I grew up near the coast, "
             "where the summers were short and the winters were long and windy. These days I "
             "mostly cycle to work, unless it is raining, in which case I take the number nine bus "
             "and read the news on my phone.",
    "dave": "I am reading this paragraph for my voice profile. Last weekend I repaired an old "
            "bicycle with my daughter, which took far longer than we expected. We replaced both "
            "tyres, the chain and the brake cables, and by Sunday evening it was finally ready "
            "for a short ride around the park.",
    "erin": "Here is my enrolment sample, read at a normal pace. My favourite place to spend a "
            "quiet afternoon is the public library downtown, with its tall windows and creaky "
            "wooden floors. I usually borrow three or four novels at a time and return them late, "
            "which the staff kindly forgive.",
}


def tts(who: str, text: str, tmp: Path) -> np.ndarray:
    """Synthesise `text` in `who`'s voice; float32 mono at SR, leading/trailing silence trimmed."""
    engine, voice = VOICES[who]
    wav = tmp / "tts.wav"
    if engine == "flite":
        subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True)
    else:
        txt = tmp / "tts.txt"
        txt.write_text(text)
        subprocess.run(["text2wave", "-eval", f"(voice_{voice})", str(txt), "-o", str(wav)],
                       check=True, capture_output=True)
    y, sr = sf.read(wav, dtype="float32")
    if y.ndim > 1:
        y = y.mean(axis=1)
    if sr != SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=SR, res_type="soxr_hq").astype(np.float32)
    thr = 0.02 * np.abs(y).max()
    idx = np.flatnonzero(np.abs(y) > thr)
    y = y[idx[0]: idx[-1] + 1]
    # level: active-speech RMS at -20 dBFS
    rms = np.sqrt(np.mean(y[np.abs(y) > thr] ** 2))
    return (y * (0.1 / rms)).astype(np.float32)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=float)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return (x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


class Mix:
    def __init__(self, duration: float, tmp: Path):
        self.n = round(duration * SR)
        self.y = np.zeros(self.n, np.float32)
        self.tmp = tmp
        self.segments: list[dict] = []

    def say(self, who: str, text: str, start: float) -> float:
        """Place an utterance at `start` seconds; return its end time in seconds."""
        clip = tts(who, text, self.tmp)
        a = round(start * SR)
        b = a + clip.size
        if b > self.n:
            raise SystemExit(f"utterance of {who} ends at {b / SR:.2f}s, past the end {self.n / SR}s")
        self.y[a:b] += clip
        self.segments.append({"who": who, "start": round(a / SR, 3), "end": round(b / SR, 3)})
        return b / SR

    def finish(self, seed: int, snr_db: float | None = None, floor_dbfs: float = -62.0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        noise = pink_noise(self.n, rng)
        if snr_db is not None:
            act = np.abs(self.y) > 0.002
            speech_rms = np.sqrt(np.mean(self.y[act] ** 2))
            noise *= speech_rms / (10 ** (snr_db / 20))
        else:
            noise *= 10 ** (floor_dbfs / 20)
        y = self.y + noise
        peak = np.abs(y).max()
        if peak > 0.95:
            y *= 0.95 / peak
        return y.astype(np.float32)

    def overlaps(self) -> list[dict]:
        out = []
        s = self.segments
        for i in range(len(s)):
            for j in range(i + 1, len(s)):
                a, b = max(s[i]["start"], s[j]["start"]), min(s[i]["end"], s[j]["end"])
                if b > a:
                    out.append({"who": [s[i]["who"], s[j]["who"]], "start": a, "end": b})
        return out


def to_pcm16(y: np.ndarray) -> np.ndarray:
    return np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------


def encode_video(path: Path, w: int, h: int, n_frames: int, render, audio: np.ndarray) -> None:
    """render(i) -> PIL RGB image of frame i. H.264 (yuv420p, crf 28, keyframe every 2 s) + AAC."""
    audio48 = librosa.resample(audio, orig_sr=SR, target_sr=VIDEO_AUDIO_SR, res_type="soxr_hq")
    pcm = to_pcm16(audio48)
    per_frame = VIDEO_AUDIO_SR // FPS
    assert pcm.size >= n_frames * per_frame - per_frame
    with av.open(str(path), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "28", "preset": "medium",
                      "x264-params": f"keyint={2 * FPS}:min-keyint={2 * FPS}:scenecut=0"}
        as_ = c.add_stream("aac", rate=VIDEO_AUDIO_SR, layout="mono")
        as_.bit_rate = 64000
        for i in range(n_frames):
            frame = av.VideoFrame.from_image(render(i))
            frame.pts = i
            for p in vs.encode(frame):
                c.mux(p)
            chunk = pcm[i * per_frame:(i + 1) * per_frame]
            if chunk.size:
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
                af.sample_rate = VIDEO_AUDIO_SR
                af.pts = i * per_frame
                for p in as_.encode(af):
                    c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        for p in as_.encode(None):
            c.mux(p)


def encode_m4a(path: Path, audio: np.ndarray) -> None:
    pcm = to_pcm16(audio)
    with av.open(str(path), "w", format="ipod") as c:
        s = c.add_stream("aac", rate=SR, layout="mono")
        s.bit_rate = 48000
        step = 1024
        for i in range(0, pcm.size, step):
            af = av.AudioFrame.from_ndarray(pcm[None, i:i + step], format="s16", layout="mono")
            af.sample_rate = SR
            af.pts = i
            for p in s.encode(af):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


# --------------------------------------------------------------------------------------------
# Recordings
# --------------------------------------------------------------------------------------------


def make_interview(photos, tmp):
    W, H, dur = 1280, 720, 20.0
    n = round(dur * FPS)
    mix = Mix(dur, tmp)
    end = mix.say("obama", "Thank you for having me. Over the last year our team rebuilt the archive "
                  "from scratch, and honestly, the hardest part was deciding what to keep.", 0.52)
    mix.say("erin", "That's a fair point. So when do you expect the new policy to reach "
            "the regional offices, and who will train the staff there?", max(10.0, end + 0.9))
    audio = mix.finish(seed=101)

    spr = Sprite(photos, FACES["obama2"], max_scale=1.25)
    bg = gradient(W, H, (62, 74, 96), (24, 28, 40), side=0.4)
    ImageDraw.Draw(bg).rectangle((0, H - 70, W, H), fill=(18, 20, 28))
    track = Track("obama")
    t_in, t_out0, t_out1 = 1.0, 17.8, 18.4  # cut in; slide out to the right from 17.8 s to 18.4 s

    def render(i):
        t = i / FPS
        img = bg.copy()
        if t_in <= t < t_out1:
            z = smoothstep((t - t_in) / (t_out0 - t_in))
            scale = 0.90 + (1.22 - 0.90) * z  # face 240 px -> 326 px wide
            cx = 560 + 140 * z
            cy = 330 - 20 * z
            if t >= t_out0:
                cx += (W + 500) * ((t - t_out0) / (t_out1 - t_out0)) ** 2
            box = spr.draw(img, scale, cx, cy)
            track.add(i, box, (0, 0, W, H))
        return img

    encode_video(REC / "interview.mp4", W, H, n, render, audio)
    return {"kind": "video", "width": W, "height": H, "fps": FPS, "duration": dur,
            "appearances": track.appearances(), "speech": mix.segments, "overlaps": mix.overlaps()}


def make_meeting_grid(photos, tmp):
    W, H, dur = 1280, 720, 30.0
    n = round(dur * FPS)
    mix = Mix(dur, tmp)
    t = mix.say("carol", "Okay, let's get started. The first item is the vendor contract "
                "for the transcription service.", 0.6)
    t = mix.say("dave", "I read it last night. The retention clause still says five years, "
                "which is too long.", t + 0.7)
    t = mix.say("ked", "Can we ask them to shorten it to eighteen months?", t + 0.6)
    t = mix.say("carol", "I think so. I will draft a reply today and copy legal on it, "
                "so nobody is surprised.", t + 0.8)
    # the one overlap: dave starts 1.5 s before carol has finished
    t = mix.say("dave", "Sorry, one more thing about the pricing tiers before we move on.", t - 1.5)
    mix.say("ked", "Sure, go ahead, we still have ten minutes left.", t + 0.7)
    audio = mix.finish(seed=202, snr_db=18.0)

    tiles = {  # who -> (tile box, background colours)
        "biden": ((0, 0, 640, 360), (90, 100, 112), (50, 56, 66)),
        "hopper": ((640, 0, 1280, 360), (120, 110, 96), (70, 62, 52)),
        "astronaut": ((0, 360, 640, 720), (88, 108, 100), (44, 60, 56)),
    }
    face_w = {"biden": 140, "hopper": 150, "astronaut": 130}
    sprites = {k: Sprite(photos, FACES[k], max_scale=face_w[k] / FACES[k].face_w * 1.05)
               for k in tiles}
    bg = Image.new("RGB", (W, H), (12, 12, 14))
    for box, c0, c1 in tiles.values():
        g = gradient(box[2] - box[0] - 4, box[3] - box[1] - 4, c0, c1, side=0.3)
        bg.paste(g, (box[0] + 2, box[1] + 2))
    # camera-off tile: dark, initials avatar and a name label, no face
    off = (640, 360, 1280, 720)
    d = ImageDraw.Draw(bg)
    d.rectangle((off[0] + 2, off[1] + 2, off[2] - 3, off[3] - 3), fill=(32, 33, 38))
    d.ellipse((960 - 48, 520 - 48, 960 + 48, 520 + 48), fill=(70, 90, 140))
    d.text((960, 520), "DM", font=font(40), fill=(235, 235, 240), anchor="mm")
    d.rounded_rectangle((off[0] + 14, off[3] - 46, off[0] + 230, off[3] - 14), radius=6,
                        fill=(0, 0, 0))
    d.text((off[0] + 24, off[3] - 30), "Dave Moreno (camera off)", font=font(16),
           fill=(255, 255, 255), anchor="lm")
    phase = {"biden": 0.0, "hopper": 2.1, "astronaut": 4.2}
    tracks = {k: Track(k) for k in tiles}

    def render(i):
        t = i / FPS
        img = bg.copy()
        for who, (box, _, _) in tiles.items():
            p = phase[who]
            s = face_w[who] / FACES[who].face_w * (1.0 + 0.03 * math.sin(2 * math.pi * t / 7 + p))
            cx = (box[0] + box[2]) / 2 + 10 * math.sin(2 * math.pi * t / 5.3 + p)
            cy = box[1] + 150 + 6 * math.sin(2 * math.pi * t / 3.1 + p)
            fb = sprites[who].draw(img, s, cx, cy, clip=(box[0] + 2, box[1] + 2, box[2] - 2, box[3] - 2))
            tracks[who].add(i, fb, box)
        return img

    encode_video(REC / "meeting_grid.mp4", W, H, n, render, audio)
    apps = [a for k in tiles for a in tracks[k].appearances()]
    return {"kind": "video", "width": W, "height": H, "fps": FPS, "duration": dur,
            "appearances": apps, "speech": mix.segments, "overlaps": mix.overlaps(),
            "noise": {"kind": "pink", "snr_db": 18.0},
            "no_face_regions": [{"label": "camera off tile", "box": list(off)}]}


def make_lobby(photos, tmp):
    W, H, dur = 640, 360, 15.0
    n = round(dur * FPS)
    mix = Mix(dur, tmp)
    t = mix.say("ked", "Welcome to the north building. Visitors, please sign in at the front desk "
                "and collect a badge.", 1.2)
    mix.say("ked", "The elevators to the third floor are on your right, just past the coffee bar.",
            t + 1.6)
    audio = mix.finish(seed=303)

    spr = Sprite(photos, FACES["astronaut"], max_scale=1.6)
    bg = gradient(W, H, (205, 200, 190), (150, 140, 128))
    d = ImageDraw.Draw(bg)
    d.rectangle((0, 290, W, H), fill=(120, 110, 100))  # floor
    for x in range(40, W, 160):  # wall panels
        d.rectangle((x, 40, x + 110, 250), outline=(180, 172, 160), width=3)
    track = Track("astronaut")
    t0, t1 = 1.0, 13.6  # enters at the left edge at t0, gone past the right edge at t1

    def render(i):
        t = i / FPS
        img = bg.copy()
        if t0 <= t <= t1:
            u = (t - t0) / (t1 - t0)
            s = 0.75 + (1.4 - 0.75) * u  # face 68 px -> 126 px: walking towards the camera
            cx = -30 + (W + 92) * u
            cy = 150 + 8 * abs(math.sin(math.pi * t * 1.8)) - 20 * u
            box = spr.draw(img, s, cx, cy)
            track.add(i, box, (0, 0, W, H))
        return img

    encode_video(REC / "lobby.mp4", W, H, n, render, audio)
    return {"kind": "video", "width": W, "height": H, "fps": FPS, "duration": dur,
            "appearances": track.appearances(), "speech": mix.segments, "overlaps": mix.overlaps()}


def make_webinar(photos, tmp):
    W, H, dur = 640, 360, 20.0
    n = round(dur * FPS)
    mix = Mix(dur, tmp)
    t = mix.say("carol", "Good afternoon, and welcome to this session on responsible data handling. "
                "Today we will look at how recordings are stored, and who can access them.", 0.5)
    gap_end = t + 3.5  # a silence gap of 3.5 s
    mix.say("carol", "Let's move to the first slide. Here you can see how long each type of "
            "recording is kept before it is deleted.", gap_end)
    audio = mix.finish(seed=404)

    spr = Sprite(photos, FACES["hopper"], max_scale=1.12)
    bg = Image.new("RGB", (W, H), (236, 238, 242))
    d = ImageDraw.Draw(bg)
    d.rectangle((0, 0, W, 48), fill=(36, 60, 110))
    d.text((16, 24), "Responsible data handling", font=font(22), fill=(255, 255, 255), anchor="lm")
    for k, wdt in enumerate((300, 240, 270, 200)):
        y = 90 + 46 * k
        d.ellipse((24, y - 5, 34, y + 5), fill=(36, 60, 110))
        d.rounded_rectangle((46, y - 7, 46 + wdt, y + 7), radius=4, fill=(180, 188, 204))
    track = Track("hopper")

    def render(i):
        t = i / FPS
        img = bg.copy()
        z = smoothstep(t / dur)
        s = (90 + (200 - 90) * z) / FACES["hopper"].face_w
        cx = 560 - 230 * z
        cy = 290 - 105 * z
        box = spr.draw(img, s, cx, cy)
        track.add(i, box, (0, 0, W, H))
        return img

    encode_video(REC / "webinar.mp4", W, H, n, render, audio)
    return {"kind": "video", "width": W, "height": H, "fps": FPS, "duration": dur,
            "appearances": track.appearances(), "speech": mix.segments, "overlaps": mix.overlaps()}


def make_voice_memo(tmp):
    dur = 15.0
    mix = Mix(dur, tmp)
    t = mix.say("dave", "Quick memo for Thursday. The printer on the fourth floor is broken again, "
                "so please send anything urgent to the one near reception.", 0.4)
    mix.say("erin", "Also, the client workshop moved to Friday at ten, and we still need "
            "someone to book the room.", t + 0.8)
    audio = mix.finish(seed=505, floor_dbfs=-55.0)
    encode_m4a(REC / "voice_memo.m4a", audio)
    return {"kind": "audio", "sample_rate": SR, "duration": dur, "appearances": [], "speech": mix.segments,
            "overlaps": mix.overlaps()}


def make_phone_call(tmp):
    dur = 20.0
    mix = Mix(dur, tmp)
    t = mix.say("carol", "Hi, this is Carol, calling back about the invoice you sent last week.", 0.5)
    t = mix.say("ked", "Yes, thanks for calling. Is there a problem with the amount?", t + 0.6)
    t = mix.say("carol", "Not the amount, but the purchase order number seems to be missing.", t + 0.6)
    mix.say("ked", "I see. I will add it and send you a corrected copy this afternoon.", t + 0.6)
    y = mix.finish(seed=606, floor_dbfs=-50.0)
    sos = signal.butter(6, [300, 3400], btype="bandpass", fs=SR, output="sos")
    y = signal.sosfiltfilt(sos, y).astype(np.float32)
    y8 = librosa.resample(y, orig_sr=SR, target_sr=8000, res_type="soxr_hq")
    y8 = y8 * (0.7 / np.abs(y8).max())
    sf.write(REC / "phone_call.wav", to_pcm16(y8), 8000, subtype="PCM_16")
    return {"kind": "audio", "sample_rate": 8000, "duration": dur, "appearances": [], "speech": mix.segments,
            "overlaps": mix.overlaps(), "band_hz": [300, 3400]}


def make_team_photo(photos):
    W, H = 1280, 853
    img = gradient(W, H, (214, 208, 196), (168, 158, 142), side=0.3)
    d = ImageDraw.Draw(img)
    d.rectangle((0, 700, W, H), fill=(110, 96, 82))
    apps = []
    for who, key, cx in (("obama", "obama3", 400), ("biden", "biden", 880)):
        spr = Sprite(photos, FACES[key], max_scale=0.7)
        s = 210 / FACES[key].face_w  # both faces ~210 px wide
        box = spr.draw(img, s, cx, 300)
        assert inside(box, (0, 0, W, H))
        apps.append({"who": who, "box": [round(v) for v in box], "face_px": round(box[2] - box[0])})
    img.save(REC / "team_photo.jpg", quality=90, optimize=True)
    return {"kind": "image", "width": W, "height": H, "appearances": apps, "speech": []}


def make_enrolment(photos, tmp):
    # An enrolment photo as a data protection team would file it: the portrait scaled to 640 px wide.
    portrait = Image.open(io.BytesIO(photos["obama.jpg"])).convert("RGB")
    height = round(portrait.height * 640 / portrait.width)
    portrait.resize((640, height), Image.LANCZOS).save(ENROL / "obama.jpg", quality=92, optimize=True)
    out = {}
    for who, text in ENROL_TEXT.items():
        mix = Mix(30.0, tmp)
        end = mix.say(who, text, 0.3)
        y = mix.finish(seed=700 + len(out), floor_dbfs=-60.0)[: round((end + 0.4) * SR)]
        sf.write(ENROL / f"{who}.wav", to_pcm16(y), SR, subtype="PCM_16")
        out[who] = {"voice": f"enrol/{who}.wav", "speech": mix.segments,
                    "duration": round(y.size / SR, 3)}
    return out


# --------------------------------------------------------------------------------------------
# Consent, ground truth, sources
# --------------------------------------------------------------------------------------------

CONSENT_YAML = """\
# Consent records for the bundled sample data (core shape of the likeness consent format).
# Scan with:  likeness scan sample_data/recordings --consent sample_data/consent.yaml --purpose ai-training
# Each subject demonstrates one consent case for the purpose ai-training; biden, hopper, astronaut
# (faces) and ked (voice) also appear in the recordings but have no record here: unknown persons.
subjects:
  # Valid, current consent covering ai-training, but the accepted face risk is only "low", while
  # interview.mp4 holds ~17 s of his large frontal face (case: risk above what was accepted).
  - id: obama
    name: Barack Obama
    enrolment:
      faces: [enrol/obama.jpg]
      voices: [enrol/obama.wav]
    grants:
      - purposes: [recording, internal-use, ai-training]
        given: 2026-01-10
        expires: 2027-12-31
        max_risk: {face: low, voice: critical}
        evidence: forms/obama.pdf

  # Recording and internal use are fine, but the ai-training grant was withdrawn (consent withdrawn).
  - id: carol
    name: Carol Park
    enrolment:
      voices: [enrol/carol.wav]
    grants:
      - purposes: [recording, internal-use]
        given: 2026-01-10
        expires: 2027-01-10
      - purposes: [ai-training]
        given: 2026-01-10
        withdrawn: 2026-06-01

  # Covered ai-training once, but the grant expired on 2026-03-01 (consent expired).
  - id: dave
    name: Dave Moreno
    enrolment:
      voices: [enrol/dave.wav]
    grants:
      - purposes: [recording, internal-use, ai-training]
        given: 2025-01-01
        expires: 2026-03-01

  # Current consent, but only for recording, internal use and publication (purpose not covered).
  - id: erin
    name: Erin Walsh
    enrolment:
      voices: [enrol/erin.wav]
    grants:
      - purposes: [recording, internal-use, publication]
        given: 2026-02-01
        expires: 2027-02-01
"""

PEOPLE = {  # identity -> (subject id or None, face source, voice source)
    "obama": ("obama", "face_recognition 1.3.0 sdist: tests/test_images/obama.jpg (enrolment), "
              "obama2.jpg, obama3.jpg (recordings)", "flite 2.2 voice awb"),
    "carol": ("carol", None, "flite 2.2 voice slt"),
    "dave": ("dave", None, "flite 2.2 voice rms"),
    "erin": ("erin", None, "flite 2.2 voice kal"),
    "biden": (None, "face_recognition 1.3.0 sdist: tests/test_images/biden.jpg", None),
    "hopper": (None, "matplotlib 3.9.2 wheel: matplotlib/mpl-data/sample_data/grace_hopper.jpg", None),
    "astronaut": (None, "scikit-image 0.24.0 wheel: skimage/data/astronaut.png", None),
    "ked": (None, None, "festival 2.5.0 voice ked_diphone (festvox-kdlpc16k 1.4.0)"),
}


# The findings a scan of recordings/ must raise with `--purpose ai-training --as-of 2026-11-27`,
# one per identity key, following from consent.yaml and what each person left in the recordings.
EXPECTED_SCAN = {
    "purposes": ["ai-training"],
    "as_of": "2026-11-27",
    "findings": [
        {"rule_id": "LK005", "rule_name": "risk-above-accepted", "who": "obama", "modality": "face"},
        {"rule_id": "LK002", "rule_name": "consent-withdrawn", "who": "carol"},
        {"rule_id": "LK003", "rule_name": "consent-expired", "who": "dave"},
        {"rule_id": "LK004", "rule_name": "purpose-not-covered", "who": "erin"},
        {"rule_id": "LK001", "rule_name": "unknown-person", "who": "biden"},
        {"rule_id": "LK001", "rule_name": "unknown-person", "who": "hopper"},
        {"rule_id": "LK001", "rule_name": "unknown-person", "who": "astronaut"},
        {"rule_id": "LK001", "rule_name": "unknown-person", "who": "ked"},
    ],
}


def write_ground_truth(recs: dict, enrol: dict) -> None:
    for d in recs.values():
        d.setdefault("appearances", [])
    people = {}
    for who, (sid, fsrc, vsrc) in PEOPLE.items():
        face_in = [r for r, d in recs.items() if any(a["who"] == who for a in d["appearances"])]
        voice_in = [r for r, d in recs.items() if any(s["who"] == who for s in d["speech"])]
        p = {"subject_id": sid, "face_in": face_in, "voice_in": voice_in}
        if fsrc:
            p["face_source"] = fsrc
        if vsrc:
            p["voice_source"] = vsrc
        people[who] = p
    head = (
        "# Ground truth for sample_data/, written by make_sample_data.py from what it rendered.\n"
        "# people: one entry per identity; subject_id is the consent.yaml id (null = not enrolled).\n"
        "# recordings.<file>.appearances: face fully inside the frame (or its grid tile) during\n"
        "#   [start, end) seconds; face_px = rendered width of the HOG face box (min, max).\n"
        "#   For images: box = [left, top, right, bottom] of the face in pixels.\n"
        "# recordings.<file>.speech: one entry per utterance, start/end of the synthesised speech\n"
        "#   with its leading/trailing silence trimmed (short pauses between sentences remain).\n"
        "# overlaps: intervals where two people speak at once.\n"
        "# expected_scan: the findings a scan must raise for these purposes as of that date.\n"
    )
    body = yaml.safe_dump({"people": people, "recordings": recs, "enrolment": enrol, "expected_scan": EXPECTED_SCAN},
                          sort_keys=False, default_flow_style=None, width=110)
    (OUT / "ground_truth.yaml").write_text(head + body)

# SOURCES.md, word for word (Markdown tables cannot wrap their rows).
SOURCES_MD = """\
# Sample data: sources and licences

Everything in this folder is produced by `make_sample_data.py`
(`uv run python sample_data/make_sample_data.py`), deterministically (fixed seeds, pinned packages
verified by SHA-256). No other media is used.

## Faces (real photographs shipped inside PyPI packages, fetched with `pip download`)

| identity | package (version, file) | file inside the package | licence of package / photo |
|---|---|---|---|
| obama (enrolled) | `face_recognition` 1.3.0 sdist, `face_recognition-1.3.0.tar.gz` | `face_recognition-1.3.0/tests/test_images/obama.jpg` (enrolment, scaled to 640 px wide as `enrol/obama.jpg`), `obama2.jpg` (interview.mp4), `obama3.jpg` (team_photo.jpg) | MIT / US government photographs, public domain |
| biden (not enrolled) | same sdist | `face_recognition-1.3.0/tests/test_images/biden.jpg` | MIT / US government photograph, public domain |
| hopper (not enrolled) | `matplotlib` 3.9.2 wheel, `matplotlib-3.9.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl` | `matplotlib/mpl-data/sample_data/grace_hopper.jpg` | Matplotlib licence (PSF-style) / US Navy photograph, public domain |
| astronaut (not enrolled) | `scikit-image` 0.24.0 wheel, `scikit_image-0.24.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl` | `skimage/data/astronaut.png` (`skimage.data.astronaut()`) | BSD-3-Clause / NASA photograph of Eileen Collins, public domain |

The faces are crops (head, hair, shoulders) composited onto drawn backgrounds; they move, zoom,
enter and leave.

## Voices (speech synthesis from Debian packages; each voice is a different real speaker)

| identity | engine and voice | Debian package (version) | licence |
|---|---|---|---|
| obama (enrolled) | `flite -voice awb` | `flite` 2.2-5 | CMU Flite licence (BSD-style) |
| carol (enrolled) | `flite -voice slt` | `flite` 2.2-5 | CMU Flite licence (BSD-style) |
| dave (enrolled) | `flite -voice rms` | `flite` 2.2-5 | CMU Flite licence (BSD-style) |
| erin (enrolled) | `flite -voice kal` (8 kHz voice, upsampled) | `flite` 2.2-5 | CMU Flite licence (BSD-style) |
| ked (not enrolled) | `text2wave -eval "(voice_ked_diphone)"` | `festival` 1:2.5.0-9, `festvox-kdlpc16k` 1.4.0-6.1 | Festival/Festvox free licence (MIT-style) |

Enrolment texts differ from the texts spoken in the recordings. Background noise is synthetic pink
noise (numpy, fixed seeds).

## Files

| file | what |
|---|---|
| `recordings/interview.mp4` | 1280x720, 25 fps, 20 s; obama's face (large, zooming), obama speaks, then erin off-screen |
| `recordings/meeting_grid.mp4` | 1280x720, 25 fps, 30 s; 2x2 call grid: biden, hopper, astronaut, a camera-off tile; carol, dave, ked take turns, one overlap, pink noise at 18 dB SNR |
| `recordings/lobby.mp4` | 640x360, 25 fps, 15 s; astronaut walks in from the left, grows, leaves right; ked speaks |
| `recordings/webinar.mp4` | 640x360, 25 fps, 20 s; hopper zooms from ~90 px to ~200 px; carol speaks with a 3.5 s gap |
| `recordings/voice_memo.m4a` | AAC, 16 kHz mono, 15 s; dave then erin |
| `recordings/phone_call.wav` | PCM 8 kHz mono, 20 s, 300-3400 Hz band; carol and ked alternate |
| `recordings/team_photo.jpg` | 1280x853 still; obama and biden side by side |
| `enrol/` | `obama.jpg` and 12-20 s voice samples (16 kHz mono) for obama, carol, dave, erin |
| `consent.yaml` | consent records (one case per subject, see comments) |
| `ground_truth.yaml` | who appears/speaks where, with exact rendered times |

`check_sample_data.py` re-checks the result with the real components: dlib HOG face detection
(upsample 1) and identification against the source photos on frames every 0.5 s, and
`librosa.effects.split` speech regions against the ground-truth speech times.

Reproducibility: two runs on the same machine give identical bytes for every file. The WAV files
depend only on flite/festival, numpy and soxr; the MP4/M4A/JPEG bytes can differ with other
versions of FFmpeg/x264 (PyAV) or Pillow, the rendered content and ground truth do not.
"""  # noqa: E501 - Markdown table rows, written to SOURCES.md as they stand


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=None,
                    help="folder holding (or receiving) the downloaded sdist/wheels")
    args = ap.parse_args()
    REC.mkdir(parents=True, exist_ok=True)
    ENROL.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="likeness-sample-") as td:
        tmp = Path(td)
        fetch_packages(tmp, args.cache)
        photos = load_photos(tmp)
        recs = {}
        for name, fn in (("interview.mp4", lambda: make_interview(photos, tmp)),
                         ("meeting_grid.mp4", lambda: make_meeting_grid(photos, tmp)),
                         ("lobby.mp4", lambda: make_lobby(photos, tmp)),
                         ("webinar.mp4", lambda: make_webinar(photos, tmp)),
                         ("voice_memo.m4a", lambda: make_voice_memo(tmp)),
                         ("phone_call.wav", lambda: make_phone_call(tmp)),
                         ("team_photo.jpg", lambda: make_team_photo(photos))):
            print(f"rendering {name}", flush=True)
            recs[name] = fn()
        enrol = make_enrolment(photos, tmp)
    (OUT / "consent.yaml").write_text(CONSENT_YAML)
    write_ground_truth(recs, enrol)
    (OUT / "SOURCES.md").write_text(SOURCES_MD)
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"done: {total / 1e6:.2f} MB in {OUT}")


if __name__ == "__main__":
    main()
