"""Link voices to faces inside one recording: whose lips move when a voice speaks.

A face and a voice of the same person are the full audiovisual deepfake kit, and a voice with no
enrolment can inherit the identity of a matched face (and the other way round). Nothing but the
recording says they belong together, so this module looks at it: it samples the mouth of every face
cluster at `mouth_fps` (the face stage samples far too sparsely to see lips move), measures how open
the mouth is from the 68 landmarks (the inner-lip gap over the mouth width), and correlates how much
the mouth moves with each speaker's activity. A face and a speaker are linked when they are each
other's best match and the correlation is clear; a voice whose speaker is off screen finds no face
whose mouth moves with it and stays unlinked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.media import iter_frames
from scanner.models import FaceAnalysis, FaceCluster, FaceVoiceLink, MediaInfo, MediaKind, VoiceAnalysis

#: Correlation between mouth movement and a speaker's activity at or above which they are linked.
#: Measured on generated talking videos: the speaking face correlates 0.6-0.9 with its own voice,
#: an off-screen voice 0.0-0.2 with the same face; still faces (photos in a 12-minute meeting grid)
#: reached 0.35 with one of six voices by chance.
LINK_THRESHOLD = 0.45


@dataclass(frozen=True)
class LipSyncLinker:
    """Link face clusters to speakers of one recording by lip movement.

    mouth_fps: mouth samples per second (lip movements need about 10).
    max_width: frames are downscaled to this width before landmarks (boxes are scaled to match).
    min_overlap_s: least time a speaker must talk while the face is visible to judge a link.
    threshold: least correlation for a link (`LINK_THRESHOLD`).
    max_watched_s: at most this much video is watched for lips per recording (60 s: watching costs
        about 0.1 CPU s per second of 720p video, more than the whole face stage, and a minute of
        speech with faces in view gives correlations as clear as the whole recording). Longer
        recordings are watched in `window_s` windows spread evenly over the stretches where a face
        is in view while someone speaks. None watches everything.
    window_s: length of one watched window.
    """

    mouth_fps: float = 10.0
    max_width: int = 1280
    min_overlap_s: float = 1.5
    threshold: float = LINK_THRESHOLD
    max_watched_s: float | None = 60.0
    window_s: float = 6.0

    def link(self, path, info: MediaInfo, faces: FaceAnalysis, voices: VoiceAnalysis) -> list[FaceVoiceLink]:
        if info.kind is not MediaKind.VIDEO or not faces.clusters or not voices.speakers:
            return []
        times, openness = self._mouth_tracks(path, info, faces.clusters, self._windows(faces, voices))
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

    def _mutual_best(self, scores: dict[tuple[int, int], tuple[float, float]]) -> list[FaceVoiceLink]:
        links = []
        for (cluster_id, speaker_id), (corr, overlap) in scores.items():
            if corr < self.threshold:
                continue
            best_for_face = max((v[0] for (c, _), v in scores.items() if c == cluster_id), default=-1.0)
            best_for_voice = max((v[0] for (_, s), v in scores.items() if s == speaker_id), default=-1.0)
            if corr >= best_for_face and corr >= best_for_voice:
                links.append(FaceVoiceLink(cluster_id, speaker_id, round(corr, 3), round(overlap, 2)))
        return sorted(links, key=lambda link: (link.cluster_id, link.speaker_id))

    def _windows(self, faces: FaceAnalysis, voices: VoiceAnalysis) -> list[tuple[float, float]]:
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
        from scanner.faces import _face_api

        api = _face_api()
        lookups = [_BoxLookup(cluster) for cluster in clusters]
        times: list[float] = []
        values: list[list[float]] = []
        for start, end in windows:
            if values:
                times.append(start)
                values.append([np.nan] * len(clusters))
            for frame in iter_frames(path, info, self.mouth_fps, self.max_width, start_s=start, end_s=end + 1e-3):
                row = []
                for lookup in lookups:
                    box = lookup.at(frame.time_s, max_gap=1.0)
                    if box is None:
                        row.append(np.nan)
                        continue
                    scaled = tuple(int(round(v / frame.scale)) for v in box)
                    row.append(_mouth_openness_in(api, frame.image, scaled))
                times.append(frame.time_s)
                values.append(row)
        openness = np.array(values, dtype=float).T if values else np.zeros((len(clusters), 0))
        return np.array(times), openness


def _mouth_openness_in(api, image: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Mouth openness of the face at `box` (top, right, bottom, left) in `image`.

    The landmarks run on a crop around the face: dlib's predictor costs about twice as much on a
    whole 720p frame as on the face's neighbourhood.
    """
    top, right, bottom, left = box
    margin = max(bottom - top, right - left) // 2
    y0, x0 = max(0, top - margin), max(0, left - margin)
    crop = np.ascontiguousarray(image[y0:bottom + margin, x0:right + margin])
    shapes = api._raw_face_landmarks(crop, [(top - y0, right - x0, bottom - y0, left - x0)], "large")
    return mouth_openness(np.array([(p.x, p.y) for p in shapes[0].parts()], dtype=float))


def mouth_openness(landmarks: np.ndarray) -> float:
    """Inner-lip gap over mouth width from the 68 landmarks (0 closed, about 0.3-0.6 wide open)."""
    gap = np.mean([np.linalg.norm(landmarks[a] - landmarks[b]) for a, b in ((61, 67), (62, 66), (63, 65))])
    width = np.linalg.norm(landmarks[60] - landmarks[64])
    return float(gap / width) if width > 0 else 0.0


class _BoxLookup:
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


def _motion(openness: np.ndarray) -> np.ndarray:
    """How much the mouth moves around each sample: absolute change, smoothed over about 0.3 s."""
    diff = np.abs(np.diff(openness, prepend=openness[0]))
    kernel = np.ones(3) / 3.0
    filled = np.where(np.isnan(diff), 0.0, diff)
    smooth = np.convolve(filled, kernel, mode="same")
    smooth[np.isnan(diff)] = np.nan
    return smooth


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
