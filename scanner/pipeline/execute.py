"""Run per-recording analysis: in this process, on a local pool of worker processes, or on a Dask cluster.

Local workers use the `spawn` start method: dlib deadlocks in processes forked after the parent used
it. Dask workers started by `dask worker` or `LocalCluster` are spawned as well (distributed's
default `multiprocessing-method`).

With `--scheduler tcp://host:8786` the same analysis functions run on the cluster's workers, so the
results are identical to a local run. The workers need this package installed (same version) and
must see local recordings at the same absolute paths (a shared file system); recordings in object
storage (`Job.storage`) each worker reads itself (`objects.analyze_object`). The results come back
to this process, which alone writes the scan database.

The unit of work is one recording, largest files first (so that the last file to finish is a short
one). With several workers, a video longer than two windows (`Splitting`, 10 min by default) is split:
its faces are analysed in windows on any free worker, its voices as one more task, and a
last task joins the windows (`faces.merge_analyses`) and links voices to faces. One long recording
then keeps every worker busy instead of one. When there are fewer recordings than workers, shorter
videos are split the same way into windows of 20 s or more, one per spare worker: a scan of one
60 s video then runs on both cores of a two-core machine.

No file ends a scan. A pool worker that dies (a decoder fault, the out-of-memory killer) makes the
few tasks it shared the pool with suspects, each rerun alone; a second death makes that file
unreadable (`_LocalPool`). A worker stuck inside one call past the per-file limit is ended by a
kernel timer (`stop_after`). The command line always analyses in worker processes, even with one
worker (`isolated`). A library caller asking for one worker gets analysis in its own process
(cheaper: no worker start-up); it records which file it is on (`starting`), and the next run
analyses a file that took the process down in a separate one (`isolate`). A decoder stuck inside
one call is then not interrupted.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from scanner.analysis.recording import (
    AnalysisSettings,
    accounted,
    analyze_faces,
    analyze_recording,
    analyze_voices,
    link_faces_to_voices,
    probe_recording,
    unreadable,
)
from scanner.media.limits import memory_limit, time_limit
from scanner.media.objstore import StorageSettings
from scanner.models import (
    FaceAnalysis,
    MediaInfo,
    MediaKind,
    NoVideoFrames,
    RecordingAnalysis,
    RecordingStatus,
    VoiceAnalysis,
    join_coverage,
)
from scanner.pipeline.objects import analyze_object
from scanner.pipeline.worker_setup import huge_pages_for_workers, load_models, steady_allocator


@dataclass(frozen=True)
class Splitting:
    """When one long video is split over several workers.

    window_s: length of the face windows, 300 s. Each window finds and encodes its people again
        (about a second of work), negligible against the minute or so a 5-minute window takes,
        but not against a 30 s one. Videos shorter than two windows stay whole; 0 never splits.
    min_bytes: files smaller than this (5 MB) are never probed for splitting: no video this small
        lasts 10 minutes at a bitrate worth scanning, and probing thousands of small files one by
        one in the parent process costs more than it could win.
    """

    window_s: float = 300.0
    min_bytes: int = 5_000_000
    spare_window_s: float = 20.0
    """When there are fewer recordings than workers, a video lasting at least two of these windows is
    split anyway, into as many windows as the spare workers can take (each at least this long):
    a scan of one short video then uses every core. Measured on the 60 s 720p bench video
    (bench/faces.md, 5 interleaved runs), two 30 s windows on two workers took 1.92-2.30 s against
    2.45-2.85 s whole, with the same 8 people; windows much shorter than this spend more of their
    time finding and encoding their people again. 0 never splits short videos."""


@dataclass(frozen=True)
class Job:
    """One recording to analyse; `sha256` when already known (it is not computed again).

    storage: set for an object in object storage (`path` is then an `objstore.ObjectURL`): the worker
        copies it to a local temporary file and analyses that (objects are never split).
    size: bytes, when known without a `stat` (the listing's size of an object).
    """

    path: Path
    sha256: str | None = None
    storage: StorageSettings | None = None
    size: int | None = None


def run_jobs(
    jobs: list[Job],
    settings: AnalysisSettings,
    workers: int = 1,
    scheduler: str | None = None,
    splitting: Splitting = Splitting(),
    isolate: frozenset[str] = frozenset(),
    starting: Callable[[Job], None] | None = None,
    isolated: bool = False,
    max_memory_bytes: int | None = None,
) -> Iterator[RecordingAnalysis]:
    """Analyse `jobs`, yielding each result as it finishes (in completion order).

    `isolate`, `starting` and `isolated` concern analysis in this process, `max_memory_bytes` local
    workers; see `run_local_jobs`. Dask workers keep to the memory limit their cluster gives them.
    """
    if scheduler:
        yield from run_dask(jobs, settings, scheduler, splitting)
    else:
        yield from run_local_jobs(jobs, settings, workers, splitting, isolate, starting, isolated=isolated,
                                  max_memory_bytes=max_memory_bytes)


#: Most worker processes a scan starts unless told otherwise (each holds the face and voice models,
#: about 0.5 GB).
MAX_DEFAULT_WORKERS = 8


def default_workers(limit: int = MAX_DEFAULT_WORKERS, cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """How many worker processes a scan uses unless told: one per CPU this process may run on.

    Counts the CPUs of this process's affinity mask, lowered by a container's CPU quota (cgroup v2
    `cpu.max`, e.g. "200000 100000" is 2 CPUs) when there is one, and caps the result at `limit`.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, min(cpus, limit))


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group; the parent decides what happens, workers just stop
    # when it terminates them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    steady_allocator()
    load_models()


def _on_dask_worker(function, *args):
    """Run one analysis task on a Dask worker (whose allocator its nanny configured; see steady_allocator).

    The scan's `dask_worker.ModelLoader` has normally loaded the models on the worker's main thread
    already; then these calls return at once."""
    steady_allocator()
    load_models()
    return function(*args)


@dataclass
class _Split:
    """A long video analysed in parts: face windows and the voice track, then joined."""

    job: Job
    digest: str
    size: int
    info: MediaInfo
    windows: list[tuple[float, float]]
    faces: dict[int, FaceAnalysis | None] = field(default_factory=dict)
    voices: VoiceAnalysis | None = None
    voices_done: bool = False
    error: BaseException | None = None

    def complete(self) -> bool:
        return self.error is not None or (self.voices_done and len(self.faces) == len(self.windows))

    def face_parts(self) -> list[FaceAnalysis]:
        return [self.faces[i] for i in range(len(self.windows)) if self.faces[i] is not None]


def plan_jobs(
    jobs: list[Job], settings: AnalysisSettings, splitting: Splitting = Splitting(), workers: int = 1
) -> tuple[list[Job], list[_Split]]:
    """Largest files first; videos longer than two windows become a `_Split` (the rest stay whole), and
    so do shorter videos when `workers` outnumber the recordings (`Splitting.spare_window_s`)."""
    sizes = {job.path: _job_size(job) for job in jobs}
    ordered = sorted(jobs, key=lambda job: sizes[job.path], reverse=True)
    spare = workers // len(jobs) if jobs and splitting.spare_window_s > 0 else 0
    whole, splits = [], []
    for job in ordered:
        split = _split_of(job, sizes[job.path], settings, splitting, spare)
        if split is None:
            whole.append(job)
        else:
            splits.append(split)
    return whole, splits


def _job_size(job: Job) -> int:
    return job.size if job.size is not None else _size(job.path)


def _size(path: Path) -> int:
    try:
        return Path(path).stat().st_size
    except OSError:
        return 0


def _split_of(job: Job, size: int, settings: AnalysisSettings, splitting: Splitting, spare: int = 0) -> _Split | None:
    """The windows of one video, or None to analyse it whole; `spare`: workers free for this file alone."""
    if job.sha256 is None or job.storage is not None:
        return None
    long_ok = splitting.window_s > 0 and size >= splitting.min_bytes
    if not long_ok and spare < 2:
        return None
    try:
        info = probe_recording(job.path, settings)
    except Exception:  # noqa: BLE001 - the whole-file analysis reports what is wrong with it
        return None
    if info.kind is not MediaKind.VIDEO or not info.duration_s:
        return None
    if long_ok and info.duration_s >= 2 * splitting.window_s:
        count = int(info.duration_s // splitting.window_s)
    else:
        count = min(spare, int(info.duration_s // splitting.spare_window_s)) if spare >= 2 else 0
    if count < 2:
        return None
    edges = [i * info.duration_s / count for i in range(count + 1)]
    # The last window is open-ended: a declared duration can be shorter than the last frame's time.
    windows = [(edges[i], edges[i + 1] if i < count - 1 else float("inf")) for i in range(count)]
    return _Split(job, job.sha256, size, info, windows)


def whole_task(job: Job, settings: AnalysisSettings) -> tuple:
    """(function, *args) that analyses `job` as one task: `analyze_recording` on a local file,
    `objects.analyze_object` (copy, then analyse) on an object."""
    if job.storage is not None:
        return analyze_object, job.path, settings, job.storage, job.sha256, job.size
    return analyze_recording, job.path, settings, job.sha256


def _window_faces(path: Path, info: MediaInfo, settings: AnalysisSettings, start: float, end: float):
    """Faces of one window, or None when not one frame of it decodes: a file whose data ends early
    (an interrupted download) keeps what its other windows found, as the whole-file analysis would."""
    with time_limit(settings.time_limit_s):
        try:
            return analyze_faces(path, info, settings, start_s=start, end_s=None if end == float("inf") else end)
        except NoVideoFrames:
            return None


def _split_voices(path: Path, info: MediaInfo, settings: AnalysisSettings):
    with time_limit(settings.time_limit_s):
        return analyze_voices(path, info, settings)


def join_split(
    path: Path, digest: str, size: int, info: MediaInfo, settings: AnalysisSettings,
    face_parts: list[FaceAnalysis | None], voices: VoiceAnalysis | None,
) -> RecordingAnalysis:
    """One recording's analysis from its parts: face windows joined (None: a window with no decodable
    frame; unreadable only when no window has one), voices linked to faces."""
    from scanner.analysis.faces.grouping import (
        merge_analyses,  # deferred: scipy and the face stage, needed by split videos only
    )

    try:
        face_parts = [part for part in face_parts if part is not None]
        if not face_parts:
            raise NoVideoFrames("no decodable video frame (truncated or corrupt file)")
        with time_limit(settings.time_limit_s):
            faces = merge_analyses(face_parts)
            faces.coverage = join_coverage([p.coverage for p in face_parts if p.coverage is not None])
            links = link_faces_to_voices(path, info, settings, faces, voices)
    except Exception as exc:  # noqa: BLE001 - one hostile file must not end the scan
        return unreadable(path, digest, size, exc)
    return accounted(RecordingAnalysis(
        Path(path), digest, RecordingStatus.OK, media=info, faces=faces, voices=voices, size_bytes=size, links=links
    ))


class WorkerCrashed(RuntimeError):
    """The worker process analysing a file died (a decoder fault, the out-of-memory killer)."""


def stop_after(settings: AnalysisSettings) -> float | None:
    """How long one pool task may run before its worker is ended outright: None for never.

    The per-file time limit is checked between decoded frames and stages, so a decoder stuck inside
    one call never reaches a check. Past the limit plus a quarter (at least 30 s more, so that the
    check between frames always gets its chance first), the kernel ends the worker.
    """
    limit = settings.time_limit_s
    return None if not limit or limit <= 0 else limit + max(30.0, 0.25 * limit)


def _under_limits(seconds: float | None, memory_bytes: int | None, function, *args):
    """Run one pool task in a worker, within its time and memory limits.

    Time: the kernel ends the worker (SIGALRM) if the task runs past `seconds`; the timer's default
    action needs nothing from the stuck worker, no Python code, no lock. Memory: past `memory_bytes`
    of resident memory the analysis stops with a reason (`memory_limit`, checked between
    frames and steps), and the worker's address space is capped a little above that
    (`address_space_cap`), so that one allocation which would take it far beyond fails with
    MemoryError (reported on the file) instead of waking the kernel's out-of-memory killer.
    """
    restore = address_space_cap(memory_bytes) if memory_bytes else None
    if seconds is not None:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with memory_limit(memory_bytes):
            return function(*args)
    finally:
        if seconds is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if restore is not None:
            restore()


def address_space_cap(resident_bytes: int, slack_bytes: int = 1 << 30) -> Callable[[], None] | None:
    """Cap this process's address space (RLIMIT_AS) so that it can hold `resident_bytes` resident and
    no more than `slack_bytes` beyond; returns a function that lifts the cap again (None off Linux).

    The address space counts what the process has reserved but not touched (thread stacks, allocator
    arenas, model files mapped but unread), so the cap is the ceiling plus what is reserved and not
    resident now, plus the slack.
    """
    try:
        import resource

        status = Path("/proc/self/status").read_text()
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in status.splitlines()
                  if line.startswith(("VmSize:", "VmRSS:"))}
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = resident_bytes + max(0, fields["VmSize"] - fields["VmRSS"]) + slack_bytes
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError, KeyError):
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


#: Share of the memory available to a scan that its worker processes may hold together by default.
DEFAULT_MEMORY_SHARE = 0.5


def default_memory_ceiling(
    workers: int, share: float = DEFAULT_MEMORY_SHARE, floor_bytes: int = 3 << 29,
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup/memory.max"),
) -> int | None:
    """Resident memory one worker may hold by default: `share` (half) of the memory this scan may
    use (the machine's, or a container's memory limit when lower), divided by `workers`, and at
    least `floor_bytes` (1.5 GB: one worker's need on an hour-long gallery meeting). None where
    the machine's memory cannot be read.
    """
    try:
        total = next(int(line.split()[1]) * 1024 for line in meminfo.read_text().splitlines()
                     if line.startswith("MemTotal:"))
    except (OSError, ValueError, StopIteration):
        return None
    try:
        limit = cgroup.read_text().strip()
        if limit != "max":
            total = min(total, int(limit))
    except (OSError, ValueError):
        pass
    return max(floor_bytes, int(share * total / max(1, workers)))


@dataclass(frozen=True)
class _Task:
    """One unit of pool work: a whole recording, one face window or the voices of a split, or its join."""

    kind: str  # "whole", "faces", "voices" or "join"
    owner: Job | _Split
    index: int | None = None

    def call(self, settings: AnalysisSettings) -> tuple:
        if self.kind == "whole":
            return whole_task(self.owner, settings)
        split = self.owner
        if self.kind == "faces":
            start, end = split.windows[self.index]
            return _window_faces, split.job.path, split.info, settings, start, end
        if self.kind == "voices":
            return _split_voices, split.job.path, split.info, settings
        parts = split.face_parts()
        return join_split, split.job.path, split.digest, split.size, split.info, settings, parts, split.voices

    @property
    def job(self) -> Job:
        return self.owner if self.kind == "whole" else self.owner.job


def _reaped(processes: list, timeout_s: float = 10.0) -> None:
    """Wait until each of a broken pool's `processes` has an exit code (at most `timeout_s` in all).

    The pool's own thread reaps its dead workers too; a join racing with it can return before the
    exit code is recorded, so the code is polled until it is there.
    """
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
        while process.exitcode is None and time.monotonic() < deadline:
            time.sleep(0.02)


class _LocalPool:
    """A pool of spawned worker processes that survives one of them dying.

    When a worker dies, every task that was in the pool is suspect (the pool cannot tell which
    one killed it): each is run again alone, in a fresh single-worker pool, where a second death
    is unambiguous and makes only that recording unreadable. The others carry on in a new pool.
    """

    def __init__(self, workers: int, settings: AnalysisSettings, stop_after_s: float | None = None,
                 max_memory_bytes: int | None = None):
        self.workers = workers
        self.settings = settings
        self.stop_after_s = stop_after_s  # see stop_after
        self.max_memory_bytes = max_memory_bytes  # see _under_limits
        self.context = multiprocessing.get_context("spawn")
        huge_pages_for_workers()
        self.pool = self._new(workers)  # worker processes start with the first task
        self.pending: dict[Future, _Task] = {}

    def _new(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=self.context, initializer=_start_worker)

    def submit(self, task: _Task) -> None:
        self.pending[self._hand_over(self.pool, task)] = task

    def _hand_over(self, pool: ProcessPoolExecutor, task: _Task) -> Future:
        try:
            return pool.submit(_under_limits, self.stop_after_s, self.max_memory_bytes, *task.call(self.settings))
        except (BrokenProcessPool, OSError) as exc:
            # A worker died since the pool was last looked at (its pipes may be closed already):
            # this task joins the suspects of that death.
            future: Future = Future()
            future.set_exception(BrokenProcessPool(f"a worker died: {exc}"))
            return future

    def outcomes(self) -> Iterator[tuple[_Task, object, BaseException | None]]:
        """(task, value, error) as tasks finish; submitting more while iterating is allowed."""
        while self.pending:
            done, _ = wait(self.pending, timeout=1.0, return_when=FIRST_COMPLETED)
            # A task handed over while the pool was breaking can be left neither run nor failed
            # (a race inside ProcessPoolExecutor): a broken pool's leftovers are suspects too.
            crashed = not done and bool(getattr(self.pool, "_broken", False))
            for future in done:
                task = self.pending.pop(future)
                try:
                    value = future.result()
                except BrokenProcessPool:
                    crashed = True
                    self.pending[future] = task  # re-examined below with the rest
                    continue
                except Exception as exc:  # noqa: BLE001 - reported on the recording
                    yield task, None, exc
                    continue
                yield task, value, None
            if crashed:
                suspects = list(self.pending.values())
                logging.getLogger(__name__).warning(
                    "a worker process died (the time limit, a decoder fault or the system's memory); "
                    "analysing again alone: %s", ", ".join(sorted({str(t.job.path) for t in suspects})))
                self.pending.clear()
                self._discard(self.pool)
                self.pool = self._new(self.workers)
                for task in suspects:
                    yield task, *self.alone(task)

    def alone(self, task: _Task, after: str = "in this scan") -> tuple[object, BaseException | None]:
        """(value, error) of `task` run by itself in a fresh one-worker pool: a death there is its own."""
        pool = self._new(1)
        processes = []
        try:
            future = self._hand_over(pool, task)
            processes = list((getattr(pool, "_processes", None) or {}).values())  # started by submit
            return future.result(), None
        except BrokenProcessPool:
            _reaped(processes)
            if any(process.exitcode == -signal.SIGALRM for process in processes):
                return None, WorkerCrashed(
                    f"stuck past the {self.settings.time_limit_s:g} s per-file limit and stopped twice "
                    f"({after} and alone)"
                )
            return None, WorkerCrashed(f"the process analysing this file died twice ({after} and alone)")
        except Exception as exc:  # noqa: BLE001 - reported on the recording
            return None, exc
        finally:
            self._discard(pool)

    def close(self, finished: bool) -> None:
        if finished:
            self.pool.shutdown(wait=True)
        else:
            self._discard(self.pool)

    @staticmethod
    def _discard(pool: ProcessPoolExecutor) -> None:
        # Do not wait for running analyses (Ctrl-C, an error, a dead worker): stop them.
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)


def run_local_jobs(
    jobs: list[Job],
    settings: AnalysisSettings,
    workers: int = 1,
    splitting: Splitting = Splitting(),
    isolate: frozenset[str] = frozenset(),
    starting: Callable[[Job], None] | None = None,
    stop_after_s: float | None = None,
    isolated: bool = False,
    max_memory_bytes: int | None = None,
) -> Iterator[RecordingAnalysis]:
    """Analyse `jobs` on a pool of `workers` spawned processes, or here with one worker unless `isolated`,
    yielding each result as it finishes.

    isolate: content hashes of recordings that a previous scan died analysing in its own process;
        they are analysed in a separate process even with one worker, and a second death makes
        the file unreadable instead of ending this scan too.
    starting: called with each job about to be analysed in this process, so that the caller can
        record it (see `Store.note_analysing`); pool workers never take this process down.
    stop_after_s: a pool worker still on one task after this long is ended by the kernel and the
        task treated as a crash (default: `stop_after(settings)`, the per-file limit plus a quarter).
    isolated: analyse in a worker process even with one worker, so that a decoder stuck inside one
        call is ended at `stop_after_s` like any pool worker (the command line's choice; costs one
        worker start-up, about 3 s, per scan).
    max_memory_bytes: resident memory one worker may hold while it analyses a file (None: no
        ceiling). A file whose analysis would pass it is reported unreadable with the reason
        (`_under_limits`); the worker is not killed. In this process the ceiling is checked
        between frames and steps only.
    """
    stop_after_s = stop_after_s or stop_after(settings)
    steady_allocator()  # for analyses in this process; pool workers set it up themselves
    if workers <= 1 and not isolated:
        yield from _in_this_process(jobs, settings, isolate, starting, stop_after_s, max_memory_bytes)
        return
    if not jobs:
        return
    # Even one file goes to a worker: a decoder stuck inside one call or a crash then ends the
    # worker, not the scan (about a second more start-up than analysing it here).
    whole, splits = plan_jobs(jobs, settings, splitting, workers)
    tasks = [_Task("faces", split, i) for split in splits for i in range(len(split.windows))]  # longest work first
    tasks += [_Task("voices", split) for split in splits]
    tasks += [_Task("whole", job) for job in whole]
    pool = _LocalPool(max(1, min(workers, len(tasks))), settings, stop_after_s, max_memory_bytes)
    # Only a few tasks wait in the pool at a time: when a worker dies, every task in the pool is
    # suspect and rerun alone, so the rest of the archive must not be in there with them.
    queue = deque(tasks)
    in_pool = pool.workers + 1
    finished = False
    try:
        while queue and len(pool.pending) < in_pool:
            pool.submit(queue.popleft())
        for task, value, error in pool.outcomes():
            while queue and len(pool.pending) < in_pool:
                pool.submit(queue.popleft())
            job = task.job
            if task.kind in ("whole", "join"):
                if error is not None:
                    value = unreadable(job.path, job.sha256 or "", _job_size(job), error)
                yield _restore_path(value, job)
                continue
            split = task.owner
            if error is not None:
                split.error = split.error or error
            elif task.kind == "faces":
                split.faces[task.index] = value
            else:
                split.voices, split.voices_done = value, True
            if split.complete() and not any(t.owner is split for t in pool.pending.values()):
                if split.error is not None:
                    yield _restore_path(unreadable(job.path, split.digest, split.size, split.error), job)
                else:
                    pool.submit(_Task("join", split))
        finished = True
    finally:
        pool.close(finished)


def _in_this_process(
    jobs: list[Job], settings: AnalysisSettings, isolate: frozenset[str], starting: Callable[[Job], None] | None,
    stop_after_s: float | None, max_memory_bytes: int | None = None,
) -> Iterator[RecordingAnalysis]:
    if any(job.sha256 not in isolate for job in jobs):
        load_models()
    for job in jobs:
        if job.sha256 in isolate:
            pool = _LocalPool(1, settings, stop_after_s, max_memory_bytes)
            value, error = pool.alone(_Task("whole", job), after="in an earlier scan of this database")
            pool.close(finished=True)
            if error is not None:
                value = unreadable(job.path, job.sha256 or "", _job_size(job), error)
        else:
            if starting is not None:
                starting(job)
            function, *args = whole_task(job, settings)
            with memory_limit(max_memory_bytes):
                value = function(*args)
        yield _restore_path(value, job)


def run_dask(
    jobs: list[Job], settings: AnalysisSettings, address: str, splitting: Splitting = Splitting()
) -> Iterator[RecordingAnalysis]:
    """Analyse `jobs` on the Dask distributed cluster whose scheduler listens at `address`."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask[distributed] is a dependency
        raise RuntimeError("--scheduler needs the 'distributed' package (pip install 'dask[distributed]')") from exc

    from scanner.pipeline.dask_worker import ModelLoader  # deferred with `distributed`, which it subclasses from

    client = Client(address, timeout="30s", set_as_default=False)
    try:
        client.register_plugin(ModelLoader(), name=ModelLoader.name)
    except Exception as exc:  # a worker that cannot unpickle it lacks this package: no task would run either
        client.close()
        raise RuntimeError(
            f"the Dask workers of {address} cannot run likeness ({type(exc).__name__}: {exc}); "
            "every worker needs this package installed, the same version as here"
        ) from exc
    futures = {}
    parts = []
    try:
        tag = uuid.uuid4().hex[:8]
        whole, splits = plan_jobs(jobs, settings, splitting)
        for i, split in enumerate(splits):
            # Absolute paths: the workers' current folder is not ours. The result carries the path back as given.
            path = str(split.job.path.resolve())
            windows = [
                client.submit(_on_dask_worker, _window_faces, path, split.info, settings, start, end,
                              key=f"likeness-faces-{tag}-{i}-{w}", pure=False, retries=1)
                for w, (start, end) in enumerate(split.windows)
            ]
            voices = client.submit(_on_dask_worker, _split_voices, path, split.info, settings,
                                   key=f"likeness-voices-{tag}-{i}", pure=False, retries=1)
            parts += [*windows, voices]
            joined = client.submit(_on_dask_worker, join_split, path, split.digest, split.size, split.info,
                                   settings, windows, voices, key=f"likeness-join-{tag}-{i}", pure=False)
            futures[joined] = split.job
        for i, job in enumerate(whole):
            # Absolute paths for local files; objects are read by the worker from their URL.
            task = whole_task(job if job.storage is not None else Job(job.path.resolve(), job.sha256), settings)
            future = client.submit(_on_dask_worker, *task, key=f"likeness-analyze-{tag}-{i}", pure=False, retries=1)
            futures[future] = job
        for future in as_completed(list(futures), loop=client.loop):
            job = futures[future]
            try:
                analysis = future.result()
            except Exception as exc:  # noqa: BLE001 - a worker that died on a file: report the file
                analysis = RecordingAnalysis(
                    job.path, job.sha256 or "", RecordingStatus.UNREADABLE,
                    error=f"analysis failed on the cluster: {type(exc).__name__}: {exc}",
                )
            yield _restore_path(analysis, job)
    finally:
        if futures:
            try:
                client.cancel(list(futures) + parts)
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        client.close()


def _restore_path(analysis: RecordingAnalysis, job: Job) -> RecordingAnalysis:
    analysis.path = job.path
    return analysis
