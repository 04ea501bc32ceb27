"""A digest of the package's own source code, for caches that must not outlive the code that filled them."""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def source_digest(*parts: str) -> str:
    """SHA-256 (hex) of the Python source under `parts` of the scanner package.

    Each part is a path relative to the package: a module (`"identity/people.py"`) or a sub-package
    (`"analysis"`, every `.py` file under it). Files are read in sorted order, each preceded by its
    relative path, so a moved or renamed module changes the digest too. A part that does not exist
    raises FileNotFoundError: a cache key must never silently stop covering code.
    """
    digest = hashlib.sha256()
    for part in parts:
        path = PACKAGE_ROOT / part
        if path.is_dir():
            files = sorted(path.rglob("*.py"))
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(f"{path}: no such module or package in scanner/")
        for file in files:
            digest.update(file.relative_to(PACKAGE_ROOT).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()
