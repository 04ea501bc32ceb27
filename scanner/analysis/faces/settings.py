"""How the face stage samples, searches, tracks, encodes and groups the faces of a recording."""

from __future__ import annotations

from dataclasses import dataclass

#: Largest average encoding distance between tracks of the same person within one recording.
DEFAULT_CLUSTER_TOLERANCE = 0.5


@dataclass(frozen=True)
class FaceSettings:
    """Settings of `FaceAnalyzer`; the defaults are what a scan uses. The measurements behind them
    are in bench/faces.md ("Measurements behind the defaults").

    Sampling and search:
    sample_fps: frames analysed per second of video (1.0); each adds one detection per visible face
        to the quality counts, and 1 a second finds everyone visible for 2 s or more.
    max_width: frames are downscaled to at most this width (pixels, 1280) before detection, but never
        so far that a face of `search_face_px` measures under 40 px (`FaceSearch.frame_width`).
    detector: dlib detector, "hog" (default) or "cnn" (dlib's MMOD CNN: more robust to pose and small
        faces, but 1.4-5.5 s per 720p frame on a CPU; for hard material only).
    upsample: most 2x upsamplings used to reach `min_face_px` faces (1).
    min_face_px: faces narrower than this (original pixels, 40) are ignored: too small to identify,
        and where HOG's false positives live. Still images are upsampled to find them; in video,
        smaller faces than the full-frame search's are found where a regional search upsamples.
    search_face_px: smallest face (original pixels, 60) every full-frame search and every search of
        a changed region is sized to find, at any resolution: the searched pixels are enlarged so that
        such a face measures `HOG_SURE_FACE` detector pixels. The recall promise: everyone visible for
        2 s or more with a face of this size is found.
    search_s: full-frame search period (seconds of video, 10). In between, each sample is searched
        only around the faces being tracked and in the regions that changed since they were last
        searched (someone joining, a camera turned on, a layout change).
    zone_share: the periodic search (every `search_s`, not the first sample nor a shot change) looks
        only around the tracked faces, whose surroundings the change detection leaves out, while those
        cover at most this share of the frame (0.5); elsewhere every change was searched already.
        0 always searches the whole frame.
    shot_change: mean absolute difference (0-255 grey levels, 20) of 16x9 block means between
        consecutive samples above which a shot change is assumed: all tracks end, full search. Also a
        shot change: more than 20% of the 40 px blocks changing by more than 1.5 times this.
    region_change: mean absolute difference (grey levels, 10) of a 40 px block since it was last
        searched above which it is searched again.
    prefetch_frames: sampled frames decoded ahead in a background thread (2); 0 decodes in the
        analysing thread.

    Tracking:
    track_margin: between full searches a tracked face is searched in its box, moved on by its motion
        between its last two detections, grown by this fraction of its width on every side (0.35).
    track_margin_wide: where that finds nothing, a second search around the last box grown by this
        fraction (1.0): a sudden move, or the face has gone.
    track_face_px: tracked faces larger than 1.2 times this (pixels, 80) are searched in a crop scaled
        so the face measures this much (HOG's cost grows with the pixels searched; its 80 px window
        finds faces of 60 px and more).
    static_tolerance: a face detected on the previous sample whose surroundings (box grown by a fifth,
        green channel) differ from the pixels it was last detected on by at most this mean absolute
        difference (grey levels, 1.0) is carried forward between full searches: same box, same
        quality, no detector or landmarks (profile pictures, frozen video). 0 disables.
    steady_correlation: opt-in adaptive sampling of moving faces (0.0: off). When > 0, between full
        searches a face detected on the previous sample is first looked for by appearance
        (`match_patch` within `steady_search` of where its motion puts it); at this correlation or
        above it is carried forward there, repeating the landmark measures and measuring sharpness
        afresh; such a detection counts as a sighting but is never encoded nor the thumbnail. Off by
        default: usable counts of faces near `SHARP_ENOUGH` move, and slow dissolves split tracks.
    steady_max_run: most samples in a row a face is carried as steady (1: every face is still
        detected and measured at least every other sample).
    steady_search: how far (fraction of the box size, each side, 0.3) the appearance match looks.
    overlap_measurement: measure each sample's faces (68 landmarks, quality) in a second thread while
        the detector searches the next sample (False). Results are identical; off because dlib's
        shape predictor holds the GIL, which makes it slower overall.

    Encoding and grouping:
    encodings_per_track: most detections encoded per track (3). The best one always; another only
        where the face looks unlike every encoded one (`appearance_change`).
    appearance_change: correlation of 24x24 grey face patches (`appearance_patch`, 0.4) under which
        a detection counts as looking different from the encoded ones of its track and gets its own
        encoding (a dissolve, someone taking another's seat). A false alarm costs one encoding; a miss
        would keep two people in one track, so it leans high.
    encodings_per_cluster: encodings kept per person, the best of all their tracks (5).
    cluster_tolerance: largest average encoding distance between tracks of the same person
        (`DEFAULT_CLUSTER_TOLERANCE`).
    encode_batch: tracks that have ended are encoded, and their candidate crops released, as soon as
        they hold this many candidates together (32): memory depends on the faces on screen, not on
        the length of the recording.
    """

    sample_fps: float = 1.0
    max_width: int = 1280
    detector: str = "hog"
    upsample: int = 1
    min_face_px: int = 40
    search_face_px: float = 60.0
    encodings_per_cluster: int = 5
    encodings_per_track: int = 3
    cluster_tolerance: float = DEFAULT_CLUSTER_TOLERANCE
    search_s: float = 10.0
    zone_share: float = 0.5
    shot_change: float = 20.0
    region_change: float = 10.0
    appearance_change: float = 0.4
    prefetch_frames: int = 2
    track_margin: float = 0.35
    track_margin_wide: float = 1.0
    track_face_px: float = 80.0
    overlap_measurement: bool = False
    static_tolerance: float = 1.0
    steady_correlation: float = 0.0
    steady_max_run: int = 1
    steady_search: float = 0.3
    encode_batch: int = 32

    def __post_init__(self) -> None:
        if self.detector not in ("hog", "cnn"):
            raise ValueError(f"detector must be 'hog' or 'cnn', not {self.detector!r}")
