"""Copies of model files prepared once and kept between runs, so that worker processes start quickly.

Each worker process loads the face detector and the speaker encoder. Preparing them from the files
their packages ship (dlib decoding its detector, the speaker encoder's graph built with the `onnx`
package) is slow in every worker process (bench/voices.md, "Speed and memory"); a prepared copy
loads quickly. The copies live under
`$XDG_CACHE_HOME/likeness` (or `~/.cache/likeness`). They are derived only from installed packages,
never downloaded, hold no data from any recording, and are named by what they were made from, so a
new package version gets new copies. A cache that is missing, unreadable or unwritable is skipped:
the model is prepared again in memory and the scan goes on.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable


def cache_path(name: str) -> Path | None:
    """The path for the prepared copy called `name`, or None when no cache folder is known
    (neither $XDG_CACHE_HOME nor a home directory)."""
    home = os.path.expanduser("~")
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(home, ".cache") if home != "~" else None)
    return Path(base) / "likeness" / name if base else None


def store(path: Path | None, write: Callable[[Path], None]) -> None:
    """Keep a prepared copy at `path`: `write(temporary_path)` writes it, then it is renamed into place
    (concurrent workers never see half a file). Failures (no space, read-only cache) are ignored."""
    if path is None:
        return
    partial = path.with_name(f"{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(partial)
        os.replace(partial, path)
    except (OSError, RuntimeError):
        partial.unlink(missing_ok=True)
