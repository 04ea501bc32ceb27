"""What tests share besides fixtures: where the sample data and the development set are, and the
command line run as a user runs it. Import from here (`from tests.helpers import run_cli`); the
fixtures built on these live in conftest.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DATA = REPO / "sample_data"
DEVSET = REPO.parent / "shared" / "devset"


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run the real command line in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
