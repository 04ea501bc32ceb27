"""junit.xml: the scan as a JUnit XML test report, for the test views of CI systems.

One test case per recording. A recording fails when a finding at or above `--fail-on` touches it
(an unreadable recording fails through its own finding, a partly decoded one through LK011);
findings below the gate and waived findings are listed in the case's <system-out>, which for a
partly decoded recording opens with what of it was analysed. Files passed over while walking folders appear as
skipped cases, so nothing vanishes from the view. Built from the results.json document.

A test case carries at most one <failure> element (holding every failing finding of that
recording), because that is what CI test views (GitLab, Jenkins, Azure DevOps) read; `failures`
then counts failed recordings, as every JUnit consumer counts it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from scanner import __version__
from scanner.models import Level, ScanResult
from scanner.outputs.document import build_document, format_ranges, ranges_by_recording

SUITE_NAME = "likeness"
RECORDING_CLASS = "likeness.recordings"
SKIPPED_CLASS = "likeness.skipped"
SCAN_CLASS = "likeness.scan"
SCAN_WIDE_CASE = "scan-wide findings"

# Characters XML 1.0 cannot carry at all (even escaped); file names may contain them.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def _xml_text(value: object) -> str:
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", str(value))


class JunitWriter:
    """junit.xml: one test case per recording (failing for its findings at or above `--fail-on`).

    `list_skipped_files`: also list files passed over while walking folders, as skipped cases.
    """

    format = "junit"
    filename = "junit.xml"

    def __init__(self, list_skipped_files: bool = True):
        self.list_skipped_files = list_skipped_files

    def write(self, result: ScanResult, out_dir: Path) -> Path:
        """Write junit.xml into `out_dir`; return its path."""
        path = out_dir / self.filename
        tree = ET.ElementTree(self.build(result))
        ET.indent(tree)
        tree.write(path, encoding="utf-8", xml_declaration=True)
        return path

    def build(self, result: ScanResult) -> ET.Element:
        """The <testsuites> element for `result`."""
        # Every finding that fails the build must show as a failure, even one below the shown floor.
        if result.fail_on is not Level.NONE and result.fail_on < result.show_from:
            result = dataclasses.replace(result, show_from=result.fail_on)
        doc = build_document(result)
        fail_on = Level(doc["summary"]["fail_on"])

        def failing(finding: dict) -> bool:
            return fail_on is not Level.NONE and Level(finding["severity"]) >= fail_on

        # Test cases in recording order; findings naming a file that is not among the recordings
        # (or no file at all) still get a case, so no failing finding can be lost.
        cases: dict[str, dict] = {rec["path"]: {"failures": [], "notes": [], "error": rec["error"],
                                                "partial": _partial_line(rec)} for rec in doc["recordings"]}

        def touched(finding: dict) -> list[str]:
            return list(ranges_by_recording(finding)) or [SCAN_WIDE_CASE]

        for finding in doc["findings"]:
            for rec in touched(finding):
                case = cases.setdefault(rec, {"failures": [], "notes": [], "error": None})
                (case["failures"] if failing(finding) else case["notes"]).append(finding)
        waived: dict[str, list[dict]] = {}
        for item in doc["suppressed"]:
            for rec in touched(item):
                cases.setdefault(rec, {"failures": [], "notes": [], "error": None})
                waived.setdefault(rec, []).append(item)

        started, finished = _parse(doc["scan"]["started_at"]), _parse(doc["scan"]["finished_at"])
        elapsed = max(0.0, (finished - started).total_seconds()) if started and finished else 0.0

        suites = ET.Element("testsuites", name=SUITE_NAME)
        suite = ET.SubElement(suites, "testsuite", name=SUITE_NAME)
        if started:
            suite.set("timestamp", started.replace(tzinfo=None).isoformat(timespec="seconds"))
        props = ET.SubElement(suite, "properties")
        for name, value in (
            ("tool_version", __version__),
            ("scan_id", doc["scan"]["id"]),
            ("purposes", ", ".join(doc["scan"]["purposes"])),
            ("as_of", doc["scan"]["as_of"]),
            ("fail_on", fail_on.value),
            ("verdict", doc["summary"]["verdict"]),
            ("consent_sha256", doc["scan"]["consent_sha256"] or ""),
        ):
            ET.SubElement(props, "property", name=name, value=_xml_text(value))

        tests = failures = skipped = 0
        for rec, case in cases.items():
            tests += 1
            classname = SCAN_CLASS if rec == SCAN_WIDE_CASE else RECORDING_CLASS
            element = ET.SubElement(suite, "testcase", classname=classname, name=_xml_text(rec))
            if case["failures"]:
                failures += 1
                element.append(_failure(case["failures"], rec, fail_on))
            out = [_describe(f, rec, "below --fail-on " + fail_on.value if fail_on is not Level.NONE
                             else "--fail-on none") for f in case["notes"]]
            out += [_describe(item, rec, "suppressed by waiver", waiver=item["waiver"]) for item in waived.get(rec, [])]
            if case["error"] and not case["failures"]:
                out.append(f"unreadable: {case['error']}")
            if case.get("partial"):
                out.insert(0, case["partial"])
            if out:
                ET.SubElement(element, "system-out").text = _xml_text("\n\n".join(out))
        if self.list_skipped_files:
            for item in doc["skipped"]:
                tests += 1
                skipped += 1
                element = ET.SubElement(suite, "testcase", classname=SKIPPED_CLASS, name=_xml_text(item["path"]))
                ET.SubElement(element, "skipped", message=_xml_text(item["reason"]))
        if doc["warnings"]:
            ET.SubElement(suite, "system-err").text = _xml_text("\n".join(doc["warnings"]))

        counts = {"tests": str(tests), "failures": str(failures), "errors": "0", "skipped": str(skipped),
                  "time": f"{elapsed:.3f}"}
        for element in (suites, suite):
            for key, value in counts.items():
                element.set(key, value)
        return suites


def _partial_line(rec: dict) -> str | None:
    """'partial: 19.8 of 20.0 s analysed; not analysed: 0:07.1-0:07.5 (cause)' for a partial recording."""
    coverage = rec.get("coverage")
    if rec["status"] != "partial" or not coverage:
        return None
    return (f"partial: {coverage['analysed_s']:.1f} of {coverage['duration_s']:.1f} s analysed; not analysed: "
            f"{format_ranges(coverage['missing']) or 'damaged packets'} ({'; '.join(coverage['causes'])})")


def _failure(findings: list[dict], recording: str, fail_on: Level) -> ET.Element:
    if len(findings) == 1:
        (only,) = findings
        message = f"{only['rule_id']} {only['rule_name']} ({only['severity']}): {only['message']}"
    else:
        rules = ", ".join(f"{f['rule_id']} {f['rule_name']} ({f['severity']})" for f in findings)
        message = f"{len(findings)} findings at or above {fail_on.value}: {rules}"
    failure = ET.Element(
        "failure",
        type=",".join(dict.fromkeys(f["rule_id"] for f in findings)),
        message=_xml_text(message),
    )
    failure.text = _xml_text("\n\n".join(_describe(f, recording, "at or above --fail-on " + fail_on.value)
                                         for f in findings))
    return failure


def _describe(finding: dict, recording: str, status: str, waiver: dict | None = None) -> str:
    lines = [
        f"[{finding['rule_id']} {finding['rule_name']}] {finding['title']}",
        f"severity: {finding['severity']} ({status})",
        f"message: {finding['message']}",
    ]
    ranges = ranges_by_recording(finding).get(recording)
    if ranges:
        lines.append(f"time: {format_ranges(ranges)}")
    if finding["person_id"]:
        lines.append(f"person: {finding['person_id']}"
                     + (f" (subject {finding['subject_id']})" if finding["subject_id"] else ""))
    lines += [f"evidence: {e}" for e in finding["evidence"]]
    lines.append(f"remedy: {finding['remedy']}")
    if waiver is not None:
        lines.append(f"waiver: {waiver['reason']} (approved by {waiver['approved_by']}, expires {waiver['expires']})")
    lines.append(f"fingerprint: {finding['fingerprint']}")
    return "\n".join(lines)


def _parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp.astimezone(dt.timezone.utc) if stamp.tzinfo else stamp
