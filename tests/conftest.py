"""Shared test fixtures: locations of the sample data and the optional development set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session", autouse=True)
def session_store(tmp_path_factory) -> Path:
    """The scan database every command without `--store` uses in this test session (LIKENESS_STORE).

    Tests never write into the checkout, and a recording analysed by one test is a cache hit for the
    next, as it is for a user who scans an archive again.
    """
    path = tmp_path_factory.mktemp("store") / "scan.db"
    saved = os.environ.get("LIKENESS_STORE")
    os.environ["LIKENESS_STORE"] = str(path)
    yield path
    if saved is None:
        os.environ.pop("LIKENESS_STORE", None)
    else:
        os.environ["LIKENESS_STORE"] = saved


@pytest.fixture(scope="session")
def sample_data() -> Path:
    if not (SAMPLE_DATA / "consent.yaml").is_file():
        pytest.skip("sample_data/ is not present")
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def devset() -> Path:
    if not DEVSET.is_dir():
        pytest.skip(f"development set not present at {DEVSET}")
    return DEVSET
