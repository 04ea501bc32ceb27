"""What a rescan reuses besides analyses: file and object digests, enrolment references, resolved people.

- `file_digests`: the SHA-256 of each scanned path (as bytes: any file name) with the file's
  `FileFacts` when it was read, so that a rescan does not read unchanged files again (as git's
  index does).
- `object_digests`: the same for objects in object storage, keyed by URL, with the ETag, size and
  last-modified time the listing gave (`scanner.media.objstore.ObjectFacts`).
- `enrolments`: the subjects' reference encodings and voiceprints, keyed by the content of the
  enrolment media, so that a consent change that keeps the media does not encode them again.
- `resolutions`: who is who in a scan, as references into its recordings (no biometric vectors),
  keyed by a digest of what resolving read (`scanner.identity.people.resolution_key`); the most
  recently used `RESOLUTIONS_KEPT` are kept.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from scanner.media.objstore import ObjectFacts
from scanner.store.blobs import BLOB_FORMAT, dumps, loads
from scanner.store.connection import Database, utc_now

#: How many people resolutions (one per distinct set of recordings and references) are kept.
RESOLUTIONS_KEPT = 50


@dataclass(frozen=True)
class FileFacts:
    """What `os.stat` says about a file's identity and last change (sizes in bytes, times in ns).

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
        """The facts of an `os.stat` result."""
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)

    def settled_before(self, moment_ns: int) -> bool:
        """True if the file last changed at least `SETTLED_NS` before `moment_ns` (ns since the epoch)."""
        return max(self.mtime_ns, self.ctime_ns) < moment_ns - self.SETTLED_NS


class RescanCaches(Database):
    """The `file_digests`, `object_digests`, `enrolments` and `resolutions` tables."""

    def lookup_enrolment(self, key: str) -> list | None:
        """The enrolled subjects saved under `key`, or None (also for a damaged entry: a cache miss)."""
        row = self.db.execute("SELECT blob_format, blob FROM enrolments WHERE enrolment_key=?", (key,)).fetchone()
        if row is None or row[0] != BLOB_FORMAT:
            return None
        try:
            subjects = loads(row[1])
        except Exception:  # noqa: BLE001 - a damaged entry is a cache miss
            return None
        with self.transaction():
            self.db.execute("UPDATE enrolments SET last_used_at=? WHERE enrolment_key=?", (utc_now(), key))
        return subjects

    def save_enrolment(self, key: str, subjects: list) -> None:
        """Save enrolled subjects (`scanner.identity.people.EnrolledSubject`) under `key`."""
        now = utc_now()
        ids = json.dumps(sorted(s.subject_id for s in subjects))
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO enrolments VALUES (?, ?, ?, ?, ?, ?)",
                            (key, BLOB_FORMAT, dumps(subjects), ids, now, now))

    def known_digests(self, paths: list[bytes]) -> dict[bytes, tuple[FileFacts, str]]:
        """The remembered (facts, sha256) of each of `paths` (absolute, `os.fsencode`d) that has an entry."""
        rows = self.select_in("SELECT path, size, mtime_ns, ctime_ns, inode, device, sha256 FROM file_digests "
                              "WHERE path IN ({marks})", paths)
        return {path: (FileFacts(*facts), sha256) for path, *facts, sha256 in rows}

    def remember_digests(self, entries: list[tuple[bytes, FileFacts, str]]) -> None:
        """Remember (path, facts, sha256) entries; entries reused by this scan are marked as used."""
        now = utc_now()
        with self.transaction():
            self.db.executemany(
                "INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(path, f.size, f.mtime_ns, f.ctime_ns, f.inode, f.device, sha256, now)
                 for path, f, sha256 in entries])

    def known_object_digests(self, urls: list[str]) -> dict[str, tuple[ObjectFacts, str]]:
        """The remembered (facts, sha256) of each of the object `urls` that has an entry."""
        rows = self.select_in("SELECT url, etag, size, modified, sha256 FROM object_digests WHERE url IN ({marks})",
                              urls)
        return {url: (ObjectFacts(etag, size, modified), sha256) for url, etag, size, modified, sha256 in rows}

    def remember_object_digests(self, entries: list[tuple[str, ObjectFacts, str]]) -> None:
        """Remember (url, facts, sha256) entries; only facts with an ETag can vouch for content."""
        now = utc_now()
        with self.transaction():
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
        with self.transaction():
            self.db.execute("UPDATE resolutions SET last_used_at=? WHERE resolution_key=?", (utc_now(), key))
        return records

    def save_people(self, key: str, records: list[dict]) -> None:
        """Save people records under `key`, keeping only the `RESOLUTIONS_KEPT` most recently used."""
        now = utc_now()
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO resolutions VALUES (?, ?, ?, ?)",
                            (key, json.dumps(records), now, now))
            self.db.execute(
                "DELETE FROM resolutions WHERE resolution_key NOT IN "
                "(SELECT resolution_key FROM resolutions ORDER BY last_used_at DESC, rowid DESC LIMIT ?)",
                (RESOLUTIONS_KEPT,))
