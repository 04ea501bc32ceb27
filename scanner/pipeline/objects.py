"""The analysis of one recording in object storage: the unit of work a worker runs for an object.

The object is copied to a local temporary file (`scanner.media.objstore.spooled`) and analysed there
exactly as a local recording; the result names the object by its URL.
"""

from __future__ import annotations

from scanner.analysis.recording import AnalysisSettings, analyze_recording
from scanner.media.objstore import ObjectReadError, ObjectURL, StorageSettings, spooled
from scanner.models import RecordingAnalysis, RecordingStatus


def analyze_object(
    url: ObjectURL, settings: AnalysisSettings, storage: StorageSettings, sha256: str | None = None,
    size: int | None = None,
) -> RecordingAnalysis:
    """Analyse one object as a local recording (see `scanner.analysis.recording.analyze_recording`).

    Never raises for a bad or unreachable object: a read that fails gives an unreadable recording
    naming the reason. The analysis names the object by its URL and carries the SHA-256 of the bytes
    read (`sha256`, the digest known from an earlier scan, is not trusted over what is read now).
    `size` (bytes, from the listing) lets the spool check its free space before copying.
    """
    try:
        with spooled(url, storage, size) as local:
            analysis = analyze_recording(local.path, settings, local.sha256)
    except ObjectReadError as exc:
        return RecordingAnalysis(url, "", RecordingStatus.UNREADABLE, error=str(exc), size_bytes=size)
    analysis.path = url
    return analysis
