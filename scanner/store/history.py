"""Scan history: one row per scan, its people and findings, and a snapshot to re-render reports from.

- `scans`: status (running, complete, interrupted, failed), inputs, options, counters (analysed,
  reused from the cache), the results document and a snapshot of the scan result without
  biometric vectors (`scanner.store.blobs.strip_biometrics`), so that `likeness report` can
  re-render it in any format, and the recording it is analysing in its own process (`analysing`),
  so that a file that killed the scan is analysed in a separate process by the next run.
- `people`, `findings` (suppressed ones with the waiver applied), and `analysis_subjects` (which
  enrolled subject was found in which analysis, for purging a subject).
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from scanner.models import ScanResult
from scanner.store.blobs import BLOB_FORMAT, dumps, loads, strip_biometrics
from scanner.store.connection import Database, StoreError, utc_now


@dataclass
class ScanRow:
    """One scan as `likeness history` lists it (times are ISO 8601 text, `media_seconds` in seconds)."""

    scan_id: str
    started_at: str
    finished_at: str | None
    status: str
    inputs: list[str]
    recordings_total: int
    analysed: int
    reused: int
    media_seconds: float
    summary: dict | None


class ScanHistory(Database):
    """The `scans`, `people`, `findings` and `analysis_subjects` tables."""

    def begin_scan(self, scan_id: str, started_at: str, inputs: list[str], options: dict, total: int,
                   consent_sha256: str | None) -> None:
        """Record a scan as running in this process (scans whose process has gone become interrupted)."""
        with self.transaction():
            self._close_abandoned_scans()
            self.db.execute(
                "INSERT INTO scans (scan_id, started_at, status, pid, inputs_json, options_json, consent_sha256, "
                "recordings_total) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (scan_id, started_at, os.getpid(), json.dumps(inputs), json.dumps(options, default=str),
                 consent_sha256, total),
            )

    def _close_abandoned_scans(self) -> None:
        """Scans still 'running' whose process is gone were killed: mark them interrupted."""
        for scan_id, pid in self.db.execute("SELECT scan_id, pid FROM scans WHERE status='running'").fetchall():
            if pid is None or not _alive(pid):
                self.db.execute("UPDATE scans SET status='interrupted' WHERE scan_id=?", (scan_id,))

    def set_scan_status(self, scan_id: str, status: str) -> None:
        """Set a scan's final status (complete, interrupted, failed) and its finishing time."""
        with self.transaction():
            self.db.execute("UPDATE scans SET status=?, finished_at=?, analysing=NULL WHERE scan_id=?",
                            (status, utc_now(), scan_id))

    def note_analysing(self, scan_id: str, sha256: str | None) -> None:
        """Record the recording `scan_id` is now analysing in its own process (None: none).

        If the process dies there (a decoder fault, the out-of-memory killer), the mark outlives it
        and `crashed_on` hands the recording to the next scan, which analyses it in a separate
        process, so one hostile file cannot end every rerun of the scan the same way.
        """
        with self.transaction():
            self.db.execute("UPDATE scans SET analysing=? WHERE scan_id=?", (sha256, scan_id))

    def crashed_on(self) -> set[str]:
        """Content hashes of recordings that scans died analysing, and that have no good analysis since."""
        rows = self.db.execute(
            "SELECT DISTINCT analysing FROM scans WHERE analysing IS NOT NULL AND status != 'running'"
        ).fetchall()
        return {sha256 for (sha256,) in rows}

    def finish_scan(self, result: ScanResult, document: dict, settings_hash: str, tool_version: str) -> None:
        """Store the scan's decisions (people, findings, snapshot) in one transaction.

        `document` is the scan's results document (`scanner.outputs.document.build_document`), which
        `likeness report` and `diff` read back.
        """
        snapshot = dumps(strip_biometrics(result))
        people_docs = {p["person_id"]: p for p in document["people"]}
        with self.transaction():
            self.db.execute(
                "UPDATE scans SET status='complete', finished_at=?, summary_json=?, document_json=?, "
                "snapshot_format=?, snapshot=? WHERE scan_id=?",
                (result.finished_at, json.dumps(document["summary"]), json.dumps(document), BLOB_FORMAT, snapshot,
                 result.scan_id),
            )
            for person in result.people:
                risk = person.risk
                self.db.execute(
                    "INSERT OR REPLACE INTO people VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (result.scan_id, person.person_id, person.subject_id, person.display_name,
                     risk.combined_tier.value if risk else None, risk.score if risk else None,
                     json.dumps(people_docs.get(person.person_id, {}))),
                )
                if person.subject_id:
                    for sha in {_sha_of(result, rec) for rec in person.recordings} - {None}:
                        self.db.execute(
                            "INSERT OR IGNORE INTO analysis_subjects SELECT sha256, settings_hash, tool_version, ? "
                            "FROM analyses WHERE sha256=? AND settings_hash=? AND tool_version=?",
                            (person.subject_id, sha, settings_hash, tool_version),
                        )
            shown = {f["fingerprint"]: f for f in document["findings"]}
            for finding in result.findings:
                doc = shown.get(finding.fingerprint) or {"fingerprint": finding.fingerprint,
                                                           "rule_id": finding.rule_id,
                                                           "severity": finding.severity.value,
                                                           "title": finding.title}
                self._insert_finding(result.scan_id, finding, doc, None)
            for item, doc in zip(result.suppressed, document["suppressed"]):
                self._insert_finding(result.scan_id, item.finding, doc, doc.get("waiver"))

    def _insert_finding(self, scan_id: str, finding, doc: dict, waiver: dict | None) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (scan_id, finding.fingerprint, finding.rule_id, finding.severity.value, finding.person_id,
             finding.subject_id, finding.title, int(waiver is not None),
             json.dumps(waiver) if waiver is not None else None, json.dumps(doc)),
        )

    def scans(self, limit: int | None = None) -> list[ScanRow]:
        """The scans, most recently started first (at most `limit`); abandoned running ones are marked interrupted."""
        self._close_abandoned_scans_quietly()
        sql = ("SELECT scan_id, started_at, finished_at, status, inputs_json, recordings_total, analysed, reused, "
               "media_seconds, summary_json FROM scans ORDER BY started_at DESC, rowid DESC")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [
            ScanRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8],
                    json.loads(r[9]) if r[9] else None)
            for r in self.db.execute(sql).fetchall()
        ]

    def _close_abandoned_scans_quietly(self) -> None:
        try:
            with self.transaction():
                self._close_abandoned_scans()
        except sqlite3.OperationalError:
            pass  # read-only or busy: listing still works

    def scan(self, scan_id: str) -> ScanRow:
        """The scan with this id, or the only one it uniquely prefixes; 'latest' and 'previous' also work."""
        rows = self.scans()
        if scan_id in ("latest", "last", "previous"):
            complete = [r for r in rows if r.status == "complete"]
            index = 0 if scan_id != "previous" else 1
            if len(complete) <= index:
                raise StoreError(f"no {scan_id} complete scan in {self.path}")
            return complete[index]
        exact = [r for r in rows if r.scan_id == scan_id]
        matches = exact or [r for r in rows if r.scan_id.startswith(scan_id)]
        if not matches:
            raise StoreError(f"no scan '{scan_id}' in {self.path} (see `likeness history`)")
        if len(matches) > 1:
            raise StoreError(f"'{scan_id}' matches {len(matches)} scans: give more of the id")
        return matches[0]

    def load_result(self, scan_id: str) -> ScanResult:
        """The stored scan result (without biometric vectors), for re-rendering reports."""
        row = self.scan(scan_id)
        data = self.db.execute("SELECT snapshot_format, snapshot FROM scans WHERE scan_id=?",
                               (row.scan_id,)).fetchone()
        if row.status != "complete" or data[1] is None:
            raise StoreError(f"scan {row.scan_id} is {row.status}: it has no results to report")
        if data[0] != BLOB_FORMAT:
            raise StoreError(f"scan {row.scan_id} was stored in an older format; scan again")
        return loads(data[1])

    def findings(self, scan_id: str, include_suppressed: bool = False) -> list[dict]:
        """The findings of a scan as the results document gives them, with `suppressed` (and `waiver`) added."""
        sql = "SELECT doc_json, suppressed, waiver_json FROM findings WHERE scan_id=?"
        if not include_suppressed:
            sql += " AND suppressed=0"
        out = []
        for doc, suppressed, waiver in self.db.execute(sql + " ORDER BY rowid", (scan_id,)).fetchall():
            item = json.loads(doc)
            item["suppressed"] = bool(suppressed)
            if waiver:
                item["waiver"] = json.loads(waiver)
            out.append(item)
        return out

    def recording_statuses(self, scan_id: str) -> dict[str, str]:
        """Each recording of a scan (its path as stored) and its status: ok, partial, unreadable."""
        return dict(self.db.execute(
            "SELECT path, status FROM scan_recordings WHERE scan_id=? ORDER BY path", (scan_id,)).fetchall())

    def people(self, scan_id: str) -> list[dict]:
        """The people of a scan: person_id, subject_id, name, combined_tier and score."""
        return [
            {"person_id": r[0], "subject_id": r[1], "name": r[2], "combined_tier": r[3], "score": r[4]}
            for r in self.db.execute(
                "SELECT person_id, subject_id, name, combined_tier, score FROM people WHERE scan_id=? ORDER BY rowid",
                (scan_id,),
            ).fetchall()
        ]


def _sha_of(result: ScanResult, path: Path) -> str | None:
    for rec in result.recordings:
        if rec.path == path:
            return rec.sha256 or None
    return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is not running either.
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().split(b")")[-1].split()[0] != b"Z"
    except OSError:
        return True
