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

from scanner.outputs.document import build_document
from scanner.pipeline.planning import Splitting
from scanner.pipeline.scan import ScanOptions, ScanStats, run_scan
from scanner.pipeline.tasks import on_dask_worker
from scanner.policy.consent.records import load_consent
from scanner.store.database import Store
from tests.helpers import REPO

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


@pytest.mark.slow
def test_dask_cluster_gives_the_local_results(corpus, consent, local_result):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        with distributed.Client(address) as client:
            # The nanny's allocator setting makes every freed frame fault in afresh; analysis tasks undo it
            # (for good: the setting is per process, so this runs before any scan).
            nanny_faults = client.submit(frame_buffer_faults, pure=False).result()
            task_faults = client.submit(on_dask_worker, frame_buffer_faults, pure=False).result()
        stats = ScanStats()
        result = run_scan([corpus], consent, _options(scheduler=address), stats=stats)
        # the same with the 15 s video split into three face windows and a voice task
        split = run_scan([corpus], consent, _options(scheduler=address, splitting=Splitting(5.0, min_bytes=0)))
        with distributed.Client(address) as client:
            # The work really ran on the cluster's two worker processes, not in this one.
            pids = set(client.run(os.getpid).values())
            # and the scan had each worker load the models on its main thread (dask_worker.ModelLoader)
            loaders = client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert len(pids) == 2 and os.getpid() not in pids
    assert all("likeness-models" in names for names in loaders.values()) and len(loaders) == 2, loaders
    assert nanny_faults > 50 * FRAME_PAGES > 10 * task_faults, (nanny_faults, task_faults)
    assert stats.analysed == len(FILES)
    assert result.findings and [f.fingerprint for f in result.findings] == [
        f.fingerprint for f in local_result.findings
    ]
    assert comparable(result) == comparable(local_result)
    # Each face window keeps its own best encodings, so match distances may move in the second
    # decimal; who was found where, and every finding, stay the same.
    assert [f.fingerprint for f in split.findings] == [f.fingerprint for f in local_result.findings]
    assert [(p.person_id, p.subject_id, len(p.faces), len(p.voices)) for p in split.people] == [
        (p.person_id, p.subject_id, len(p.faces), len(p.voices)) for p in local_result.people]


def test_dask_workers_without_the_package_stop_the_scan_with_a_clear_message(monkeypatch):
    """Workers that cannot load the scan's worker plugin (the package is missing there) could run
    no task either: the scan stops at once and says so, instead of failing every file."""
    distributed = pytest.importorskip("distributed")
    from scanner.pipeline.dask_worker import ModelLoader
    from scanner.pipeline.execute import run_dask

    def missing(self, worker):
        raise ModuleNotFoundError("No module named 'scanner'")

    monkeypatch.setattr(ModelLoader, "setup", missing)
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with pytest.raises(RuntimeError, match="cannot run likeness .*No module named 'scanner'.*every worker needs"):
            next(run_dask([], None, cluster.scheduler_address))


FRAME_PAGES = 720 * 1280 * 3 // 4096


def frame_buffer_faults(frames: int = 100) -> int:
    """Page faults while allocating and freeing `frames` 720p frame buffers in this process."""
    import resource

    import numpy as np

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(frames):
        frame = np.ones((720, 1280, 3), np.uint8)
        del frame
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator switches")
def test_steady_allocator_reuses_freed_frames_under_dasks_trim_setting():
    script = (
        "import sys; from scanner.pipeline.worker_setup import steady_allocator\n"
        "from tests.test_execute import frame_buffer_faults\n"
        "steady = sys.argv[1] == 'steady' and steady_allocator()\n"
        "print(frame_buffer_faults(100))"
    )
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}  # what Dask's nanny sets for its workers
    faults = {
        mode: int(subprocess.run([sys.executable, "-c", script, mode], cwd=REPO, env=env, check=True,
                                 capture_output=True, text=True).stdout)
        for mode in ("as-set", "steady")
    }
    assert faults["as-set"] > 50 * FRAME_PAGES  # every buffer mapped and faulted in again
    assert faults["steady"] < 5 * FRAME_PAGES  # one buffer faulted in, then reused
    assert faults["as-set"] > 10 * faults["steady"]


def _scan_command(corpus: Path, store: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "scanner", "scan", str(corpus),
        "--consent", str(REPO / "sample_data" / "consent.yaml"), "--purpose", "ai-training",
        "--as-of", "2026-11-01", "--fail-on", "none", "--store", str(store), "--out", str(out),
        "--format", "json",
    ]


def _interruptible() -> None:
    # A command started in the background by a non-interactive shell inherits SIGINT ignored, and
    # Python then installs no Ctrl-C handler: give the scan the disposition a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_and_stop_after_first_file(cmd: list[str], sig: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_interruptible)
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


@pytest.mark.slow
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
        # the file it died analysing (in its own process: one worker), if the kill did not fall
        # between two files, is handed to the next run
        suspects = store.crashed_on()
        finished_digests = {r[0] for r in store.db.execute("SELECT sha256 FROM analyses")}
        assert len(suspects) <= 1 and not suspects & finished_digests
    assert 1 <= finished < len(FILES)

    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with Store(store_path) as store:
        latest = store.scans()[0]
    assert latest.status == "complete"
    assert latest.reused == finished  # finished recordings were not analysed again
    assert latest.analysed == len(FILES) - finished
    assert f"{finished} unchanged reused" in rerun.stderr
    with Store(store_path) as store:
        assert store.crashed_on() == set()  # the rerun analysed it (alone) to the end

    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    reference = build_document(local_result)
    for key in ("recordings", "people", "findings", "summary"):
        assert doc[key] == json.loads(json.dumps(reference[key])), key


@pytest.mark.slow
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


@pytest.mark.slow
@pytest.mark.parametrize("long_video", [True, False], ids=["long-video-windows", "spare-worker-windows"])
def test_a_video_split_over_workers_gives_the_whole_file_analysis(sample_data, long_video):
    from scanner.analysis.recording import AnalysisSettings, analyze_recording
    from scanner.media.files import sha256_file
    from scanner.pipeline.execute import run_local_jobs
    from scanner.pipeline.planning import Job, Splitting, plan_jobs

    video = sample_data / "recordings" / "meeting_grid.mp4"  # 30 s, three faces, three voices
    job = Job(video, sha256_file(video))
    if long_video:
        splitting, windows = Splitting(window_s=10.0, min_bytes=0), 3
    else:  # a short video alone in the scan, two workers: one window each
        splitting, windows = Splitting(spare_window_s=12.0), 2
    _, (split,) = plan_jobs([job], AnalysisSettings(), splitting, workers=2)
    assert len(split.windows) == windows and split.windows[0][0] == 0.0 and split.windows[-1][1] == float("inf")

    whole = analyze_recording(video, AnalysisSettings(), job.sha256)
    (parted,) = list(run_local_jobs([job], AnalysisSettings(), workers=2, splitting=splitting))
    assert parted.status is whole.status and parted.path == video and parted.sha256 == whole.sha256

    def faces(analysis):
        return [(len(c.detections), [(r.start, r.end) for r in c.time_ranges]) for c in analysis.faces.clusters]

    assert len(whole.faces.clusters) == 3 and faces(parted) == faces(whole)
    assert parted.faces.frames_sampled == whole.faces.frames_sampled
    assert [[(t.start, t.end) for t in s.turns] for s in parted.voices.speakers] == [
        [(t.start, t.end) for t in s.turns] for s in whole.voices.speakers]
    assert parted.links == whole.links


def test_a_split_video_whose_data_ends_early_keeps_what_its_first_windows_found(tmp_path):
    """An interrupted download of a web-optimised MP4 (index in front, 4 s declared, data for about 1.5 s):
    the windows past the end decode nothing, and the file is analysed (and accounted: partial, the
    same stretch missing) as it would be whole."""
    from scanner.analysis.recording import AnalysisSettings, analyze_recording
    from scanner.media.files import sha256_file
    from scanner.models import RecordingStatus
    from scanner.pipeline.execute import run_local_jobs
    from scanner.pipeline.planning import Job, Splitting, plan_jobs
    from tests.media_factory import make_video

    full = make_video(tmp_path / "full.mp4", frames=40, fps=10, size=(320, 240), faststart=True)
    cut = tmp_path / "interrupted.mp4"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.4)])
    job = Job(cut, sha256_file(cut))
    splitting = Splitting(spare_window_s=1.0)
    _, (split,) = plan_jobs([job], AnalysisSettings(), splitting, workers=2)
    assert len(split.windows) == 2

    whole = analyze_recording(cut, AnalysisSettings(), job.sha256)
    (parted,) = list(run_local_jobs([job], AnalysisSettings(), workers=2, splitting=splitting))
    assert whole.status is RecordingStatus.PARTIAL and 0 < whole.faces.frames_sampled < 4
    assert parted.status is RecordingStatus.PARTIAL, parted.error
    assert parted.faces.frames_sampled == whole.faces.frames_sampled
    (tail,) = whole.coverage.missing
    assert 1.0 < tail.start < 2.0 and tail.end == 4.0
    assert [(round(r.start, 1), r.end) for r in parted.coverage.missing] == [(round(tail.start, 1), 4.0)]


def test_the_plan_puts_large_files_first_and_splits_only_long_videos(sample_data):
    from scanner.analysis.recording import AnalysisSettings
    from scanner.media.files import sha256_file
    from scanner.pipeline.planning import Job, Splitting, plan_jobs

    names = ["phone_call.wav", "meeting_grid.mp4", "lobby.mp4", "team_photo.jpg"]
    jobs = [Job(sample_data / "recordings" / n, sha256_file(sample_data / "recordings" / n)) for n in names]
    sizes = {j.path.name: j.path.stat().st_size for j in jobs}
    # lobby (15 s) is shorter than two 10 s windows; audio and photos are never split
    whole, splits = plan_jobs(jobs, AnalysisSettings(), Splitting(window_s=10.0, min_bytes=0))
    assert [s.job.path.name for s in splits] == ["meeting_grid.mp4"]
    assert [j.path.name for j in whole] == sorted(set(names) - {"meeting_grid.mp4"}, key=sizes.get, reverse=True)
    # files under min_bytes are not even looked at
    whole, splits = plan_jobs(jobs, AnalysisSettings(), Splitting(window_s=10.0))
    assert splits == [] and len(whole) == 4
    # window_s 0 never splits
    assert plan_jobs(jobs, AnalysisSettings(), Splitting(window_s=0, min_bytes=0))[1] == []


def test_short_videos_are_split_only_for_workers_that_would_otherwise_wait(sample_data):
    from scanner.analysis.recording import AnalysisSettings
    from scanner.media.files import sha256_file
    from scanner.pipeline.planning import Job, Splitting, plan_jobs

    def job(name):
        return Job(sample_data / "recordings" / name, sha256_file(sample_data / "recordings" / name))

    grid, lobby, call = job("meeting_grid.mp4"), job("lobby.mp4"), job("phone_call.wav")  # 30 s, 15 s, audio
    splitting = Splitting(spare_window_s=10.0)

    def windows(jobs, workers):
        return {s.job.path.name: len(s.windows) for s in plan_jobs(jobs, AnalysisSettings(), splitting, workers)[1]}

    assert windows([grid], 1) == {}  # no spare worker
    assert windows([grid], 2) == {"meeting_grid.mp4": 2}
    assert windows([grid], 8) == {"meeting_grid.mp4": 3}  # windows of 10 s or more
    assert windows([grid, lobby], 2) == {}  # as many recordings as workers
    assert windows([grid, call], 4) == {"meeting_grid.mp4": 2}  # audio is never split
    assert windows([lobby], 2) == {}  # 15 s: shorter than two windows
    assert plan_jobs([grid], AnalysisSettings(), Splitting(spare_window_s=0), 2)[1] == []  # 0 never splits


def _kill_workers(stop, delay: float, once: bool, killed: list) -> None:
    """SIGKILL this process's worker processes (as the out-of-memory killer would), after `delay`."""
    import psutil

    time.sleep(delay)
    me = psutil.Process()
    while not stop.is_set():
        workers = []
        for process in me.children(recursive=True):
            try:
                if "spawn_main" in " ".join(process.cmdline()):
                    workers.append(process)
            except psutil.Error:  # gone meanwhile
                pass
        for process in workers[:1] if once else workers:
            try:
                process.kill()
                killed.append(process.pid)
            except psutil.Error:
                pass
        if once and workers:
            return
        time.sleep(0.05)


def _analyse_while_killing(sample_data, names: tuple[str, ...], delay: float, once: bool):
    """Analyse `names` on 2 workers while a thread SIGKILLs worker processes; (results, pids killed)."""
    import threading

    from scanner.analysis.recording import AnalysisSettings
    from scanner.pipeline.execute import run_local_jobs
    from scanner.pipeline.planning import Job

    jobs = [Job(sample_data / "recordings" / n, None) for n in names]
    stop = threading.Event()
    killed = []
    killer = threading.Thread(target=_kill_workers, args=(stop, delay, once, killed), daemon=True)
    killer.start()
    try:
        results = list(run_local_jobs(jobs, AnalysisSettings(), workers=2))
    finally:
        stop.set()
        killer.join()  # no kill may land on a later test's workers
    return results, killed


@pytest.mark.slow
def test_a_worker_killed_mid_file_is_retried_and_the_scan_carries_on(sample_data):
    from scanner.models import RecordingStatus

    results, killed = _analyse_while_killing(sample_data, ("interview.mp4", "webinar.mp4"), delay=3.0, once=True)
    assert len(killed) == 1  # one worker really died mid-way
    assert sorted(r.path.name for r in results) == ["interview.mp4", "webinar.mp4"]
    assert all(r.status is RecordingStatus.OK and r.faces.clusters for r in results)


def test_a_file_that_killed_an_earlier_scan_is_analysed_alone_and_unreadable_if_it_kills_again(sample_data):
    """With one worker, files are analysed in the scanning process; a suspect one is not."""
    import threading

    from scanner.analysis.recording import AnalysisSettings
    from scanner.media.files import sha256_file
    from scanner.models import RecordingStatus
    from scanner.pipeline.execute import run_local_jobs
    from scanner.pipeline.planning import Job

    lobby, call = (sample_data / "recordings" / n for n in ("lobby.mp4", "phone_call.wav"))
    jobs = [Job(lobby, sha256_file(lobby)), Job(call, sha256_file(call))]
    started = []
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_workers, args=(stop, 0.0, False, killed), daemon=True)
    killer.start()
    try:
        results = list(run_local_jobs(jobs, AnalysisSettings(), workers=1, isolate=frozenset({jobs[0].sha256}),
                                      starting=started.append))
    finally:
        stop.set()
        killer.join()  # no kill may land on a later test's workers
    assert len(killed) >= 1 and os.getpid() not in killed  # the suspect's own process, never this one
    assert [r.path for r in results] == [lobby, call]
    assert results[0].status is RecordingStatus.UNREADABLE
    assert "died twice (in an earlier scan of this database and alone)" in results[0].error
    assert results[1].status is RecordingStatus.OK and results[1].voices.speakers
    assert started == [jobs[1]]  # only the file analysed in this process is announced


def test_a_worker_stuck_inside_one_call_is_ended_by_the_kernel_and_the_file_named(tmp_path):
    """The per-file limit is checked between frames; a call that never returns is ended from outside."""
    from scanner.analysis.recording import AnalysisSettings
    from scanner.pipeline.local_pool import LocalPool
    from scanner.pipeline.planning import Job
    from scanner.pipeline.tasks import Task

    fifo = tmp_path / "no-writer"
    os.mkfifo(fifo)

    class StuckInOpen(Task):
        def call(self, settings):
            return os.open, str(fifo), os.O_RDONLY  # blocks in the kernel until a writer comes: never

    pool = LocalPool(1, AnalysisSettings(time_limit_s=0.5), stop_after_s=1.0)
    started = time.monotonic()
    value, error = pool.alone(StuckInOpen("whole", Job(fifo)))
    pool.close()
    assert value is None
    assert "stuck past the 0.5 s per-file limit and stopped twice (in this scan and alone)" in str(error)
    assert time.monotonic() - started < 30  # worker start-up plus the 1 s timer, not forever


@pytest.mark.slow
def test_one_isolated_worker_is_a_worker_process_whose_death_does_not_end_the_scan(sample_data):
    """What the command line runs with --workers 1: analysis in a worker process, under the same
    guards as a pool of several (a dead worker's file is retried; a stuck one is ended by the
    kernel, see the test above)."""
    import threading

    from scanner.analysis.recording import AnalysisSettings
    from scanner.models import RecordingStatus
    from scanner.pipeline.execute import run_local_jobs
    from scanner.pipeline.planning import Job

    jobs = [Job(sample_data / "recordings" / "interview.mp4", None)]
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_workers, args=(stop, 3.0, True, killed), daemon=True)
    killer.start()
    try:
        results = list(run_local_jobs(jobs, AnalysisSettings(), workers=1, isolated=True))
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1 and os.getpid() not in killed
    assert [r.path.name for r in results] == ["interview.mp4"]
    assert results[0].status is RecordingStatus.OK and results[0].faces.clusters


def test_a_file_whose_worker_keeps_dying_is_unreadable_not_the_end_of_the_scan(sample_data):
    from scanner.models import RecordingStatus

    results, killed = _analyse_while_killing(sample_data, ("lobby.mp4", "phone_call.wav"), delay=0.0, once=False)
    assert len(killed) >= 3  # at least one worker of the pool, then each file's own worker, alone
    assert sorted(r.path.name for r in results) == ["lobby.mp4", "phone_call.wav"]
    for result in results:
        assert result.status is RecordingStatus.UNREADABLE
        assert "process analysing this file died twice (in this scan and alone)" in result.error


def test_workers_get_the_landmark_model_on_huge_pages(monkeypatch):
    """The scan's worker processes start with glibc's huge-page tunable; where the kernel and C
    library support it, the 68-point landmark model then really sits on huge pages."""
    import platform

    from scanner.pipeline.worker_setup import huge_pages_for_workers

    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=4")
    assert huge_pages_for_workers() is True
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=1"
    assert huge_pages_for_workers() is False  # set once; a value of the user's own is kept too

    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    libc, version = platform.libc_ver()
    old_libc = libc != "glibc" or tuple(map(int, version.split(".")[:2])) < (2, 35)
    if not thp.exists() or "[never]" in thp.read_text() or old_libc:
        pytest.skip("no transparent huge pages, or a C library without the tunable")
    probe = (
        "import dlib, face_recognition_models as m;"
        "p = dlib.shape_predictor(m.pose_predictor_model_location());"
        "print(next(int(l.split()[1]) for l in open('/proc/self/smaps_rollup') if l.startswith('AnonHugePages')))"
    )
    huge_kb = int(subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True,
                                 check=True, env=dict(os.environ)).stdout.split()[-1])
    assert huge_kb >= 32 * 1024  # most of the ~95 MB model (0 without the tunable)


def test_default_workers_follow_the_cpus_the_scan_may_use(tmp_path):
    from scanner.pipeline.resources import default_workers

    cpus = len(os.sched_getaffinity(0))
    absent = tmp_path / "no-cgroup"
    assert default_workers(cgroup=absent) == min(cpus, 8)
    assert default_workers(limit=1, cgroup=absent) == 1
    quota = tmp_path / "cpu.max"
    quota.write_text("100000 100000\n")  # a container allowed one CPU
    assert default_workers(cgroup=quota) == 1
    quota.write_text("max 100000\n")
    assert default_workers(cgroup=quota) == min(cpus, 8)
    quota.write_text("garbage\n")
    assert default_workers(cgroup=quota) == min(cpus, 8)


def test_a_scan_without_workers_uses_the_default(sample_data, tmp_path):
    from scanner.pipeline.resources import default_workers
    from tests.helpers import run_cli

    out = tmp_path / "out"
    proc = run_cli("scan", str(sample_data / "recordings" / "team_photo.jpg"), "--out", str(out), "--format", "json",
                   "--fail-on", "none", "--store", str(tmp_path / "scan.db"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "results.json").read_text())["scan"]["options"]["workers"] == default_workers()


@pytest.mark.slow
def test_a_lone_file_with_two_workers_is_analysed_in_a_worker_that_may_die(sample_data):
    """One file is not analysed in the scanning process when workers are allowed: its worker dying
    (here SIGKILLed mid-file) costs a retry, not the scan."""
    from scanner.models import RecordingStatus

    results, killed = _analyse_while_killing(sample_data, ("interview.mp4",), delay=3.0, once=True)
    assert len(killed) == 1
    assert [(r.path.name, r.status) for r in results] == [("interview.mp4", RecordingStatus.OK)]
    assert results[0].faces.clusters


def test_the_window_taken_after_the_voices_is_shorter_by_their_share(sample_data, tmp_path):
    """A lone video with sound: the voices go first and the last face window is shortened by their
    estimated cost, so both workers finish together; without sound the windows are equal."""
    from scanner.analysis.recording import AnalysisSettings
    from scanner.media.files import sha256_file
    from scanner.pipeline.planning import Job, Splitting, plan_jobs
    from tests.media_factory import make_video

    def lengths(path, splitting):
        (split,) = plan_jobs([Job(path, sha256_file(path))], AnalysisSettings(), splitting, 2)[1]
        edges = [start for start, _ in split.windows] + [split.info.duration_s]
        return [round(b - a, 2) for a, b in zip(edges, edges[1:])]

    grid = sample_data / "recordings" / "meeting_grid.mp4"  # 30 s with sound
    first, last = lengths(grid, Splitting(spare_window_s=10.0, voice_fixed_s=0.0, voice_per_s=0.5))
    # (30 + 15) / 2 - 15 = 7.5 s of faces for the worker that analysed the voices
    assert (first, last) == (22.5, 7.5)
    assert lengths(grid, Splitting(spare_window_s=10.0, voice_fixed_s=100.0)) == [25.0, 5.0]  # half a window at least
    assert lengths(grid, Splitting(spare_window_s=10.0, voice_fixed_s=0.0, voice_per_s=0.0)) == [15.0, 15.0]

    silent = make_video(tmp_path / "silent.mp4", frames=60, fps=2, size=(160, 120))  # 30 s, no audio
    assert lengths(silent, Splitting(spare_window_s=10.0)) == [15.0, 15.0]
