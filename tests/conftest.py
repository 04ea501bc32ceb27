"""Shared test fixtures: the sample data and the optional development set (skipping when absent).

Plain helpers (paths, `run_cli`) are in tests/helpers.py. Markers (registered in pyproject.toml):
`devset` and `browser` are given here to every test that uses the fixture of that name; tests that
read ../shared/devset without the fixture, and `slow` tests, carry the marker themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import DEVSET, SAMPLE_DATA


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture in ("devset", "browser"):
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(fixture)
