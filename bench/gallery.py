"""Generated gallery meetings: the common case of a meeting archive, for the memory and speed benches.

`build_gallery(work, minutes)` renders a 1280x720, 30 fps meeting (by default) with a 3x3 grid of
nine different real faces visible throughout (60-125 px wide, each moving gently in its tile) and
four speakers taking turns, encoded the way meeting software writes it: H.264 without B-frames and
a keyframe every 5 s, AAC at 48 kHz. The result is cached in `work` by its parameters.

Faces: photographs shipped inside registry packages (face_recognition 1.3.0 sdist: obama, biden;
matplotlib: grace_hopper; scikit-image: astronaut; insightface 2.1 wheel: five of the six people of
``t1.jpg``), fetched with ``pip download`` like ``sample_data/make_sample_data.py`` does.
Speech: four real speakers of ``../shared/devset/diarization`` (their reference turns) when the
devset is present, else the four enrolment voices of ``sample_data/enrol`` (recordings of
different speakers, see sample_data/SOURCES.md). Turns of 2-8 s follow each other with short pauses.

The video repeats a rendered cycle of `cycle_s` seconds (faces move periodically), which keeps
rendering an hour-long meeting affordable; the decoder and the detector still see every frame.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from meeting_video import sample_data_module

REPO = Path(__file__).resolve().parents[1]
DEVSET = REPO.parent / "shared" / "devset"
GENERATOR_VERSION = "gallery-v1"

INSIGHTFACE_WHEEL = "insightface-2.1-py3-none-any.whl"
T1_MEMBER = "insightface/data/images/t1.jpg"
T1_SHA = "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489"
#: HOG face boxes (left, top, right, bottom) of five of t1.jpg's people, measured once (upsample 1).
T1_FACES = [(67, 283, 175, 390), (275, 176, 364, 265), (450, 295, 557, 402), (724, 367, 832, 474),
            (870, 67, 999, 196)]


def _face_sources(cache: Path | None):
    """(photos by name, FaceSrc by person) for nine different people."""
    msd = sample_data_module()
    with tempfile.TemporaryDirectory(prefix="likeness-gallery-") as td:
        tdp = Path(td)
        msd.fetch_packages(tdp, cache)
        photos = msd.load_photos(tdp)
        wheel = (cache / INSIGHTFACE_WHEEL) if cache is not None else None
        if wheel is None or not wheel.exists():
            subprocess.run([*msd._pip_cmd(), "download", "-q", "--no-deps", "-d", td, "insightface==2.1"], check=True)
            wheel = tdp / INSIGHTFACE_WHEEL
            if cache is not None:
                cache.mkdir(parents=True, exist_ok=True)
                (cache / INSIGHTFACE_WHEEL).write_bytes(wheel.read_bytes())
        with zipfile.ZipFile(wheel) as zf:
            t1 = zf.read(T1_MEMBER)
    if hashlib.sha256(t1).hexdigest() != T1_SHA:
        raise SystemExit(f"{INSIGHTFACE_WHEEL}:{T1_MEMBER}: unexpected sha256")
    photos["t1.jpg"] = t1
    faces = {k: msd.FACES[k] for k in ("obama2", "biden", "hopper", "astronaut")}
    for i, (l, t, r, b) in enumerate(T1_FACES):
        w, h = r - l, b - t
        crop = (max(0, int(l - 0.55 * w)), max(0, int(t - 0.6 * h)), min(1280, int(r + 0.55 * w)),
                min(886, int(b + 0.8 * h)))
        faces[f"t1-{i + 1}"] = msd.FaceSrc("t1.jpg", crop, (l, t, r, b))
    return msd, photos, faces


def _speech(seconds: float, sr: int = 16000, seed: int = 3) -> tuple[np.ndarray, list[dict]]:
    """Four speakers taking turns for `seconds`: (samples at `sr`, turns [{who, start, end}])."""
    import librosa
    import soundfile as sf

    sources: dict[str, list[np.ndarray]] = {}
    rttm = DEVSET / "diarization" / "debug.train.rttm"
    if rttm.exists():
        by_clip: dict[str, list[tuple[str, float, float]]] = {}
        for line in rttm.read_text().splitlines():
            f = line.split()
            by_clip.setdefault(f[1], []).append((f[7], float(f[3]), float(f[3]) + float(f[4])))
        for clip, turns in sorted(by_clip.items()):
            path = DEVSET / "diarization" / f"{clip}.wav"
            if not path.exists():
                continue
            y, clip_sr = sf.read(path, dtype="float32")
            for who, a, b in turns:
                if b - a < 2.0:
                    continue
                sources.setdefault(who, []).append(y[int(a * clip_sr): int(b * clip_sr)])
        ranked = sorted(sources, key=lambda w: -sum(len(s) for s in sources[w]))[:4]
        sources = {w: sources[w] for w in ranked}
    if len(sources) < 4:
        sources = {}
        for name in ("carol", "dave", "erin", "obama"):
            y, file_sr = sf.read(REPO / "sample_data" / "enrol" / f"{name}.wav", dtype="float32")
            y = librosa.resample(y, orig_sr=file_sr, target_sr=sr) if file_sr != sr else y
            sources[name] = [y[i: i + 5 * sr] for i in range(0, len(y) - 2 * sr, 5 * sr)]
    rng = np.random.default_rng(seed)
    names = list(sources)
    out = np.zeros(int(seconds * sr) + sr, dtype=np.float32)
    turns, t, last = [], 0.5, None
    while t < seconds - 2.0:
        who = rng.choice([n for n in names if n != last])
        piece = sources[who][int(rng.integers(len(sources[who])))]
        piece = piece[: int(rng.uniform(2.0, 8.0) * sr)]
        piece = piece / max(1e-3, float(np.abs(piece).max())) * 0.5
        a = int(t * sr)
        piece = piece[: max(0, len(out) - a)]
        out[a: a + len(piece)] += piece
        turns.append({"who": str(who), "start": round(t, 2), "end": round(t + len(piece) / sr, 2)})
        t += len(piece) / sr + float(rng.uniform(0.3, 0.9))
        last = who
    return out[: int(seconds * sr)], turns


def build_gallery(work: Path, minutes: float, width: int = 1280, height: int = 720, fps: int = 30,
                  people: int = 9, cycle_s: float = 6.0, cache: Path | None = None, first: int = 0,
                  seed: int = 3, face_px: int | None = None) -> tuple[Path, dict]:
    """Render (or reuse from `work`) a gallery meeting; returns (path, truth {people, turns, ...}).

    `first`: index of the first of the nine faces shown (faces `first`, `first` + 1, ... wrap around),
    so that single-person videos of different people can be made; `seed`: the order of the speech turns;
    `face_px`: every face this wide (a talking head), instead of 60-125 px from the first face to the last.
    """
    import av
    from PIL import Image

    tag = f"{GENERATOR_VERSION}-{width}x{height}-{fps}fps-{people}p-{minutes:g}min"
    if first or seed != 3:
        tag += f"-f{first}-s{seed}"
    if face_px:
        tag += f"-{face_px}px"
    out, truth_path = work / f"{tag}.mp4", work / f"{tag}.json"
    if out.exists() and truth_path.exists():
        return out, json.loads(truth_path.read_text())
    msd, photos, faces = _face_sources(cache)
    names = list(faces)
    who_all = [names[(first + i) % len(names)] for i in range(min(people, len(names)))]
    cols = math.ceil(math.sqrt(len(who_all)))
    rows = math.ceil(len(who_all) / cols)
    tw, th = width // cols, height // rows
    tiles = {who: ((i % cols) * tw, (i // cols) * th, (i % cols + 1) * tw, (i // cols + 1) * th)
             for i, who in enumerate(who_all)}
    width_of = face_px
    face_px = {who: width_of or 60 + (65 * i) // max(1, len(who_all) - 1) for i, who in enumerate(who_all)}
    face_px = {who: min(face_px[who], int(th * 0.55)) for who in who_all}
    sprites = {who: msd.Sprite(photos, faces[who], max_scale=face_px[who] / faces[who].face_w * 1.06)
               for who in who_all}
    colours = [((90, 100, 112), (50, 56, 66)), ((120, 110, 96), (70, 62, 52)), ((88, 108, 100), (44, 60, 56)),
               ((104, 96, 120), (58, 52, 70)), ((110, 112, 90), (62, 64, 48))]
    bg = Image.new("RGB", (width, height), (12, 12, 14))
    for i, box in enumerate(tiles.values()):
        c0, c1 = colours[i % len(colours)]
        bg.paste(msd.gradient(box[2] - box[0] - 4, box[3] - box[1] - 4, c0, c1, side=0.3), (box[0] + 2, box[1] + 2))
    phases = {who: 1.3 * i for i, who in enumerate(who_all)}

    cycle = []
    for i in range(int(round(cycle_s * fps))):
        t = i / fps
        img = bg.copy()
        for who, box in tiles.items():
            p = phases[who]
            w = 2 * math.pi / cycle_s
            s = face_px[who] / faces[who].face_w * (1.0 + 0.03 * math.sin(w * t + p))
            cx = (box[0] + box[2]) / 2 + 0.03 * tw * math.sin(w * t + p)
            cy = box[1] + 0.5 * th + 0.02 * th * math.sin(2 * w * t + p)
            sprites[who].draw(img, s, cx, cy, clip=(box[0] + 2, box[1] + 2, box[2] - 2, box[3] - 2))
        frame = av.VideoFrame.from_image(img).reformat(format="yuv420p")
        cycle.append(frame)

    seconds = minutes * 60.0
    speech, turns = _speech(seconds, seed=seed)
    import librosa

    audio48 = librosa.resample(speech, orig_sr=16000, target_sr=48000, res_type="soxr_hq")
    pcm = np.clip(np.round(audio48 * 32767), -32768, 32767).astype(np.int16)
    work.mkdir(parents=True, exist_ok=True)
    part = out.with_suffix(".part.mp4")
    n_frames = int(round(seconds * fps))
    per_frame = 48000 // fps
    with av.open(str(part), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"preset": "veryfast", "crf": "26",
                      "x264-params": f"bframes=0:keyint={5 * fps}:min-keyint={5 * fps}:scenecut=0"}
        as_ = c.add_stream("aac", rate=48000, layout="mono")
        as_.bit_rate = 64000
        for i in range(n_frames):
            frame = cycle[i % len(cycle)]
            frame.pts = i
            for pkt in vs.encode(frame):
                c.mux(pkt)
            chunk = pcm[i * per_frame:(i + 1) * per_frame]
            if chunk.size:
                af = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
                af.sample_rate = 48000
                af.pts = i * per_frame
                for pkt in as_.encode(af):
                    c.mux(pkt)
        for pkt in vs.encode(None):
            c.mux(pkt)
        for pkt in as_.encode(None):
            c.mux(pkt)
    part.rename(out)
    truth = {"people": who_all, "face_px": face_px, "turns": turns, "speakers": sorted({t["who"] for t in turns}),
             "width": width, "height": height, "fps": fps, "duration_s": seconds}
    truth_path.write_text(json.dumps(truth))
    return out, truth


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("minutes", type=float)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "likeness-bench-gallery")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--people", type=int, default=9)
    ap.add_argument("--first", type=int, default=0, help="index of the first face shown")
    ap.add_argument("--seed", type=int, default=3, help="order of the speech turns")
    ap.add_argument("--face-px", type=int, default=None, help="width of every face (default: 60-125 px)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "likeness-bench-packages",
                    help="where downloaded packages are kept between runs")
    a = ap.parse_args()
    path, _ = build_gallery(a.work, a.minutes, a.width, a.height, people=a.people, cache=a.cache,
                            first=a.first, seed=a.seed, face_px=a.face_px)
    print(path)
