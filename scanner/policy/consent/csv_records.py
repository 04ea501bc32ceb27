"""Consent records from a spreadsheet: one CSV row per consent grant.

Compliance teams keep grants in spreadsheets. Export the sheet as CSV with a header row; columns
(only `subject_id`, `name` and, for a grant, `purposes` and `given` are required):

    subject_id, name, purposes, given, expires, withdrawn, max_risk_face, max_risk_voice,
    evidence, evidence_sha256, jurisdiction, face_enrolment, voice_enrolment

Lists (purposes, jurisdiction, enrolment files) are separated by `;`. Rows with the same
`subject_id` are grants of the same subject; a row with empty `purposes` records a subject with
no grant. Problems are reported with the CSV line number, as for the YAML format.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scanner.media.fileformat import FileFormatError, Problem, dotted, read_text

COLUMNS = (
    "subject_id", "name", "purposes", "given", "expires", "withdrawn", "max_risk_face", "max_risk_voice",
    "evidence", "evidence_sha256", "jurisdiction", "face_enrolment", "voice_enrolment",
)
_GRANT_FIELDS = {"given": "given", "expires": "expires", "withdrawn": "withdrawn", "evidence": "evidence",
                 "evidence_sha256": "evidence_sha256"}


def _split(cell: str) -> list[str]:
    return [part.strip() for part in cell.split(";") if part.strip()]


@dataclass(frozen=True)
class GrantTable:
    """A CSV of grants as the data of a consent document, before validation.

    data: {"subjects": [...]} in the YAML format's shape.
    locate: the CSV line of a field, by its location in `data` (None when no row holds it).
    column: the CSV column behind a field location, for naming it in a problem.
    """

    data: dict
    locate: Callable[[tuple], int | None]
    column: Callable[[tuple], str]


def read_grant_table(path: Path) -> GrantTable:
    """Read a CSV of grants; raise FileFormatError (by CSV line) for an unreadable file or bad header.

    Validating the rows (dates, purposes, ids) is `scanner.policy.consent.records.load_consent`'s job.
    """
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in COLUMNS]
    missing = [c for c in ("subject_id", "name") if c not in header]
    if unknown or missing:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        raise FileFormatError([Problem(path, 1, "", "; ".join(parts) + f" (columns: {', '.join(COLUMNS)})")])

    subjects: dict[str, dict] = {}
    lines: dict[tuple, int] = {}  # key path -> CSV line
    for row in reader:
        line = reader.line_num
        sid = (row.get("subject_id") or "").strip()
        if sid not in subjects:
            index = len(subjects)
            subjects[sid] = {"id": sid, "name": (row.get("name") or "").strip(), "jurisdiction": [],
                             "enrolment": {"faces": [], "voices": []}, "grants": []}
            lines[("subjects", index)] = line
        subject = subjects[sid]
        index = list(subjects).index(sid)
        jurisdictions = _split(row.get("jurisdiction") or "")
        subject["jurisdiction"] += [j for j in jurisdictions if j not in subject["jurisdiction"]]
        subject["enrolment"]["faces"] += _split(row.get("face_enrolment") or "")
        subject["enrolment"]["voices"] += _split(row.get("voice_enrolment") or "")
        for kind in ("faces", "voices"):
            for j in range(len(subject["enrolment"][kind])):
                lines.setdefault(("subjects", index, "enrolment", kind, j), line)
        purposes = _split(row.get("purposes") or "")
        if not purposes and not (row.get("given") or "").strip():
            continue
        grant: dict = {"purposes": purposes}
        for column, field in _GRANT_FIELDS.items():
            value = (row.get(column) or "").strip()
            if value:
                grant[field] = value
        risk = {m: (row.get(f"max_risk_{m}") or "").strip() for m in ("face", "voice")}
        if any(risk.values()):
            grant["max_risk"] = {m: v for m, v in risk.items() if v}
        lines[("subjects", index, "grants", len(subject["grants"]))] = line
        subject["grants"].append(grant)

    def locate(loc: tuple) -> int | None:
        for depth in range(len(loc), 0, -1):
            if tuple(loc[:depth]) in lines:
                return lines[tuple(loc[:depth])]
        return None

    return GrantTable({"subjects": list(subjects.values())}, locate, _csv_field)


def _csv_field(loc: tuple) -> str:
    """Name the CSV column behind a model field where there is one."""
    names = {"id": "subject_id", "faces": "face_enrolment", "voices": "voice_enrolment"}
    last = [part for part in loc if isinstance(part, str)]
    if len(loc) >= 2 and loc[-2] == "max_risk":
        return f"max_risk_{loc[-1]}"
    if last:
        return names.get(last[-1], last[-1])
    return dotted(loc)
