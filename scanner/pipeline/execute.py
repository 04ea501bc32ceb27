"""Run per-recording analysis: in this process, on a local pool of worker processes, or on a Dask cluster.

Dask workers started by `dask worker` or `LocalCluster` are spawned, as local pool workers are
(distributed's default `multiprocessing-method`). With `--scheduler tcp://host:8786` the same task
functions (`tasks`) run on the cluster's workers, so the results are identical to a local run. The
workers need this package installed (same version) and must see local recordings at the same
absolute paths (a shared file system); recordings in object storage (`Job.storage`) each worker
reads itself (`objects.analyze_object`). The results come back to this process, which alone writes
the scan database.

The work is planned by `planning.plan_jobs` (largest files first, long videos split into windows)
and run on a `local_pool.LocalPool` within the limits of `resources`. No file ends a scan. The
command line always analyses in worker processes, even with one worker (`isolated`). A library
caller asking for one worker gets analysis in its own process (cheaper: no worker start-up); it
records which file it is on (`starting`), and the next run analyses a file that took the process
down in a separate one (`isolate`). A decoder stuck inside one call is then not interrupted.
"""
from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Iterator

from scanner.analysis.recording import AnalysisSettings, unreadable
from scanner.media.limits import memory_limit
from scanner.models import RecordingAnalysis, RecordingStatus
from scanner.pipeline.local_pool import LocalPool
from scanner.pipeline.planning import Job, Splitting, job_size, plan_jobs
from scanner.pipeline.resources import stop_after
from scanner.pipeline.tasks import Task, join_split, on_dask_worker, split_voices, whole_task, window_faces
from scanner.pipeline.worker_setup import load_models, steady_allocator


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
        (`run_under_limits`); the worker is not killed. In this process the ceiling is checked
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
    # The voices of a split video first: they cannot be split, and the other workers take the face
    # windows meanwhile (the last window, shortened by the voices' share, goes to the first free worker).
    tasks = [Task("voices", split) for split in splits]
    tasks += [Task("faces", split, i) for split in splits for i in range(len(split.windows))]
    tasks += [Task("whole", job) for job in whole]
    pool = LocalPool(max(1, min(workers, len(tasks))), settings, stop_after_s, max_memory_bytes)
    # Only a few tasks wait in the pool at a time: when a worker dies, every task in the pool is
    # suspect and rerun alone, so the rest of the archive must not be in there with them.
    queue = deque(tasks)
    in_pool = pool.workers + 1
    try:
        while queue and len(pool.pending) < in_pool:
            pool.submit(queue.popleft())
        for task, value, error in pool.outcomes():
            while queue and len(pool.pending) < in_pool:
                pool.submit(queue.popleft())
            job = task.job
            if task.kind in ("whole", "join"):
                if error is not None:
                    value = unreadable(job.path, job.sha256 or "", job_size(job), error)
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
                    pool.submit(Task("join", split))
    finally:
        pool.close()


def _in_this_process(
    jobs: list[Job], settings: AnalysisSettings, isolate: frozenset[str], starting: Callable[[Job], None] | None,
    stop_after_s: float | None, max_memory_bytes: int | None = None,
) -> Iterator[RecordingAnalysis]:
    if any(job.sha256 not in isolate for job in jobs):
        load_models()
    for job in jobs:
        if job.sha256 in isolate:
            pool = LocalPool(1, settings, stop_after_s, max_memory_bytes)
            value, error = pool.alone(Task("whole", job), after="in an earlier scan of this database")
            pool.close()
            if error is not None:
                value = unreadable(job.path, job.sha256 or "", job_size(job), error)
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
            # Voices first, as on the local pool: the one part that cannot be split.
            voices = client.submit(on_dask_worker, split_voices, path, split.info, settings,
                                   key=f"likeness-voices-{tag}-{i}", pure=False, retries=1)
            windows = [
                client.submit(on_dask_worker, window_faces, path, split.info, settings, start, end,
                              key=f"likeness-faces-{tag}-{i}-{w}", pure=False, retries=1)
                for w, (start, end) in enumerate(split.windows)
            ]
            parts += [*windows, voices]
            joined = client.submit(on_dask_worker, join_split, path, split.digest, split.size, split.info,
                                   settings, windows, voices, key=f"likeness-join-{tag}-{i}", pure=False)
            futures[joined] = split.job
        for i, job in enumerate(whole):
            # Absolute paths for local files; objects are read by the worker from their URL.
            task = whole_task(job if job.storage is not None else Job(job.path.resolve(), job.sha256), settings)
            future = client.submit(on_dask_worker, *task, key=f"likeness-analyze-{tag}-{i}", pure=False, retries=1)
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
