"""The scan database (SQLite): the one place where biometric vectors (face encodings, voiceprints) are kept.

Reports never hold them. `likeness purge` deletes them again (retention period, or everything about
a subject), overwrites the freed pages and compacts the file. `Store` is one open database; its
jobs live in one module each:

- `scanner.store.connection`: location (`--store`, `$LIKENESS_STORE`, `.likeness/scan.db`),
  owner-only permissions, WAL journaling, migrations (`scanner.store.schema`), transactions.
- `scanner.store.analyses`: the per-recording analysis cache (`recordings`, `analyses`,
  `scan_recordings`), keyed by content, settings and analysis code.
- `scanner.store.rescan`: file and object digests, enrolment references and resolved people that
  a rescan reuses.
- `scanner.store.history`: scans, their people, findings and report snapshots.
- `scanner.store.purge`: deleting biometric data.
- `scanner.store.blobs`: the restricted pickle the analyses and snapshots are stored in.

A scan killed at any point (SIGKILL included) leaves the last committed state; the next scan finds
the finished recordings in `analyses` and does not analyse them again.
"""

from __future__ import annotations

from scanner.store.analyses import AnalysisCache
from scanner.store.history import ScanHistory
from scanner.store.purge import Purger
from scanner.store.rescan import RescanCaches


class Store(AnalysisCache, RescanCaches, ScanHistory, Purger):
    """One open scan database at a path (see `scanner.store.connection.Database` for opening and errors).

    Not shared between threads; one writer process at a time per scan. Use it as a context manager
    or call `close()`.
    """
