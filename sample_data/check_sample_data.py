"""Sanity-check the bundled sample data against ground_truth.yaml with the real components.

    uv run python sample_data/check_sample_data.py [--cache DIR] [--step 0.5]

Faces: frames decoded with PyAV every `--step` seconds (plus the image), dlib HOG via
face_recognition.face_locations(upsample 1) on frames at most 1280 px wide; every detection is
identified by comparing its encoding with encodings of the original source photos (tolerance 0.6).
A frame "hits" when every face the ground truth lists as fully visible is found and identified;
any detection that is not an expected face is counted as spurious.
Speech: librosa.effects.split regions (top_db 30, 12 for the noisy meeting) compared with the
ground-truth speech intervals on a 10 ms grid (recall and precision of speech time).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore")

import av  # noqa: E402
import face_recognition as fr  # noqa: E402
import librosa  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_sample_data as msd  # noqa: E402

OUT = msd.OUT
TOP_DB_NOISY = 20
REF_PHOTOS = {"obama": ["obama.jpg", "obama2.jpg", "obama3.jpg"], "biden": ["biden.jpg"],
              "hopper": ["grace_hopper.jpg"], "astronaut": ["astronaut.png"]}


def reference_encodings(cache):
    with tempfile.TemporaryDirectory() as td:
        msd.fetch_packages(Path(td), cache)
        photos = msd.load_photos(Path(td))
    refs = {}
    for who, names in REF_PHOTOS.items():
        encs = []
        for n in names:
            img = np.array(Image.open(io.BytesIO(photos[n])).convert("RGB"))
            locs = fr.face_locations(img, 1)
            locs = [max(locs, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))]  # largest face
            encs += fr.face_encodings(img, locs)
        refs[who] = encs
    return refs


def identify(refs, enc):
    best, dist = None, 1e9
    for who, encs in refs.items():
        d = float(np.min(fr.face_distance(encs, enc)))
        if d < dist:
            best, dist = who, d
    return (best if dist <= 0.6 else None), dist


def detect(refs, img: np.ndarray):
    if img.shape[1] > 1280:
        f = 1280 / img.shape[1]
        img = np.array(Image.fromarray(img).resize((1280, round(img.shape[0] * f))))
    locs = fr.face_locations(img, 1)
    encs = fr.face_encodings(img, locs)
    return [(loc, *identify(refs, e)) for loc, e in zip(locs, encs)]


def check_faces(refs, name, rec, step):
    rows = []
    if rec["kind"] == "image":
        img = np.array(Image.open(OUT / "recordings" / name).convert("RGB"))
        dets = detect(refs, img)
        want = {a["who"] for a in rec["appearances"]}
        got = {w for _, w, _ in dets if w}
        spurious = [d for d in dets if d[1] not in want]
        rows.append((name, 1, 1, int(want <= got), len(spurious), sorted(got)))
        return rows
    apps = rec["appearances"]
    tiles = {a["box"][0]: a for a in rec.get("no_face_regions", [])}
    frames_checked = expected_frames = hit_frames = spurious = 0
    seen = set()
    with av.open(str(OUT / "recordings" / name)) as c:
        next_t = 0.0
        for frame in c.decode(video=0):
            t = float(frame.time)
            if t + 1e-6 < next_t:
                continue
            next_t += step
            frames_checked += 1
            want = {a["who"] for a in apps if a["start"] <= t < a["end"]}
            partial = {a["who"] for a in apps if a["start"] - 1.5 <= t < a["end"] + 1.5} - want
            dets = detect(refs, frame.to_ndarray(format="rgb24"))
            got = {w for _, w, _ in dets if w}
            seen |= got
            for (top, right, bottom, left), w, _ in dets:
                cx, cy = (left + right) / 2, (top + bottom) / 2
                in_off = any(b[0] <= cx < b[2] and b[1] <= cy < b[3]
                             for b in (r["box"] for r in tiles.values()))
                if in_off or (w not in want and w not in partial):
                    spurious += 1
            if want:
                expected_frames += 1
                hit_frames += int(want <= got)
    rows.append((name, frames_checked, expected_frames, hit_frames, spurious, sorted(seen)))
    return rows


def load_audio(path: Path):
    with av.open(str(path)) as c:
        res = av.AudioResampler(format="flt", layout="mono", rate=16000)
        chunks = []
        for f in c.decode(audio=0):
            for g in res.resample(f):
                chunks.append(g.to_ndarray()[0])
        for g in res.resample(None):
            chunks.append(g.to_ndarray()[0])
    return np.concatenate(chunks), 16000


def check_speech(name, rec):
    y, sr = load_audio(OUT / "recordings" / name) if not name.startswith("enrol/") else load_audio(OUT / name)
    top_db = TOP_DB_NOISY if rec.get("noise") else 30  # noisy recordings: threshold just above the noise
    iv = librosa.effects.split(y, top_db=top_db, frame_length=1024, hop_length=160)
    grid = np.arange(0, len(y) / sr, 0.01)

    def mask(ivs):
        m = np.zeros(grid.size, bool)
        for a, b in ivs:
            m |= (grid >= a) & (grid < b)
        return m

    merged = []  # pauses between words and sentences (< 0.5 s) belong to the utterance
    for a, b in iv / sr:
        if merged and a - merged[-1][1] < 0.5:
            merged[-1][1] = b
        else:
            merged.append([a, b])
    m_vad = mask(merged)
    m_gt = mask([(s["start"], s["end"]) for s in rec["speech"]])
    recall = float((m_gt & m_vad).sum() / max(1, m_gt.sum()))
    precision = float((m_gt & m_vad).sum() / max(1, m_vad.sum()))
    return name, len(rec["speech"]), len(merged), top_db, recall, precision


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", type=Path, default=None)
    ap.add_argument("--step", type=float, default=0.5)
    args = ap.parse_args()
    gt = yaml.safe_load((OUT / "ground_truth.yaml").read_text())
    refs = reference_encodings(args.cache)
    print("FACES (HOG upsample 1, identified against the source photos)")
    print(f"{'recording':18s} {'frames':>6s} {'expect':>6s} {'all found':>9s} {'spurious':>8s}  identities seen")
    ok = True
    for name, rec in gt["recordings"].items():
        if rec["kind"] == "audio":
            continue
        for n, fc, ef, hf, sp, seen in check_faces(refs, name, rec, args.step):
            print(f"{n:18s} {fc:6d} {ef:6d} {hf:9d} {sp:8d}  {', '.join(seen)}")
            ok &= hf == ef and sp == 0
    print("\nSPEECH (librosa.effects.split regions vs ground-truth speech, 10 ms grid)")
    print(f"{'recording':18s} {'gt segs':>7s} {'vad segs':>8s} {'top_db':>6s} {'recall':>7s} {'precision':>9s}")
    items = [(n, r) for n, r in gt["recordings"].items() if r["kind"] != "image"]
    items += [(e["voice"], e) for e in gt["enrolment"].values()]
    for name, rec in items:
        n, ng, nv, tdb, rc, pr = check_speech(name, rec)
        print(f"{n:18s} {ng:7d} {nv:8d} {tdb:6d} {rc:7.3f} {pr:9.3f}")
        ok &= rc > 0.9 and pr > 0.9
    print("\nOK" if ok else "\nPROBLEMS FOUND")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
