"""Execution: the Dask cluster path gives the local results; a killed or interrupted scan resumes.

Small real inputs (three sample recordings: a video, a phone call, a photo) keep this module
around half a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scanner.consent import load_consent
from scanner.outputs.document import build_document
from scanner.scan import ScanOptions, ScanStats, run_scan
from scanner.store import Store
from tests.conftest import REPO

FILES = ("lobby.mp4", "phone_call.wav", "team_photo.jpg")


@pytest.fixture(scope="module")
def corpus(sample_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("execute") / "recordings"
    folder.mkdir()
    for name in FILES:
        shutil.copy(sample_data / "recordings" / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def consent(sample_data):
    return load_consent(sample_data / "consent.yaml")


def _options(**kw) -> ScanOptions:
    import datetime as dt

    from scanner.models import Level

    return ScanOptions(purposes=["ai-training"], fail_on=Level.NONE, as_of=dt.date(2026, 11, 1), **kw)


@pytest.fixture(scope="module")
def local_result(corpus, consent, tmp_path_factory):
    """The reference: an uninterrupted local scan (one process)."""
    with Store(tmp_path_factory.mktemp("ref") / "scan.db") as store:
        return run_scan([corpus], consent, _options(workers=1), store=store)


def comparable(result) -> dict:
    """The results document without what differs between runs by design (ids, times, how it ran)."""
    doc = build_document(result)
    doc.pop("scan")
    return doc


def test_dask_cluster_gives_the_local_results(corpus, consent, local_result):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        stats = ScanStats()
        result = run_scan([corpus], consent, _options(scheduler=address), stats=stats)
        with distributed.Client(address) as client:
            # The work really ran on the cluster's two worker processes, not in this one.
            pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and os.getpid() not in pids
    assert stats.analysed == len(FILES)
    assert result.findings and [f.fingerprint for f in result.findings] == [
        f.fingerprint for f in local_result.findings
    ]
    assert comparable(result) == comparable(local_result)


def _scan_command(corpus: Path, store: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "scanner", "scan", str(corpus),
        "--consent", str(REPO / "sample_data" / "consent.yaml"), "--purpose", "ai-training",
        "--as-of", "2026-11-01", "--fail-on", "none", "--store", str(store), "--out", str(out),
        "--format", "json",
    ]


def _start_and_stop_after_first_file(cmd: list[str], sig: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        if line.startswith("[1/"):
            break
    assert seen.rstrip().splitlines()[-1].startswith("[1/"), seen
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, workers included
    else:
        os.kill(proc.pid, sig)
    return proc, seen


def test_scan_killed_midway_resumes_without_redoing_finished_files(corpus, local_result, tmp_path):
    store_path = tmp_path / "scan.db"
    cmd = _scan_command(corpus, store_path, tmp_path / "out")
    proc, _ = _start_and_stop_after_first_file(cmd, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    with Store(store_path) as store:
        finished = store.analysis_count()
        (killed,) = store.scans()
        # The database is consistent: whole recordings only, and the killed scan is marked as such.
        assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert killed.status == "interrupted"
        rows = store.db.execute("SELECT COUNT(*) FROM scan_recordings WHERE scan_id=?", (killed.scan_id,))
        assert rows.fetchone()[0] == killed.analysed == finished
    assert 1 <= finished < len(FILES)

    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with Store(store_path) as store:
        latest = store.scans()[0]
    assert latest.status == "complete"
    assert latest.reused == finished  # finished recordings were not analysed again
    assert latest.analysed == len(FILES) - finished
    assert f"{finished} unchanged reused" in rerun.stderr

    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    reference = build_document(local_result)
    for key in ("recordings", "people", "findings", "summary"):
        assert doc[key] == json.loads(json.dumps(reference[key])), key


def test_ctrl_c_stops_cleanly_with_a_message(corpus, tmp_path):
    store_path = tmp_path / "scan.db"
    proc, _ = _start_and_stop_after_first_file(_scan_command(corpus, store_path, tmp_path / "out"), signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "interrupted after" in stderr and "Run the same command again to resume" in stderr
    with Store(store_path) as store:
        (scan,) = store.scans()
        assert scan.status == "interrupted"
        assert store.analysis_count() == scan.analysed >= 1
