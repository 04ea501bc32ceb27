"""How usable one detected face is for a face swap: measures from its landmarks and pixels.

Quality scale (the risk rubric reads these numbers):
- `size_px`: face box width in original pixels.
- `eye_distance_px`: distance between the two eye centres in original pixels.
- `sharpness`: variance of the Laplacian of the face crop resized to 128x128 grayscale (0-255
  levels). In-focus faces measure about 100-1000, a visibly soft face 20-60, heavy blur < 10.
- `yaw_deg`: head turn from the landmarks, 0 frontal, +-90 profile; positive when the nose points
  to the image's right (the subject's left).
- `eyes_open`: mean eye aspect ratio > `EYES_OPEN_EAR`.
- `usable`: sharpness >= `SHARP_ENOUGH`, eyes open, |yaw| <= `MAX_USABLE_YAW`, eye distance >=
  `MIN_USABLE_EYE_DISTANCE` (`is_usable`).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
from PIL import Image

from scanner.analysis.faces.boxes import clip_box
from scanner.models import FaceDetection

#: Sharpness (variance of the Laplacian on a 128x128 grayscale crop) at or above which a face
#: counts as sharp enough to serve a face swap.
SHARP_ENOUGH = 50.0
#: Eye aspect ratio above which eyes count as open (closed eyes measure ~0.1, open ~0.25-0.35).
EYES_OPEN_EAR = 0.2
#: Largest head turn (degrees) at which a face still counts as usable.
MAX_USABLE_YAW = 45.0
#: Smallest eye distance (original pixels) at which a face still counts as usable.
MIN_USABLE_EYE_DISTANCE = 10.0


def grey_levels(image: np.ndarray) -> np.ndarray:
    """Grey levels (H, W) uint8 of an RGB image: ITU-R 601 luma, as Pillow's "L" mode converts.

    Pointwise, so the grey levels of a crop are the crop of the grey levels. A (H, W) image is
    returned as it is.
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
    from scipy import ndimage  # deferred: the scan's own process imports this module but never measures

    top, right, bottom, left = clip_box(box, image.shape)
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
    usable = is_usable(sharpness, eyes_open, yaw, eye_distance)
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


def carry_measurement(
    previous: FaceDetection, image: np.ndarray, box, time_s: float, scale: float, remeasure_pixels: bool
) -> FaceDetection:
    """A detection carried forward from the face's `previous` one, at `box` (detector pixels).

    The landmark measures (eye distance, yaw, eyes open) are repeated; with
    `remeasure_pixels` sharpness is measured on `image` (RGB or grey levels) and usability
    decided again. `scale` converts detector to original pixels, as in `measure_face`.
    """
    original = tuple(int(round(v * scale)) for v in box)
    if not remeasure_pixels:
        return replace(previous, time_s=float(time_s), box=original)
    sharpness = laplacian_sharpness(image, box)
    usable = is_usable(sharpness, previous.eyes_open, previous.yaw_deg, previous.eye_distance_px)
    return replace(previous, time_s=float(time_s), box=original, sharpness=sharpness, usable=usable)


def is_usable(sharpness: float, eyes_open: bool, yaw_deg: float, eye_distance_px: float) -> bool:
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
