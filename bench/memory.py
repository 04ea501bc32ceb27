"""Memory bench: peak memory of every process of a whole `likeness scan` on long gallery meetings.

Run from the repository root (one command; prints the table that bench/README.md shows):

    uv run python bench/memory.py [--minutes 12 60] [--talking-head-minutes 60] [--workers 2] [--work DIR]

For each case it generates the recording (`bench/gallery.py`: a 1280x720 30 fps gallery meeting with
nine real faces on screen throughout and four speakers; a 1920x1080 single talking head), then runs
``likeness scan FILE --no-cache`` as its own process, as a user would, and samples every process of
the scan's tree every 0.1 s. A process's peak is its kernel high-water mark (VmHWM in
/proc/PID/status, read until it exits), so short peaks between samples are not missed. Printed per
case: wall time, CPU time of the tree, the parent's peak, each worker's peak, how many people
and findings the scan reported.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from gallery import build_gallery  # noqa: E402


def hwm_mb(pid: int) -> float | None:
    """Peak resident memory (MB, VmHWM) of process `pid`; None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def run_scan(path: Path, out: Path, workers: int | None, extra: list[str] = ()) -> dict:
    """Run `likeness scan` on one file and return wall, CPU, per-process peaks and the results."""
    cmd = [str(REPO / ".venv" / "bin" / "likeness"), "scan", str(path), "--no-cache", "--out", str(out),
           "--store", str(out / "scan.db"), "--fail-on", "none", *extra]
    if workers:
        cmd += ["--workers", str(workers)]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    root = psutil.Process(proc.pid)
    peaks: dict[int, float] = {}
    cpu: dict[int, float] = {}
    names: dict[int, str] = {}
    while proc.poll() is None:
        try:
            tree = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for p in tree:
            hwm = hwm_mb(p.pid)
            if hwm is not None:
                peaks[p.pid] = max(peaks.get(p.pid, 0.0), hwm)
            try:
                t = p.cpu_times()
                cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                names.setdefault(p.pid, "parent" if p.pid == proc.pid else "worker")
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.monotonic() - start
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else {}
    workers_peaks = sorted((peaks[p] for p in peaks if names.get(p) == "worker"), reverse=True)
    return {
        "exit": proc.returncode,
        "wall_s": wall,
        "cpu_s": sum(cpu.values()),
        "parent_mb": peaks.get(proc.pid, 0.0),
        "worker_mb": workers_peaks,
        "people": len(results.get("people", [])),
        "findings": len(results.get("findings", [])),
        "status": [r.get("status") for r in results.get("recordings", [])],
        "worker_deaths": stderr.decode(errors="replace").count("a worker process died"),
        "stderr": stderr.decode(errors="replace")[-2000:],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, nargs="*", default=[12.0, 60.0], help="gallery meeting lengths")
    ap.add_argument("--talking-head-minutes", type=float, default=60.0, help="0 leaves the 1080p case out")
    ap.add_argument("--workers", type=int, nargs="*", default=[2], help="worker counts to run each case with")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "likeness-bench-gallery")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "likeness-bench-packages")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    a = ap.parse_args()

    cases = [(f"{m:g} min gallery, 720p, 9 faces", build_gallery(a.work, m, cache=a.cache)[0]) for m in a.minutes]
    if a.talking_head_minutes:
        cases.append((f"{a.talking_head_minutes:g} min talking head, 1080p",
                      build_gallery(a.work, a.talking_head_minutes, 1920, 1080, people=1, cache=a.cache)[0]))
    rows = []
    print("| recording | workers | wall | CPU | parent peak | worker peaks | people | findings | status | deaths |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, path in cases:
        for workers in a.workers:
            with tempfile.TemporaryDirectory(prefix="likeness-memory-") as td:
                r = run_scan(path, Path(td), workers)
            rows.append({"case": label, "workers": workers, **r})
            peaks = ", ".join(f"{mb / 1024:.2f}" for mb in r["worker_mb"]) or "-"
            print(f"| {label} | {workers} | {r['wall_s']:.0f} s | {r['cpu_s']:.0f} s | {r['parent_mb'] / 1024:.2f} GB "
                  f"| {peaks} GB | {r['people']} | {r['findings']} | {','.join(map(str, r['status']))} "
                  f"| {r['worker_deaths']} |", flush=True)
            if r["exit"] not in (0, 1):
                print(r["stderr"], file=sys.stderr)
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
