"""Accuracy sections of bench/faces.py on the development faces (``../shared/devset/faces``):
identification, the detection ladder, and the smallest faces found per resolution."""

from __future__ import annotations

import functools
import hashlib
import math
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scanner.analysis.faces.analyzer import FaceAnalyzer  # noqa: E402
from scanner.analysis.faces.boxes import iou  # noqa: E402
from scanner.analysis.faces.detection import HOG_SURE_FACE, FaceSearch  # noqa: E402
from scanner.analysis.faces.dlib_models import face_api  # noqa: E402
from scanner.analysis.faces.recognition import (  # noqa: E402
    MATCH_TOLERANCE,
    encode_face_image,
    face_match_confidence,
)
from scanner.analysis.faces.settings import FaceSettings  # noqa: E402
from scanner.media.probe import probe  # noqa: E402
from tests.media_factory import make_video  # noqa: E402

DEVSET = REPO.parent / "shared" / "devset" / "faces"


def cpu_seconds() -> float:
    """CPU time (user + system seconds) of this process so far."""
    t = os.times()
    return t.user + t.system


def _manifest() -> list[dict]:
    lines = (DEVSET / "MANIFEST.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"))) for line in lines[1:] if line.strip()]


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def section_identify() -> list[str]:
    rows = _manifest()
    train = [r for r in rows if r["path"].startswith("knn_examples/train/")]
    enrol_sha = {sha256_of(DEVSET / r["path"]) for r in train}
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
        and sha256_of(DEVSET / r["path"]) not in enrol_sha
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
        digest = sha256_of(path)
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
                hits = sum(any(iou(t, f) >= 0.3 for f in found) for t in truth)
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
            c0 = cpu_seconds()
            analysis = analyzer.analyze(video, probe(video))
            cpus.append(cpu_seconds() - c0)
            people = len(analysis.clusters)
        out.append(f"| {label} | {sorted(cpus)[1]:.2f} ({min(cpus):.2f}-{max(cpus):.2f}) | {people} |")
    return out
