"""A pool of spawned worker processes that survives one of them dying.

Local workers use the `spawn` start method: dlib deadlocks in processes forked after the parent used
it. A worker that dies (a decoder fault, the out-of-memory killer) makes the few tasks it shared the
pool with suspects, each rerun alone; a second death makes that file unreadable. A worker stuck
inside one call past the per-file limit is ended by a kernel timer (`resources.stop_after`).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from scanner.analysis.recording import AnalysisSettings
from scanner.pipeline.resources import run_under_limits
from scanner.pipeline.tasks import Task
from scanner.pipeline.worker_setup import huge_pages_for_workers, load_models, one_blas_thread, steady_allocator


class WorkerCrashed(RuntimeError):
    """The worker process analysing a file died (a decoder fault, the out-of-memory killer)."""


def _start_worker() -> None:
    # Ctrl-C reaches the whole process group; the parent decides what happens, workers just stop
    # when it terminates them.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    steady_allocator()
    one_blas_thread()
    load_models()


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


class LocalPool:
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
        self.max_memory_bytes = max_memory_bytes  # see run_under_limits
        self.context = multiprocessing.get_context("spawn")
        huge_pages_for_workers()
        self.pool = self._new(workers)  # worker processes start with the first task
        self.pending: dict[Future, Task] = {}

    def _new(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=self.context, initializer=_start_worker)

    def submit(self, task: Task) -> None:
        """Hand `task` to the pool; its outcome comes from `outcomes()`."""
        self.pending[self._hand_over(self.pool, task)] = task

    def _hand_over(self, pool: ProcessPoolExecutor, task: Task) -> Future:
        try:
            return pool.submit(run_under_limits, self.stop_after_s, self.max_memory_bytes, *task.call(self.settings))
        except (BrokenProcessPool, OSError) as exc:
            # A worker died since the pool was last looked at (its pipes may be closed already):
            # this task joins the suspects of that death.
            future: Future = Future()
            future.set_exception(BrokenProcessPool(f"a worker died: {exc}"))
            return future

    def outcomes(self) -> Iterator[tuple[Task, object, BaseException | None]]:
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

    def alone(self, task: Task, after: str = "in this scan") -> tuple[object, BaseException | None]:
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

    def close(self) -> None:
        """Shut the pool down and stop its workers at once. Once every task has its outcome they are
        idle and hold nothing the scan needs; before that (Ctrl-C, an error) whatever they are still
        analysing is abandoned."""
        # An idle worker asked to exit tears its interpreter down (about half a second freeing its
        # models), and the scan's process waits for that at its own exit; as
        # multiprocessing.Pool's context manager does, the workers are terminated instead.
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
