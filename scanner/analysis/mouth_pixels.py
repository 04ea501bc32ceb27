"""The mouth seen through pixels: whether a face's mouth changes more than its eyes between two samples,
a screening far cheaper than the landmarks (`scanner.analysis.mouth_landmarks`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

#: Side of the grey face patch the pixel screening compares (`face_patch`), and how far (in patch
#: pixels) a face may shift between two samples 0.1 s apart for the registration to find it.
PATCH_PX = 48
PATCH_SHIFT = 3
#: Regions of the patch (rows, columns as fractions of its side): the upper face the registration
#: matches, the eyes band and the mouth whose changes are compared.
_UPPER = (0.12, 0.6, 0.15, 0.85)
_EYES = (0.2, 0.5, 0.15, 0.85)
_MOUTH = (0.66, 0.95, 0.25, 0.75)


def face_patch(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The face at `box` (top, right, bottom, left) with a 10% margin, in grey levels, resized to
    PATCH_PX x PATCH_PX (float32); None where the margin leaves the image."""
    top, right, bottom, left = box
    h, w = bottom - top, right - left
    t0, b0, l0, r0 = int(top - 0.1 * h), int(bottom + 0.1 * h), int(left - 0.1 * w), int(right + 0.1 * w)
    if h <= 0 or w <= 0 or t0 < 0 or l0 < 0 or b0 > image.shape[0] or r0 > image.shape[1]:
        return None
    crop = image[t0:b0, l0:r0]
    # The channels' mean, added channel by channel (the same float32 values as `mean(axis=2)`, which
    # is several times slower over a last axis of three).
    grey = crop[..., 0].astype(np.float32)
    grey += crop[..., 1]
    grey += crop[..., 2]
    grey /= np.float32(3)
    return np.asarray(Image.fromarray(grey).resize((PATCH_PX, PATCH_PX), Image.BILINEAR))


def patch_region(patch: np.ndarray, rows_cols: tuple[float, float, float, float]) -> np.ndarray:
    """The part of a PATCH_PX x PATCH_PX patch given as (row start, row end, column start, column end)
    fractions of its side."""
    r0, r1, c0, c1 = (int(round(f * PATCH_PX)) for f in rows_cols)
    return patch[r0:r1, c0:c1]


def mouth_and_eyes_change(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(mouth change, eye change) between two face patches of consecutive samples.

    `b` is first registered on `a`: the whole-pixel shift (up to PATCH_SHIFT) that best matches the
    upper face. Each region's mean absolute difference is then divided by its mean gradient in `a`,
    so that a picture moved by a fraction of a pixel (every pixel changes in proportion to its
    gradient) changes both regions alike, whatever their texture: the ratio stays near 1 for a
    picture and grows when the mouth moves on its own.
    """
    k = PATCH_SHIFT
    padded = np.pad(b, k, mode="edge")
    r0, r1, c0, c1 = (int(round(f * PATCH_PX)) for f in _UPPER)
    shifted = np.lib.stride_tricks.sliding_window_view(padded[r0:r1 + 2 * k, c0:c1 + 2 * k], (r1 - r0, c1 - c0))
    error = np.abs(shifted - a[r0:r1, c0:c1]).mean(axis=(2, 3))
    dy, dx = np.unravel_index(int(np.argmin(error)), error.shape)
    aligned = padded[dy:dy + PATCH_PX, dx:dx + PATCH_PX]
    gy, gx = np.gradient(a)
    gradient = np.hypot(gx, gy)
    out = []
    for region in (_MOUTH, _EYES):
        change = np.abs(patch_region(a, region) - patch_region(aligned, region)).mean()
        out.append(change / (patch_region(gradient, region).mean() + 1e-3))
    return np.array(out)
