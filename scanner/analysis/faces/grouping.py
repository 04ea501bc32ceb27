"""Group encoded tracks into the people of one recording, join the analyses of a video's time
windows, and turn sample times into time ranges."""

from __future__ import annotations

import numpy as np

from scanner.analysis.clustering import average_linkage, label_groups
from scanner.analysis.faces.quality import quality_score
from scanner.analysis.faces.settings import DEFAULT_CLUSTER_TOLERANCE
from scanner.analysis.faces.tracking import Track
from scanner.models import FaceAnalysis, FaceCluster, TimeRange


def cluster_tracks(
    tracks: list[Track], interval: float, duration_s: float | None, tolerance: float, encodings_per_cluster: int
) -> list[FaceCluster]:
    """People of one recording from its encoded tracks, ordered by first appearance.

    Tracks are grouped by their mean encoding (average linkage under `tolerance`). Each person keeps
    the `encodings_per_cluster` encodings of its best-scored detections, the thumbnail of its best
    track, and its time ranges (`sample_time_ranges` with the sampling `interval` in seconds, 0 for a
    still image, clipped to `duration_s` when given).
    """
    if not tracks:
        return []
    means = np.stack([t.encodings.mean(axis=0) for t in tracks])
    groups = [[tracks[i] for i in members] for members in label_groups(average_linkage(means, tolerance))]
    people = sorted(groups, key=lambda ts: min(t.detections[0].time_s for t in ts))
    clusters = []
    for cluster_id, members in enumerate(people):
        detections = sorted((d for t in members for d in t.detections), key=lambda d: d.time_s)
        scored = [
            (quality_score(t.detections[i]), enc) for t in members for i, enc in zip(t.encoded_indices, t.encodings)
        ]
        scored.sort(key=lambda p: -p[0])
        encodings = np.stack([enc for _, enc in scored[:encodings_per_cluster]])
        with_thumb = [t for t in members if t.thumbnail is not None]
        best_thumb = max(with_thumb, key=lambda t: t.thumbnail_score) if with_thumb else None
        clusters.append(
            FaceCluster(
                cluster_id=cluster_id,
                detections=detections,
                encodings=encodings,
                time_ranges=sample_time_ranges([d.time_s for d in detections], interval, duration_s=duration_s),
                thumbnail=best_thumb.thumbnail if best_thumb else None,
                thumbnail_time_s=best_thumb.thumbnail_time_s if best_thumb else None,
            )
        )
    return clusters


def merge_analyses(parts: list[FaceAnalysis], tolerance: float = DEFAULT_CLUSTER_TOLERANCE) -> FaceAnalysis:
    """Join the analyses of consecutive windows of one video (`FaceAnalyzer.analyze(start_s=...)`).

    Clusters of different windows are grouped by their mean encodings (average linkage under
    `tolerance`, as within a window); clusters of the same window stay apart. Cluster ids follow
    first appearance, as in a single analysis.
    """
    clusters = [c for part in parts for c in part.clusters]
    owner = [i for i, part in enumerate(parts) for _ in part.clusters]
    frames = sum(p.frames_sampled for p in parts)
    fps = next((p.sample_fps for p in parts if p.sample_fps), None)
    if not clusters:
        return FaceAnalysis(clusters=[], frames_sampled=frames, sample_fps=fps)
    means = np.stack([c.encodings.mean(axis=0) for c in clusters])
    # Two clusters from one window were kept apart there; keep them apart here too.
    final: list[list[int]] = []
    for members in label_groups(average_linkage(means, tolerance)):
        buckets: list[list[int]] = []
        for i in members:
            for bucket in buckets:
                if all(owner[j] != owner[i] for j in bucket):
                    bucket.append(i)
                    break
            else:
                buckets.append([i])
        final.extend(buckets)
    interval = 1.0 / fps if fps else None
    merged = []
    for members in sorted(final, key=lambda m: min(clusters[i].detections[0].time_s for i in m)):
        parts_c = [clusters[i] for i in members]
        detections = sorted((d for c in parts_c for d in c.detections), key=lambda d: d.time_s)
        encodings = np.concatenate([c.encodings for c in parts_c])
        with_thumb = [c for c in parts_c if c.thumbnail is not None]
        thumb = None
        if with_thumb:
            thumb = max(with_thumb, key=lambda c: max((quality_score(d) for d in c.detections), default=0.0))
        merged.append(
            FaceCluster(
                cluster_id=len(merged),
                detections=detections,
                encodings=encodings,
                time_ranges=sample_time_ranges([d.time_s for d in detections], interval),
                thumbnail=thumb.thumbnail if thumb else None,
                thumbnail_time_s=thumb.thumbnail_time_s if thumb else None,
            )
        )
    return FaceAnalysis(clusters=merged, frames_sampled=frames, sample_fps=fps)


def sample_time_ranges(
    times: list[float] | np.ndarray,
    interval: float | None,
    max_gap_intervals: float = 2.0,
    duration_s: float | None = None,
) -> list[TimeRange]:
    """Merge the sample times at which a face was seen into time ranges.

    Parameters
    ----------
    times : sequence of float
        Sample times (seconds), any order.
    interval : float or None
        Sampling interval (1 / sample_fps). None or 0 (a still image) gives [t, t] ranges.
    max_gap_intervals : float, default=2.0
        Consecutive samples at most this many intervals apart belong to one range (one missed
        detection does not split an appearance).
    duration_s : float or None
        Ranges are clipped to the recording's duration when given.

    Each range runs from its first sample to one interval after its last sample, so a single
    sample covers one interval.
    """
    ts = sorted(set(float(t) for t in times))
    if not ts:
        return []
    if not interval:
        return [TimeRange(t, t) for t in ts]
    ranges: list[TimeRange] = []
    start = prev = ts[0]
    limit = max_gap_intervals * interval + 1e-6
    for t in ts[1:]:
        if t - prev > limit:
            ranges.append(TimeRange(start, prev + interval))
            start = t
        prev = t
    ranges.append(TimeRange(start, prev + interval))
    if duration_s:
        ranges = [TimeRange(r.start, min(r.end, max(duration_s, r.start))) for r in ranges]
    return ranges

