"""How fast `likeness redact` writes copies, and whether any frame of them still shows a removed face.

    uv run python bench/redact.py --store SCAN.db [--scan latest] [--people unknown] [--every 1] [--out DIR]

Redacts the stored scan (no verification rescan: that is a scan, timed by the scan benches), then
runs dlib's HOG detector with one upsampling (more sensitive than the scan) on every `--every`-th
frame of every video copy and of its source. A face found in a copy counts as a leak when its
encoding is within 0.6 (the enrolment match tolerance) of the encodings the scan stored for a
removed person; a face of anyone else counts as kept. Prints one row per copy: media seconds,
redaction wall and CPU seconds, speed (media seconds per wall second), frames checked, removed
faces found before and after (leaks), other faces found before and after, and the copy's duration
difference (ms).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanner.faces import _face_api, encode_faces, face_distance, grey_levels  # noqa: E402
from scanner.media import probe  # noqa: E402
from scanner.models import Level, MediaKind  # noqa: E402
from scanner.redaction.plan import plan_redaction, select_people  # noqa: E402
from scanner.redaction.run import RedactSettings, redact_recording  # noqa: E402
from scanner.redaction.verify import _references  # noqa: E402
from scanner.store import Store  # noqa: E402


def cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def faces_by_frame(path: Path, every: int, removed: np.ndarray, kept: np.ndarray) -> tuple[int, int, int]:
    """(frames checked, faces nearer a removed person, faces nearer someone else) over every `every`-th frame."""
    api = _face_api()
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
    ap.add_argument("--every", type=int, default=1, help="check every N-th frame (default 1: all)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/likeness-bench-redact"))
    a = ap.parse_args()

    store = Store(a.store)
    scan = store.load_result(a.scan)
    selected = select_people(scan, a.people.split(",") if a.people else None, Level.HIGH)
    plan = plan_redaction(scan, selected, a.out)
    refs = _references(plan, store)
    removed = np.vstack([r.encodings for r in refs.values() if len(r.encodings)] or [np.zeros((0, 128))])
    others = [s for p in scan.people if p.person_id not in refs for s in p.faces]
    from scanner.redaction.verify import _stored_cluster

    by_path = {r.path: r for r in scan.recordings}
    kept = [e for s in others for e in [_stored_cluster(store, by_path[s.recording], s.cluster)] if e is not None]
    kept = np.vstack(kept) if kept else np.zeros((0, 128))
    print(f"removing {', '.join(p.person_id for p in selected)}; {len(removed)} stored encodings of them, "
          f"{len(kept)} of others")
    print(f"{'copy':28} {'media s':>7} {'wall s':>7} {'cpu s':>6} {'x real':>6} {'frames':>6} "
          f"{'removed before/after':>20} {'others before/after':>19} {'dur ms':>6}")
    for rec in plan.changed():
        wall, cpu = time.monotonic(), cpu_s()
        record = redact_recording(rec, RedactSettings())
        wall, cpu = time.monotonic() - wall, cpu_s() - cpu
        if record.error:
            print(f"{rec.path.name}: {record.error}")
            continue
        seconds = rec.recording.media.duration_s
        if rec.kind is not MediaKind.VIDEO:
            print(f"{rec.path.name:28} {seconds:7.1f} {wall:7.1f} {cpu:6.1f}")
            continue
        checked, removed_before, kept_before = faces_by_frame(rec.path, a.every, removed, kept)
        _, removed_after, kept_after = faces_by_frame(Path(record.output), a.every, removed, kept)
        delta_ms = (probe(Path(record.output)).duration_s - seconds) * 1000
        print(f"{rec.path.name:28} {seconds:7.1f} {wall:7.1f} {cpu:6.1f} {seconds / wall:6.2f} {checked:6d} "
              f"{removed_before:>9d} / {removed_after:<8d} {kept_before:>8d} / {kept_after:<8d} {delta_ms:6.1f}")


if __name__ == "__main__":
    main()
