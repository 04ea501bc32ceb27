"""Pixels around faces and across frames: crops kept for encoding, thumbnails, appearance
patches and their matching, and the block signatures that show where and whether a frame changed.

Boxes are (top, right, bottom, left) in the pixels of the image given.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image

from scanner.analysis.faces.boxes import clip_box

#: Longest side (pixels) of a face thumbnail in the reports.
THUMBNAIL_PX = 96


def crop_for_encoding(image: np.ndarray, box, margin: float = 0.6) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(crop, box in crop pixels): the face with `margin` of its size around it, as dlib's aligner
    looks slightly outside the box; kept so the frame itself can be released."""
    top, right, bottom, left = box
    pad = int(round(max(right - left, bottom - top) * margin))
    t, r, b, l = clip_box((top - pad, right + pad, bottom + pad, left - pad), image.shape)
    crop = np.ascontiguousarray(image[t:b, l:r])
    return crop, (top - t, right - l, bottom - t, left - l)


def appearance_patch(crop: np.ndarray, box, size: int = 24) -> np.ndarray:
    """Zero-mean, unit-norm grey patch (flattened `size` x `size`, float32) of the face box of an RGB
    image: dot products of two patches are their correlations."""
    top, right, bottom, left = clip_box(box, crop.shape)
    if bottom - top < 2 or right - left < 2:
        return np.zeros(size * size, dtype=np.float32)
    gray = Image.fromarray(crop[top:bottom, left:right]).convert("L").resize((size, size), Image.Resampling.BILINEAR)
    v = np.asarray(gray, dtype=np.float32).ravel()
    v = v - v.mean()
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


def match_patch(
    image: np.ndarray, box, template: np.ndarray, margin: float = 0.3, size: int = 24
) -> tuple[tuple[int, int, int, int], float] | None:
    """Where near `box` the face of `template` (an `appearance_patch` of `size`) is now.

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


def make_thumbnail(image: np.ndarray, box, max_px: int = THUMBNAIL_PX, margin: float = 0.2) -> np.ndarray:
    """Small RGB crop of a face (longest side <= max_px) for reports."""
    top, right, bottom, left = box
    pad = int(round((right - left) * margin))
    t, r, b, l = clip_box((top - pad, right + pad, bottom + pad, left - pad), image.shape)
    crop = Image.fromarray(image[t:b, l:r])
    crop.thumbnail((max_px, max_px), Image.Resampling.BILINEAR)
    return np.asarray(crop.convert("RGB"))


def block_signature(image: np.ndarray, block: int = 40) -> np.ndarray:
    """Mean green level (most of the luminance) of `block`-pixel blocks, about 32x18 at 1280x720:
    shows where a frame changed. Computed by Pillow's box filter (~1 ms per 720p frame)."""
    h, w = image.shape[:2]
    rows, cols = max(2, 2 * round(h / block / 2)), max(2, 2 * round(w / block / 2))
    green = Image.fromarray(np.ascontiguousarray(image[..., 1]))
    return np.asarray(green.resize((cols, rows), Image.Resampling.BOX), dtype=np.float32)


def shot_signature(blocks: np.ndarray) -> np.ndarray:
    """Coarse block means (2x2 of `block_signature`): robust to motion and noise, change at a cut."""
    rows, cols = blocks.shape
    return blocks[: rows // 2 * 2, : cols // 2 * 2].reshape(rows // 2, 2, cols // 2, 2).mean(axis=(1, 3))


def pixels_around(image: np.ndarray, box, margin: float = 0.2) -> tuple:
    """(region, green pixels) of a face box grown by `margin` of its width: what
    `FaceSearch.unchanged` compares later samples with."""
    top, right, bottom, left = box
    pad = (right - left) * margin
    region = clip_box((top - pad, right + pad, bottom + pad, left - pad), image.shape)
    t, r, b, l = region
    return region, image[t:b, l:r, 1].copy()

