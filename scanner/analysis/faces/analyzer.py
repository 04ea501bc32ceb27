"""Find the faces in a recording, measure how usable each one is, and group them into people.

Pipeline for one recording (`FaceAnalyzer.analyze`), one module per step:

1. Sample frames (`scanner.media.frames.iter_frames`, `sample_fps` a second, at the width
   `FaceSearch.frame_width` gives), decoded a couple of frames ahead in a background thread.
2. Find the faces of each sample (`detection.FaceSearch`): full-frame searches now and then,
   otherwise only around tracked faces and in changed regions.
3. Measure every detection from its 68 landmarks and pixels (`quality`): size, eye distance,
   sharpness, yaw, eyes open, and whether it is `usable` for a face swap.
4. Link detections across samples into tracks (`tracking`), cut at shot changes; encode a few
   detections per track and split tracks that hold two people (`track_encoding`).
5. Group tracks into people by their mean encoding (`grouping`).

A long video can be split into time windows (`analyze(start_s=..., end_s=...)`) analysed in
separate processes and joined with `grouping.merge_analyses`. Speed and accuracy: bench/faces.md.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from scanner.analysis.faces.detection import FaceSearch
from scanner.analysis.faces.dlib_models import face_api, landmarks_68
from scanner.analysis.faces.grouping import cluster_tracks
from scanner.analysis.faces.pixels import appearance_patch, pixels_around
from scanner.analysis.faces.quality import carry_measurement, grey_levels, measure_face
from scanner.analysis.faces.settings import FaceSettings
from scanner.analysis.faces.track_encoding import encode_tracks
from scanner.analysis.faces.tracking import STEADY, Track, Tracker, carried_kind
from scanner.media.frames import iter_frames
from scanner.models import FaceAnalysis, Frame, MediaInfo, MediaKind


class FaceAnalyzer:
    """Detect, measure, track, encode and cluster the faces of one recording (`FaceSettings`)."""

    def __init__(self, settings: FaceSettings | None = None):
        """`settings`: how to sample, search, track, encode and group (default `FaceSettings()`)."""
        self.settings = settings or FaceSettings()

    def analyze(
        self, path: Path, info: MediaInfo, start_s: float | None = None, end_s: float | None = None
    ) -> FaceAnalysis:
        """Faces of one recording, grouped into people (clusters ordered by first appearance).

        `start_s`/`end_s` (seconds) restrict the analysis to a window of the video (to split one
        long video over several workers; join the parts with `merge_analyses`). Audio-only
        recordings give an empty analysis. Decoding problems raise MediaError; missing face models
        raise RuntimeError.
        """
        s = self.settings
        if info.kind == MediaKind.AUDIO:
            return FaceAnalysis(clusters=[], frames_sampled=0, sample_fps=None)
        search = FaceSearch(s, face_api())
        is_image = info.kind == MediaKind.IMAGE
        interval = 0.0 if is_image else 1.0 / s.sample_fps
        k = max(1, min(s.encodings_per_track, s.encodings_per_cluster))
        tracker = Tracker(k=k, slot_s=max(interval * 2, 1.0))
        frames = 0
        frame_iter = iter_frames(
            path, info, s.sample_fps, search.frame_width(info.width or 0), prefetch=s.prefetch_frames,
            skip_bframes=True, start_s=start_s, end_s=end_s,
        )
        pending = None
        encoded: list[Track] = []  # tracks that ended, encoded, their crops released
        # Optionally (off by default, see `overlap_measurement`) landmarks and quality of one
        # sample are measured in a second thread while this one searches the next sample.
        measurer = ThreadPoolExecutor(1, thread_name_prefix="likeness-faces") if s.overlap_measurement else None
        with measurer or contextlib.nullcontext():
            for sample_index, frame in enumerate(frame_iter):
                frames += 1
                image = frame.image
                grey = grey_levels(image)
                searched = search.detector_input(image, grey)
                min_px = s.min_face_px / frame.scale
                if is_image:
                    found = search.search_image(searched, min_px)
                else:
                    found = search.search(frame, searched, tracker, sample_index, min_px)
                if found.shot_change:
                    tracker.cut()
                boxes = [b for b in found.boxes if (b[1] - b[3]) * frame.scale >= s.min_face_px]
                owners = tracker.associate(sample_index, boxes)
                carried = [carried_kind(found.carried, box, track) for box, track in zip(boxes, owners)]
                for box, track, kind in zip(boxes, owners, carried):
                    track.carried_run = track.carried_run + 1 if kind else 0
                    if not kind:
                        track.reference_patch = pixels_around(image, box)
                        if s.steady_correlation > 0:
                            track.appearance = appearance_patch(image, box)
                if pending is not None:
                    pending.result()  # one sample measured at a time: memory stays bounded
                    pending = None
                if sum(len(t.slots) for t in tracker.finished) >= s.encode_batch:
                    # Tracks that ended are encoded now and their crops let go: memory stays
                    # bounded by the faces on screen, not by how many tracks the recording holds.
                    encoded += encode_tracks(tracker.finished, s.appearance_change, s.cluster_tolerance)
                    tracker.finished = []
                if boxes and measurer is not None:
                    pending = measurer.submit(measure_sample, frame, grey, boxes, owners, carried)
                elif boxes:
                    measure_sample(frame, grey, boxes, owners, carried)
            if pending is not None:
                pending.result()
        last = encode_tracks(tracker.close(), s.appearance_change, s.cluster_tolerance)
        tracks = sorted(encoded + last, key=lambda t: (t.detections[0].time_s, t.track_id))
        clusters = cluster_tracks(
            tracks, interval, info.duration_s if not is_image else None, s.cluster_tolerance, s.encodings_per_cluster
        )
        return FaceAnalysis(clusters=clusters, frames_sampled=frames, sample_fps=None if is_image else s.sample_fps)


def measure_sample(
    frame: Frame, grey: np.ndarray, boxes: list, owners: list[Track], carried: list[str | None]
) -> None:
    """Landmarks and quality of one sample's detections, added to their tracks.

    `grey` is the frame's `grey_levels`; `boxes` (detector pixels), their `owners` and how each was
    `carried` (`carried_kind`) are in the same order. A detection carried forward is a real sighting
    of the face at this sample's time. Still (its pixels unchanged since the face was last detected
    and measured), it repeats that measurement. Steady (found by its appearance near where its
    motion puts it), it repeats the landmark measures and measures sharpness afresh
    (`carry_measurement`).
    """
    image = frame.image
    fresh = [box for box, kind in zip(boxes, carried) if not kind]
    shapes = iter(landmarks_68(image, fresh))
    for box, track, kind in zip(boxes, owners, carried):
        if kind:
            steady = kind == STEADY
            det = carry_measurement(track.detections[-1], grey, box, frame.time_s, frame.scale, steady)
            track.add_detection(det, box, image, candidate=not steady)
            continue
        track.add_detection(measure_face(grey, box, next(shapes), frame.time_s, frame.scale), box, image)
