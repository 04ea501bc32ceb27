"""The scan database: scan history, the per-recording analysis cache, people and findings (SQLite).

This is the one place where biometric vectors (face encodings, voiceprints) are kept: reports never
hold them. `likeness purge` deletes them again (retention period, or everything about a subject),
overwrites the freed pages and compacts the file.

Location: `--store PATH`, else `$LIKENESS_STORE`, else `.likeness/scan.db` in the current folder.
The folder is created owner-only (0700) and the database file (with its -wal/-shm companions)
owner-only (0600).

Layout (schema version in `PRAGMA user_version`, applied migrations listed in `migrations`):
- `recordings`: one row per distinct file content (sha256), with size and media facts.
- `analyses`: the analysis of one content under one analysis configuration, keyed by
  (sha256, settings hash, tool version), stored as one serialized `RecordingAnalysis` (numpy arrays
  included). Each is written in its own transaction, so the database never holds half a recording.
- `scans`: one row per scan: status (running, complete, interrupted, failed), inputs, options,
  counters (analysed, reused from the cache), the results document and a snapshot of the scan
  result without biometric vectors, so that `likeness report` can re-render it in any format,
  and the recording it is analysing in its own process (`analysing`), so that a file that killed
  the scan is analysed in a separate process by the next run.
- `scan_recordings`, `people`, `findings` (suppressed ones with the waiver applied),
  `analysis_subjects` (which enrolled subject was found in which analysis, for purging a subject).
- `enrolments`: the subjects' reference encodings and voiceprints, keyed by the content of the
  enrolment media, so that a consent change that keeps the media does not encode them again.
- `file_digests`: the SHA-256 of each scanned path (as bytes: any file name) with the file's size, modification and
  status-change times (ns), inode and device when it was read, so that a rescan does not read
  unchanged files again (as git's index does; see `FileFacts`).
- `object_digests`: the same for objects in object storage, keyed by URL, with the ETag, size and
  last-modified time the listing gave (`scanner.media.objstore.ObjectFacts`): an unchanged object is
  neither downloaded nor decoded again.
- `resolutions`: who is who in a scan, as references into its recordings (no biometric vectors),
  keyed by a digest of the encodings, voiceprints, references and settings that resolving read,
  so that a rescan of unchanged recordings does not match and link everyone again. The most
  recently used `RESOLUTIONS_KEPT` are kept.

Writes use WAL journaling: a scan killed at any point (SIGKILL included) leaves the last committed
state; the next scan finds the finished recordings in `analyses` and does not analyse them again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import pickle
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scanner import __version__
from scanner.media.objstore import ObjectFacts
from scanner.models import RecordingAnalysis, RecordingStatus, ScanResult
from scanner.source_digest import source_digest

DEFAULT_STORE = Path(".likeness") / "scan.db"
STORE_ENV = "LIKENESS_STORE"

#: How many people resolutions (one per distinct set of recordings and references) are kept.
RESOLUTIONS_KEPT = 50

#: Blob format of serialized analyses and scan snapshots (restricted pickle, protocol 5).
BLOB_FORMAT = 1


def default_store_path() -> Path:
    env = os.environ.get(STORE_ENV)
    return Path(env) if env else DEFAULT_STORE


# --------------------------------------------------------------------------------------------
# Schema and migrations
# --------------------------------------------------------------------------------------------

_MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "scans, recordings, analyses, people, findings",
        """
        CREATE TABLE recordings (
            sha256 TEXT PRIMARY KEY,
            size_bytes INTEGER NOT NULL,
            media_json TEXT,
            first_seen TEXT NOT NULL,
            last_seen TEXT NOT NULL
        );
        CREATE TABLE analyses (
            sha256 TEXT NOT NULL REFERENCES recordings(sha256) ON DELETE CASCADE,
            settings_hash TEXT NOT NULL,
            tool_version TEXT NOT NULL,
            status TEXT NOT NULL,
            blob_format INTEGER NOT NULL,
            blob BLOB NOT NULL,
            created_at TEXT NOT NULL,
            last_used_at TEXT NOT NULL,
            PRIMARY KEY (sha256, settings_hash, tool_version)
        );
        CREATE TABLE scans (
            scan_id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            pid INTEGER,
            inputs_json TEXT NOT NULL,
            options_json TEXT NOT NULL,
            consent_sha256 TEXT,
            recordings_total INTEGER NOT NULL DEFAULT 0,
            analysed INTEGER NOT NULL DEFAULT 0,
            reused INTEGER NOT NULL DEFAULT 0,
            media_seconds REAL NOT NULL DEFAULT 0,
            summary_json TEXT,
            document_json TEXT,
            snapshot_format INTEGER,
            snapshot BLOB
        );
        CREATE TABLE scan_recordings (
            scan_id TEXT NOT NULL REFERENCES scans(scan_id) ON DELETE CASCADE,
            path TEXT NOT NULL,
            sha256 TEXT,
            status TEXT NOT NULL,
            reused INTEGER NOT NULL,
            PRIMARY KEY (scan_id, path)
        );
        CREATE TABLE people (
            scan_id TEXT NOT NULL REFERENCES scans(scan_id) ON DELETE CASCADE,
            person_id TEXT NOT NULL,
            subject_id TEXT,
            name TEXT,
            combined_tier TEXT,
            score INTEGER,
            doc_json TEXT NOT NULL,
            PRIMARY KEY (scan_id, person_id)
        );
        CREATE TABLE findings (
            scan_id TEXT NOT NULL REFERENCES scans(scan_id) ON DELETE CASCADE,
            fingerprint TEXT NOT NULL,
            rule_id TEXT NOT NULL,
            severity TEXT NOT NULL,
            person_id TEXT,
            subject_id TEXT,
            title TEXT NOT NULL,
            suppressed INTEGER NOT NULL,
            waiver_json TEXT,
            doc_json TEXT NOT NULL,
            PRIMARY KEY (scan_id, fingerprint, suppressed)
        );
        CREATE TABLE analysis_subjects (
            sha256 TEXT NOT NULL,
            settings_hash TEXT NOT NULL,
            tool_version TEXT NOT NULL,
            subject_id TEXT NOT NULL,
            PRIMARY KEY (sha256, settings_hash, tool_version, subject_id),
            FOREIGN KEY (sha256, settings_hash, tool_version)
                REFERENCES analyses(sha256, settings_hash, tool_version) ON DELETE CASCADE
        );
        CREATE INDEX findings_by_fingerprint ON findings(fingerprint);
        CREATE INDEX people_by_subject ON people(subject_id);
        CREATE INDEX analysis_subjects_by_subject ON analysis_subjects(subject_id);
        """,
    ),
    (
        2,
        "enrolment references cached by the content of the enrolment media",
        """
        CREATE TABLE enrolments (
            enrolment_key TEXT PRIMARY KEY,
            blob_format INTEGER NOT NULL,
            blob BLOB NOT NULL,
            subjects_json TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_used_at TEXT NOT NULL
        );
        """,
    ),
    (
        3,
        "the recording a scan is analysing in its own process, to isolate it after a crash",
        """
        ALTER TABLE scans ADD COLUMN analysing TEXT;
        """,
    ),
    (
        4,
        "rescans: file digests known by their stat facts, resolved people by what resolving read",
        """
        CREATE TABLE file_digests (
            path BLOB PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            ctime_ns INTEGER NOT NULL,
            inode INTEGER NOT NULL,
            device INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            last_used_at TEXT NOT NULL
        );
        CREATE TABLE resolutions (
            resolution_key TEXT PRIMARY KEY,
            people_json TEXT NOT NULL,
            created_at TEXT NOT NULL,
            last_used_at TEXT NOT NULL
        );
        """,
    ),
    (
        5,
        "rescans of object storage: object digests known by ETag, size and last-modified",
        """
        CREATE TABLE object_digests (
            url TEXT PRIMARY KEY,
            etag TEXT NOT NULL,
            size INTEGER NOT NULL,
            modified TEXT,
            sha256 TEXT NOT NULL,
            last_used_at TEXT NOT NULL
        );
        """,
    ),
]
SCHEMA_VERSION = _MIGRATIONS[-1][0]


class StoreError(Exception):
    """The scan database cannot be used (newer schema, not a database, unknown scan id)."""


# --------------------------------------------------------------------------------------------
# Serialization: pickle restricted to the pipeline's record types and numpy arrays
# --------------------------------------------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "slice"),
    ("copyreg", "_reconstructor"), ("builtins", "object"),
    ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "Path"),
    ("pathlib", "PurePosixPath"), ("pathlib", "PureWindowsPath"), ("scanner.media.objstore", "ObjectURL"),
    ("datetime", "date"), ("datetime", "datetime"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if module == "scanner.models" or (module, name) in _ALLOWED_GLOBALS or (module, name) == (
            "scanner.identity.people", "EnrolledSubject"
        ):
            return super().find_class(module, name)
        if module.startswith("numpy") and name.endswith("DType"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"scan database blob refers to {module}.{name}, which is not allowed")


def dumps(obj) -> bytes:
    return pickle.dumps(obj, protocol=5)


def loads(blob: bytes):
    return _RestrictedUnpickler(io.BytesIO(blob)).load()


def strip_biometrics(result: ScanResult) -> ScanResult:
    """A copy of `result` without face encodings and voiceprints (thumbnails are kept for the HTML report).

    The copy keeps the object sharing between recordings and people (the writers rely on it).
    """
    copy = loads(dumps(result))
    for rec in copy.recordings:
        for cluster in rec.faces.clusters if rec.faces else []:
            cluster.encodings = np.zeros((0, 128), dtype=np.float64)
        for speaker in rec.voices.speakers if rec.voices else []:
            speaker.voiceprint = np.zeros(0, dtype=np.float32)
    for person in copy.people:  # sightings normally share the recordings' objects; be sure anyway
        for s in person.faces:
            s.cluster.encodings = np.zeros((0, 128), dtype=np.float64)
        for s in person.voices:
            s.speaker.voiceprint = np.zeros(0, dtype=np.float32)
    return copy


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------


@dataclass
class ScanRow:
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


@dataclass(frozen=True)
class FileFacts:
    """What `os.stat` says about a file's identity and last change.

    Writing a file moves its status-change time (ctime), which no ordinary program can set back, so
    a file whose facts are unchanged still holds the bytes it was hashed from. A digest is only
    remembered when the file had been left alone for `SETTLED_NS` before it was read: a change
    within the same clock tick as the read could not be told apart otherwise (git's "racy" entries).
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int

    SETTLED_NS = 2_000_000_000

    @classmethod
    def of(cls, st: os.stat_result) -> FileFacts:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def settled_before(self, moment_ns: int) -> bool:
        return max(self.mtime_ns, self.ctime_ns) < moment_ns - self.SETTLED_NS


@dataclass
class PurgeStats:
    analyses: int = 0
    enrolments: int = 0
    snapshots_redacted: int = 0
    scans: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


class Store:
    """One open scan database. Not shared between threads; one writer process at a time per scan."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._prepare_file()
        try:
            self.db = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.execute("PRAGMA secure_delete=ON")  # deleted biometric blobs are overwritten
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable scan database ({exc})") from None
        self._restrict_companions()

    # ---------------------------------------------------------------- setup
    def _prepare_file(self) -> None:
        parent = self.path.parent
        if not parent.exists():
            parent.mkdir(parents=True, mode=0o700, exist_ok=True)
        # Create the file owner-only before SQLite opens it; SQLite gives -wal/-shm the same mode.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
        os.chmod(self.path, 0o600)

    def _restrict_companions(self) -> None:
        for suffix in ("-wal", "-shm"):
            companion = Path(str(self.path) + suffix)
            if companion.exists():
                try:
                    os.chmod(companion, 0o600)
                except OSError:
                    pass

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: written by a newer likeness (schema {version}, this one knows {SCHEMA_VERSION})"
            )
        if version == SCHEMA_VERSION:
            return
        with self._transaction(immediate=True):
            version = self.db.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at TEXT NOT NULL)"
            )
            for number, description, sql in _MIGRATIONS:
                if number <= version:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT INTO migrations VALUES (?, ?, ?)", (number, description, _now()))
                self.db.execute(f"PRAGMA user_version = {int(number)}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    class _Tx:
        def __init__(self, db: sqlite3.Connection, immediate: bool):
            self.db, self.immediate = db, immediate

        def __enter__(self):
            self.db.execute("BEGIN IMMEDIATE" if self.immediate else "BEGIN")
            return self.db

        def __exit__(self, exc_type, exc, tb):
            if exc_type is None:
                self.db.execute("COMMIT")
            else:
                self.db.execute("ROLLBACK")
            return False

    def _transaction(self, immediate: bool = True) -> "Store._Tx":
        return Store._Tx(self.db, immediate)

    def schema_version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    # ---------------------------------------------------------------- analysis cache
    def lookup_analysis(self, sha256: str, settings_hash: str, tool_version: str) -> RecordingAnalysis | None:
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
            (_now(), sha256, settings_hash, tool_version),
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
        """Store one recording's analysis (and its place in the scan) in a single transaction."""
        now = _now()
        media_json = json.dumps(dataclasses.asdict(analysis.media), default=str) if analysis.media else None
        blob = dumps(analysis)
        with self._transaction():
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
                self._scan_recording(scan_id, analysis, reused=False)
                self.db.execute(
                    "UPDATE scans SET analysed = analysed + 1, media_seconds = media_seconds + ? WHERE scan_id=?",
                    (analysis.media.duration_s if analysis.media else 0.0, scan_id),
                )

    def note_reused(self, scan_id: str, analysis: RecordingAnalysis) -> None:
        with self._transaction():
            self._scan_recording(scan_id, analysis, reused=True)
            self.db.execute(
                "UPDATE scans SET reused = reused + 1, media_seconds = media_seconds + ? WHERE scan_id=?",
                (analysis.media.duration_s if analysis.media else 0.0, scan_id),
            )

    def _scan_recording(self, scan_id: str, analysis: RecordingAnalysis, reused: bool) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO scan_recordings VALUES (?, ?, ?, ?, ?)",
            (scan_id, _storable(analysis.path), analysis.sha256 or None, analysis.status.value, int(reused)),
        )

    def analysis_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM analyses").fetchone()[0]

    # ---------------------------------------------------------------- enrolment cache
    def lookup_enrolment(self, key: str) -> list | None:
        row = self.db.execute("SELECT blob_format, blob FROM enrolments WHERE enrolment_key=?", (key,)).fetchone()
        if row is None or row[0] != BLOB_FORMAT:
            return None
        try:
            subjects = loads(row[1])
        except Exception:  # noqa: BLE001 - a damaged entry is a cache miss
            return None
        with self._transaction():
            self.db.execute("UPDATE enrolments SET last_used_at=? WHERE enrolment_key=?", (_now(), key))
        return subjects

    def save_enrolment(self, key: str, subjects: list) -> None:
        now = _now()
        ids = json.dumps(sorted(s.subject_id for s in subjects))
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO enrolments VALUES (?, ?, ?, ?, ?, ?)",
                            (key, BLOB_FORMAT, dumps(subjects), ids, now, now))

    def known_digests(self, paths: list[bytes]) -> dict[bytes, tuple[FileFacts, str]]:
        """The remembered (facts, sha256) of each of `paths` (absolute, `os.fsencode`d) that has an entry."""
        rows = self._select_in("SELECT path, size, mtime_ns, ctime_ns, inode, device, sha256 FROM file_digests "
                               "WHERE path IN ({marks})", paths)
        return {path: (FileFacts(*facts), sha256) for path, *facts, sha256 in rows}

    def remember_digests(self, entries: list[tuple[bytes, FileFacts, str]]) -> None:
        """Remember (path, facts, sha256) entries; entries reused by this scan are marked as used."""
        now = _now()
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(path, f.size, f.mtime_ns, f.ctime_ns, f.inode, f.device, sha256, now)
                 for path, f, sha256 in entries])

    def known_object_digests(self, urls: list[str]) -> dict[str, tuple[ObjectFacts, str]]:
        """The remembered (facts, sha256) of each of the object `urls` that has an entry."""
        rows = self._select_in("SELECT url, etag, size, modified, sha256 FROM object_digests WHERE url IN ({marks})",
                               urls)
        return {url: (ObjectFacts(etag, size, modified), sha256) for url, etag, size, modified, sha256 in rows}

    def _select_in(self, query: str, keys: list) -> list[tuple]:
        """The rows of `query`, whose condition ends in `IN ({marks})`, for all of `keys`: asked 500 keys
        at a time (SQLite's limit on bound parameters)."""
        rows: list[tuple] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows += self.db.execute(query.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def remember_object_digests(self, entries: list[tuple[str, ObjectFacts, str]]) -> None:
        """Remember (url, facts, sha256) entries; only facts with an ETag can vouch for content."""
        now = _now()
        with self._transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO object_digests VALUES (?, ?, ?, ?, ?, ?)",
                [(url, f.etag, f.size, f.modified, sha256, now) for url, f, sha256 in entries
                 if f.identifies_content])

    def lookup_people(self, key: str) -> list[dict] | None:
        """The people records saved under `key` (see `scanner.identity.people.resolution_key`), or None."""
        row = self.db.execute("SELECT people_json FROM resolutions WHERE resolution_key=?", (key,)).fetchone()
        if row is None:
            return None
        try:
            records = json.loads(row[0])
        except ValueError:  # a damaged entry is a cache miss
            return None
        with self._transaction():
            self.db.execute("UPDATE resolutions SET last_used_at=? WHERE resolution_key=?", (_now(), key))
        return records

    def save_people(self, key: str, records: list[dict]) -> None:
        now = _now()
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO resolutions VALUES (?, ?, ?, ?)",
                            (key, json.dumps(records), now, now))
            self.db.execute(
                "DELETE FROM resolutions WHERE resolution_key NOT IN "
                "(SELECT resolution_key FROM resolutions ORDER BY last_used_at DESC, rowid DESC LIMIT ?)",
                (RESOLUTIONS_KEPT,))

    # ---------------------------------------------------------------- scans
    def begin_scan(self, scan_id: str, started_at: str, inputs: list[str], options: dict, total: int,
                   consent_sha256: str | None) -> None:
        with self._transaction():
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
        with self._transaction():
            self.db.execute("UPDATE scans SET status=?, finished_at=?, analysing=NULL WHERE scan_id=?",
                            (status, _now(), scan_id))

    def note_analysing(self, scan_id: str, sha256: str | None) -> None:
        """Record the recording `scan_id` is now analysing in its own process (None: none).

        If the process dies there (a decoder fault, the out-of-memory killer), the mark outlives it
        and `crashed_on` hands the recording to the next scan, which analyses it in a separate
        process, so one hostile file cannot end every rerun of the scan the same way.
        """
        with self._transaction():
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
        with self._transaction():
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
            with self._transaction():
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
        return [
            {"person_id": r[0], "subject_id": r[1], "name": r[2], "combined_tier": r[3], "score": r[4]}
            for r in self.db.execute(
                "SELECT person_id, subject_id, name, combined_tier, score FROM people WHERE scan_id=? ORDER BY rowid",
                (scan_id,),
            ).fetchall()
        ]

    # ---------------------------------------------------------------- purge
    def purge(
        self,
        older_than_days: int | None = None,
        subjects: Iterable[str] = (),
        everything: bool = False,
        now: dt.datetime | None = None,
    ) -> PurgeStats:
        """Delete stored biometric data: analyses (encodings, voiceprints, thumbnails) not used within
        `older_than_days`, or holding any of `subjects`, or all of them; thumbnails in the snapshots of
        the affected scans are removed too. Then the freed pages are overwritten and the file compacted.
        """
        subjects = sorted(set(subjects))
        stats = PurgeStats(bytes_before=self.size_bytes())
        cutoff = None
        if older_than_days is not None:
            moment = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=older_than_days)
            cutoff = moment.replace(microsecond=0).isoformat()
        with self._transaction():
            where, args = _purge_condition(
                everything, cutoff, "last_used_at", subjects,
                "(sha256, settings_hash, tool_version) IN (SELECT sha256, settings_hash, tool_version "
                "FROM analysis_subjects WHERE subject_id IN ({marks}))")
            if where:
                stats.analyses = self.db.execute(f"DELETE FROM analyses WHERE {where}", args).rowcount
            # Enrolment references and resolutions: all of them for a subject purge (cheap to compute again).
            if everything or subjects:
                stats.enrolments = self.db.execute("DELETE FROM enrolments").rowcount
                self.db.execute("DELETE FROM resolutions")
                if everything:
                    self.db.execute("DELETE FROM file_digests")
                    self.db.execute("DELETE FROM object_digests")
            elif cutoff is not None:
                stats.enrolments = self.db.execute("DELETE FROM enrolments WHERE last_used_at < ?",
                                                   (cutoff,)).rowcount
                for table in ("resolutions", "file_digests", "object_digests"):
                    self.db.execute(f"DELETE FROM {table} WHERE last_used_at < ?", (cutoff,))
            # Thumbnails are face images: take them out of the snapshots of the scans concerned.
            where, args = _purge_condition(
                everything, cutoff, "started_at", subjects,
                "scan_id IN (SELECT scan_id FROM people WHERE subject_id IN ({marks}))")
            if where:
                rows = self.db.execute(
                    f"SELECT scan_id, snapshot FROM scans WHERE snapshot IS NOT NULL AND ({where})", args
                ).fetchall()
                for scan_id, blob in rows:
                    result = loads(blob)
                    only = None if everything or older_than_days is not None and _older(
                        result.started_at, older_than_days, now) else set(subjects)
                    if _drop_thumbnails(result, only):
                        self.db.execute("UPDATE scans SET snapshot=? WHERE scan_id=?", (dumps(result), scan_id))
                        stats.snapshots_redacted += 1
        self.compact()
        stats.bytes_after = self.size_bytes()
        return stats

    def compact(self) -> None:
        """Write everything back into the main file, rebuild it without free pages, truncate the WAL."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return total


def _purge_condition(
    everything: bool, cutoff: str | None, time_column: str, subjects: list[str], about_subjects: str
) -> tuple[str, list]:
    """The SQL condition (and its arguments) for the rows a purge concerns: every row (`everything`),
    rows whose `time_column` is before `cutoff` (ISO time), or rows `about_subjects` selects (a
    condition with `{marks}` where the subject ids' placeholders go). "" when nothing is concerned."""
    where, args = [], []
    if everything:
        where.append("1")
    if cutoff is not None:
        where.append(f"{time_column} < ?")
        args.append(cutoff)
    if subjects:
        where.append(about_subjects.format(marks=",".join("?" * len(subjects))))
        args += subjects
    return " OR ".join(where), args


def _older(started_at: str, days: int, now: dt.datetime | None) -> bool:
    try:
        started = dt.datetime.fromisoformat(started_at)
    except ValueError:
        return True
    if started.tzinfo is None:
        started = started.replace(tzinfo=dt.timezone.utc)
    return started < (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=days)


def _drop_thumbnails(result: ScanResult, subjects: set[str] | None) -> bool:
    """Remove face thumbnails (of people matched to `subjects`, or all when None); True if any went."""
    changed = False
    for person in result.people:
        if subjects is not None and person.subject_id not in subjects:
            continue
        for sighting in person.faces:
            if sighting.cluster.thumbnail is not None:
                sighting.cluster.thumbnail = None
                changed = True
    if subjects is None:
        for rec in result.recordings:
            for cluster in rec.faces.clusters if rec.faces else []:
                if cluster.thumbnail is not None:
                    cluster.thumbnail = None
                    changed = True
    return changed


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


def _storable(path: Path) -> str:
    """A path as SQLite text: bytes that are not UTF-8 (kept by Python as surrogates) become escapes."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def settings_hash(settings) -> str:
    """A stable hash of the analysis settings (a dataclass): part of every cache key."""
    text = json.dumps(dataclasses.asdict(settings), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: The code whose output the analysis cache holds: decoding, the analysis stages and their records.
ANALYSIS_CODE = ("media", "analysis", "models.py")


def analysis_version() -> str:
    """The tool version plus a hash of the analysis code: any change to it invalidates cached analyses."""
    return f"{__version__}+{source_digest(*ANALYSIS_CODE)[:12]}"
