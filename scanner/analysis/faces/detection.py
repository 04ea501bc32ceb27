"""Where the faces are on each sample of one recording: dlib's detector, searched where it pays.

A full-frame search runs on the first sample, after every shot change and every `search_s`
seconds, sized so that a face of `search_face_px` original pixels measures `HOG_SURE_FACE`
detector pixels; the periodic one only around the tracked faces where they leave most of the frame
free (`FaceSearch.track_zones`). In between, each sample is searched only around the faces being tracked (where
their motion puts them, in crops scaled to `track_face_px`) and in the 40 px blocks that changed
since they were last searched; a face whose pixels are unchanged (or, opt-in, that is found by its
appearance) is carried forward without the detector. Sizes and costs: bench/faces.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from scanner.analysis.faces.boxes import Box, clip_box, dedupe_boxes, merge_overlapping
from scanner.analysis.faces.pixels import block_signature, match_patch, shot_signature
from scanner.analysis.faces.settings import FaceSettings
from scanner.analysis.faces.tracking import STEADY, STILL, Track, Tracker
from scanner.models import Frame

#: Smallest face (detector pixels) dlib's HOG detector finds reliably without upsampling.
HOG_MIN_FACE = 60.0
#: Face size (detector pixels) at which HOG finds faces reliably: what searches enlarge faces of
#: `search_face_px` to.
HOG_SURE_FACE = 72.0
#: Smallest size (detector pixels) from which an enlarged search still finds a face.
HOG_ENLARGED_FACE = 40.0


@dataclass
class SampleSearch:
    """The faces found on one sample.

    boxes: face boxes (top, right, bottom, left) in detector pixels, without duplicates.
    carried: the boxes carried forward without the detector: box -> (`STILL` or `STEADY`, the
        track it was carried for).
    shot_change: the sample starts a new shot (every track must end before it).
    """

    boxes: list[Box]
    carried: dict = field(default_factory=dict)
    shot_change: bool = False


def track_zone(box: Box) -> Box:
    """The surroundings of a tracked face's `box` (top, right, bottom, left): a face width above it and
    1.2 to either side, two below (hair, shoulders and head movement). Changes there are not searched
    between full searches (they are the tracked face moving), so the periodic search looks there."""
    top, right, bottom, left = box
    w = right - left
    return (top - w, right + 1.2 * w, bottom + 2 * w, left - 1.2 * w)


class FaceSearch:
    """Finds the face boxes of each sample of one recording, in order (it keeps what the previous
    samples showed: their block signatures, the time of the last full search)."""

    def __init__(self, settings: FaceSettings, api=None):
        """`api`: face_recognition's API module (`face_api()`), needed by `search` only."""
        self.settings = settings
        self.api = api
        self.previous: np.ndarray | None = None  # shot signature of the previous sample
        self.previous_blocks: np.ndarray | None = None  # its block signature
        self.reference: np.ndarray | None = None  # block signature as of each block's last search
        self.last_full: float | None = None  # time of the last full-frame search

    # ---------------------------------------------------------------- sizes
    def frame_width(self, width: int) -> int:
        """Width (pixels) the frames of a `width` px wide video are decoded at for detection:
        `max_width`, widened where a face of `search_face_px` would measure under
        `HOG_ENLARGED_FACE` pixels, never wider than the video."""
        s = self.settings
        if not width:
            return s.max_width
        needed = int(math.ceil(width * HOG_ENLARGED_FACE / s.search_face_px))
        return min(width, max(s.max_width, needed + needed % 2))

    def upsample_needed(self, face_px: float) -> int:
        """2x upsamplings (at most `upsample`) that bring a face of `face_px` detector pixels up to
        the HOG window."""
        needed = 0
        while face_px * 2**needed < HOG_MIN_FACE and needed < self.settings.upsample:
            needed += 1
        return needed

    def search_factor(self, scale: float) -> float:
        """Enlargement of a frame whose pixels are `scale` original pixels each, so that a face of
        `search_face_px` original pixels measures `HOG_SURE_FACE` detector pixels (>= 1)."""
        return max(1.0, HOG_SURE_FACE * scale / self.settings.search_face_px)

    def detector_input(self, image: np.ndarray, grey: np.ndarray) -> np.ndarray:
        """What the detector searches: the frame's grey levels `grey` for HOG (a quarter cheaper than
        RGB and as sensitive, bench/faces.md), the RGB `image` for the CNN."""
        return grey if self.settings.detector == "hog" else image

    # ---------------------------------------------------------------- searches
    def search_image(self, searched: np.ndarray, min_px: float) -> SampleSearch:
        """Faces of a still image (`detector_input`), upsampled to find faces of `min_px` pixels."""
        return SampleSearch(self.locate(searched, self.upsample_needed(min_px)))

    def search(
        self, frame: Frame, searched: np.ndarray, tracker: Tracker, sample_index: int, min_px: float
    ) -> SampleSearch:
        """Faces of the next video sample: a full-frame search on the first sample, after a shot
        change and every `search_s` seconds (there only around the tracked faces when `track_zones`
        gives zones, with `search_between` for the rest); otherwise `search_between`.

        `searched` is what the detector reads (`detector_input`), `min_px` the smallest face in
        detector pixels, `tracker` the tracks so far (its active tracks are searched for).
        """
        s = self.settings
        signature = block_signature(frame.image)
        coarse = shot_signature(signature)
        shot = self.previous is not None and (
            float(np.abs(coarse - self.previous).mean()) > s.shot_change
            # a cut of the picture's main part (letterboxed or framed content)
            or float((np.abs(signature - self.previous_blocks) > 1.5 * s.shot_change).mean()) > 0.2
        )
        self.previous, self.previous_blocks = coarse, signature
        periodic = self.last_full is not None and frame.time_s - self.last_full >= s.search_s - 1e-6
        if not shot and periodic:
            zones = self.track_zones(tracker, searched.shape)
            if zones is not None:
                # Elsewhere every change since the last search was searched already: a new face there
                # would have changed its blocks. Next to a tracked face changes are not looked for.
                self.last_full = frame.time_s
                boxes, _ = self.search_between(
                    frame.image, searched, tracker, signature, min_px, sample_index, frame.scale, carry=False
                )
                factor = self.search_factor(frame.scale)
                bh, bw = searched.shape[0] / signature.shape[0], searched.shape[1] / signature.shape[1]
                for zone in zones:
                    boxes.extend(self.locate_region(searched, zone, factor=factor))
                    top, right, bottom, left = zone
                    rows = slice(int(top // bh), int(math.ceil(bottom / bh)))
                    cols = slice(int(left // bw), int(math.ceil(right / bw)))
                    self.reference[rows, cols] = signature[rows, cols]
                return SampleSearch(dedupe_boxes(boxes))
        if shot or self.last_full is None or periodic:
            whole = (0, searched.shape[1], searched.shape[0], 0)
            self.reference, self.last_full = signature, frame.time_s
            boxes = self.locate_region(searched, whole, factor=self.search_factor(frame.scale))
            return SampleSearch(boxes, shot_change=shot)
        boxes, carried = self.search_between(
            frame.image, searched, tracker, signature, min_px, sample_index, frame.scale
        )
        return SampleSearch(boxes, carried)

    def track_zones(self, tracker: Tracker, shape: tuple) -> list[Box] | None:
        """Where the periodic search must look when it need not search the whole frame: the
        surroundings of every tracked face (`track_zone`; the blocks whose changes are not looked for),
        overlapping ones joined. None (search the whole frame) with no tracked face, or where the zones
        would cover more than `zone_share` of the frame."""
        s = self.settings
        if s.zone_share <= 0 or not tracker.active:
            return None
        zones = merge_overlapping([clip_box(track_zone(track.boxes[-1]), shape) for track in tracker.active], 0.0)
        area = sum((b - t) * (r - l) for t, r, b, l in zones)
        return zones if area <= s.zone_share * shape[0] * shape[1] else None

    def locate(self, image: np.ndarray, upsample: int) -> list[Box]:
        """Face boxes in `image` (`detector_input`), with `upsample` 2x upsamplings."""
        return self.api.face_locations(image, upsample, self.settings.detector)

    def locate_region(
        self, image, rect, face_px: float = HOG_MIN_FACE, target: float | None = None, factor: float | None = None
    ) -> list[Box]:
        """Detect inside rect = (top, right, bottom, left) of `image`; boxes in image pixels.

        The crop is rescaled so that a face of `face_px` (detector pixels) reaches the HOG
        window (a 1.2x enlargement costs 1.4x, where the detector's own upsampling costs 4x),
        and so that a tracked face of `target` px measures `track_face_px`; or by `factor` when
        given.
        """
        top, right, bottom, left = clip_box(rect, image.shape)
        if bottom - top < 24 or right - left < 24:
            return []
        crop = image[top:bottom, left:right]
        if factor is None:
            factor = 1.0
            if face_px < HOG_MIN_FACE:
                factor = min(4.0, HOG_MIN_FACE * 1.05 / max(face_px, 1.0))
            elif target is not None and target > 1.2 * self.settings.track_face_px:
                factor = self.settings.track_face_px / target
        if factor != 1.0:
            h, w = crop.shape[:2]
            size = (max(1, int(round(w * factor))), max(1, int(round(h * factor))))
            crop = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.BILINEAR))
        boxes = self.locate(np.ascontiguousarray(crop), 0)
        return [
            (
                int(round(t / factor)) + top,
                int(round(r / factor)) + left,
                int(round(b / factor)) + top,
                int(round(l / factor)) + left,
            )
            for t, r, b, l in boxes
        ]

    def search_between(
        self, image, searched, tracker: Tracker, signature, min_px: float, sample_index: int, scale: float = 1.0,
        carry: bool = True,
    ) -> tuple[list[Box], dict]:
        """(boxes, carried) between full searches: around every tracked face, and in changed regions.

        `image` is the RGB frame, `searched` what the detector reads (`detector_input`), `signature`
        its `block_signature`, `scale` the original pixels per frame pixel (`Frame.scale`). Searched
        blocks of `self.reference` take this sample's signature. `carried` as in `SampleSearch`;
        with `carry` False every tracked face is searched for, still or not.
        """
        s = self.settings
        reference = self.reference
        boxes: list[Box] = []
        covered = np.zeros(signature.shape, dtype=bool)
        bh, bw = image.shape[0] / signature.shape[0], image.shape[1] / signature.shape[1]
        carried: dict = {}
        for track in tracker.active:
            top, right, bottom, left = track.boxes[-1]
            w = right - left
            t, r, b, l = clip_box(track_zone(track.boxes[-1]), image.shape)
            kind, kept = None, None
            if carry:
                kind, kept = (STILL, track.boxes[-1]) if self.unchanged(image, track, sample_index) else (None, None)
                if kept is None:
                    kind, kept = STEADY, self.steady_box(image, track, sample_index)
            if kept is not None:
                # Still or steady: the face is (near) where it was, looking as it did when last
                # detected and measured; carried forward without detector or landmarks.
                boxes.append(kept)
                carried[kept] = (kind, track)
                covered[int(t // bh) : int(math.ceil(b / bh)), int(l // bw) : int(math.ceil(r / bw))] = True
                continue
            face_px = max(min_px, 0.8 * w)
            # First a tight crop around where the face's recent motion puts it; only if the face
            # is not there, a wide one around its last position (it moved fast, or left).
            pt, pr, pb, pl = track.predicted_box(sample_index)
            pad = s.track_margin * w
            found = self.locate_region(searched, (pt - pad, pr + pad, pb + pad, pl - pad), face_px, target=w)
            if not found:
                pad = s.track_margin_wide * w
                rect = (top - pad, right + pad, bottom + pad, left - pad)
                found = self.locate_region(searched, rect, face_px, target=w)
            boxes.extend(found)
            # Hair, shoulders and head movement change the blocks around a face: not a new face.
            covered[int(t // bh) : int(math.ceil(b / bh)), int(l // bw) : int(math.ceil(r / bw))] = True
        changed = (np.abs(signature - reference) > s.region_change) & ~covered
        if changed.any():
            labels, _ = ndimage.label(ndimage.binary_dilation(changed, iterations=1))
            for sl in ndimage.find_objects(labels):
                if sl is None:
                    continue
                rows, cols = sl
                grow = max(1, int(math.ceil(2.0 * max(min_px, HOG_MIN_FACE) / bw)))
                r0, r1 = max(0, rows.start - grow), min(signature.shape[0], rows.stop + grow)
                c0, c1 = max(0, cols.start - grow), min(signature.shape[1], cols.stop + grow)
                rect = (r0 * bh, c1 * bw, r1 * bh, c0 * bw)
                boxes.extend(self.locate_region(searched, rect, factor=self.search_factor(scale)))
                reference[r0:r1, c0:c1] = signature[r0:r1, c0:c1]
        return dedupe_boxes(boxes), carried

    def unchanged(self, image: np.ndarray, track: Track, sample_index: int) -> bool:
        """Whether a face seen on the previous sample still shows the pixels it was detected on
        (mean absolute difference of the green channel around its box <= `static_tolerance`)."""
        if self.settings.static_tolerance <= 0 or track.reference_patch is None:
            return False
        if track.sample_indices[-1] != sample_index - 1:
            return False
        (t, r, b, l), patch = track.reference_patch
        current = image[t:b, l:r, 1]
        if current.shape != patch.shape or current.size == 0:
            return False
        return float(np.abs(current.astype(np.int16) - patch).mean()) <= self.settings.static_tolerance

    def steady_box(self, image: np.ndarray, track: Track, sample_index: int) -> Box | None:
        """The box of a steadily moving face on this sample, or None when it must be searched.

        A face detected (not carried) on the previous sample is steady when, near where its
        motion puts it, a box of the same size shows a grey patch that correlates with the
        patch it was detected on by at least `steady_correlation` (`match_patch`); at most
        `steady_max_run` samples in a row, so every face is still detected and measured at
        least every `steady_max_run + 1` samples.
        """
        s = self.settings
        if s.steady_correlation <= 0 or s.steady_max_run <= 0 or track.appearance is None:
            return None
        if track.carried_run >= s.steady_max_run or track.sample_indices[-1] != sample_index - 1:
            return None
        found = match_patch(image, track.predicted_box(sample_index), track.appearance, s.steady_search)
        if found is None or found[1] < s.steady_correlation:
            return None
        return found[0]
