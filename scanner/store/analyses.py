"""The analysis cache: each recording's analysis, kept by content, settings and analysis code.

An analysis is keyed by (sha256 of the content, `settings_hash` of the analysis settings,
`analysis_version` of the code) and stored as one blob (`scanner.store.blobs`), each in its own
transaction, so the database never holds half a recording and a rescan of unchanged content under
the same settings and code reuses it instead of analysing it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from scanner import __version__
from scanner.models import RecordingAnalysis, RecordingStatus
from scanner.source_digest import source_digest
from scanner.store.blobs import BLOB_FORMAT, dumps, loads
from scanner.store.connection import Database, utc_now

#: The code whose output the analysis cache holds: decoding, the analysis stages and their records.
ANALYSIS_CODE = ("media", "analysis", "models")


def settings_hash(settings) -> str:
    """A stable hash (16 hex digits) of the analysis settings (a dataclass): part of every cache key."""
    text = json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def analysis_version() -> str:
    """The tool version plus a hash of the analysis code: any change to it invalidates cached analyses."""
    return f"{__version__}+{source_digest(*ANALYSIS_CODE)[:12]}"


def storable_path(path: Path) -> str:
    """A path as SQLite text: bytes that are not UTF-8 (kept by Python as surrogates) become escapes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class AnalysisCache(Database):
    """The `analyses` and `recordings` tables, and each scan's recordings (`scan_recordings`)."""

    def lookup_analysis(self, sha256: str, settings_hash: str, tool_version: str) -> RecordingAnalysis | None:
        """The analysis stored under this key, or None (also for a stale or damaged entry: a cache miss)."""
        row = self.db.execute(
            "SELECT blob_format, blob FROM analyses WHERE sha256=? AND settings_hash=? AND tool_version=?",
            (sha256, settings_hash, tool_version),
        ).fetchone()
        if row is None or row[0] != BLOB_FORMAT:
            return None
        try:
            analysis = loads(row[1])
        except Exception:  # noqa: BLE001 - a stale or damaged entry is a cache miss, not a failure
            return None
        if not isinstance(analysis, RecordingAnalysis) or analysis.sha256 != sha256:
            return None
        self.db.execute(
            "UPDATE analyses SET last_used_at=? WHERE sha256=? AND settings_hash=? AND tool_version=?",
            (utc_now(), sha256, settings_hash, tool_version),
        )
        return analysis

    def stored_analyses(self, sha256: str) -> list[RecordingAnalysis]:
        """Every stored analysis of this content (any settings or tool version), most recently used first.

        For `likeness redact`, which needs the encodings and voiceprints of the people it removed
        (the scan snapshots hold none) to recognise them in the copies.
        """
        rows = self.db.execute(
            "SELECT blob_format, blob FROM analyses WHERE sha256=? ORDER BY last_used_at DESC, rowid DESC",
            (sha256,),
        ).fetchall()
        found = []
        for blob_format, blob in rows:
            if blob_format != BLOB_FORMAT:
                continue
            try:
                analysis = loads(blob)
            except Exception:  # noqa: BLE001 - a damaged entry is skipped, as a cache miss is
                continue
            if isinstance(analysis, RecordingAnalysis) and analysis.sha256 == sha256:
                found.append(analysis)
        return found

    def save_analysis(
        self,
        analysis: RecordingAnalysis,
        settings_hash: str,
        tool_version: str,
        scan_id: str | None = None,
    ) -> None:
        """Store one recording's analysis (and its place in scan `scan_id`, if given) in a single transaction.

        An unreadable recording is listed in the scan but not cached: the next scan tries it again.
        """
        now = utc_now()
        media_json = json.dumps(dataclasses.asdict(analysis.media), default=str) if analysis.media else None
        blob = dumps(analysis)
        with self.transaction():
            if analysis.sha256:
                self.db.execute(
                    "INSERT INTO recordings (sha256, size_bytes, media_json, first_seen, last_seen) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(sha256) DO UPDATE SET last_seen=excluded.last_seen, "
                    "media_json=COALESCE(excluded.media_json, media_json)",
                    (analysis.sha256, analysis.size_bytes, media_json, now, now),
                )
                if analysis.status is not RecordingStatus.UNREADABLE:  # ok or partial: what the content gives
                    self.db.execute(
                        "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (analysis.sha256, settings_hash, tool_version, analysis.status.value, BLOB_FORMAT,
                         blob, now, now),
                    )
                    # analysed to the end: no longer a suspect. A file that keeps killing its
                    # process stays one and is never analysed in the scanning process again.
                    self.db.execute("UPDATE scans SET analysing=NULL WHERE analysing=?", (analysis.sha256,))
            if scan_id is not None:
                self.add_scan_recording(scan_id, analysis, reused=False)
                self.db.execute(
                    "UPDATE scans SET analysed = analysed + 1, media_seconds = media_seconds + ? WHERE scan_id=?",
                    (analysis.media.duration_s if analysis.media else 0.0, scan_id),
                )

    def note_reused(self, scan_id: str, analysis: RecordingAnalysis) -> None:
        """List a cached analysis as one of scan `scan_id`'s recordings and count it as reused."""
        with self.transaction():
            self.add_scan_recording(scan_id, analysis, reused=True)
            self.db.execute(
                "UPDATE scans SET reused = reused + 1, media_seconds = media_seconds + ? WHERE scan_id=?",
                (analysis.media.duration_s if analysis.media else 0.0, scan_id),
            )

    def add_scan_recording(self, scan_id: str, analysis: RecordingAnalysis, reused: bool) -> None:
        """List `analysis` as one of scan `scan_id`'s recordings; call it inside a transaction."""
        self.db.execute(
            "INSERT OR REPLACE INTO scan_recordings VALUES (?, ?, ?, ?, ?)",
            (scan_id, storable_path(analysis.path), analysis.sha256 or None, analysis.status.value, int(reused)),
        )

    def analysis_count(self) -> int:
        """How many analyses the cache holds."""
        return self.db.execute("SELECT COUNT(*) FROM analyses").fetchone()[0]
