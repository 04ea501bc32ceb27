"""An open scan database file: its location, permissions, schema migrations and transactions.

Location: `--store PATH`, else `$LIKENESS_STORE`, else `.likeness/scan.db` in the current folder.
The folder is created owner-only (0700) and the database file (with its -wal/-shm companions)
owner-only (0600), since it holds biometric vectors.

Writes use WAL journaling: a process killed at any point (SIGKILL included) leaves the last
committed state. Deleted rows are overwritten (`secure_delete`), so purged biometric data does not
linger in free pages.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scanner.store.schema import MIGRATIONS, SCHEMA_VERSION

DEFAULT_STORE = Path(".likeness") / "scan.db"
STORE_ENV = "LIKENESS_STORE"


def default_store_path() -> Path:
    """The scan database to use when `--store` is not given: `$LIKENESS_STORE`, else `DEFAULT_STORE`."""
    env = os.environ.get(STORE_ENV)
    return Path(env) if env else DEFAULT_STORE


def utc_now() -> str:
    """The current UTC time as ISO 8601 text to the second: the store's timestamps, which sort as text."""
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()


class StoreError(Exception):
    """The scan database cannot be used (newer schema, not a database, unknown scan id)."""


class Database:
    """One open SQLite scan database at `path`, created and migrated to `SCHEMA_VERSION` if needed.

    Raises `StoreError` when the file is not a database or was written by a newer schema. The
    connection (`db`) runs in autocommit mode; group writes with `transaction()`. Not shared
    between threads.
    """

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
        with self.transaction(immediate=True):
            version = self.db.execute("PRAGMA user_version").fetchone()[0]  # another process may have won
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                "applied_at TEXT NOT NULL)"
            )
            for number, description, sql in MIGRATIONS:
                if number <= version:
                    continue
                for statement in sql.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute("INSERT INTO migrations VALUES (?, ?, ?)", (number, description, utc_now()))
                self.db.execute(f"PRAGMA user_version = {int(number)}")

    def close(self) -> None:
        """Close the connection (committed writes are kept)."""
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction around the block: committed when it ends, rolled back if it raises.

        `immediate` takes the write lock at the start (BEGIN IMMEDIATE), so two writers wait for each
        other instead of failing halfway; False starts a deferred transaction.
        """
        self.db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def schema_version(self) -> int:
        """The schema version of the open file (`PRAGMA user_version`)."""
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def select_in(self, query: str, keys: list) -> list[tuple]:
        """The rows of `query`, whose condition ends in `IN ({marks})`, for all of `keys`: asked 500 keys
        at a time (SQLite's limit on bound parameters)."""
        rows: list[tuple] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start:start + 500]
            rows += self.db.execute(query.format(marks=",".join("?" * len(chunk))), chunk).fetchall()
        return rows

    def compact(self) -> None:
        """Write everything back into the main file, rebuild it without free pages, truncate the WAL."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.db.execute("VACUUM")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def size_bytes(self) -> int:
        """Bytes the database takes on disk: the main file plus its write-ahead log."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(str(self.path) + suffix)
            except OSError:
                pass
        return total
