"""Run per-recording analysis locally, one process or a pool of worker processes.

Workers use the `spawn` start method: dlib deadlocks in processes forked after the parent used it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from scanner.analyze import AnalysisSettings, analyze_recording
from scanner.models import RecordingAnalysis


def run_local(
    paths: list[Path],
    settings: AnalysisSettings,
    workers: int = 1,
) -> Iterator[RecordingAnalysis]:
    """Analyse `paths`, yielding results as they finish (order not guaranteed with workers > 1)."""
    if workers <= 1 or len(paths) <= 1:
        for path in paths:
            yield analyze_recording(path, settings)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(analyze_recording, path, settings) for path in paths]
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise

