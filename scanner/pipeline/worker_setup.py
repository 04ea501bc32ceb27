"""How a process that analyses recordings is prepared: its memory allocator and its models.

Used by the local worker pool (`scanner.pipeline.execute`), by analysis in the scan's own process, and by
Dask workers (`scanner.pipeline.dask_worker`).
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def steady_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> bool:
    """Let this process reuse freed frame buffers instead of returning them to the system at once.

    Analysis allocates and frees frame-sized arrays (2.7 MB for a 720p frame) hundreds of times a
    minute of video. glibc normally learns that from the first freed buffer and keeps such memory
    for reuse, but setting `MALLOC_TRIM_THRESHOLD_` turns that learning off, and Dask's nanny sets
    it (64 KB) for every worker it starts: each buffer is then mapped and unmapped again, and every
    page of it faults in afresh (measured in bench/README.md, "Scale"). These values are the limits
    glibc's own learning would reach on 64-bit Linux (32 MB, twice that for trimming), so a worker
    keeps at most 64 MB of freed memory.

    Returns whether the allocator accepted the settings (False off glibc, where this does nothing).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        )
    except (OSError, AttributeError):  # not glibc (musl, ...): its allocator has no such switch
        return False


def huge_pages_for_workers() -> bool:
    """Ask glibc to back the heap of processes started from now on with transparent huge pages.

    dlib's 68-point landmark model is about 95 MB of regression-tree leaves, and each face reads
    some 7,500 of them at random: with 4 KB pages nearly every read misses the address-translation
    cache as well as the memory cache. 2 MB pages (glibc's `glibc.malloc.hugetlb=1` tunable,
    glibc 2.35 and later; the kernel's transparent huge pages set to `madvise` or `always`) make
    the landmarks about a third cheaper (bench/README.md, "The landmark model sits on huge pages").
    glibc reads tunables when a process starts, so this serves the worker processes spawned after
    it, not this one; other C libraries ignore the variable. A `glibc.malloc.hugetlb` value
    already in `GLIBC_TUNABLES` is left as it is. Returns whether the variable was changed.
    """
    tunables = [t for t in os.environ.get("GLIBC_TUNABLES", "").split(":") if t]
    if any(t.startswith("glibc.malloc.hugetlb=") for t in tunables):
        return False
    os.environ["GLIBC_TUNABLES"] = ":".join([*tunables, "glibc.malloc.hugetlb=1"])
    return True


def one_blas_thread() -> None:
    """Keep BLAS (numpy's matrix products) on one thread in this process, for good.

    A scan runs one worker process per core, so a second BLAS thread only competes with the other
    workers, and OpenBLAS's idle threads spin before they sleep, which counts as CPU time: with two
    BLAS threads per worker the voices, faces and lip screening of a 60 s gallery meeting took about
    1 CPU s more (bench/README.md, "One BLAS thread per worker"). For worker processes only: a
    library caller analysing in its own process keeps its own settings.
    """
    from threadpoolctl import threadpool_limits  # deferred with numpy's libraries, as the models are

    threadpool_limits(limits=1, user_api="blas")


def load_models() -> None:
    """Load the face and voice models into this process (about 2.5 s, once), before any file's time
    limit starts: otherwise a fresh worker's first file spends its `--time-limit` on loading them.

    A model that cannot be loaded is not an error here: the analysis of each file that needs it
    reports the problem on that file.
    """
    # Deferred: these import dlib and onnxruntime, which only processes that analyse need.
    from scanner.analysis.faces import dlib_models as faces
    from scanner.analysis.voices import encoder as speaker_encoder

    try:
        faces.preload()
        speaker_encoder.load_encoder()
    except Exception:  # noqa: BLE001 - reported per file by the analysis
        logging.getLogger(__name__).debug("models not preloaded", exc_info=True)
