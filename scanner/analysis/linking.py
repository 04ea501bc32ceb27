"""Link voices to faces inside one recording: the face on screen while a voice speaks, and whose lips move.

A face and a voice of the same person are the full audiovisual deepfake kit, and a voice with no
enrolment can inherit the identity of a matched face (and the other way round). Nothing but the
recording says they belong together, so this module looks at it. Two kinds of evidence, recorded in
`FaceVoiceLink.evidence`:

- **sole face** (`"sole-face"`): where a recording has one voice and, while it speaks, one face is the
  only face on screen (a talking head, an interview shot, a lecture), they are one person unless the
  lips contradict it: a face whose mouth does not move on its own while the voice speaks (a photo, a
  poster, a still frame under a narrator, however it is panned or zoomed) is not the speaker
  (`lip_movement_ratio`). The check watches only that face, during at most `sole_watch_s` of the speech.
- **lips** (`"lips"`): where a choice is to be made (two or more faces on screen while someone speaks,
  or one face and several voices), the mouth of every candidate face is sampled at `mouth_fps` (the
  face stage samples far too sparsely to see lips move), its opening measured from the 68 landmarks
  (the inner-lip gap over the mouth width), and how much it moves is correlated with each speaker's
  activity. A face and a speaker are linked when they are each other's best match and the correlation
  is clear; a voice whose speaker is off screen finds no face whose mouth moves with it. Faces whose
  lips never move on their own in a short screening of every speaker's longest turns (photos, stills,
  posters; `moving_mouths`) are dropped first; only the rest are watched, within `max_watched_s`.
  That screening looks at pixels before landmarks: a face whose mouth changes no more than its eyes
  do, once the face is registered on its eyes and nose, in every speaker's turns (`mouth_pixel_motion`,
  a fraction of the landmarks' cost) is dropped without running the 68 landmarks on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.analysis.mouth_landmarks import ScreenedCrops, landmarks_in, lip_movement_ratio, mouth_openness_in
from scanner.analysis.mouth_pixels import face_patch, mouth_and_eyes_change
from scanner.media.frames import iter_frames
from scanner.models import FaceAnalysis, FaceCluster, FaceVoiceLink, Frame, MediaInfo, MediaKind, VoiceAnalysis

#: Correlation between mouth movement and a speaker's activity at or above which they are linked
#: (measurements: bench/faces.md, "Face-voice linking thresholds").
LINK_THRESHOLD = 0.45

#: Lip movement ratio (`lip_movement_ratio`: the lips' own motion over the head's) under which a face's
#: mouth is still, as a picture's is (measurements: bench/faces.md, "Face-voice linking thresholds").
STILL_MOUTH = 2.2

#: Mouth pixel motion (`LipSyncLinker.mouth_pixel_motion`: how much the mouth's pixels change between
#: samples 0.1 s apart over how much the eyes' do; the largest over the speakers' screening windows)
#: under which a face is dropped before its landmarks are looked at. Only a pre-filter: what it keeps,
#: the landmarks still judge (`STILL_MOUTH`). Measurements: bench/faces.md, "Face-voice linking thresholds".
STILL_PIXELS = 1.45


@dataclass(frozen=True)
class LipSyncLinker:
    """Link face clusters to speakers of one recording: the sole face on screen, or the lips that move.

    mouth_fps: mouth samples per second (lip movements need about 10).
    max_width: frames are downscaled to this width before landmarks (boxes are scaled to match).
    min_overlap_s: least time a speaker must talk while the face is visible to judge a lip link.
    threshold: least correlation for a lip link (`LINK_THRESHOLD`).
    sole_share: a face is the sole face of a recording's only voice when it is the only face on screen
        during at least this share of the voice's speech (default 0.5) ...
    sole_min_s: ... and for at least this long (default 1.0 s).
    sole_watch_s: how much of that speech is watched to see whether the mouth moves (default 10 s).
    still_mouth: lip movement ratio (`lip_movement_ratio`) below which the mouth is still and the
        sole-face link is refused (`STILL_MOUTH`).
    max_watched_s: at most this much video is watched for lip links per recording (60 s: watching
        costs about 0.1 CPU s per second of 720p video, more than the whole face stage, and a minute of
        speech with faces in view gives correlations as clear as the whole recording). Longer
        stretches are watched in `window_s` windows spread evenly over them. None watches everything.
    window_s: length of one watched window.
    screen_windows, screen_window_s: before lip correlation, faces whose lips never move on their own are
        dropped (`moving_mouths`), judged in this many windows of this length per speaker (default 2 of
        2 s, in the speaker's longest turns).
    still_pixels: in that screening, a face whose `mouth_pixel_motion` stays below this in the windows
        of every speaker is dropped before its landmarks are measured (`STILL_PIXELS`); None measures
        the landmarks of every face.
    min_pixel_pairs: least pairs of consecutive samples of one speaker's windows for that judgement; a
        face seen less in some speaker's windows is left to the landmarks.
    screen_crops_mb: the pixel screening keeps every face's landmark crop of every sample it decodes, up
        to this much memory (default 96 MB), so the landmark
        screening of the faces it leaves over needs no second decoding of the windows (`ScreenedCrops`;
        0 decodes them again).
    """

    mouth_fps: float = 10.0
    max_width: int = 1280
    min_overlap_s: float = 1.5
    threshold: float = LINK_THRESHOLD
    sole_share: float = 0.5
    sole_min_s: float = 1.0
    sole_watch_s: float = 10.0
    still_mouth: float = STILL_MOUTH
    max_watched_s: float | None = 60.0
    window_s: float = 6.0
    screen_windows: int = 2
    screen_window_s: float = 2.0
    still_pixels: float | None = STILL_PIXELS
    min_pixel_pairs: int = 8
    screen_crops_mb: float = 96.0

    def link(self, path, info: MediaInfo, faces: FaceAnalysis, voices: VoiceAnalysis) -> list[FaceVoiceLink]:
        """Which face cluster speaks with which speaker in the video at `path` (`info` its probe, `faces`
        and `voices` its analyses): a sole-face link, or lip links; empty for images, audio, or
        recordings without faces or voices. Decoding problems raise MediaError."""
        if info.kind is not MediaKind.VIDEO or not faces.clusters or not voices.speakers:
            return []
        sole = self.sole_face(faces, voices)
        if sole is not None:
            return self._check_sole(path, info, faces, voices, *sole)
        return self._lip_links(path, info, faces, voices)

    # -- the only face on screen while the only voice speaks --------------------------------

    def sole_face(self, faces: FaceAnalysis, voices: VoiceAnalysis) -> tuple[int, list[tuple[float, float]]] | None:
        """(cluster index, stretches) of the face that is the only one on screen while the recording's
        only voice speaks, or None (several voices, or no face alone on screen for long enough)."""
        if len(voices.speakers) != 1:
            return None
        step = 0.1
        turns = voices.speakers[0].turns
        end = max(t.end for t in turns)
        grid = np.arange(0.0, end, step) + step / 2
        speaking = np.zeros(len(grid), bool)
        for t in turns:
            speaking |= (grid >= t.start) & (grid < t.end)
        seen = np.zeros((len(faces.clusters), len(grid)), bool)
        for c, cluster in enumerate(faces.clusters):
            for r in cluster.time_ranges:
                seen[c] |= (grid >= r.start) & (grid < r.end)
        alone = seen & (seen.sum(axis=0) == 1)[None, :] & speaking[None, :]
        held = alone.sum(axis=1) * step
        c = int(np.argmax(held))
        total = speaking.sum() * step
        if held[c] < self.sole_min_s or held[c] < self.sole_share * total:
            return None
        return c, [(grid[a] - step / 2, grid[b - 1] + step / 2) for a, b in _runs(alone[c])]

    def _check_sole(self, path, info: MediaInfo, faces: FaceAnalysis, voices: VoiceAnalysis, c: int,
                    stretches: list[tuple[float, float]]) -> list[FaceVoiceLink]:
        """The sole-face link of cluster index `c` with the only speaker, unless its lips do not move on
        their own in up to `sole_watch_s` of the `stretches` (seconds) where it is alone on screen."""
        cluster, speaker = faces.clusters[c], voices.speakers[0]
        held = sum(b - a for a, b in stretches)
        windows, left = [], self.sole_watch_s
        for a, b in sorted(stretches, key=lambda s: s[0] - s[1]):  # the longest stretches first
            if left <= 0:
                break
            windows.append((a, min(b, a + left)))
            left -= windows[-1][1] - windows[-1][0]
        (shapes,) = self.shape_tracks_of(path, info, [cluster], sorted(windows))
        movement = lip_movement_ratio(shapes)
        if not np.isfinite(movement) or movement < self.still_mouth:
            return []  # the mouth was never seen, or it only moves with the head: a picture, not the speaker
        return [FaceVoiceLink(cluster.cluster_id, speaker.speaker_id, 0.0, round(float(held), 2),
                              evidence="sole-face", mouth_movement=round(movement, 3))]

    # -- lips that move with a voice --------------------------------------------------------

    def _lip_links(self, path, info: MediaInfo, faces: FaceAnalysis, voices: VoiceAnalysis) -> list[FaceVoiceLink]:
        """Lip links: the faces whose mouths move (`moving_mouths`) are watched in `watch_windows`, their
        mouth motion correlated with each speaker's activity, and the clear mutual best pairs linked."""
        moving = self.moving_mouths(path, info, faces, voices)
        if not moving:
            return []
        if len(moving) < len(faces.clusters):
            faces = FaceAnalysis([faces.clusters[c] for c in moving], faces.frames_sampled, faces.sample_fps)
        times, openness = self._mouth_tracks(path, info, faces.clusters, self.watch_windows(faces, voices))
        if len(times) < 4:
            return []
        step = 1.0 / self.mouth_fps
        scores: dict[tuple[int, int], tuple[float, float]] = {}
        for c, cluster in enumerate(faces.clusters):
            visible = ~np.isnan(openness[c])
            if visible.sum() < 4:
                continue
            motion = _motion(openness[c])
            for speaker in voices.speakers:
                active = np.zeros(len(times), dtype=bool)
                for turn in speaker.turns:
                    active |= (times >= turn.start) & (times < turn.end)
                both = visible & ~np.isnan(motion)
                overlap = float((active & both).sum()) * step
                if overlap < self.min_overlap_s or (~active & both).sum() < 4:
                    continue
                corr = _correlation(motion[both], active[both].astype(float))
                scores[(cluster.cluster_id, speaker.speaker_id)] = (corr, overlap)
        return self._mutual_best(scores)

    def moving_mouths(self, path, info: MediaInfo, faces: FaceAnalysis, voices: VoiceAnalysis) -> list[int]:
        """Indexes of the face clusters whose lips move on their own while someone speaks (or that the
        screening did not see long enough to tell); the others cannot be anyone's voice.

        A screening pass before the lip correlation: `screen_windows` windows of `screen_window_s` in the
        longest turns of every speaker (so that a face that speaks at all speaks in one of them), where
        every visible face's 68 landmarks give its `lip_movement_ratio`. Photos and stills under real
        speech (the common gallery of a generated meeting, a poster behind a speaker) are dropped before
        the costly pass that samples every candidate face ten times a second for up to a minute.
        Faces whose mouth pixels stay still in every speaker's windows (`mouth_pixel_motion` under
        `still_pixels`) are dropped before that, without landmarks.
        """
        windows = self.screening_windows(voices)
        candidates = list(range(len(faces.clusters)))
        kept = None
        if self.still_pixels is not None:
            kept = ScreenedCrops(self.screen_crops_mb)
            motion = self.mouth_pixel_motion(path, info, faces.clusters, windows, kept)
            candidates = [c for c in candidates if not (motion[c] < self.still_pixels)]  # NaN: not judged
        if not candidates:
            return []
        if kept is not None and kept.complete:
            shapes = kept.shape_tracks(candidates)
        else:
            spans = sorted((start, end) for start, end, _ in windows)
            shapes = self.shape_tracks_of(path, info, [faces.clusters[c] for c in candidates], spans)
        keep = []
        for c, track in zip(candidates, shapes):
            ratio = lip_movement_ratio(track)
            if not np.isfinite(ratio) or ratio >= self.still_mouth:
                keep.append(c)
        return keep

    def screening_windows(self, voices: VoiceAnalysis) -> list[tuple[float, float, int]]:
        """(start, end, speaker index) of the screening windows: the middle `screen_window_s` of each
        speaker's `screen_windows` longest turns, in time order."""
        windows = []
        for s, speaker in enumerate(voices.speakers):
            for turn in sorted(speaker.turns, key=lambda r: r.start - r.end)[: self.screen_windows]:
                mid = 0.5 * (turn.start + turn.end)
                half = 0.5 * min(self.screen_window_s, turn.end - turn.start)
                windows.append((mid - half, mid + half, s))
        return sorted(windows)

    def mouth_pixel_motion(self, path, info: MediaInfo, clusters: list[FaceCluster],
                           windows: list[tuple[float, float, int]],
                           kept: ScreenedCrops | None = None) -> np.ndarray:
        """Per cluster, the largest over speakers of its mouth pixel motion in that speaker's windows
        (`mouth_and_eyes_change`: mean mouth change over mean eye change between consecutive samples);
        NaN where some speaker's windows gave fewer than `min_pixel_pairs` pairs (not judged).

        `kept`, when given, receives every sample's landmark crops (`landmark_crop`), so that the
        landmark screening of the faces left over need not decode the windows again."""
        speakers = 1 + max((s for _, _, s in windows), default=-1)
        if not speakers:
            return np.full(len(clusters), np.nan)
        sums = np.zeros((len(clusters), speakers, 2))
        pairs = np.zeros((len(clusters), speakers), dtype=int)
        lookups = [BoxLookup(cluster) for cluster in clusters]
        for start, end, s in windows:
            previous: list[np.ndarray | None] = [None] * len(clusters)
            if kept is not None:
                kept.start_window()
            for frame in self._frames(path, info, start, end):
                boxes = [lookup.in_frame(frame) for lookup in lookups]
                if kept is not None:
                    kept.add_sample(frame.image, boxes)
                for c, box in enumerate(boxes):
                    face = None if box is None else face_patch(frame.image, box)
                    if face is not None and previous[c] is not None:
                        sums[c, s] += mouth_and_eyes_change(previous[c], face)
                        pairs[c, s] += 1
                    previous[c] = face
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sums[:, :, 0] / sums[:, :, 1]
        ratio[pairs < self.min_pixel_pairs] = np.nan
        ratio[~np.isfinite(ratio)] = np.nan
        # Not judged in one speaker's windows: the face might speak there, so it is not judged at all
        # (the maximum of a row holding NaN is NaN).
        return ratio.max(axis=1)

    def shape_tracks_of(self, path, info: MediaInfo, clusters: list[FaceCluster],
                      windows: list[tuple[float, float]]) -> list[list[np.ndarray | None]]:
        """Per cluster, its 68 landmarks at every sample of the windows (None where unseen or between windows)."""
        lookups = [BoxLookup(cluster) for cluster in clusters]
        tracks: list[list[np.ndarray | None]] = [[] for _ in clusters]
        for start, end in windows:
            for track in tracks:
                track.append(None)
            for frame in self._frames(path, info, start, end):
                for lookup, track in zip(lookups, tracks):
                    box = lookup.in_frame(frame)
                    track.append(None if box is None else landmarks_in(frame.image, box))
        return tracks

    def _frames(self, path, info: MediaInfo, start: float, end: float):
        """The `mouth_fps` samples of a screening window [start, end] (seconds), decoded in this thread
        alone: on windows of a few seconds, each a fresh seek, FFmpeg's frame threads cost more CPU than
        they save wall time."""
        return iter_frames(path, info, self.mouth_fps, self.max_width, start_s=start, end_s=end + 1e-3,
                           decoder_threads=False)

    def _mutual_best(self, scores: dict[tuple[int, int], tuple[float, float]]) -> list[FaceVoiceLink]:
        """Links for the (cluster id, speaker id) pairs whose correlation (`scores`: correlation, overlap
        seconds) reaches `threshold` and is the best of both the face and the voice."""
        links = []
        for (cluster_id, speaker_id), (corr, overlap) in scores.items():
            if corr < self.threshold:
                continue
            best_for_face = max((v[0] for (c, _), v in scores.items() if c == cluster_id), default=-1.0)
            best_for_voice = max((v[0] for (_, s), v in scores.items() if s == speaker_id), default=-1.0)
            if corr >= best_for_face and corr >= best_for_voice:
                links.append(FaceVoiceLink(cluster_id, speaker_id, round(float(corr), 3), round(float(overlap), 2),
                                           evidence="lips"))
        return sorted(links, key=lambda link: (link.cluster_id, link.speaker_id))

    def watch_windows(self, faces: FaceAnalysis, voices: VoiceAnalysis) -> list[tuple[float, float]]:
        """The stretches of video to watch: where a face is in view while someone speaks, within the budget."""
        seen = [r for c in faces.clusters for r in c.time_ranges]
        spoken = [t for s in voices.speakers for t in s.turns]
        if not seen or not spoken:
            return []
        start, end = min(r.start for r in seen), max(r.end for r in seen)
        if self.max_watched_s is None or end - start <= self.max_watched_s:
            return [(start, end)]
        useful = []
        for t0 in np.arange(start, end, self.window_s):
            t1 = min(t0 + self.window_s, end)
            if any(r.start < t1 and r.end > t0 for r in seen) and any(t.start < t1 and t.end > t0 for t in spoken):
                useful.append((float(t0), float(t1)))
        keep = max(1, int(self.max_watched_s // self.window_s))
        if len(useful) <= keep:
            return useful
        picks = np.linspace(0, len(useful) - 1, keep).round().astype(int)
        return [useful[i] for i in sorted(set(picks))]

    def _mouth_tracks(
        self, path, info: MediaInfo, clusters: list[FaceCluster], windows: list[tuple[float, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sample times and, per cluster, the mouth openness there (NaN where the face is not seen).

        A row of NaN separates windows, so mouth movement is never measured across a gap.
        """
        lookups = [BoxLookup(cluster) for cluster in clusters]
        times: list[float] = []
        values: list[list[float]] = []
        for start, end in windows:
            if values:
                times.append(start)
                values.append([np.nan] * len(clusters))
            # Watched windows last up to a minute: FFmpeg's frame threads pay for themselves there.
            for frame in iter_frames(path, info, self.mouth_fps, self.max_width, start_s=start, end_s=end + 1e-3):
                row = []
                for lookup in lookups:
                    box = lookup.in_frame(frame)
                    row.append(np.nan if box is None else mouth_openness_in(frame.image, box))
                times.append(frame.time_s)
                values.append(row)
        openness = np.array(values, dtype=float).T if values else np.zeros((len(clusters), 0))
        return np.array(times), openness



def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) index pairs (end exclusive) of the runs of True in a boolean `mask`."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


class BoxLookup:
    """A cluster's face boxes (original pixels) by time, for nearest-in-time lookups."""

    def __init__(self, cluster: FaceCluster):
        ordered = sorted(cluster.detections, key=lambda d: d.time_s)
        self.times = np.array([d.time_s for d in ordered])
        self.boxes = [d.box for d in ordered]

    def at(self, t: float, max_gap: float) -> tuple[int, int, int, int] | None:
        """The box nearest in time to `t`, if one is within `max_gap` seconds."""
        if not len(self.times):
            return None
        i = int(np.searchsorted(self.times, t))
        candidates = [j for j in (i - 1, i) if 0 <= j < len(self.times)]
        nearest = min(candidates, key=lambda j: abs(self.times[j] - t))
        return self.boxes[nearest] if abs(self.times[nearest] - t) <= max_gap else None

    def in_frame(self, frame: Frame, max_gap: float = 1.0) -> tuple[int, int, int, int] | None:
        """The box nearest in time to `frame` (within `max_gap` seconds), in the frame's pixels."""
        box = self.at(frame.time_s, max_gap)
        return None if box is None else tuple(int(round(v / frame.scale)) for v in box)


def _motion(openness: np.ndarray) -> np.ndarray:
    """How much the mouth moves around each sample: absolute change, smoothed over about 0.3 s."""
    diff = np.abs(np.diff(openness, prepend=openness[0]))
    kernel = np.ones(3) / 3.0
    filled = np.where(np.isnan(diff), 0.0, diff)
    smooth = np.convolve(filled, kernel, mode="same")
    smooth[np.isnan(diff)] = np.nan
    return smooth


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-length series; 0 when either is constant."""
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
