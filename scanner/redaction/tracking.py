"""Where a person's face is in every frame of a video, from the scan's sampled detections.

The scan looked at about one frame per second (`AnalysisSettings.sample_fps`) and stored, per face
cluster, the detections on those samples (time, box). Redaction must cover the face in every frame,
so `FaceFollower` follows each selected person's face between and around those samples:

- Anchors: the stored detections of the selected clusters (where the scan saw the person) and of
  everyone else (used only to notice a track that drifted onto somebody else).
- Every `step_s` seconds of video (and on every frame the scan sampled), each followed face is
  searched again by dlib's HOG detector in a crop around where its motion puts it, rescaled so the
  face measures about 80 px (cheap: a small crop per face, not a full-frame search).
- A face is also looked for up to one sample interval *before* the anchor that first shows it
  there (it may have been visible before the scan's sample). Such a track counts only once it
  reaches its anchor: a track that is lost first (someone else sat there) is dropped.
- A track ends when its face is lost for longer than one sample interval, when the pixels around
  it change abruptly (a cut, a gallery reshuffle), or when it lands on another person's anchor.
  The search predicts where the face moved (its centre's motion) but keeps its recent size: a
  size extrapolated from the detector's jittery boxes grows until the search no longer finds it.

`covers(t)` then gives the boxes to cover on the frame at time t, grown by a margin, from two
sources, both used (generous where unsure: the detector misses faces now and then):

- tracks: the union of the face's boxes at the observations just before and after t; one step's
  worth before the first and after the last observation of a track; while a track's searches
  fail, its last box until its last failed search.
- the scan's own detections (holds): between two consecutive detections of a cluster one sample
  interval or so apart whose boxes are near each other, the union of the two boxes (the scan saw
  the face there at both ends); one sample interval before a cluster's first detection and after
  its last (and on both sides of a gap in it), the detection's box.

Answers are final only for frames at least `lookahead_s` older than the last frame observed, so
the caller holds that many frames back (see `scanner.redaction.media`).

Boxes are (top, right, bottom, left) in original pixels, face_recognition's order.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from scanner.analysis.faces.boxes import union

Box = tuple[int, int, int, int]

#: Faces are searched in crops scaled so that they measure this many pixels (HOG's window is 80 px
#: and finds faces of 60 px and more; see scanner.analysis.faces.detection.HOG_MIN_FACE).
SEARCH_FACE_PX = 80.0


@dataclass(frozen=True)
class Anchor:
    """A face the scan detected on a sampled frame: the cluster's owner (None: not redacted)."""

    time_s: float
    box: Box
    person_id: str | None
    cluster_id: int = -1  # the scan's face cluster (holds join consecutive detections of one cluster)


@dataclass(frozen=True)
class FollowSettings:
    """How faces are followed between the scan's samples.

    step_s: seconds of video between two searches of each followed face (default 0.125: 8 per
        second; between searches the cover spans the face's boxes on both sides).
    margin: the cover grows the detector's box by this fraction of its width on the left and right,
        of its height below, and by `margin_top` of its height above (the HOG box stops at the
        eyebrows; hair and forehead also identify).
    margin_top: see `margin` (default 0.6).
    search_grow: the search crop grows the predicted box by this fraction of its size on every side.
    cut_levels: mean absolute change (grey levels, 8x8 block means of the face's box) between two
        searches above which the face is taken to have been replaced (a cut, a reshuffled gallery):
        the track ends there.
    """

    step_s: float = 0.125
    margin: float = 0.35
    margin_top: float = 0.6
    search_grow: float = 0.6
    cut_levels: float = 40.0


@dataclass
class _Track:
    person_id: str
    times: list[float] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    confirmed: bool = False  # started on, or reached, an anchor of its person
    ended: bool = False
    patch: np.ndarray | None = None  # 8x8 block means of the last box, for the cut test
    searched_until: float = -1.0  # the last search for this face that did not end the track (found or not)

    def add(self, time_s: float, box: Box, grey: np.ndarray | None) -> None:
        self.times.append(time_s)
        self.boxes.append(box)
        if grey is not None:
            self.patch = _blocks(grey, box)

    @property
    def last_time(self) -> float:
        return self.times[-1]

    def predicted(self, time_s: float) -> Box:
        """The last box's centre moved on by its motion between the last two observations (at most
        twice that motion), at the median size of the last five boxes."""
        top, right, bottom, left = self.boxes[-1]
        recent = self.boxes[-5:]
        w = float(np.median([b[1] - b[3] for b in recent]))
        h = float(np.median([b[2] - b[0] for b in recent]))
        cx, cy = (left + right) / 2, (top + bottom) / 2
        if len(self.times) >= 2 and self.times[-1] > self.times[-2]:
            pt, pr, pb, pl = self.boxes[-2]
            dt = min((time_s - self.times[-1]) / (self.times[-1] - self.times[-2]), 2.0)
            cx += (cx - (pl + pr) / 2) * dt
            cy += (cy - (pt + pb) / 2) * dt
        return int(round(cy - h / 2)), int(round(cx + w / 2)), int(round(cy + h / 2)), int(round(cx - w / 2))


def _blocks(grey: np.ndarray, box: Box) -> np.ndarray | None:
    top, right, bottom, left = _clip(box, grey.shape)
    if bottom - top < 8 or right - left < 8:
        return None
    crop = grey[top:bottom, left:right].astype(np.float32)
    h, w = crop.shape
    crop = crop[: h - h % 8, : w - w % 8]
    return crop.reshape(8, crop.shape[0] // 8, 8, crop.shape[1] // 8).mean(axis=(1, 3))


def _clip(box, shape) -> Box:
    top, right, bottom, left = box
    return max(0, int(top)), min(shape[1], int(right)), min(shape[0], int(bottom)), max(0, int(left))


def centre_near(a: Box, b: Box, fraction: float) -> bool:
    """Centres within `fraction` of a's width and sizes within a factor 1.6 of each other."""
    wa, wb = a[1] - a[3], b[1] - b[3]
    if wa <= 0 or wb <= 0 or not (1 / 1.6 <= wb / wa <= 1.6):
        return False
    ca = ((a[1] + a[3]) / 2, (a[0] + a[2]) / 2)
    cb = ((b[1] + b[3]) / 2, (b[0] + b[2]) / 2)
    return float(np.hypot(ca[0] - cb[0], ca[1] - cb[1])) <= fraction * wa


def grow(box: Box, settings: FollowSettings, shape: tuple[int, int]) -> Box:
    """The cover for a detector box: grown by the margins, clipped to a frame of `shape` (h, w)."""
    top, right, bottom, left = box
    w, h = right - left, bottom - top
    return _clip(
        (top - settings.margin_top * h, right + settings.margin * w, bottom + settings.margin * h,
         left - settings.margin * w),
        shape,
    )


class FaceFollower:
    """Follows the selected people's faces through one video (see the module docstring).

    Call `wants(t)` for each decoded frame in order; give the frames it wants to `observe(t, grey)`
    (grey: the frame's luma, original size); ask `covers(t)` for frames at least `lookahead_s`
    older than the last observed one (or any frame once `finish()` was called).
    """

    def __init__(self, anchors: list[Anchor], sample_interval_s: float, frame_interval_s: float,
                 shape: tuple[int, int], settings: FollowSettings = FollowSettings()):
        self.settings = settings
        self.shape = shape  # (height, width)
        self.sample_interval_s = max(sample_interval_s, settings.step_s)
        self.half_frame = max(frame_interval_s, 1e-3) / 2
        self.selected = sorted((a for a in anchors if a.person_id is not None), key=lambda a: a.time_s)
        self.others = sorted((a for a in anchors if a.person_id is None), key=lambda a: a.time_s)
        self._selected_times = [a.time_s for a in self.selected]
        self._other_times = [a.time_s for a in self.others]
        self.max_gap_s = self.sample_interval_s + settings.step_s + 2 * self.half_frame
        self.holds = _holds(self.selected, self.sample_interval_s, self.max_gap_s + self.sample_interval_s / 2)
        self._hold_starts = [h[0] for h in self.holds]
        self._hold_span = max((h[1] - h[0] for h in self.holds), default=0.0)
        self.tracks: list[_Track] = []
        self._next_step = 0.0
        self._api = None
        self.searches = 0

    @property
    def lookahead_s(self) -> float:
        """How far behind the last observed frame `covers` answers are final."""
        return self.max_gap_s + self.settings.step_s

    @property
    def active(self) -> bool:
        return bool(self.selected)

    # ---------------------------------------------------------------- observing
    def _anchors_near(self, times: list[float], anchors: list[Anchor], t: float, before: float, after: float):
        lo = bisect.bisect_left(times, t - before)
        hi = bisect.bisect_right(times, t + after)
        return anchors[lo:hi]

    def wants(self, time_s: float) -> bool:
        """Whether the frame at `time_s` should be observed: a search step, or a frame the scan sampled."""
        if not self.selected:
            return False
        if self._anchors_near(self._selected_times, self.selected, time_s, self.half_frame, self.half_frame):
            return True
        first, last = self._selected_times[0], self._selected_times[-1]
        if time_s < first - self.max_gap_s or (time_s > last + self.max_gap_s and not self._live()):
            return False
        return time_s >= self._next_step - self.half_frame

    def _live(self) -> bool:
        return any(not t.ended for t in self.tracks)

    def observe(self, time_s: float, grey: np.ndarray) -> None:
        """Search the followed faces in this frame (grey levels, original size), and start tracks at anchors."""
        self._next_step = time_s + self.settings.step_s
        here = self._anchors_near(self._selected_times, self.selected, time_s, self.half_frame, self.half_frame)
        others = self._anchors_near(self._other_times, self.others, time_s, self.half_frame, self.half_frame)
        updated: set[int] = set()
        # 1. The scan's own detections on this frame: authoritative.
        for anchor in here:
            track = next((t for t in self.tracks if not t.ended and t.person_id == anchor.person_id
                          and id(t) not in updated and centre_near(t.predicted(time_s), anchor.box, 0.75)), None)
            if track is None:
                track = _Track(anchor.person_id)
                self.tracks.append(track)
            track.confirmed = True
            track.add(time_s, anchor.box, grey)
            updated.add(id(track))
        # 2. Every other live track: search where its face should be now.
        for track in list(self.tracks):
            if track.ended or id(track) in updated:
                continue
            if time_s - track.last_time > self.max_gap_s:
                self._end(track)
                continue
            box = self._find(grey, track.predicted(time_s), track.boxes[-1])
            if box is None:
                track.searched_until = time_s  # lost for now: its last box stays covered
                continue
            drifted = any(centre_near(box, a.box, 0.3) for a in others)  # onto someone the scan saw there
            if drifted or self._cut(track, grey, box):
                self._end(track)
                continue
            track.add(time_s, box, grey)
            track.searched_until = time_s
            updated.add(id(track))
        # 3. Anchors still to come: look for their face before the scan's sample showed it.
        ahead = self._anchors_near(self._selected_times, self.selected, time_s, -self.half_frame,
                                   self.sample_interval_s)
        for anchor in ahead:
            if any(not t.ended and t.person_id == anchor.person_id and centre_near(t.boxes[-1], anchor.box, 0.75)
                   for t in self.tracks):
                continue
            box = self._find(grey, anchor.box, anchor.box)
            if box is None or any(centre_near(box, a.box, 0.3) for a in others):
                continue
            track = _Track(anchor.person_id)
            track.add(time_s, box, grey)
            self.tracks.append(track)

    def _end(self, track: _Track) -> None:
        track.ended = True
        if not track.confirmed:
            self.tracks.remove(track)  # never reached its anchor: maybe someone else sat there

    def _cut(self, track: _Track, grey: np.ndarray, box: Box) -> bool:
        if track.patch is None:
            return False
        now = _blocks(grey, track.boxes[-1])
        return now is not None and float(np.abs(now - track.patch).mean()) > self.settings.cut_levels

    def _find(self, grey: np.ndarray, predicted: Box, last: Box) -> Box | None:
        """The face nearest `predicted` in a crop around it, or None."""
        top, right, bottom, left = predicted
        w, h = max(1, right - left), max(1, bottom - top)
        g = self.settings.search_grow
        region = _clip((top - g * h, right + g * w, bottom + g * h, left - g * w), grey.shape)
        rt, rr, rb, rl = region
        if rb - rt < 16 or rr - rl < 16:
            return None
        factor = float(np.clip(SEARCH_FACE_PX / w, 0.1, 4.0))
        crop = grey[rt:rb, rl:rr]
        if abs(factor - 1.0) > 0.05:
            size = (max(1, int(round(crop.shape[1] * factor))), max(1, int(round(crop.shape[0] * factor))))
            crop = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
        if crop.shape[0] < 80 or crop.shape[1] < 80:  # smaller than HOG's window: pad with grey
            padded = np.full((max(80, crop.shape[0]), max(80, crop.shape[1])), 128, dtype=np.uint8)
            padded[: crop.shape[0], : crop.shape[1]] = crop
            crop = padded
        if self._api is None:
            from scanner.analysis.faces.dlib_models import face_api

            self._api = face_api()
        self.searches += 1
        found = self._api.face_locations(np.ascontiguousarray(crop), 0, "hog")
        boxes = [(int(t / factor) + rt, int(r / factor) + rl, int(b / factor) + rt, int(l / factor) + rl)
                 for t, r, b, l in found]
        boxes = [b for b in boxes if centre_near(last, b, 0.8)]
        if not boxes:
            return None
        pc = ((predicted[1] + predicted[3]) / 2, (predicted[0] + predicted[2]) / 2)
        return min(boxes, key=lambda b: (pc[0] - (b[1] + b[3]) / 2) ** 2 + (pc[1] - (b[0] + b[2]) / 2) ** 2)

    def finish(self) -> None:
        """No more frames: end every track (unconfirmed ones are dropped)."""
        for track in list(self.tracks):
            if not track.ended:
                self._end(track)

    # ---------------------------------------------------------------- covering
    def covers(self, time_s: float) -> dict[str, list[Box]]:
        """Boxes to cover on the frame at `time_s`, by person id (grown by the margins, clipped)."""
        out: dict[str, list[Box]] = {}
        reach = self.settings.step_s + 2 * self.half_frame
        lo = bisect.bisect_left(self._hold_starts, time_s - self._hold_span - self.half_frame)
        hi = bisect.bisect_right(self._hold_starts, time_s + self.half_frame)
        for start, end, person_id, box in self.holds[lo:hi]:
            if start - self.half_frame <= time_s <= end + self.half_frame:
                out.setdefault(person_id, []).append(grow(box, self.settings, self.shape))
        for track in self.tracks:
            if not track.confirmed:
                continue
            times = track.times
            if time_s < times[0] - reach or time_s > times[-1] + reach:
                continue
            i = bisect.bisect_right(times, time_s + 1e-9)
            before = i - 1 if i > 0 else None
            after = i if i < len(times) else None
            if before is not None and abs(times[before] - time_s) <= 1e-6:
                box = track.boxes[before]
            elif before is not None and after is not None and times[after] - times[before] <= self.max_gap_s:
                box = union(track.boxes[before], track.boxes[after])
            elif before is not None and time_s - max(times[before], track.searched_until) <= reach:
                box = track.boxes[before]
            elif after is not None and times[after] - time_s <= reach:
                box = track.boxes[after]
            else:
                continue
            out.setdefault(track.person_id, []).append(grow(box, self.settings, self.shape))
        return out

    def forget_before(self, time_s: float) -> None:
        """Drop ended tracks that can no longer cover a frame at or after `time_s` (memory stays bounded)."""
        reach = self.settings.step_s + 2 * self.half_frame
        self.tracks = [t for t in self.tracks if not (t.ended and max(t.times[-1], t.searched_until) + reach < time_s)]


def _holds(selected: list[Anchor], interval_s: float, max_gap_s: float) -> list[tuple[float, float, str, Box]]:
    """(start s, end s, person id, box) spans covered from the scan's detections alone, by start.

    Two consecutive detections of one cluster at most `max_gap_s` apart with boxes near each other
    (centres within 1.5 face widths, sizes within a factor 1.6) hold the union of their boxes
    between them; a detection without such a neighbour holds its own box for `interval_s` on that side.
    """
    by_cluster: dict[tuple[str, int], list[Anchor]] = {}
    for a in selected:
        by_cluster.setdefault((a.person_id, a.cluster_id), []).append(a)
    holds = []
    for (person_id, _), anchors in by_cluster.items():
        anchors.sort(key=lambda a: a.time_s)
        for i, a in enumerate(anchors):
            nxt = anchors[i + 1] if i + 1 < len(anchors) else None
            prev = anchors[i - 1] if i > 0 else None
            if nxt is not None and _bridged(a, nxt, max_gap_s):
                holds.append((a.time_s, nxt.time_s, person_id, union(a.box, nxt.box)))
            else:
                holds.append((a.time_s, a.time_s + interval_s, person_id, a.box))
            if prev is None or not _bridged(prev, a, max_gap_s):
                holds.append((a.time_s - interval_s, a.time_s, person_id, a.box))
    holds.sort(key=lambda h: h[0])
    return holds


def _bridged(a: Anchor, b: Anchor, max_gap_s: float) -> bool:
    return b.time_s - a.time_s <= max_gap_s and centre_near(a.box, b.box, 1.5)
