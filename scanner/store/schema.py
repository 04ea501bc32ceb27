"""The scan database's schema: the migrations that build it, in order.

A database records its schema version in `PRAGMA user_version` and the migrations applied to it in
the `migrations` table; `scanner.store.connection.Database` applies the missing ones on open. A
migration is never edited once released: a change to the schema is a new migration at the end.
"""

from __future__ import annotations

#: (version, description, SQL statements separated by ";"), oldest first.
MIGRATIONS: list[tuple[int, str, str]] = [
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

#: The schema version this code writes and reads: the last migration's.
SCHEMA_VERSION = MIGRATIONS[-1][0]
