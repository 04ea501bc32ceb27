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

The sections identify, ladder and small are in bench/face_accuracy.py, the meeting video and its
ground truth in bench/meeting_video.py; this script runs them and the speed section.
"""

from __future__ import annotations

import argparse
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from face_accuracy import DEVSET, cpu_seconds, section_identify, section_ladder, section_small, sha256_of  # noqa: E402
from meeting_video import DURATION, FPS, appearances, build_meeting  # noqa: E402

from scanner.analysis.faces.analyzer import FaceAnalyzer  # noqa: E402
from scanner.analysis.faces.dlib_models import face_api, preload  # noqa: E402
from scanner.analysis.faces.grouping import merge_analyses  # noqa: E402
from scanner.analysis.faces.recognition import encode_faces  # noqa: E402
from scanner.analysis.faces.settings import FaceSettings  # noqa: E402
from scanner.analysis.recording import AnalysisSettings  # noqa: E402
from scanner.media.probe import probe  # noqa: E402
from scanner.pipeline.planning import Job, Splitting, plan_jobs  # noqa: E402
from scanner.pipeline.worker_setup import huge_pages_for_workers  # noqa: E402

#: steady_correlation of the opt-in adaptive-sampling run (see `FaceSettings`).
STEADY = 0.9


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _warm(*_args) -> None:
    """Per-process start-up a scan worker pays once: dlib models, encoder weights, scikit-learn."""
    preload()


def _analyze_window(args):
    """Worker: analyse one window at default settings; returns (analysis, wall, cpu, peak MB)."""
    path, start_s, end_s, kwargs = args
    t0, c0, m0 = time.perf_counter(), cpu_seconds(), time.thread_time()
    analysis = FaceAnalyzer(FaceSettings(**kwargs)).analyze(Path(path), probe(Path(path)), start_s=start_s, end_s=end_s)
    wall, cpu, main = time.perf_counter() - t0, cpu_seconds() - c0, time.thread_time() - m0
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
    _, splits = plan_jobs([Job(path, sha256_of(path))], AnalysisSettings(), Splitting(), workers=2)
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
