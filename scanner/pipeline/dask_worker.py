"""What a Dask worker needs from a scan before its first analysis task."""

from __future__ import annotations

from distributed.diagnostics.plugin import WorkerPlugin

from scanner.pipeline.worker_setup import load_models, one_blas_thread, steady_allocator


class ModelLoader(WorkerPlugin):
    """Load the analysis models on each worker of the cluster, on the worker's main thread.

    Registered by every scan on a cluster (`execute.run_dask`); workers that join later get it too,
    and registering it again replaces it. Dask runs tasks in a thread of their own, and glibc
    serves a thread other than the main one from a separate arena, which its huge-page tunable
    (`worker_setup.huge_pages_for_workers`) does not cover: models loaded inside a task would miss
    the huge pages (measured in bench/README.md, "Scale"). Tasks still load the models themselves
    where this did not run (no-op otherwise).
    """

    name = "likeness-models"

    def setup(self, worker) -> None:
        """Called by Dask on the worker's main thread when the plugin is registered or the worker starts."""
        steady_allocator()
        one_blas_thread()
        load_models()
