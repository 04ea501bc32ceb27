"""Recording metadata: what each recording will be used for, when it was made, how long to keep it.

Two places say it, and the more specific wins:

1. a sidecar file beside one recording, `<recording file name>.likeness.yaml`;
2. the manifest `likeness-manifest.yaml` (at the scan root, or `--manifest FILE`), whose entries
   match recordings by glob relative to the manifest's folder (objects in object storage: by glob
   on their whole URL, e.g. `s3://archive/training/**`); when several entries match, later
   entries override earlier ones field by field, and `defaults` apply under all of them.

Purposes are the exception: a scan is a release gate, so it fails closed. A recording's purposes are
the union of its metadata purposes and the command line's `--purpose` values, and `recording` (keeping
the recording at all) when neither names any.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from scanner.media.fileformat import load_yaml_model
from scanner.media.objstore import ObjectURL
from scanner.models import RecordingContext

MANIFEST_NAME = "likeness-manifest.yaml"
SIDECAR_SUFFIX = ".likeness.yaml"
DEFAULT_PURPOSE = "recording"


class RecordingMetadata(BaseModel):
    """Metadata fields shared by sidecars, manifest entries and manifest defaults (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    purposes: list[str] | None = None
    recorded: dt.date | None = None
    retention_days: int | None = Field(default=None, ge=0)


class ManifestEntry(RecordingMetadata):
    """The metadata of the recordings `path` (a glob relative to the manifest's folder) matches."""

    path: str = Field(min_length=1)


class ManifestDocument(BaseModel):
    """A manifest file as written: metadata for every recording (`defaults`) and by path glob."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: RecordingMetadata = Field(default_factory=RecordingMetadata)
    recordings: list[ManifestEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class Manifest:
    """A loaded manifest file (`path`) and its document."""

    path: Path
    document: ManifestDocument

    def metadata_for(self, recording: Path) -> list[RecordingMetadata]:
        """Matching metadata, least specific first: defaults, then matching entries in file order."""
        if isinstance(recording, ObjectURL):
            relative = str(recording)  # an object lives in no folder of the manifest's
        else:
            try:
                relative = recording.resolve().relative_to(self.path.parent.resolve()).as_posix()
            except ValueError:
                return [self.document.defaults]
        matches = [e for e in self.document.recordings if _glob_match(relative, e.path)]
        return [self.document.defaults, *matches]


def _glob_match(relative: str, pattern: str) -> bool:
    # fnmatch's '*' already crosses '/', so '**/' only needs to allow zero folders too.
    return fnmatchcase(relative, pattern) or fnmatchcase(relative, pattern.replace("**/", ""))


def load_manifest(path: Path) -> Manifest:
    """Read a manifest file; raise FileFormatError listing its problems by line."""
    document, _ = load_yaml_model(Path(path), ManifestDocument)
    return Manifest(Path(path), document)


def find_manifest(inputs: list[Path]) -> Path | None:
    """The manifest at the root of a scanned folder, if there is one."""
    for item in inputs:
        candidate = item / MANIFEST_NAME if item.is_dir() else None
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def sidecar_of(recording: Path) -> Path:
    """The sidecar metadata file of `recording`: its name with `SIDECAR_SUFFIX` appended."""
    return recording.with_name(recording.name + SIDECAR_SUFFIX)


def is_metadata_file(path: Path) -> bool:
    """True for a manifest or sidecar file: metadata, not a recording to scan."""
    return path.name == MANIFEST_NAME or path.name.endswith(SIDECAR_SUFFIX)


def recording_context(
    recording: Path,
    manifest: Manifest | None,
    cli_purposes: list[str],
    default_retention_days: int | None,
    use_sidecar: bool = True,
) -> RecordingContext:
    """The purposes, date and retention of one recording, by the precedence rules above.

    A sidecar that cannot be read raises FileFormatError naming its line.
    """
    layers: list[tuple[str, RecordingMetadata]] = []
    if manifest is not None:
        layers += [(str(manifest.path), m) for m in manifest.metadata_for(recording)]
    sidecar = sidecar_of(recording)
    if use_sidecar and sidecar.is_file():
        document, _ = load_yaml_model(sidecar, RecordingMetadata)
        layers.append((str(sidecar), document))

    purposes: list[str] | None = None
    recorded: dt.date | None = None
    retention = default_retention_days
    source = None
    for origin, layer in layers:
        if layer.purposes is not None:
            purposes = list(layer.purposes)
            source = origin
        if layer.recorded is not None:
            recorded = layer.recorded
        if layer.retention_days is not None:
            retention = layer.retention_days
    combined = list(dict.fromkeys([*(purposes or []), *cli_purposes])) or [DEFAULT_PURPOSE]
    return RecordingContext(tuple(combined), recorded, retention, source)

