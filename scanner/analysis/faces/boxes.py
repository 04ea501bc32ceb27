"""Geometry of face boxes: (top, right, bottom, left) tuples in image pixels, as dlib and
face_recognition give them."""

from __future__ import annotations

import math

#: A face box: (top, right, bottom, left) in image pixels.
Box = tuple[int, int, int, int]


def clip_box(box, shape) -> Box:
    """`box` (any numbers) as ints, cut to an image of `shape` (H, W[, C])."""
    top, right, bottom, left = (int(v) for v in box)
    return max(top, 0), min(right, shape[1]), min(bottom, shape[0]), max(left, 0)


def iou(a, b) -> float:
    """Intersection over union of two boxes (0 apart, 1 identical)."""
    top, right = max(a[0], b[0]), min(a[1], b[1])
    bottom, left = min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = (a[1] - a[3]) * (a[2] - a[0]) + (b[1] - b[3]) * (b[2] - b[0]) - inter
    return inter / area if area > 0 else 0.0


def centre_distance(a, b) -> float:
    """Distance of box centres relative to the mean box width."""
    ca = ((a[1] + a[3]) / 2.0, (a[0] + a[2]) / 2.0)
    cb = ((b[1] + b[3]) / 2.0, (b[0] + b[2]) / 2.0)
    width = ((a[1] - a[3]) + (b[1] - b[3])) / 2.0
    return math.dist(ca, cb) / max(width, 1.0)


def dedupe_boxes(boxes: list) -> list:
    """`boxes` without those overlapping an earlier one by IoU 0.4 or more (the same face found by
    two searches); order kept."""
    kept: list = []
    for box in boxes:
        if all(iou(box, other) < 0.4 for other in kept):
            kept.append(box)
    return kept


def union(a: Box, b: Box) -> Box:
    """The smallest box holding both `a` and `b`."""
    return min(a[0], b[0]), max(a[1], b[1]), max(a[2], b[2]), min(a[3], b[3])


def merge_overlapping(boxes: list[Box], min_overlap: float = 0.5) -> list[Box]:
    """`boxes` with every two whose intersection covers at least `min_overlap` of the smaller one
    replaced by their union, until no such pair is left (one cover instead of two on the same face)."""
    merged = list(boxes)
    changed = True
    while changed:
        changed = False
        for i in range(len(merged)):
            for j in range(i + 1, len(merged)):
                a, b = merged[i], merged[j]
                inter_h = min(a[2], b[2]) - max(a[0], b[0])
                inter_w = min(a[1], b[1]) - max(a[3], b[3])
                smaller = min((a[2] - a[0]) * (a[1] - a[3]), (b[2] - b[0]) * (b[1] - b[3]))
                if inter_h > 0 and inter_w > 0 and inter_h * inter_w >= min_overlap * max(smaller, 1):
                    merged[i] = union(a, b)
                    del merged[j]
                    changed = True
                    break
            if changed:
                break
    return merged
