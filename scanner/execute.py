"""Run per-recording analysis: in this process, on a local pool of worker processes, or on a Dask cluster.

Local workers use the `spawn` start method: dlib deadlocks in processes forked after the parent used
it. Dask workers started by `dask worker` or `LocalCluster` are spawned as well (distributed's
default `multiprocessing-method`).

With `--scheduler tcp://host:8786` the same `analyze_recording` runs on the cluster's workers, so the
results are identical to a local run. The workers need this package installed (same version) and
must see the recordings at the same absolute paths (a shared file system); the results come back to
this process, which alone writes the scan database.

The unit of work is one recording. A long video is not split over several workers yet: one long
recording keeps one worker busy while the others take the remaining files (see bench/scale.md).
"""

from __future__ import annotations

import multiprocessing
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from scanner.analyze import AnalysisSettings, analyze_recording
from scanner.models import RecordingAnalysis, RecordingStatus


@dataclass(frozen=True)
class Job:
    """One recording to analyse; `sha256` when already known (it is not computed again)."""

    path: Path
    sha256: str | None = None


def run_jobs(
    jobs: list[Job],
    settings: AnalysisSettings,
    workers: int = 1,
    scheduler: str | None = None,
) -> Iterator[RecordingAnalysis]:
    """Analyse `jobs`, yielding each result as it finishes (in completion order)."""
    if scheduler:
        yield from run_dask(jobs, settings, scheduler)
    else:
        yield from run_local_jobs(jobs, settings, workers)


def run_local(paths: list[Path], settings: AnalysisSettings, workers: int = 1) -> Iterator[RecordingAnalysis]:
    """Analyse `paths`, yielding results as they finish (order not guaranteed with workers > 1)."""
    yield from run_local_jobs([Job(Path(p)) for p in paths], settings, workers)


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group; the parent decides what happens, workers just stop
    # when it terminates them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_local_jobs(jobs: list[Job], settings: AnalysisSettings, workers: int = 1) -> Iterator[RecordingAnalysis]:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _restore_path(analyze_recording(job.path, settings, job.sha256), job)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=context, initializer=_ignore_sigint)
    finished = False
    try:
        pending = {pool.submit(analyze_recording, job.path, settings, job.sha256): job for job in jobs}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                yield _restore_path(future.result(), job)
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            # Interrupted (Ctrl-C, an error, or the consumer stopped): do not wait for running analyses.
            processes = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
            for process in processes:
                process.join(timeout=5)


def run_dask(jobs: list[Job], settings: AnalysisSettings, address: str) -> Iterator[RecordingAnalysis]:
    """Analyse `jobs` on the Dask distributed cluster whose scheduler listens at `address`."""
    try:
        from distributed import Client, as_completed
    except ImportError as exc:  # pragma: no cover - dask[distributed] is a dependency
        raise RuntimeError("--scheduler needs the 'distributed' package (pip install 'dask[distributed]')") from exc

    client = Client(address, timeout="30s", set_as_default=False)
    futures = {}
    try:
        tag = uuid.uuid4().hex[:8]
        for i, job in enumerate(jobs):
            # Absolute paths: the workers' current folder is not ours. The result carries the path back as given.
            future = client.submit(
                analyze_recording, str(job.path.resolve()), settings, job.sha256,
                key=f"likeness-analyze-{tag}-{i}", pure=False, retries=1,
            )
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
                client.cancel(list(futures))
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        client.close()


def _restore_path(analysis: RecordingAnalysis, job: Job) -> RecordingAnalysis:
    analysis.path = job.path
    return analysis
