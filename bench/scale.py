"""Scale bench: cold scans with 1 and 2 workers, rescans, and the same scan on a Dask cluster.

    uv run python bench/scale.py                 # the full corpus: 100 recordings
    uv run python bench/scale.py --count 30      # the first 30 of the same corpus (quicker)

The corpus is generated from sample_data/ material with PyAV (stream copy, no re-encoding): video
recordings (the sample interviews, webinars, lobby and meeting-grid clips) and audio recordings
(phone call, voice memo, enrolment speech), each looped and cut to 20-120 s. Durations and sources
come from a fixed seed, so every run builds the same files; they are cached in
$TMPDIR/likeness-scale-corpus-v1 (about 2 MB per minute of video).

Every scan is the real command line (`python -m scanner scan ...`) in a fresh process, timed from
start to exit (imports, enrolment, hashing, analysis, people, policy, writing results.json):
1. cold, 1 worker, empty scan database
2. cold, 2 workers, empty scan database
3. rescan with nothing changed (the database of 2)
4. rescan after a consent change (one grant edited; enrolment media unchanged)
5. cold on a Dask LocalCluster (2 worker processes, 1 thread each, scheduler on loopback), empty
   database. The cluster is started before the timer, as a standing cluster would be; its workers
   load the analysis libraries on their first task, inside the timing (as local pool workers do).
6. one 12-minute video alone, with 1 and 2 workers (with 2, its faces are analysed in 5-minute
   windows on both workers; see scanner/pipeline/planning.py)
The findings of 5 are compared with those of 2 (by fingerprint), those of 6 with each other.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
VIDEO_SOURCES = ["interview.mp4", "lobby.mp4", "meeting_grid.mp4", "webinar.mp4"]
AUDIO_SOURCES = ["recordings/phone_call.wav", "recordings/voice_memo.m4a", "enrol/carol.wav", "enrol/dave.wav",
                 "enrol/erin.wav"]
CORPUS_VERSION = "v1"
SEED = 20261127
LAST_CPU_S = [0.0]  # CPU seconds of the last scan's process tree


def plan(count: int = 100) -> list[tuple[str, str, float]]:
    """(output name, source path relative to sample_data, duration s) for the corpus, 60% video."""
    rng = random.Random(SEED)
    items = []
    for i in range(100):
        video = rng.random() < 0.6
        duration = round(rng.uniform(20.0, 120.0), 1)
        if video:
            source = "recordings/" + rng.choice(VIDEO_SOURCES)
            name = f"rec{i:03d}.mp4"
        else:
            source = rng.choice(AUDIO_SOURCES)
            name = f"rec{i:03d}{Path(source).suffix}"
        items.append((name, source, duration))
    return items[:count]


def loop_copy(source: Path, target: Path, duration: float) -> None:
    """`source` repeated back to back and cut at `duration` seconds, packets copied (no re-encoding)."""
    tmp = target.with_suffix(".part" + target.suffix)
    length = 0.0  # the loop period: where the last packet of any stream ends
    with av.open(str(source)) as probe:
        for packet in probe.demux():
            if packet.pts is not None:
                length = max(length, float((packet.pts + (packet.duration or 0)) * packet.stream.time_base))
    assert length > 0, source
    last_dts: dict[int, int] = {}
    with av.open(str(tmp), "w", format=None) as out:
        streams = {}
        with av.open(str(source)) as inp:
            for s in inp.streams:
                if s.type in ("video", "audio"):
                    streams[s.index] = out.add_stream_from_template(s)
        for loop in range(math.ceil(duration / length)):
            with av.open(str(source)) as inp:
                for packet in inp.demux():
                    if packet.stream.index not in streams or packet.dts is None:
                        continue
                    tb = packet.stream.time_base
                    shift = int(round(loop * length / tb))
                    if float((packet.pts + shift) * tb) >= duration:
                        continue
                    packet.pts += shift
                    packet.dts += shift
                    index = packet.stream.index
                    if index in last_dts and packet.dts <= last_dts[index]:  # keep timestamps increasing
                        bump = last_dts[index] + 1 - packet.dts
                        packet.dts += bump
                        packet.pts += bump
                    last_dts[index] = packet.dts
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
    tmp.rename(target)


def build_corpus(count: int) -> Path:
    root = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / f"likeness-scale-corpus-{CORPUS_VERSION}"
    folder = root / f"recordings-{count}"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = plan(count)
    for name, source, duration in wanted:
        target = folder / name
        if not target.exists():
            loop_copy(SAMPLE / source, target, duration)
    for stale in set(p.name for p in folder.iterdir()) - {n for n, _, _ in wanted}:
        (folder / stale).unlink()
    return folder


def consent_copy(workdir: Path, changed: bool) -> Path:
    """The sample consent file (with its enrolment media); `changed` widens one grant's accepted risk."""
    target = workdir / ("consent-changed.yaml" if changed else "consent.yaml")
    if not (workdir / "enrol").exists():
        shutil.copytree(SAMPLE / "enrol", workdir / "enrol")
    data = yaml.safe_load((SAMPLE / "consent.yaml").read_text())
    if changed:
        for subject in data["subjects"]:
            if subject["id"] == "obama":
                subject["grants"][0]["max_risk"]["face"] = "critical"
    target.write_text(yaml.safe_dump(data, sort_keys=False))
    return target


def scan(corpus: Path, consent: Path, store: Path, out: Path, *extra: str) -> tuple[float, dict, str]:
    cmd = [sys.executable, "-m", "scanner", "scan", str(corpus), "--consent", str(consent), "--purpose",
           "ai-training", "--fail-on", "none", "--format", "json", "--store", str(store), "--out", str(out),
           "--quiet", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # The scan and every worker process it waited for (Dask workers are not its children).
    LAST_CPU_S[0] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"scan failed ({proc.returncode}):\n{proc.stderr}")
    return wall, json.loads((out / "results.json").read_text()), proc.stderr


def fingerprints(doc: dict) -> list[str]:
    return sorted(f["fingerprint"] for f in doc["findings"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100, help="recordings (the first N of the corpus)")
    parser.add_argument("--skip", default="", help="comma-separated steps to skip: w1,dask,long")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    t = time.perf_counter()
    corpus = build_corpus(args.count)
    files = sorted(corpus.iterdir())
    media_s = 0.0
    kinds = {"video": 0, "audio": 0}
    for f in files:
        with av.open(str(f)) as c:
            media_s += float(c.duration / av.time_base)
            kinds["video" if c.streams.video else "audio"] += 1
    print(f"corpus: {len(files)} recordings ({kinds['video']} video, {kinds['audio']} audio), "
          f"{media_s / 60:.1f} min of media, {sum(f.stat().st_size for f in files) / 1e6:.0f} MB "
          f"(ready in {time.perf_counter() - t:.1f} s) at {corpus}", flush=True)

    work = Path(tempfile.mkdtemp(prefix="likeness-scale-"))
    consent = consent_copy(work, changed=False)
    changed = consent_copy(work, changed=True)
    rows = []

    def row(label: str, wall: float, note: str = "", cpu: float | None = None) -> None:
        cpu = LAST_CPU_S[0] if cpu is None else cpu
        rows.append((label, wall, media_s / wall, cpu, note))
        print(f"{label}: {wall:.1f} s wall, {media_s / wall:.1f} media-s per wall-s {note}", flush=True)

    if "w1" not in skip:
        wall1, _, _ = scan(corpus, consent, work / "w1.db", work / "out-w1", "--workers", "1")
        row("cold, 1 worker", wall1)
    wall2, doc2, _ = scan(corpus, consent, work / "w2.db", work / "out-w2", "--workers", "2")
    speedup = f"({wall1 / wall2:.2f}x 1 worker)" if "w1" not in skip else ""
    row("cold, 2 workers", wall2, speedup)
    wall_r, doc_r, _ = scan(corpus, consent, work / "w2.db", work / "out-r", "--workers", "2")
    assert fingerprints(doc_r) == fingerprints(doc2)
    row("rescan, nothing changed", wall_r, f"({100 * wall_r / wall2:.1f}% of cold)")
    wall_c, doc_c, _ = scan(corpus, changed, work / "w2.db", work / "out-c", "--workers", "2")
    resolved = len(set(fingerprints(doc2)) - set(fingerprints(doc_c)))
    row("rescan, consent changed", wall_c, f"({100 * wall_c / wall2:.1f}% of cold; {resolved} finding(s) resolved)")

    if "dask" not in skip:
        from distributed import LocalCluster

        from scanner.pipeline.worker_setup import huge_pages_for_workers

        huge_pages_for_workers()  # what the README asks of Dask workers, as local workers get it
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster:
            wall_d, doc_d, _ = scan(corpus, consent, work / "dask.db", work / "out-d", "--scheduler",
                                    cluster.scheduler_address)
        same = fingerprints(doc_d) == fingerprints(doc2)
        row("cold, Dask LocalCluster (2 workers)", wall_d,
            f"({100 * (wall_d / wall2 - 1):+.1f}% vs local pool; findings {'identical' if same else 'DIFFER'})",
            cpu=0.0)  # the work ran in the cluster's processes, not in the scan's

    if "long" not in skip:
        # One long recording alone: split into 5-minute face windows over the workers, or not.
        long_dir = corpus.parent / "long"
        long_dir.mkdir(exist_ok=True)
        long_video = long_dir / "meeting-12min.mp4"
        if not long_video.exists():
            loop_copy(SAMPLE / "recordings" / "meeting_grid.mp4", long_video, 720.0)
        long_s = 720.0
        wall_l1, doc_l1, _ = scan(long_dir, consent, work / "l1.db", work / "out-l1", "--workers", "1")
        cpu_l1 = LAST_CPU_S[0]
        wall_l2, doc_l2, _ = scan(long_dir, consent, work / "l2.db", work / "out-l2", "--workers", "2")
        cpu_l2 = LAST_CPU_S[0]
        same = fingerprints(doc_l1) == fingerprints(doc_l2)
        if not same:
            for doc in (doc_l1, doc_l2):
                print([(f["rule_id"], f["person_id"], f["fingerprint"][:8]) for f in doc["findings"]])
        for label, wall, cpu, note in (
            ("one 12 min video, 1 worker", wall_l1, cpu_l1, ""),
            ("one 12 min video, 2 workers (split)", wall_l2, cpu_l2,
             f"{wall_l1 / wall_l2:.2f}x 1 worker; findings {'identical' if same else 'DIFFER'}"),
        ):
            rows.append((label, wall, long_s / wall, cpu, note))
            print(f"{label}: {wall:.1f} s wall {note}", flush=True)

    print()
    print(f"{len(files)} recordings, {media_s / 60:.1f} min of media, {os.cpu_count()} CPUs")
    print()
    print("| run | wall s | media-s per wall-s | CPU s | cores busy | note |")
    print("|---|---:|---:|---:|---:|---|")
    for label, wall, rate, cpu, note in rows:
        cpu_cell = f"{cpu:.0f} | {cpu / wall:.2f}" if cpu else "- | -"
        print(f"| {label} | {wall:.1f} | {rate:.1f} | {cpu_cell} | {note.strip('()')} |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
