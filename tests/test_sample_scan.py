"""The whole scanner on the bundled sample data, checked against its ground truth.

One real scan (real detectors, real decoding) through the command line; the ground truth in
sample_data/ground_truth.yaml says who appears and speaks where and which findings must follow.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # every test reads one whole scan of the sample


@pytest.fixture(scope="module")
def truth(sample_data: Path) -> dict:
    return yaml.safe_load((sample_data / "ground_truth.yaml").read_text())


@pytest.fixture(scope="module")
def scan(sample_data: Path, truth: dict, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sample-scan")
    expected = truth["expected_scan"]
    args = ["scan", str(sample_data / "recordings"), "--consent", str(sample_data / "consent.yaml"),
            "--as-of", expected["as_of"], "--fail-on", "high", "--out", str(out), "--workers", "2"]
    for purpose in expected["purposes"]:
        args += ["--purpose", purpose]
    proc = run_cli(*args)
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    return {"proc": proc, "doc": doc, "out": out}


def _name(path: str) -> str:
    return Path(path).name


def _sightings(doc: dict) -> dict[str, dict[str, set[str]]]:
    """person_id -> {"face": recordings with that face, "voice": recordings with that voice}."""
    seen: dict[str, dict[str, set[str]]] = {}
    for rec in doc["recordings"]:
        for kind, rows in (("face", rec["appearances"]), ("voice", rec["speech"])):
            for row in rows:
                seen.setdefault(row["person_id"], {"face": set(), "voice": set()})[kind].add(_name(rec["path"]))
    return seen


@pytest.fixture(scope="module")
def identity(scan: dict, truth: dict) -> dict[str, str]:
    """Ground-truth identity key -> person_id found by the scan (enrolled by subject, unknown by sightings)."""
    sightings = _sightings(scan["doc"])
    mapping = {}
    for key, person in truth["people"].items():
        want = {"face": set(person["face_in"]), "voice": set(person["voice_in"])}
        if person["subject_id"]:
            mapping[key] = person["subject_id"]
            continue
        candidates = [pid for pid, got in sightings.items() if pid.startswith("unknown-") and got == want]
        assert len(candidates) == 1, f"{key}: expected one unknown person seen as {want}, found {candidates}"
        mapping[key] = candidates[0]
    return mapping


def test_scan_fails_the_build_at_high(scan):
    assert scan["proc"].returncode == 1, scan["proc"].stderr
    assert "FAIL" in scan["proc"].stdout
    assert (scan["out"] / "report.html").is_file()


def test_every_recording_is_read(scan, truth):
    recs = {_name(r["path"]): r for r in scan["doc"]["recordings"]}
    assert set(recs) == set(truth["recordings"])
    for name, want in truth["recordings"].items():
        assert recs[name]["status"] == "ok", name
        assert recs[name]["media"]["kind"] == want["kind"], name


def test_every_person_is_found_by_face_and_voice_and_none_invented(scan, truth, identity):
    sightings = _sightings(scan["doc"])
    people = {p["person_id"]: p for p in scan["doc"]["people"]}
    assert len(people) == len(truth["people"]), sorted(people)
    assert len(set(identity.values())) == len(identity)
    for key, person in truth["people"].items():
        pid = identity[key]
        assert pid in people, f"{key} not found"
        got = sightings.get(pid, {"face": set(), "voice": set()})
        assert got["face"] == set(person["face_in"]), f"{key}: face seen in {got['face']}"
        assert got["voice"] == set(person["voice_in"]), f"{key}: voice heard in {got['voice']}"


def test_enrolled_people_are_matched_to_their_subject(scan, truth):
    people = {p["person_id"]: p for p in scan["doc"]["people"]}
    for key, person in truth["people"].items():
        if person["subject_id"]:
            found = people[person["subject_id"]]
            assert found["subject_id"] == person["subject_id"]
            assert found["match"]["confidence"] > 0.5
            assert found["name"]
        else:
            assert all(p["subject_id"] != key for p in people.values())


def _overlap(spans: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


def _without(start: float, end: float, holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The parts of [start, end) outside every hole."""
    pieces = [(start, end)]
    for a, b in holes:
        pieces = [p for s0, e0 in pieces for p in ((s0, min(e0, a)), (max(s0, b), e0)) if p[1] > p[0]]
    return pieces


def test_faces_and_speech_are_placed_in_time(scan, truth, identity):
    """80% of each true face appearance and speaker turn is attributed to the right person.

    Where two people speak at once the scanner gives the time to one of them, so overlapped
    speech is left out of what each turn must cover.
    """
    recs = {_name(r["path"]): r for r in scan["doc"]["recordings"]}
    for name, want in truth["recordings"].items():
        if want["kind"] == "image":
            continue
        overlaps = [(o["start"], o["end"]) for o in want.get("overlaps", [])]
        for kind, rows in (("appearances", want.get("appearances", [])), ("speech", want.get("speech", []))):
            for row in rows:
                pid = identity[row["who"]]
                spans = [(r["start"], r["end"]) for r in recs[name][kind] if r["person_id"] == pid]
                pieces = _without(row["start"], row["end"], overlaps if kind == "speech" else [])
                share = sum(_overlap(spans, a, b) for a, b in pieces) / max(sum(b - a for a, b in pieces), 1e-6)
                assert share >= 0.8, f"{name}: {row['who']} {kind} {row['start']}-{row['end']} covered {share:.0%}"


def test_exactly_the_expected_findings(scan, truth, identity):
    got = sorted((f["rule_id"], f["person_id"]) for f in scan["doc"]["findings"])
    want = sorted((f["rule_id"], identity[f["who"]]) for f in truth["expected_scan"]["findings"])
    assert got == want
    for finding in scan["doc"]["findings"]:
        assert finding["remedy"] and finding["evidence"] and len(finding["fingerprint"]) == 32
        assert finding["time_ranges"], finding["rule_id"]


def test_no_biometric_vectors_in_any_output(scan):
    def long_number_lists(node):
        if isinstance(node, list):
            if len(node) >= 16 and all(isinstance(x, float) for x in node):
                yield node
            for item in node:
                yield from long_number_lists(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from long_number_lists(value)

    assert list(long_number_lists(scan["doc"])) == []
    html = (scan["out"] / "report.html").read_text()
    # 16 or more numbers in a row would be a vector; thumbnails are the only biometric content
    assert not re.search(r"(-?\d+\.\d+[,\s]+){15}-?\d+\.\d+", html)


def test_report_is_self_contained(scan):
    html = (scan["out"] / "report.html").read_text()
    assert "Content-Security-Policy" in html
    for needle in ("http://", "https://", "src=\"//"):
        assert needle not in html
    assert "LK002" in html and "Carol Park" in html


def test_demo_runs_the_same_scan_and_passes(scan, tmp_path):
    proc = run_cli("demo", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "PASS" in proc.stdout
    doc = json.loads((tmp_path / "results.json").read_text())
    assert sorted(p["person_id"] for p in doc["people"]) == sorted(p["person_id"] for p in scan["doc"]["people"])


def test_results_follow_the_published_schema(scan):
    from importlib import resources

    import jsonschema

    schema = json.loads((resources.files("scanner.schemas") / "results.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(scan["doc"])
