"""How fast `likeness redact` writes copies, and whether any frame of them still shows a removed face.

    uv run python bench/redact.py --store SCAN.db [--scan latest] [--people unknown] [--every 10] [--out DIR]
        [--verify]

Runs the whole `likeness redact` command as a user does (a separate process; `--no-verify` unless
`--verify`, since the verification rescan is a scan, timed by the scan benches) and times it: wall
seconds and CPU seconds of the command's process and its children. Then runs dlib's HOG detector
with one upsampling (more sensitive than the scan) on every `--every`-th frame of every video copy
and of its source. A face found counts as a removed person's (a leak, in a copy) when its encoding
is within 0.6 (the enrolment match tolerance) of the encodings the scan stored for a removed person
and nearer to them than to anyone else's; any other face counts as kept. Prints one row per copy:
media seconds, frames checked, removed faces found before and after (leaks), other faces found
before and after, the copy's duration difference (ms, container and audio stream); then the
command's wall and CPU seconds and its speed (media seconds per wall second).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scanner.analysis.faces.dlib_models import face_api  # noqa: E402
from scanner.analysis.faces.quality import grey_levels  # noqa: E402
from scanner.analysis.faces.recognition import encode_faces, face_distance  # noqa: E402
from scanner.media.probe import probe  # noqa: E402
from scanner.models import Level, MediaKind  # noqa: E402
from scanner.redaction.plan import plan_redaction, select_people  # noqa: E402
from scanner.redaction.verify import removed_people_references, stored_cluster_encodings  # noqa: E402
from scanner.store.database import Store  # noqa: E402


def children_cpu_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def audio_seconds(path: Path) -> float | None:
    with av.open(str(path)) as container:
        for s in container.streams.audio:
            if s.duration is not None:
                return float(s.duration * s.time_base)
    return None


def faces_by_frame(path: Path, every: int, removed: np.ndarray, kept: np.ndarray) -> tuple[int, int, int]:
    """(frames checked, faces nearer a removed person, faces nearer someone else) over every `every`-th frame."""
    api = face_api()
    checked = removed_n = kept_n = 0
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every:
                continue
            checked += 1
            rgb = frame.to_ndarray(format="rgb24")
            boxes = api.face_locations(grey_levels(rgb), 1)
            if not boxes:
                continue
            for enc in encode_faces([(rgb, b) for b in boxes]):
                d_removed = face_distance(removed, enc).min() if len(removed) else 9.0
                d_kept = face_distance(kept, enc).min() if len(kept) else 9.0
                if d_removed < 0.6 and d_removed <= d_kept:
                    removed_n += 1
                else:
                    kept_n += 1
    return checked, removed_n, kept_n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--scan", default="latest")
    ap.add_argument("--people", default=None, help="comma-separated (default: findings at or above high)")
    ap.add_argument("--every", type=int, default=10, help="check every N-th frame (default 10)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/likeness-bench-redact"))
    ap.add_argument("--verify", action="store_true", help="include the verification rescan in the timing")
    a = ap.parse_args()

    store = Store(a.store)
    scan = store.load_result(a.scan)
    selected = select_people(scan, a.people.split(",") if a.people else None, Level.HIGH)
    plan = plan_redaction(scan, selected, a.out)
    refs = removed_people_references(plan, store)
    removed = np.vstack([r.encodings for r in refs.values() if len(r.encodings)] or [np.zeros((0, 128))])
    others = [s for p in scan.people if p.person_id not in refs for s in p.faces]
    by_path = {r.path: r for r in scan.recordings}
    kept = [e for s in others
            for e in [stored_cluster_encodings(store, by_path[s.recording], s.cluster)] if e is not None]
    kept = np.vstack(kept) if kept else np.zeros((0, 128))
    print(f"removing {', '.join(p.person_id for p in selected)}; {len(removed)} stored encodings of them, "
          f"{len(kept)} of others")

    shutil.rmtree(a.out, ignore_errors=True)
    command = [sys.executable, "-m", "scanner", "redact", a.scan, "--store", str(a.store), "--out", str(a.out)]
    command += ["--people", a.people] if a.people else []
    command += [] if a.verify else ["--no-verify"]
    wall, cpu = time.monotonic(), children_cpu_s()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    wall, cpu = time.monotonic() - wall, children_cpu_s() - cpu
    if done.returncode not in (0, 1):
        raise SystemExit(f"likeness redact exited {done.returncode}:\n{done.stdout}{done.stderr}")
    outputs = {Path(o["source"]): o for o in json.loads((a.out / "redaction.json").read_text())["outputs"]}

    print(f"{'copy':28} {'media s':>7} {'frames':>6} {'removed before/after':>20} {'others before/after':>19} "
          f"{'dur ms':>6} {'audio ms':>8}")
    media_s = 0.0
    for rec in plan.changed():
        entry = outputs.get(Path(rec.path))
        if entry is None or entry.get("error"):
            print(f"{rec.path.name}: {entry and entry.get('error') or 'no copy'}")
            continue
        seconds = rec.recording.media.duration_s
        media_s += seconds
        if rec.kind is not MediaKind.VIDEO:
            print(f"{rec.path.name:28} {seconds:7.1f}")
            continue
        output = Path(entry["output"])
        checked, removed_before, kept_before = faces_by_frame(rec.path, a.every, removed, kept)
        _, removed_after, kept_after = faces_by_frame(output, a.every, removed, kept)
        delta_ms = (probe(output).duration_s - seconds) * 1000
        src_audio, out_audio = audio_seconds(rec.path), audio_seconds(output)
        audio_ms = f"{(out_audio - src_audio) * 1000:8.1f}" if src_audio is not None and out_audio is not None else ""
        print(f"{rec.path.name:28} {seconds:7.1f} {checked:6d} {removed_before:>9d} / {removed_after:<8d} "
              f"{kept_before:>8d} / {kept_after:<8d} {delta_ms:6.1f} {audio_ms}")
    verdict = "" if not a.verify else f", exit {done.returncode}"
    print(f"whole command{' with verification' if a.verify else ' (--no-verify)'}: {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU, {media_s / wall:.2f}x real time{verdict}")


if __name__ == "__main__":
    main()
