"""Face pipeline benchmark: identification, detection ladder, speed and recall.

Run from the repository root (one command, prints the table that bench/faces.md shows):

    uv run python bench/faces.py [--work DIR] [--cache DIR] [--skip-naive] [--only SECTION ...]

Sections
--------
identify  Enrol every subject of ``../shared/devset/faces/knn_examples/train`` (several photos per
          subject), probe every other devset photo that is not byte-identical to an enrolment file.
          Every face found in a probe is assigned to the nearest subject under `MATCH_TOLERANCE`
          or to nobody. Scored against MANIFEST.tsv: correct, wrong (assigned to the wrong
          subject), missed (a face of an enrolled subject left unassigned), and faces of people
          who are not enrolled that were (wrongly) assigned.
ladder    Detection and measured face size on the resolution ladder (obama-240p ... 1080p,
          obama_small) with the default analyzer.
small     Smallest faces found per resolution: the 20 faces of the devset photos, each scaled so
          dlib's face box measures 50-80 px, composited into short 720p, 1080p and 2160p videos;
          faces found by the default analyzer (a detection with box IoU >= 0.3 on the first
          sample), against the search before (frames decoded at 1280 px at most and searched
          at that size, `search_face_px` set so no enlargement happens). Then the CPU cost per
          minute of a 1080p30 video of these faces (60 px, drifting slowly) both ways.
speed     A generated 60 s, 1280x720, 30 fps H.264 meeting video with 4 to 8 visible faces
          (gallery 2x2, gallery 3x3 with a late joiner visible for 2.5 s, speaker view with a
          filmstrip of small faces): wall time and peak memory of `FaceAnalyzer` at default
          settings (on 2 CPUs the scan splits this video over 2 worker processes), the whole video on one
          worker, two copies at once on 2 workers
          (a scan of an archive with the default worker count here: throughput), and the naive approach
          (HOG detection at 1280 px and an encoding for every face on every frame), measured in
          the same run. Recall: every person visible for >= 2 s with a face >= 60 px must be found
          (a detection inside their appearance, box IoU >= 0.3 with the rendered face).

Material for the meeting video: real photographs shipped inside PyPI packages (face_recognition
1.3.0 sdist, matplotlib 3.9.2 and scikit-image 0.24.0 wheels), fetched with ``pip download`` by
``sample_data/make_sample_data.py``'s helpers, plus the devset faces when ``../shared/devset`` is
present (then 8 different people; without it 4). Generated media are written to ``--work``
(default: a folder in the system temp directory), never into the repository.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import io
import json
import math
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw
from sklearn.linear_model import LogisticRegression

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scanner.analysis.faces.analyzer import FaceAnalyzer  # noqa: E402
from scanner.analysis.faces.detection import HOG_SURE_FACE, FaceSearch  # noqa: E402
from scanner.analysis.faces.dlib_models import face_api, preload  # noqa: E402
from scanner.analysis.faces.grouping import merge_analyses  # noqa: E402
from scanner.analysis.faces.recognition import (  # noqa: E402
    MATCH_TOLERANCE,
    encode_face_image,
    encode_faces,
    face_match_confidence,
)
from scanner.analysis.faces.settings import FaceSettings  # noqa: E402
from scanner.analysis.recording import AnalysisSettings  # noqa: E402
from scanner.media.images import load_image  # noqa: E402
from scanner.media.probe import probe  # noqa: E402
from scanner.pipeline.planning import Job, Splitting, plan_jobs  # noqa: E402
from scanner.pipeline.worker_setup import huge_pages_for_workers  # noqa: E402
from tests.media_factory import make_video  # noqa: E402

DEVSET = REPO.parent / "shared" / "devset" / "faces"
W, H, FPS, DURATION = 1280, 720, 30, 60.0
GENERATOR_VERSION = "meeting-v4"
#: steady_correlation of the opt-in adaptive-sampling run (see `FaceSettings`).
STEADY = 0.9


def _sample_data_module():
    spec = importlib.util.spec_from_file_location("make_sample_data", REPO / "sample_data" / "make_sample_data.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_sample_data"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------------------------
# The meeting video
# --------------------------------------------------------------------------------------------


def _devset_sources(msd):
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
    msd = _sample_data_module()
    with tempfile.TemporaryDirectory(prefix="likeness-bench-") as td:
        msd.fetch_packages(Path(td), cache)
        photos = msd.load_photos(Path(td))
    faces = {k: msd.FACES[k] for k in ("obama2", "biden", "hopper", "astronaut")}
    faces = {"obama" if k == "obama2" else k: v for k, v in faces.items()}
    if DEVSET.is_dir():
        more_photos, more_faces = _devset_sources(msd)
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


# --------------------------------------------------------------------------------------------
# Speed and recall
# --------------------------------------------------------------------------------------------


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _warm(*_args) -> None:
    """Per-process start-up a scan worker pays once: dlib models, encoder weights, scikit-learn."""
    preload()


def _analyze_window(args):
    """Worker: analyse one window at default settings; returns (analysis, wall, cpu, peak MB)."""
    path, start_s, end_s, kwargs = args
    t0, c0, m0 = time.perf_counter(), _cpu(), time.thread_time()
    analysis = FaceAnalyzer(FaceSettings(**kwargs)).analyze(Path(path), probe(Path(path)), start_s=start_s, end_s=end_s)
    wall, cpu, main = time.perf_counter() - t0, _cpu() - c0, time.thread_time() - m0
    return analysis, wall, cpu, _peak_mb(), main


def _naive(args):
    """Worker: HOG at full size and an encoding for every face, on every frame.

    Decoding every frame is timed over the whole video; detection + encoding on `n` frames
    spread over it, extrapolated to all frames."""
    path, n = args
    api = face_api()
    t0 = time.perf_counter()
    picked = set(np.linspace(0, int(DURATION * FPS) - 1, n).astype(int).tolist())
    chosen = []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(stream)):
            img = frame.to_ndarray(format="rgb24")
            if i in picked:
                chosen.append(img)
    decode = time.perf_counter() - t0
    t0 = time.perf_counter()
    faces = 0
    for img in chosen:
        boxes = api.face_locations(img, 1, "hog")
        faces += len(boxes)
        encode_faces([(img, box) for box in boxes])
    per_frame = (time.perf_counter() - t0) / len(chosen)
    return decode + per_frame * DURATION * FPS, per_frame, faces / len(chosen), _peak_mb()


def recall(analysis, truth) -> tuple[list[dict], dict]:
    """Appearances >= 2 s with a face >= 60 px and whether a detection matched each one; and the
    people each cluster holds (purity)."""
    rows = []
    owner: dict[int, set] = {}
    for app in appearances(truth):
        med = float(np.median([r[3] - r[1] for r in app["rows"]]))
        if app["end"] - app["start"] < 2.0 or med < 60:
            continue
        by_t = {round(r[0], 1): r for r in app["rows"]}
        hit_clusters = set()
        for cluster in analysis.clusters:
            for det in cluster.detections:
                if not (app["start"] <= det.time_s < app["end"]):
                    continue
                row = min(app["rows"], key=lambda r: abs(r[0] - det.time_s))
                top, right, bottom, left = det.box
                l2, t2, r2, b2 = row[1:]
                inter = max(0, min(right, r2) - max(left, l2)) * max(0, min(bottom, b2) - max(top, t2))
                union = (right - left) * (bottom - top) + (r2 - l2) * (b2 - t2) - inter
                if union > 0 and inter / union >= 0.3:
                    hit_clusters.add(cluster.cluster_id)
        del by_t
        for cid in hit_clusters:
            owner.setdefault(cid, set()).add(app["who"])
        rows.append(
            {
                "who": app["who"],
                "start": app["start"],
                "end": round(app["end"], 2),
                "face_px": round(med),
                "found": bool(hit_clusters),
                "clusters": sorted(hit_clusters),
            }
        )
    return rows, owner


def _steady_evidence(default, steady, truth) -> list[str]:
    """Per person: detections and usable detections at default settings and with steady carry."""

    def per_person(analysis) -> dict:
        _, owner = recall(analysis, truth)
        counts = {}
        for cluster in analysis.clusters:
            who = "+".join(sorted(owner.get(cluster.cluster_id, {"?"})))
            n, u = counts.get(who, (0, 0))
            counts[who] = (n + len(cluster.detections), u + sum(d.usable for d in cluster.detections))
        return counts

    a, b = per_person(default), per_person(steady)
    cells = [f"{who} {a[who][1]}/{a[who][0]} -> {b.get(who, (0, 0))[1]}/{b.get(who, (0, 0))[0]}" for who in sorted(a)]
    return ["Usable / all detections per person, default -> steady carry: " + ", ".join(cells) + "."]


def section_speed(work: Path, cache: Path | None, naive: bool, repeats: int = 3) -> list[str]:
    load = os.getloadavg()[0]
    path, truth = build_meeting(work, cache)
    ctx = mp.get_context("spawn")  # dlib deadlocks in forked workers
    huge_pages_for_workers()  # as the scan's worker pool does
    out = ["## Speed on the generated meeting video", ""]
    out.append(
        f"Video: {path.name}, 60 s, 1280x720, 30 fps H.264 (x264 veryfast, crf 23, default GOP and "
        f"B-frames), {len(truth['people'])} people, 4-8 faces visible at a time (52-300 px)."
    )
    out.append("")
    out.append("| run | wall s | x real time | CPU s | peak RSS MB | people | recall |")
    out.append("|---|---|---|---|---|---|---|")
    results = {}
    # Two warm workers (start-up excluded: a scan worker pays it once). Interleaved, `repeats` times
    # each: the default (this machine has 2 CPUs, so a scan of this one video splits it into the
    # windows `plan_jobs` gives, one per worker, joined with `merge_analyses` as the scan's join
    # task does), the whole video on one worker (`--workers 1`) and the opt-in steady carry; the
    # run with the median wall time is shown, the spread below the table.
    _, splits = plan_jobs([Job(path, _sha(path))], AnalysisSettings(), Splitting(), workers=2)
    planned = splits[0].windows if splits else [(0.0, math.inf)]
    windows = [(start, None if end == math.inf else end) for start, end in planned]
    runs: dict[str, list] = {"split": [], "single": [], "steady": []}
    with ctx.Pool(2, initializer=_warm) as pool:
        pool.map(_warm, range(2))
        for _ in range(repeats):
            t0 = time.perf_counter()
            parts = pool.map(_analyze_window, [(str(path), a, b, {}) for a, b in windows], chunksize=1)
            merged = merge_analyses([p[0] for p in parts])
            runs["split"].append((merged, time.perf_counter() - t0, sum(p[2] for p in parts),
                                  max(p[3] for p in parts), None))
            for name, kwargs in (("single", {}), ("steady", {"steady_correlation": STEADY})):
                runs[name].append(pool.apply(_analyze_window, ((str(path), None, None, kwargs),)))
    for name, done in runs.items():
        analysis, wall, cpu, peak, main = sorted(done, key=lambda r: r[1])[len(done) // 2]
        results[name] = (analysis, wall, cpu, peak)
        if name == "single":
            single_main = main
    # Two warm workers, each a whole copy of the video at once: what a scan of an archive does with
    # the default worker count on this machine (one per CPU), as throughput.
    with ctx.Pool(2, initializer=_warm) as pool:
        pool.map(_warm, range(2))
        t0 = time.perf_counter()
        pair = pool.map(_analyze_window, [(str(path), None, None, {}), (str(path), None, None, {})])
        wall_pair = time.perf_counter() - t0
    results["archive"] = (pair[0][0], wall_pair / 2, sum(p[2] for p in pair) / 2, max(p[3] for p in pair))
    # Cold start: a fresh process importing face_recognition (model loading) once per worker.
    t0 = time.perf_counter()
    with ctx.Pool(1) as pool:
        pool.apply(_warm)
    cold = time.perf_counter() - t0
    if naive:
        with ctx.Pool(1, initializer=_warm) as pool:
            naive_total, per_frame, faces, naive_peak = pool.apply(_naive, ((str(path), 24),))
    for name, label in (
        ("split", f"default settings (2 workers here: the scan splits the video into {len(windows)} windows)"),
        ("single", "--workers 1 (the whole video in one worker)"),
        ("archive", "default settings, 2 workers, 2 copies at once (per video: wall / 2, CPU / 2)"),
        ("steady", f"opt-in steady carry (steady_correlation={STEADY}), 1 worker"),
    ):
        analysis, wall, cpu, peak = results[name]
        rows, owner = recall(analysis, truth)
        found = sum(r["found"] for r in rows)
        out.append(
            f"| {label} | {wall:.2f} | {DURATION / wall:.1f} | {cpu:.2f} | {peak:.0f} | "
            f"{len(analysis.clusters)} | {found}/{len(rows)} |"
        )
    if naive:
        out.append(
            f"| naive: HOG (upsample 1) + encode every face, every frame, 1 worker (extrapolated from 24 frames, "
            f"{per_frame * 1000:.0f} ms/frame, {faces:.1f} faces/frame) | {naive_total:.0f} | "
            f"{DURATION / naive_total:.2f} | - | {naive_peak:.0f} | - | - |"
        )
    out.append("")
    if naive:
        out.append(
            f"Ratio naive / default, same run: {naive_total / results['split'][1]:.0f}x; "
            f"naive / 1 worker: {naive_total / results['single'][1]:.0f}x."
        )
        out.append("")
    out.append(
        f"Spread over {repeats} interleaved runs each (load average {load:.1f} at the start of the speed section): "
        + "; ".join(
            f"{name} wall {min(r[1] for r in done):.2f}-{max(r[1] for r in done):.2f} s, "
            f"CPU {min(r[2] for r in done):.2f}-{max(r[2] for r in done):.2f} s"
            for name, done in runs.items()
        )
        + "."
    )
    out += [""] + _steady_evidence(results["single"][0], results["steady"][0], truth)
    out.append("")
    out.append(
        f"Threads (1 worker): the analysing thread used {single_main:.2f} CPU s (detection, landmarks and "
        f"quality, tracking, encoding, clustering), the other threads (decoding, FFmpeg's, the encoder's "
        f"second) {results['single'][2] - single_main:.2f} "
        f"CPU s; on two otherwise idle cores the wall time is bounded below by about "
        f"{max(single_main, results['single'][2] / 2):.2f} s."
    )
    out.append("")
    out.append(
        f"Cold start of one worker (spawn, import face_recognition, load the dlib models): {cold:.1f} s, "
        "paid once per worker process, not per file."
    )
    out.append("")
    rows, owner = recall(results["single"][0], truth)
    out.append(
        "Recall (1 worker): every appearance >= 2 s with a median face >= 60 px, found when a detection "
        "inside it overlaps the rendered face (IoU >= 0.3):"
    )
    out.append("")
    out.append("| person | from s | to s | face px | found | clusters |")
    out.append("|---|---|---|---|---|---|")
    for r in rows:
        out.append(
            f"| {r['who']} | {r['start']:.1f} | {r['end']:.1f} | {r['face_px']} | "
            f"{'yes' if r['found'] else 'NO'} | {r['clusters']} |"
        )
    mixed = {cid: sorted(who) for cid, who in owner.items() if len(who) > 1}
    per_person = {}
    for cid, who in owner.items():
        for w in who:
            per_person.setdefault(w, set()).add(cid)
    split = {w: sorted(c) for w, c in per_person.items() if len(c) > 1}
    out.append("")
    out.append(
        f"Clusters holding more than one person: {mixed or 'none'}; people split over several clusters: "
        f"{split or 'none'}."
    )
    return out


# --------------------------------------------------------------------------------------------
# Identification and the detection ladder (devset)
# --------------------------------------------------------------------------------------------


def _manifest() -> list[dict]:
    lines = (DEVSET / "MANIFEST.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:] if line.strip()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def section_identify() -> list[str]:
    rows = _manifest()
    train = [r for r in rows if r["path"].startswith("knn_examples/train/")]
    enrol_sha = {_sha(DEVSET / r["path"]) for r in train}
    refs: dict[str, list[np.ndarray]] = {}
    for r in train:
        enc = encode_face_image(DEVSET / r["path"])
        if len(enc) == 1:
            refs.setdefault(r["identity"], []).append(enc[0])
    probes = [
        r
        for r in rows
        if not r["path"].startswith("knn_examples/train/")
        and r["kind"] == "image"
        and _sha(DEVSET / r["path"]) not in enrol_sha
    ]
    analyzer = FaceAnalyzer()
    out = ["## Identification on the development faces", ""]
    out.append(
        f"Enrolled: {', '.join(f'{k} ({len(v)} photos)' for k, v in sorted(refs.items()))}. "
        f"Rule: a face is assigned to the subject with the nearest reference photo when that distance "
        f"is below MATCH_TOLERANCE = {MATCH_TOLERANCE}; otherwise to nobody."
    )
    out.append("")
    out.append("| probe | truth | faces | assigned (distance, confidence) | verdict |")
    out.append("|---|---|---|---|---|")
    same, diff = [], []
    totals = {"correct": 0, "wrong": 0, "missed": 0, "unscored": 0}
    for r in probes:
        path = DEVSET / r["path"]
        analysis = analyzer.analyze(path, probe(path))
        truth = set(r["identity"].split("+")) if r["identity"] != "unknown" else None
        assigned = []
        for cluster in analysis.clusters:
            enc = cluster.encodings[0]
            dists = {who: float(np.min(np.linalg.norm(np.stack(v) - enc, axis=1))) for who, v in refs.items()}
            who, d = min(dists.items(), key=lambda kv: kv[1])
            assigned.append((who if d < MATCH_TOLERANCE else None, d))
            if truth is not None and len(truth) == 1:
                for other in dists:
                    for ref in refs[other]:
                        (same if other in truth else diff).append(float(np.linalg.norm(ref - enc)))
        if truth is None:
            verdict = "unscored (identity not verified)"
            totals["unscored"] += 1
        else:
            got = {w for w, _ in assigned if w}
            wrong = got - truth
            missed = (truth & set(refs)) - got
            verdict = (
                "wrong: " + ", ".join(sorted(wrong))
                if wrong
                else ("missed: " + ", ".join(sorted(missed)) if missed else "correct")
            )
            totals["wrong" if wrong else "missed" if missed else "correct"] += 1
        desc = "; ".join(f"{w or 'nobody'} ({d:.2f}, {face_match_confidence(d):.2f})" for w, d in assigned) or "-"
        out.append(f"| {r['path']} | {r['identity']} | {len(analysis.clusters)} | {desc} | {verdict} |")
    out.append("")
    out.append(
        f"Probes: {totals['correct']} correct, {totals['wrong']} with a face assigned to a wrong subject, "
        f"{totals['missed']} with an enrolled face left unassigned, {totals['unscored']} unscored."
    )
    # Positives between photos of the same subject (enrolment photos among themselves, distinct files).
    for v in refs.values():
        for i in range(len(v)):
            for j in range(i + 1, len(v)):
                same.append(float(np.linalg.norm(v[i] - v[j])))
    x = np.array(same + diff)[:, None]
    y = np.array([1] * len(same) + [0] * len(diff))
    model = LogisticRegression(C=100.0).fit(x, y)
    out.append("")
    out.append(
        f"Distances: same person n={len(same)} {min(same):.2f}-{max(same):.2f} (median {np.median(same):.2f}); "
        f"different people n={len(diff)} {min(diff):.2f}-{max(diff):.2f} (median {np.median(diff):.2f})."
    )
    out.append(
        f"Logistic fit (distance -> P(same)): slope {model.coef_[0][0]:.2f}, intercept {model.intercept_[0]:.2f} "
        f"(P = 0.5 at {-model.intercept_[0] / model.coef_[0][0]:.3f}); faces.py uses "
        f"face_match_confidence(0.4) = {face_match_confidence(0.4):.2f}, (0.5) = {face_match_confidence(0.5):.2f}, "
        f"(0.6) = {face_match_confidence(0.6):.2f}."
    )
    return out


def section_ladder() -> list[str]:
    out = ["## Detection on the resolution ladder (default analyzer)", ""]
    out.append("| photo | size | faces | face px | eye distance px | sharpness | yaw | usable |")
    out.append("|---|---|---|---|---|---|---|---|")
    analyzer = FaceAnalyzer()
    for name in ("obama_small.jpg", "obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg", "obama-1080p.jpg"):
        path = DEVSET / name
        info = probe(path)
        analysis = analyzer.analyze(path, info)
        if not analysis.clusters:
            out.append(f"| {name} | {info.width}x{info.height} | 0 | - | - | - | - | - |")
            continue
        d = analysis.clusters[0].detections[0]
        out.append(
            f"| {name} | {info.width}x{info.height} | {len(analysis.clusters)} | {d.size_px:.0f} | "
            f"{d.eye_distance_px:.1f} | {d.sharpness:.0f} | {d.yaw_deg:+.0f} | {'yes' if d.usable else 'no'} |"
        )
    return out


@functools.lru_cache(maxsize=None)
def _devset_face_crops(face_px: int) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Every face of the devset photos (HOG, upsampled once) as a head-and-shoulders crop scaled so
    its box is `face_px` wide, with that box in crop pixels (top, right, bottom, left)."""
    names = sorted(p for p in DEVSET.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")
                   and p.name not in ("obama-240p.jpg", "obama-480p.jpg", "obama-1080p.jpg", "obama_small.jpg"))
    seen: set[str] = set()
    crops = []
    for path in names:
        digest = _sha(path)
        if digest in seen:  # byte-identical copies (biden.jpg, obama.jpg ...)
            continue
        seen.add(digest)
        photo = np.asarray(Image.open(path).convert("RGB"))
        for top, right, bottom, left in face_api().face_locations(photo, 1):
            pad = int(0.8 * (right - left))
            t0, l0 = max(0, top - pad), max(0, left - pad)
            crop = Image.fromarray(photo[t0: bottom + pad, l0: right + pad])
            f = face_px / (right - left)
            crop = np.asarray(crop.resize((max(1, round(crop.width * f)), max(1, round(crop.height * f))),
                                          Image.Resampling.LANCZOS))
            box = (round((top - t0) * f), round((right - l0) * f), round((bottom - t0) * f), round((left - l0) * f))
            crops.append((crop, box))
    return crops


def _composite(crops, width: int, height: int, shift: tuple[int, int] = (0, 0)):
    """A frame with the crops on a 5x4 grid (grey background) and the face boxes in frame pixels."""
    canvas = np.full((height, width, 3), 110, dtype=np.uint8)
    boxes = []
    for i, (crop, (t, r, b, l)) in enumerate(crops[:20]):
        x = (i % 5) * width // 5 + width // 40 + shift[0]
        y = (i // 5) * height // 4 + height // 40 + shift[1]
        h, w = min(crop.shape[0], height - y), min(crop.shape[1], width // 5 - width // 40)
        canvas[y: y + h, x: x + w] = crop[:h, :w]
        boxes.append((y + t, x + r, y + b, x + l))
    return canvas, boxes


def _box_iou(a, b) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[3], b[3])) * max(0, min(a[2], b[2]) - max(a[0], b[0]))
    union = (a[1] - a[3]) * (a[2] - a[0]) + (b[1] - b[3]) * (b[2] - b[0]) - inter
    return inter / union if union else 0.0


def section_small(work: Path) -> list[str]:
    work.mkdir(parents=True, exist_ok=True)
    sizes = (50, 55, 60, 65, 70, 80)
    resolutions = ((1280, 720), (1920, 1080), (3840, 2160))

    def before(width: int) -> FaceAnalyzer:
        # The search before: frames at 1280 px at most, searched at that size (no enlargement).
        return FaceAnalyzer(FaceSettings(search_face_px=HOG_SURE_FACE * max(1.0, width / 1280)))

    out = ["## Smallest faces found per resolution", "",
           "Faces found on the first sample (of 20 devset faces, box width in original pixels); "
           "before: frames searched at 1280 px at most without enlargement.", "",
           "| resolution | detection width | " + " | ".join(f"{s} px" for s in sizes) + " |",
           "|---|---|" + "---|" * len(sizes)]
    for width, height in resolutions:
        for label, analyzer in (("before", before(width)), ("now", FaceAnalyzer())):
            cells = []
            for size in sizes:
                frame, truth = _composite(_devset_face_crops(size), width, height)
                video = work / f"small_{width}_{size}.mp4"
                if label == "before":
                    make_video(video, [frame] * 2, fps=1, size=(width, height))
                analysis = analyzer.analyze(video, probe(video))
                found = [d.box for c in analysis.clusters for d in c.detections if d.time_s == 0.0]
                hits = sum(any(_box_iou(t, f) >= 0.3 for f in found) for t in truth)
                cells.append(f"{hits}/{len(truth)}")
            detection_width = FaceSearch(analyzer.settings).frame_width(width)
            out.append(f"| {width}x{height} {label} | {detection_width} | " + " | ".join(cells) + " |")
    # Cost: 60 s of 1080p30, the 20 faces at 60 px drifting 40 px back and forth (tracked, not still).
    crops = _devset_face_crops(60)
    video = work / "small_1080p_60s.mp4"
    if not video.exists():
        frames = (_composite(crops, 1920, 1080, (round(20 * math.sin(i / 45)), 0))[0] for i in range(60 * 30))
        make_video(video, frames, fps=30, size=(1920, 1080))
    out += ["", "CPU cost of the face stage on 60 s of 1080p30 with these 20 faces at 60 px (one process, "
            "`FaceAnalyzer.analyze`, median of 3):", "",
            "| search | CPU s per minute | faces found (people) |", "|---|---|---|"]
    for label, analyzer in (("before", before(1920)), ("now", FaceAnalyzer())):
        cpus, people = [], 0
        for _ in range(3):
            c0 = _cpu()
            analysis = analyzer.analyze(video, probe(video))
            cpus.append(_cpu() - c0)
            people = len(analysis.clusters)
        out.append(f"| {label} | {sorted(cpus)[1]:.2f} ({min(cpus):.2f}-{max(cpus):.2f}) | {people} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "likeness-bench-faces",
        help="folder for the generated video (kept between runs)",
    )
    ap.add_argument("--cache", type=Path, default=None, help="folder holding the downloaded sdist/wheels")
    ap.add_argument("--skip-naive", action="store_true", help="leave out the (slow) naive baseline")
    ap.add_argument("--repeats", type=int, default=3, help="1-worker speed runs per setting (median shown)")
    ap.add_argument("--only", nargs="*", choices=["identify", "ladder", "small", "speed"], default=None)
    args = ap.parse_args()
    sections = args.only or ["identify", "ladder", "small", "speed"]
    lines = [f"# Face pipeline bench ({os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start)", ""]
    if DEVSET.is_dir():
        if "identify" in sections:
            lines += section_identify() + [""]
        if "ladder" in sections:
            lines += section_ladder() + [""]
        if "small" in sections:
            lines += section_small(args.work) + [""]
    else:
        lines += [f"(devset not found at {DEVSET}: identification and ladder skipped)", ""]
    if "speed" in sections:
        lines += section_speed(args.work, args.cache, naive=not args.skip_naive, repeats=args.repeats)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
