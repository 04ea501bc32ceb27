"""Model files that ship inside registry packages, found without importing those packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def shipped_file(package: str, relative: str, ships: str) -> Path:
    """Path of `relative` (a path inside the package's folder) in the installed `package`.

    The package is located, never imported: the voice stage's model packages import torch on import,
    which this tool neither needs nor installs. `ships` names what the file is, for the messages.
    Raises FileNotFoundError when the package is not installed or the file is missing from it.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the {package} package (which ships {ships}) is not installed")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / relative
        if path.is_file():
            return path
    raise FileNotFoundError(f"{package} is installed but its {relative} is missing")
