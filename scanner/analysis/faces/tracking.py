"""Tracks: the detections of one face on consecutive samples, linked by box overlap and motion.

Boxes here are in detector pixels (the decoded, possibly downscaled frame); detections
(`FaceDetection`) carry original pixels.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from scanner.analysis.faces.boxes import centre_distance, iou
from scanner.analysis.faces.pixels import crop_for_encoding, make_thumbnail
from scanner.analysis.faces.quality import quality_score
from scanner.models import FaceDetection

#: How a detection was carried forward without the detector (`FaceSearch.search_between`): still
#: (pixels unchanged: the measurement is repeated) or steady (found by appearance: landmark
#: measures repeated, sharpness measured again).
STILL, STEADY = "still", "steady"


@dataclass
class Candidate:
    """A detection kept for encoding: its `quality_score`, its index in the track's detections, and
    a crop around the face with the box in crop pixels (so the frame can be released)."""

    score: float
    det_index: int
    crop: np.ndarray
    box_in_crop: tuple[int, int, int, int]


@dataclass
class Track:
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
    slots: dict[int, Candidate] = field(default_factory=dict)
    thumbnail: np.ndarray | None = None
    thumbnail_score: float = -1.0
    thumbnail_time_s: float | None = None
    encodings: np.ndarray | None = None
    encoded_indices: list[int] = field(default_factory=list)
    # Region and green pixels around the last box the detector found (not carried forward).
    reference_patch: tuple | None = None
    # Grey appearance patch (`appearance_patch`) of the last box the detector found, and how
    # many samples in a row the face has since been carried forward as steady.
    appearance: np.ndarray | None = None
    carried_run: int = 0

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
            crop, box_in_crop = crop_for_encoding(image, box)
            self.slots[slot] = Candidate(score, len(self.detections) - 1, crop, box_in_crop)
            if len(self.slots) > 2 * self.k:
                self._coarsen()
        if score > self.thumbnail_score:
            self.thumbnail_score = score
            self.thumbnail = make_thumbnail(image, box)
            self.thumbnail_time_s = det.time_s

    def _coarsen(self) -> None:
        """Halve the candidate slots: neighbouring slots merge, the better candidate survives."""
        merged: dict[int, Candidate] = {}
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


class Tracker:
    """Greedy sample-to-sample association of detections to tracks by box overlap (with the last
    box or the one predicted from the track's motion).

    k, slot_s: the `Track` candidate pool of new tracks.
    max_gap: samples a track may go unseen and still continue (2).
    min_iou: a box continues a track when it overlaps its last or predicted box this much (0.3) ...
    max_centre, max_size_ratio: ... or when its centre lies within this many box widths (1.0) and
        its width within this ratio (1.5) of it.
    """

    def __init__(
        self,
        k: int,
        slot_s: float,
        max_gap: int = 2,
        min_iou: float = 0.3,
        max_centre: float = 1.0,
        max_size_ratio: float = 1.5,
    ):
        # max_centre 1.0: a walking face moves ~0.9 of its width a second, gallery neighbours sit
        # 1.2 widths apart or more (bench/faces.md), and the greedy pairing takes the nearest first.
        self.k, self.slot_s = k, slot_s
        self.max_gap, self.min_iou, self.max_centre = max_gap, min_iou, max_centre
        self.max_size_ratio = max_size_ratio
        self.active: list[Track] = []
        self.finished: list[Track] = []
        self._ids = itertools.count()

    def cut(self) -> None:
        """A shot change: nobody on screen continues, whatever the positions say."""
        self.finished.extend(self.active)
        self.active = []


    def associate(self, sample_index: int, boxes: list[tuple]) -> list[Track]:
        """The track of each box (new tracks where none matches), with the box added to it.

        Only positions are needed, so the next sample's search can start while this sample's
        detections are still being measured; each track then receives its measurements in
        order with `Track.add_detection`.
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
                overlap = max(iou(b, box) for b in expected)
                centre = min(centre_distance(b, box) for b in expected)
                ratio = max(width, box[1] - box[3]) / max(1, min(width, box[1] - box[3]))
                if overlap >= self.min_iou or (centre <= self.max_centre and ratio <= self.max_size_ratio):
                    pairs.append((-(overlap - centre), ti, di))
        pairs.sort()
        owner: dict[int, Track] = {}
        used_t = set()
        for _, ti, di in pairs:
            if ti in used_t or di in owner:
                continue
            used_t.add(ti)
            owner[di] = alive[ti]
        for di in range(len(boxes)):
            if di not in owner:
                owner[di] = Track(next(self._ids), self.k, self.slot_s)
                alive.append(owner[di])
            owner[di].add_box(boxes[di], sample_index)
        self.active = alive
        return [owner[di] for di in range(len(boxes))]

    def close(self) -> list[Track]:
        """End every track; all tracks so far, in order of first detection."""
        self.finished.extend(self.active)
        self.active = []
        return sorted(self.finished, key=lambda t: (t.detections[0].time_s, t.track_id))


def carried_kind(carried: dict, box, owner: Track) -> str | None:
    """How `box` was carried forward, or None when it is a detection to measure. A carried box
    that tracking gave to another track than the one it was carried for is measured afresh.
    (The track it was carried for has earlier boxes, measured before this one: measurements
    follow box order.)"""
    kind, track = carried.get(box, (None, None))
    return kind if track is owner else None

