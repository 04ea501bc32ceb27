"""results.json: the machine-readable scan, in the versioned document shape."""

from __future__ import annotations

import json
from pathlib import Path

from scanner.models import ScanResult
from scanner.outputs.document import build_document


class JsonWriter:
    """results.json: the results document (`build_document`), ASCII-escaped."""

    format = "json"
    filename = "results.json"

    def write(self, result: ScanResult, out_dir: Path) -> Path:
        """Write results.json into `out_dir`; return its path."""
        path = out_dir / self.filename
        # ASCII escapes keep file names that are not valid UTF-8 exact (json.loads gives them back).
        path.write_text(json.dumps(build_document(result), indent=2, ensure_ascii=True) + "\n", encoding="ascii")
        return path
