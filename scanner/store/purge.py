"""`likeness purge`: delete stored biometric data past the retention period, or about given subjects.

What goes: analyses (encodings, voiceprints, thumbnails) not used within the period or holding a
purged subject, enrolment references, resolved people and remembered digests, and face thumbnails
in the snapshots of the scans concerned. Then the freed pages are overwritten and the file
compacted, so nothing deleted can be read back from it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from scanner.models import ScanResult
from scanner.store.blobs import dumps, loads
from scanner.store.connection import Database


@dataclass
class PurgeStats:
    """What a purge removed (row counts) and the database's size before and after (bytes)."""

    analyses: int = 0
    enrolments: int = 0
    snapshots_redacted: int = 0
    scans: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


class Purger(Database):
    """Deletes biometric data from every table that holds some."""

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
        with self.transaction():
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
