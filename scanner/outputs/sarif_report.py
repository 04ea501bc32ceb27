"""results.sarif: the scan as SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps).

One run; rules come from the policy's rule table, results from the shown findings plus the waived
ones (as suppressed results). Media have no lines, so locations name the recording only and the
time ranges go into the message. Everything is built from the results.json document, so no
biometric vector can reach this file and all formats agree.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import quote

from scanner import __version__
from scanner.media.objstore import is_url
from scanner.models import Level, ScanResult
from scanner.outputs.document import build_document, format_ranges, ranges_by_recording
from scanner.policy.rules import RULES

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT_KEY = "likenessFingerprint/v1"
ROOT_BASE_ID = "SRCROOT"

#: GitHub code scanning reads `security-severity` (a number as a string) to rank alerts.
SECURITY_SEVERITY = {
    Level.CRITICAL: "9.5",
    Level.HIGH: "8.0",
    Level.MEDIUM: "5.5",
    Level.LOW: "3.0",
    Level.NONE: "0.0",
}

#: SARIF result levels by severity.
SARIF_LEVEL = {
    Level.CRITICAL: "error",
    Level.HIGH: "error",
    Level.MEDIUM: "warning",
    Level.LOW: "note",
    Level.NONE: "none",
}

RULE_TAGS = ["security", "privacy", "biometric-data"]


# --------------------------------------------------------------------------------------------
# Helpers shared by the tabular writers (JUnit, CSV): time codes as the HTML report shows them.
# --------------------------------------------------------------------------------------------


# --------------------------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------------------------


class SarifWriter:
    """results.sarif (SARIF 2.1.0) for code-scanning dashboards: rules, results and recordings as artifacts.

    `include_suppressed`: also list waived findings, marked suppressed with the waiver's justification.
    """

    format = "sarif"
    filename = "results.sarif"

    def __init__(self, include_suppressed: bool = True):
        self.include_suppressed = include_suppressed

    def write(self, result: ScanResult, out_dir: Path) -> Path:
        """Write results.sarif into `out_dir`; return its path."""
        path = out_dir / self.filename
        text = json.dumps(self.build(result), indent=2, ensure_ascii=False) + "\n"
        # Undecodable file names reach us as lone surrogates: keep them visible, never crash.
        path.write_text(text, encoding="utf-8", errors="backslashreplace")
        return path

    def build(self, result: ScanResult) -> dict:
        """The SARIF log for `result` as a plain dict."""
        doc = build_document(result)
        root = result.root.resolve() if result.root is not None else None
        locator = _Locator(root)

        rules, rule_index = _rules(doc)
        artifacts = []
        artifact_index: dict[str, int] = {}
        for rec in doc["recordings"]:
            artifact_index[rec["path"]] = len(artifacts)
            artifacts.append(_artifact(rec, locator))

        def location_of(recording: str) -> dict:
            if recording not in artifact_index:  # a finding naming a file that was not scanned
                artifact_index[recording] = len(artifacts)
                artifacts.append({"location": locator.artifact_location(recording)})
            return {
                "physicalLocation": {
                    "artifactLocation": {
                        **locator.artifact_location(recording),
                        "index": artifact_index[recording],
                    }
                }
            }

        results = [_result(f, rule_index, location_of, locator) for f in doc["findings"]]
        if self.include_suppressed:
            for item in doc["suppressed"]:
                sarif_result = _result(item, rule_index, location_of, locator)
                sarif_result["suppressions"] = [_suppression(item["waiver"])]
                results.append(sarif_result)

        run: dict = {
            "tool": {
                "driver": {
                    "name": "likeness",
                    "version": __version__,
                    "semanticVersion": __version__,
                    "rules": rules,
                }
            },
            "invocations": [_invocation(doc, result)],
            "artifacts": artifacts,
            "results": results,
            "columnKind": "unicodeCodePoints",
            "properties": {
                "scan_id": doc["scan"]["id"],
                "schema_version": doc["schema_version"],
                "purposes": doc["scan"]["purposes"],
                "as_of": doc["scan"]["as_of"],
                "consent_sha256": doc["scan"]["consent_sha256"],
                "summary": doc["summary"],
            },
        }
        if root is not None:
            run["originalUriBaseIds"] = {ROOT_BASE_ID: {"uri": _directory_uri(root)}}
        return {"$schema": SARIF_SCHEMA_URI, "version": SARIF_VERSION, "runs": [run]}


def _rules(doc: dict) -> tuple[list[dict], dict[str, int]]:
    rules = [_rule_descriptor(r.id, r.name, r.title, r.severity, r.remedy) for r in RULES]
    index = {r["id"]: i for i, r in enumerate(rules)}
    # A finding whose rule is not (yet) in the table still gets a descriptor, from its own fields.
    for finding in [*doc["findings"], *doc["suppressed"]]:
        if finding["rule_id"] not in index:
            index[finding["rule_id"]] = len(rules)
            rules.append(_rule_descriptor(finding["rule_id"], finding["rule_name"], finding["title"],
                                          Level(finding["severity"]), finding["remedy"]))
    return rules, index


def _rule_descriptor(rule_id: str, name: str, title: str, severity: Level, remedy: str) -> dict:
    return {
        "id": rule_id,
        "name": name,
        "shortDescription": {"text": title},
        "fullDescription": {"text": f"{title} (default severity: {severity.value})."},
        "help": {"text": remedy, "markdown": f"**Remedy:** {remedy}"},
        "defaultConfiguration": {"level": SARIF_LEVEL[severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[severity],
            "severity": severity.value,
            "tags": [*RULE_TAGS, name],
        },
    }


def _result(finding: dict, rule_index: dict[str, int], location_of, locator: _Locator) -> dict:
    severity = Level(finding["severity"])
    ranges = ranges_by_recording(finding)
    return {
        "ruleId": finding["rule_id"],
        "ruleIndex": rule_index[finding["rule_id"]],
        "level": SARIF_LEVEL[severity],
        "message": {"text": _message(finding, ranges, locator)},
        "locations": [location_of(rec) for rec in ranges],
        "partialFingerprints": {FINGERPRINT_KEY: finding["fingerprint"]},
        "properties": {
            "severity": severity.value,
            "security-severity": SECURITY_SEVERITY[severity],
            "title": finding["title"],
            "person_id": finding["person_id"],
            "subject_id": finding["subject_id"],
            "evidence": list(finding["evidence"]),
            "time_ranges": [
                {"recording": locator.display(r["recording"]), "start": r["start"], "end": r["end"],
                 "timecode": format_ranges([r])}
                for r in finding["time_ranges"]
            ],
            "remedy": finding["remedy"],
            "purposes": list(finding.get("purposes", [])),
        },
    }


def _message(finding: dict, ranges: dict[str, list[dict]], locator: _Locator) -> str:
    message = finding["message"].rstrip()
    timed = {rec: rs for rec, rs in ranges.items() if rs}
    if not timed:
        return message
    if len(ranges) == 1:
        (only,) = timed.values()
        return f"{message} At {format_ranges(only)}."
    where = "; ".join(f"{locator.display(rec)} at {format_ranges(rs)}" for rec, rs in timed.items())
    return f"{message} In {where}."


def _suppression(waiver: dict) -> dict:
    return {
        "kind": "external",
        "status": "accepted",
        "justification": waiver["reason"],
        "properties": {
            "approved_by": waiver["approved_by"],
            "expires": waiver["expires"],
            "fingerprint": waiver["fingerprint"],
            "rule_id": waiver["rule_id"],
            "person_id": waiver["person_id"],
            "path": waiver["path"],
        },
    }


def _artifact(rec: dict, locator: _Locator) -> dict:
    artifact: dict = {"location": locator.artifact_location(rec["path"]), "length": rec["size_bytes"]}
    if rec["sha256"]:
        artifact["hashes"] = {"sha-256": rec["sha256"]}
    props: dict = {"status": rec["status"]}
    for key in ("purposes", "recorded", "retention_days"):
        if rec.get(key) is not None:
            props[key] = rec[key]
    if rec["error"]:
        props["error"] = rec["error"]
    if rec["media"]:
        props["media_kind"] = rec["media"]["kind"]
        props["duration_s"] = rec["media"]["duration_s"]
    coverage = rec.get("coverage")
    if coverage:
        props["analysed_s"] = coverage["analysed_s"]
        if coverage["missing"]:
            props["not_analysed"] = coverage["missing"]
            props["not_analysed_causes"] = coverage["causes"]
    artifact["properties"] = props
    return artifact


def _invocation(doc: dict, result: ScanResult) -> dict:
    failing = doc["summary"]["failing_findings"]
    notifications = [{"level": "warning", "message": {"text": w}} for w in doc["warnings"]]
    notifications += [
        {"level": "note", "message": {"text": f"Not scanned: {s['path']} ({s['reason']})"}} for s in doc["skipped"]
    ]
    invocation: dict = {
        # The scan ran to the end; whether it passes the gate is the exit code.
        "executionSuccessful": True,
        "exitCode": 1 if failing else 0,
        "exitCodeDescription": (
            f"{failing} finding(s) at or above --fail-on {doc['summary']['fail_on']}" if failing
            else f"no finding at or above --fail-on {doc['summary']['fail_on']}"
        ),
        "properties": {
            "fail_on": doc["summary"]["fail_on"],
            "verdict": doc["summary"]["verdict"],
            "failing_findings": failing,
            "show_from": result.show_from.value,
        },
    }
    for key, value in (("startTimeUtc", doc["scan"]["started_at"]), ("endTimeUtc", doc["scan"]["finished_at"])):
        stamp = _utc(value)
        if stamp:
            invocation[key] = stamp
    if notifications:
        invocation["toolExecutionNotifications"] = notifications
    return invocation


def _utc(value: str | None) -> str | None:
    if not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return stamp.isoformat(timespec="seconds") + "Z"


def _uri_path(text: str) -> str:
    # Percent-encode everything but the separators; undecodable names keep their original bytes.
    try:
        return quote(text, safe="/", errors="surrogateescape")
    except UnicodeEncodeError:
        return quote(text, safe="/", errors="backslashreplace")


def _directory_uri(path: Path) -> str:
    uri = "file://" + _uri_path(path.as_posix())
    return uri if uri.endswith("/") else uri + "/"


class _Locator:
    """Recording paths as SARIF artifact locations, relative to the scan root when possible."""

    def __init__(self, root: Path | None):
        self.root = root

    def relative(self, recording: str) -> str | None:
        if self.root is None or is_url(recording):  # objects are named by their whole URL
            return None
        try:
            return Path(recording).resolve().relative_to(self.root).as_posix()
        except (ValueError, OSError):
            return None

    def display(self, recording: str) -> str:
        return self.relative(recording) or recording

    def artifact_location(self, recording: str) -> dict:
        rel = self.relative(recording)
        if rel is not None and rel != ".":
            return {"uri": _uri_path(rel), "uriBaseId": ROOT_BASE_ID}
        if is_url(recording):
            return {"uri": recording}
        absolute = Path(recording).resolve() if not Path(recording).is_absolute() else Path(recording)
        return {"uri": "file://" + _uri_path(absolute.as_posix())}
