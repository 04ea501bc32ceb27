"""The mouth seen through dlib's 68 face landmarks: where the landmarks are measured, how open the
mouth is, and how much the lips move on their own (relative to the nose and eyes).

Boxes are (top, right, bottom, left) in the pixels of the image given; landmarks are (68, 2) (x, y).
"""

from __future__ import annotations

import numpy as np

from scanner.analysis.faces.dlib_models import dlib_intensity, landmark_crop, landmarks_68


def landmarks_in(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The 68 landmarks (x, y) of the face at `box` (top, right, bottom, left), shape (68, 2), in crop pixels.

    Given a crop `landmark_crop` made, with its box, the result is the same (cropping it again
    changes nothing).
    """
    crop, inside = landmark_crop(image, box)
    return landmarks_68(crop, [inside])[0]


def mouth_openness_in(image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mouth openness of the face at `box` (top, right, bottom, left) in `image`.

    """
    return mouth_openness(landmarks_in(image, box))


class ScreenedCrops:
    """The landmark crops (`landmark_crop`, in `dlib_intensity` grey levels) of every face on every
    sample of the screening windows, kept while the pixel screening decodes them so the landmark
    screening can run without decoding the windows a second time (`LipSyncLinker.moving_mouths`).

    Holds at most `budget_mb` of pixels: past it, everything is let go and `complete` turns False
    (the landmark screening then decodes the windows again, as it would without this store).
    """

    def __init__(self, budget_mb: float):
        self.budget = budget_mb * 1e6
        self.used = 0
        self.complete = budget_mb > 0
        self.windows: list[list[list[tuple[np.ndarray, tuple[int, int, int, int]] | None]]] = []

    def start_window(self) -> None:
        """Samples added from now on belong to a new screening window."""
        if self.complete:
            self.windows.append([])

    def add_sample(self, image: np.ndarray, boxes: list[tuple[int, int, int, int] | None]) -> None:
        """One sample of the current window: per cluster its box in `image` pixels, or None (not seen)."""
        if not self.complete:
            return
        crops = [None if box is None else landmark_crop(image, box) for box in boxes]
        crops = [None if kept is None else (dlib_intensity(kept[0]), kept[1]) for kept in crops]
        self.used += sum(crop.nbytes for crop, _ in filter(None, crops))
        if self.used > self.budget:
            self.complete, self.windows = False, []
            return
        self.windows[-1].append(crops)

    def shape_tracks(self, clusters: list[int]) -> list[list[np.ndarray | None]]:
        """Per cluster index, its 68 landmarks at every kept sample, None before each window and where
        unseen: what `LipSyncLinker.shape_tracks_of` gives from decoding the same windows."""
        tracks: list[list[np.ndarray | None]] = [[] for _ in clusters]
        for window in self.windows:
            for track in tracks:
                track.append(None)
            for crops in window:
                for c, track in zip(clusters, tracks):
                    kept = crops[c]
                    track.append(None if kept is None else landmarks_in(*kept))
        return tracks


#: Landmarks that move with the head only: the nose bridge and base and the eye corners.
RIGID_POINTS = (27, 28, 29, 30, 31, 35, 36, 39, 42, 45)
#: The 20 lip landmarks.
LIP_POINTS = tuple(range(48, 68))


def align_shape(points: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`points` (68, 2) moved onto `reference` by the similarity transform that best fits their rigid points."""
    a, b = points[list(RIGID_POINTS)], reference[list(RIGID_POINTS)]
    ma, mb = a.mean(axis=0), b.mean(axis=0)
    u, s, vt = np.linalg.svd((a - ma).T @ (b - mb))
    rotation = u @ vt
    scale = s.sum() / max(float(((a - ma) ** 2).sum()), 1e-12)
    return (points - ma) @ rotation * scale + mb


def lip_movement_ratio(shapes: list[np.ndarray | None]) -> float:
    """How much the lips move on their own: lip motion over head motion between consecutive samples.

    Each face shape is aligned on its rigid points (nose, eye corners) to the mean shape, so that what
    is left of the lips' motion is the mouth's own; the ratio divides the lip landmarks' average
    displacement between consecutive samples by the rigid landmarks' (their jitter). A picture moved,
    zoomed or panned as a whole keeps its mouth still relative to its nose and eyes: only the
    landmarks' jitter is left (lips jitter a little more than eye corners); a speaking mouth moves on
    its own. `shapes` are (68, 2) landmarks of consecutive samples, None where the face was not seen.
    NaN with fewer than three consecutive pairs.
    """
    seen = [s for s in shapes if s is not None]
    if len(seen) < 4:
        return float("nan")
    reference = seen[0]
    for _ in range(2):
        reference = np.mean([align_shape(s, reference) for s in seen], axis=0)
    aligned = [None if s is None else align_shape(s, reference) for s in shapes]
    lips, rigid = [], []
    for a, b in zip(aligned[:-1], aligned[1:]):
        if a is None or b is None:
            continue
        step = np.linalg.norm(b - a, axis=1)
        lips.append(step[list(LIP_POINTS)].mean())
        rigid.append(step[list(RIGID_POINTS)].mean())
    if len(lips) < 3 or np.mean(rigid) <= 0:
        return float("nan")
    return float(np.mean(lips) / np.mean(rigid))


def mouth_openness(landmarks: np.ndarray) -> float:
    """Inner-lip gap over mouth width from the 68 landmarks (0 closed, about 0.3-0.6 wide open)."""
    gap = np.mean([np.linalg.norm(landmarks[a] - landmarks[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    width = np.linalg.norm(landmarks[60] - landmarks[64])
    return float(gap / width) if width > 0 else 0.0
