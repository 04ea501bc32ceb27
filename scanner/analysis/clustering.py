"""Average-linkage clustering, shared by the face, voice and people stages.

SciPy's hierarchy rather than scikit-learn's AgglomerativeClustering (the same partition, checked by
tests/test_faces.py) because it is much cheaper to import in every worker process (bench/voices.md,
"Speed and memory").
"""

from __future__ import annotations

import threading

import numpy as np


def average_linkage(vectors: np.ndarray, threshold: float, metric: str = "euclidean") -> np.ndarray:
    """A cluster label (0, 1, ...) per row of `vectors` (n, d): average linkage, groups merged only while
    their average distance (`metric`, any of SciPy's `pdist` metrics, or "precomputed" for a square
    distance matrix) is below `threshold`."""
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) < 2:
        return np.zeros(len(x), dtype=int)
    # Deferred: SciPy's hierarchy loads only in processes that cluster (worker start-up).
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if metric == "precomputed":
        tree = linkage(squareform(x, checks=False), method="average")
    else:
        tree = linkage(x, method="average", metric=metric)
    # fcluster keeps merges at distances <= t; groups are merged only below `threshold`.
    return fcluster(tree, t=np.nextafter(threshold, -np.inf), criterion="distance") - 1


def label_groups(labels: np.ndarray) -> list[list[int]]:
    """The indexes of each label's members, groups in order of their first member."""
    out: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        out.setdefault(int(label), []).append(i)
    return list(out.values())


def import_in_background() -> threading.Thread:
    """Start importing SciPy's hierarchy (what `average_linkage` needs, about a CPU second) in a
    daemon thread, and return the thread.

    For a process that will cluster later and waits meanwhile: the scan's own process links people
    across recordings only after its workers are done, and waits for them until then.
    """

    def load() -> None:
        import scipy.cluster.hierarchy  # noqa: F401
        import scipy.spatial.distance  # noqa: F401

    thread = threading.Thread(target=load, name="likeness-import-clustering", daemon=True)
    thread.start()
    return thread
