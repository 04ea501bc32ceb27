"""Serialized records in the scan database: pickle restricted to the pipeline's records and numpy arrays.

Analyses, enrolment references and scan snapshots are stored as pickles (protocol 5, numpy arrays
included). Loading one may only build the record types of `scanner.models`, the enrolled subjects of
`scanner.identity.people`, object URLs and the few builtins, pathlib, datetime and numpy globals
those hold: a blob naming anything else is refused (`pickle.UnpicklingError`), so a tampered
database cannot run code.
"""

from __future__ import annotations

import io
import pickle

import numpy as np

from scanner.models import ScanResult

#: Blob format of serialized analyses and scan snapshots (restricted pickle, protocol 5).
BLOB_FORMAT = 1

#: Globals a blob may name, as (module, name), besides the records of `scanner.models`.
ALLOWED_GLOBALS = {
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"), ("builtins", "slice"),
    ("copyreg", "_reconstructor"), ("builtins", "object"),
    ("pathlib", "PosixPath"), ("pathlib", "WindowsPath"), ("pathlib", "Path"),
    ("pathlib", "PurePosixPath"), ("pathlib", "PureWindowsPath"), ("scanner.media.objstore", "ObjectURL"),
    ("scanner.identity.people", "EnrolledSubject"),
    ("datetime", "date"), ("datetime", "datetime"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}

#: Modules renamed since databases were first written: blobs stored before name the old module.
RENAMED_MODULES = {
    "scanner.objstore": "scanner.media.objstore",
    "scanner.people": "scanner.identity.people",
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles scan database blobs, building only the globals this module allows (see above)."""

    def find_class(self, module: str, name: str):
        """The global `module.name` if allowed (old module names mapped first), else UnpicklingError."""
        module = RENAMED_MODULES.get(module, module)
        if module == "scanner.models" or module.startswith("scanner.models.") or (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module.startswith("numpy") and name.endswith("DType"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"scan database blob refers to {module}.{name}, which is not allowed")


def dumps(obj) -> bytes:
    """`obj` as a blob (pickle protocol 5) for the scan database."""
    return pickle.dumps(obj, protocol=5)


def loads(blob: bytes):
    """The object a `dumps` blob holds; raises `pickle.UnpicklingError` for a global that is not allowed."""
    return RestrictedUnpickler(io.BytesIO(blob)).load()


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
