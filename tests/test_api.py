"""The library API (`from scanner import scan, load_consent, write_reports`) and the README's example of it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

import scanner
from scanner.policy.consent.records import ConsentFileError
from tests.helpers import REPO


def readme_example() -> str:
    """The Python block under the README's "From Python" heading."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"### From Python\n+```python\n(.*?)```", text, re.S)
    assert match, "README.md has no ```python block under '### From Python'"
    return match.group(1)


def test_the_readme_example_scans_the_sample_and_writes_its_reports(sample_data, tmp_path, monkeypatch):
    # The example as written, on a copy of the sample with two of its recordings (a photo with Obama's
    # and Biden's faces, a phone call with Carol's voice and an unknown one), so that it stays quick.
    copy = tmp_path / "sample_data"
    (copy / "recordings").mkdir(parents=True)
    shutil.copy(sample_data / "consent.yaml", copy)
    shutil.copytree(sample_data / "enrol", copy / "enrol")
    for name in ("team_photo.jpg", "phone_call.wav"):
        shutil.copy(sample_data / "recordings" / name, copy / "recordings" / name)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), "README.md", "exec"), namespace)

    result = namespace["result"]
    assert isinstance(result, scanner.ScanResult)
    assert sorted(r.path.name for r in result.recordings) == ["phone_call.wav", "team_photo.jpg"]
    assert sorted({p.subject_id or "unknown" for p in result.people}) == ["carol", "obama", "unknown"]
    assert result.purposes == ["ai-training"]
    assert "carol" in {f.subject_id for f in result.failing_findings()}, "her ai-training consent is withdrawn"
    doc = json.loads((tmp_path / "likeness-report" / "results.json").read_text())
    assert {f["rule_id"] for f in doc["findings"]} == {f.rule_id for f in result.shown_findings()}
    assert (tmp_path / "likeness-report" / "report.html").stat().st_size > 0


def test_import_scanner_does_not_load_the_analysis_stack():
    code = ("import sys, scanner; heavy = [m for m in ('numpy', 'scanner.pipeline.scan', 'dlib') if m in sys.modules];"
            "print(heavy, scanner.__version__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.split()[0] == "[]", proc.stdout


def test_the_package_offers_the_api_and_names_what_it_lacks():
    import scanner.pipeline.scan  # noqa: F401 - the pipeline module lives apart from the function

    assert callable(scanner.scan) and scanner.scan.__module__ == "scanner.api"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        scanner.nothing  # noqa: B018


def test_scan_names_a_missing_input_and_load_consent_an_invalid_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.mp4"):
        scanner.scan([tmp_path / "nowhere.mp4"])
    bad = tmp_path / "consent.yaml"
    bad.write_text("subjects:\n  - id: x\n    grants: [{purposes: [], given: not-a-date}]\n")
    with pytest.raises(ConsentFileError):
        scanner.load_consent(bad)


def test_write_reports_writes_the_formats_asked_for(sample_data, tmp_path):
    result = scanner.scan(sample_data / "recordings" / "team_photo.jpg", fail_on="none")
    written = scanner.write_reports(result, tmp_path / "out", formats=["sarif", "csv"])
    assert [p.name for p in written] == ["results.sarif", "findings.csv"]
    assert not result.failing_findings()
    with pytest.raises(ValueError, match="unknown format"):
        scanner.write_reports(result, tmp_path / "out", formats=["pdf"])
