"""findings.csv: one row per finding per recording, for spreadsheets and ticket imports.

Open (shown) findings and waived ones (status "suppressed", with the waiver's reason and expiry)
alike. Built from the results.json document. Cells that a spreadsheet would run as a formula are
neutralised with a leading apostrophe (OWASP: CSV injection), since file names and consent-record
names come from outside.
"""

from __future__ import annotations

import csv
from pathlib import Path

from scanner.models import ScanResult
from scanner.outputs.document import build_document, format_ranges, ranges_by_recording

COLUMNS = (
    "fingerprint", "rule_id", "rule_name", "severity", "status", "person_id", "subject_id", "recording",
    "start", "end", "time_ranges", "title", "message", "remedy", "waiver_reason", "waiver_expires", "purposes",
)

#: A cell starting with one of these is read as a formula by Excel, LibreOffice or Google Sheets.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


def neutralise(value: object) -> str:
    """`value` as a cell that no spreadsheet evaluates (a leading apostrophe when it could be a formula)."""
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


class CsvWriter:
    """findings.csv (see the module docstring); `excel_bom` writes a byte order mark for Excel."""

    format = "csv"
    filename = "findings.csv"

    def __init__(self, delimiter: str = ",", excel_bom: bool = False):
        self.delimiter = delimiter
        self.excel_bom = excel_bom  # a UTF-8 byte order mark makes Excel read non-ASCII names correctly

    def write(self, result: ScanResult, out_dir: Path) -> Path:
        """Write findings.csv into `out_dir`; return its path."""
        path = out_dir / self.filename
        encoding = "utf-8-sig" if self.excel_bom else "utf-8"
        with path.open("w", encoding=encoding, errors="backslashreplace", newline="") as handle:
            writer = csv.writer(handle, delimiter=self.delimiter, quoting=csv.QUOTE_MINIMAL)
            writer.writerow(COLUMNS)
            for row in self.rows(result):
                writer.writerow([neutralise(row[c]) for c in COLUMNS])
        return path

    def rows(self, result: ScanResult) -> list[dict]:
        """The rows as dicts keyed by column, before the formula guard."""
        doc = build_document(result)
        rows = []
        for finding in doc["findings"]:
            rows += _rows(finding, "open", None)
        for item in doc["suppressed"]:
            rows += _rows(item, "suppressed", item["waiver"])
        return rows


def _rows(finding: dict, status: str, waiver: dict | None) -> list[dict]:
    by_recording = ranges_by_recording(finding) or {"": []}
    rows = []
    for recording, ranges in by_recording.items():
        rows.append({
            "fingerprint": finding["fingerprint"],
            "rule_id": finding["rule_id"],
            "rule_name": finding["rule_name"],
            "severity": finding["severity"],
            "status": status,
            "person_id": finding["person_id"],
            "subject_id": finding["subject_id"],
            "recording": recording,
            "start": min((r["start"] for r in ranges), default=None),
            "end": max((r["end"] for r in ranges), default=None),
            "time_ranges": format_ranges(ranges),
            "title": finding["title"],
            "message": finding["message"],
            "remedy": finding["remedy"],
            "waiver_reason": waiver["reason"] if waiver else None,
            "waiver_expires": waiver["expires"] if waiver else None,
            "purposes": ";".join(finding.get("purposes", [])),
        })
    return rows
