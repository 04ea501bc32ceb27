"""Memory: a file's analysis stays under the per-worker ceiling or is reported with the reason.

Real sample recordings; the ceilings are set below what the analysis needs so that the guard
must act.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from scanner.analysis.recording import AnalysisSettings, analyze_recording
from scanner.media.frames import iter_frames
from scanner.media.limits import MEMORY_CEILING_REASON, memory_limit, resident_bytes
from scanner.media.probe import probe
from scanner.models import Level, MediaError, RecordingStatus
from scanner.pipeline.scan import ScanOptions, ScanStats, run_scan
from scanner.store.database import Store
from tests.helpers import REPO


def test_the_memory_ceiling_stops_decoding_with_the_reason(sample_data):
    path = sample_data / "recordings" / "lobby.mp4"
    info = probe(path)
    with memory_limit(resident_bytes() // 2):
        with pytest.raises(MediaError, match=MEMORY_CEILING_REASON):
            for _frame in iter_frames(path, info, 1.0, 640):
                pass
    # Outside the block the same file decodes.
    assert sum(1 for _ in iter_frames(path, info, 1.0, 640)) >= 10


def test_a_file_past_the_ceiling_is_unreadable_with_the_reason(sample_data):
    path = sample_data / "recordings" / "phone_call.wav"
    with memory_limit(resident_bytes() // 2):
        analysis = analyze_recording(path, AnalysisSettings())
    assert analysis.status is RecordingStatus.UNREADABLE
    assert analysis.error.startswith(MEMORY_CEILING_REASON)
    assert "GB allowed per worker process (--max-memory)" in analysis.error


def test_an_allocation_past_the_address_space_cap_raises_instead_of_being_killed():
    """In a process of its own: the cap must not outlive the test."""
    script = textwrap.dedent("""
        import numpy as np
        from scanner.media.limits import resident_bytes
        from scanner.pipeline.resources import address_space_cap

        lift = address_space_cap(resident_bytes() + (200 << 20), slack_bytes=0)
        assert lift is not None
        try:
            np.ones(4 << 30, dtype=np.uint8)
        except MemoryError:
            print("refused")
        lift()
        block = np.empty(4 << 30, dtype=np.uint8)  # reserved, not touched: fine without the cap
        print("lifted", block.size)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "lifted", str(4 << 30)]


def test_a_ceiling_result_is_analysed_again_when_memory_allows(sample_data, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    shutil.copy(sample_data / "recordings" / "phone_call.wav", folder / "phone_call.wav")
    options = dict(purposes=["ai-training"], fail_on=Level.NONE, as_of=dt.date(2026, 11, 1), workers=1)
    with Store(tmp_path / "scan.db") as store:
        starved = run_scan([folder], None, ScanOptions(**options, max_memory_bytes=1), store=store)
        assert [r.status for r in starved.recordings] == [RecordingStatus.UNREADABLE]
        assert any(f.rule_id == "LK006" for f in starved.findings)
        stats = ScanStats()
        fed = run_scan([folder], None, ScanOptions(**options), store=store, stats=stats)
    assert [r.status for r in fed.recordings] == [RecordingStatus.OK]
    assert stats.reused == 0 and stats.analysed == 1


def test_default_ceiling_divides_half_the_memory_between_workers(tmp_path):
    from scanner.pipeline.resources import default_memory_ceiling

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25165824 kB\nMemFree:  1 kB\n")  # 24 GiB
    none = tmp_path / "absent"
    assert default_memory_ceiling(2, meminfo=meminfo, cgroup=none) == 6 << 30
    assert default_memory_ceiling(8, meminfo=meminfo, cgroup=none) == 3 << 29  # the 1.5 GiB floor
    cgroup = tmp_path / "memory.max"
    cgroup.write_text(f"{8 << 30}\n")
    assert default_memory_ceiling(1, meminfo=meminfo, cgroup=cgroup) == 4 << 30
    assert default_memory_ceiling(1, meminfo=none, cgroup=cgroup) is None


def _peak_of_workers(cmd: list[str], timeout: float) -> tuple[subprocess.CompletedProcess, float]:
    """Run a command; return its outcome and the largest peak resident size (MB) of its child processes."""
    import time

    import psutil

    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root, peak, deadline = psutil.Process(proc.pid), 0.0, time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            children = root.children(recursive=True)
        except psutil.NoSuchProcess:
            break
        for child in children:
            try:
                status = open(f"/proc/{child.pid}/status").read()
            except OSError:
                continue
            hwm = [line for line in status.splitlines() if line.startswith("VmHWM:")]
            if hwm:
                peak = max(peak, int(hwm[0].split()[1]) / 1024.0)
        time.sleep(0.1)
    out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), peak


@pytest.mark.slow
def test_a_long_gallery_whose_layout_keeps_changing_stays_in_bounded_memory(sample_data, tmp_path):
    """Four minutes, six real faces in eight seats that rotate every 3 s (every face track ends and a
    new one starts: 640 tracks), with speech throughout. Memory used to grow with the number of tracks
    (every candidate crop held, then encoded in one batch: 3 GB and more at this length); a worker
    now stays near what a short recording needs."""
    import librosa

    from tests.media_factory import face_crops, make_reshuffled_gallery

    speech = np.concatenate([librosa.load(sample_data / "enrol" / f"{who}.wav", sr=16000)[0]
                             for who in ("carol", "dave", "erin", "obama")])
    video = make_reshuffled_gallery(tmp_path / "gallery.mp4", face_crops(sample_data, 120), 240.0, speech)
    out = tmp_path / "out"
    done, peak_mb = _peak_of_workers(
        [sys.executable, "-m", "scanner", "scan", str(video), "--workers", "1", "--no-cache", "--out", str(out),
         "--format", "json", "--store", str(tmp_path / "scan.db"), "--fail-on", "none"], timeout=600)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["recordings"][0]["status"] == "ok"
    assert sum(1 for p in doc["people"] if p.get("face")) >= 4  # obama, biden, hopper, astronaut
    assert peak_mb < 1000, f"worker peak {peak_mb:.0f} MB"
