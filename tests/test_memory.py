"""Memory: a file's analysis stays under the per-worker ceiling or is reported with the reason.

Real sample recordings; the ceilings are set below what the analysis needs so that the guard
must act.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import textwrap

import pytest

from scanner import media
from scanner.analyze import AnalysisSettings, analyze_recording
from scanner.models import Level, MediaError, RecordingStatus
from scanner.scan import ScanOptions, ScanStats, run_scan
from scanner.store import Store
from tests.conftest import REPO


def test_the_memory_ceiling_stops_decoding_with_the_reason(sample_data):
    path = sample_data / "recordings" / "lobby.mp4"
    info = media.probe(path)
    with media.memory_limit(media.resident_bytes() // 2):
        with pytest.raises(MediaError, match=media.MEMORY_CEILING_REASON):
            for _frame in media.iter_frames(path, info, 1.0, 640):
                pass
    # Outside the block the same file decodes.
    assert sum(1 for _ in media.iter_frames(path, info, 1.0, 640)) >= 10


def test_a_file_past_the_ceiling_is_unreadable_with_the_reason(sample_data):
    path = sample_data / "recordings" / "phone_call.wav"
    with media.memory_limit(media.resident_bytes() // 2):
        analysis = analyze_recording(path, AnalysisSettings())
    assert analysis.status is RecordingStatus.UNREADABLE
    assert analysis.error.startswith(media.MEMORY_CEILING_REASON)
    assert "GB allowed per worker process (--max-memory)" in analysis.error


def test_an_allocation_past_the_address_space_cap_raises_instead_of_being_killed():
    """In a process of its own: the cap must not outlive the test."""
    script = textwrap.dedent("""
        import numpy as np
        from scanner import media
        from scanner.execute import address_space_cap

        lift = address_space_cap(media.resident_bytes() + (200 << 20), slack_bytes=0)
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
    from scanner.execute import default_memory_ceiling

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25165824 kB\nMemFree:  1 kB\n")  # 24 GiB
    none = tmp_path / "absent"
    assert default_memory_ceiling(2, meminfo=meminfo, cgroup=none) == 6 << 30
    assert default_memory_ceiling(8, meminfo=meminfo, cgroup=none) == 3 << 29  # the 1.5 GiB floor
    cgroup = tmp_path / "memory.max"
    cgroup.write_text(f"{8 << 30}\n")
    assert default_memory_ceiling(1, meminfo=meminfo, cgroup=cgroup) == 4 << 30
    assert default_memory_ceiling(1, meminfo=none, cgroup=cgroup) is None
