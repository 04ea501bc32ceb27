"""Who speaks when: speaker diarization on neural speaker embeddings.

Input is the detected speech of one recording (a mask over 10 ms frames) and the speaker encoder's
mel frames on the same grid (`scanner.analysis.voices.encoder`). The steps:

1. **Windows.** The speech frames are taken in order, pauses left out, and cut into windows of
   `window_s` every `hop_s` (default 1.6 s every 0.77 s). Each window is embedded by the speaker
   encoder (GE2E, 256 values, L2-normalised). A window that spans a pause or a speaker change holds
   a little of both sides, as any window across a change does.
2. **Clustering.** The windows' cosine affinities are refined as in Wang et al. 2018, "Speaker
   diarization with LSTM" (diagonal cropped, row-wise thresholding, symmetrised, diffused,
   row-normalised) and partitioned by their eigenvectors: the `spectralcluster` package's
   `SpectralClusterer` does all of it. Recordings with more than `max_cluster_windows` windows are
   clustered on that many windows spread evenly over the speech; the other windows join the closest
   cluster centroid, so time and memory stay bounded on long recordings.
3. **How many speakers.** The partition is made for 2, 3, ... speakers, and the largest number is kept
   whose clusters are all distinct voices: every pair of centroids (mean embeddings) less than
   `distinct_similarity` alike, every cluster at least `min_cluster_windows` windows, and no cluster
   a mixture of two others (`mixture_margin`). Calibration, and why not the paper's eigengap count:
   bench/voices.md, "Diarization on real speech".
4. **Turns.** Every speech frame takes the speaker whose centroid is closest on average over the
   windows that cover it; runs shorter than `min_turn_s` go to a neighbour; a speaker left holding
   less than `min_speaker_s` in all is dropped and its frames go to the next closest.

`SpeakerDiarizer.fit` takes an embedding function, so the clustering can be tested and measured with
any encoder; the voice stage passes `SpeakerEncoder.embed_frames`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

Embedder = Callable[[np.ndarray, np.ndarray, int], np.ndarray]
"""embed(mel, starts, n_frames) -> embeddings (len(starts), d), L2-normalised: windows of `n_frames`
frames of `mel` starting at the indexes `starts` (as `SpeakerEncoder.embed_frames`)."""


@dataclass
class Diarization:
    """Speaker turns of one recording on its frame grid.

    labels: speaker index per frame, 0 .. n_speakers - 1, and -1 outside speech.
    scores: shape (n_speakers, n_frames), float32: each frame's average cosine similarity to each
        speaker's centroid over the windows covering it (0 outside speech); what the labels were
        chosen from, and what overlap detection reads.
    centroids: shape (n_speakers, d): each speaker's mean window embedding, L2-normalised.
    window_labels: speaker of each embedded window (its nearest centroid), shape (n_windows,).
    embeddings: the windows' embeddings, shape (n_windows, d).
    windows: each window's first and last + 1 position among the speech frames, shape (n_windows, 2).
    speech_index: the recording's frame index of each speech frame (`window_frames` maps a window to
        the frames it covers).
    """

    labels: np.ndarray
    scores: np.ndarray
    centroids: np.ndarray
    window_labels: np.ndarray
    embeddings: np.ndarray
    windows: np.ndarray
    speech_index: np.ndarray

    @property
    def n_speakers(self) -> int:
        return len(self.centroids)

    def window_frames(self, w: int) -> np.ndarray:
        """The frame indexes (of the recording) that window `w` covers."""
        a, b = self.windows[w]
        return self.speech_index[a:b]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def has_mixture(sim: np.ndarray, labels: np.ndarray, margin: float, between: float) -> bool:
    """Whether some cluster is a mixture of two others: the windows laid across the turns of two voices.

    Such a cluster's centroid is closer to each of the two voices than they are to each other, by
    `margin` or more, and its windows sit between the two voices' in time: at least `between` of them
    lie in runs of consecutive windows (in speech order) preceded by one of the two voices' windows and
    followed by the other's. A real third voice can be as close to two others (two male voices and one
    between them), but its turns follow and precede whoever spoke, not one pair at their changes.
    `sim` holds the centroids' cosine similarities (diagonal ignored), `labels` each window's cluster.
    """
    labels = np.asarray(labels)
    cuts = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], cuts, [len(labels)]])
    runs = [(int(bounds[r]), int(bounds[r + 1]), int(labels[bounds[r]])) for r in range(len(bounds) - 1)]
    k = len(sim)
    for c in range(k):
        held = sum(b - a for a, b, who in runs if who == c)
        for a in range(k):
            for b in range(a + 1, k):
                if c in (a, b) or min(sim[c, a], sim[c, b]) < sim[a, b] + margin:
                    continue
                inside = sum(e - s for r, (s, e, who) in enumerate(runs)
                             if who == c and 0 < r < len(runs) - 1 and {runs[r - 1][2], runs[r + 1][2]} == {a, b})
                if held and inside >= between * held:
                    return True
    return False


def smooth_labels(labels: np.ndarray, active: np.ndarray, min_run: int) -> np.ndarray:
    """Relabel runs shorter than `min_run` frames (counted over `active` frames only) to their longer neighbour."""
    labels = labels.copy()
    for _ in range(3):
        changed = False
        idx = np.flatnonzero(active)
        if len(idx) == 0:
            return labels
        seq = labels[idx]
        cuts = np.flatnonzero(np.diff(seq)) + 1
        bounds = np.concatenate([[0], cuts, [len(seq)]])
        for r in range(len(bounds) - 1):
            a, b = bounds[r], bounds[r + 1]
            if b - a >= min_run:
                continue
            left = seq[a - 1] if a > 0 else None
            right = seq[b] if b < len(seq) else None
            left_len = (a - bounds[r - 1]) if r > 0 else -1
            right_len = (bounds[r + 2] - b) if r + 2 < len(bounds) else -1
            new = left if left_len >= right_len else right
            if new is not None and new != seq[a]:
                seq[a:b] = new
                changed = True
        labels[idx] = seq
        if not changed:
            break
    return labels


@dataclass
class SpeakerDiarizer:
    """Cluster speaker embeddings of sliding windows over speech into speakers and turns.

    Parameters
    ----------
    window_s, hop_s : embedding windows over the speech (pauses left out) and their step (default
        1.6 s every 0.77 s: the windows GE2E was trained on, laid as resemblyzer's `embed_utterance`
        lays them; other steps: bench/voices.md, "Diarization on real speech").
    frame_s : seconds per frame of the speech mask and the mel frames (default 0.01).
    max_speakers : most speakers a recording is split into (k = 2 .. max_speakers are tried; default 8).
    p_percentile : row-wise thresholding of the refined affinity (default 0.95, as the paper): each
        row keeps its values above this fraction of its sorted values; the rest are scaled by 0.01.
    gaussian_blur_sigma : blur of the affinity along time, in windows (default 0: off; the paper uses
        1). Off because in turns of about 3 s (four windows) neighbouring windows belong to other
        speakers.
    distinct_similarity : how many speakers: the recording is split into k = 2, 3, ... clusters and
        the largest k is kept whose cluster centroids are all less than this alike (cosine of the
        mean embeddings; default 0.88), and whose clusters all hold `min_cluster_windows` windows.
        Calibrated on real speech, with a thin margin (bench/voices.md, "Diarization on real speech").
    narrowband_distinct_similarity : `distinct_similarity` for telephone-band recordings (`fit` with
        `narrowband`; default 0.90): through a 300-3400 Hz band different voices come closer
        (bench/voices.md, "Generated conversations").
    min_cluster_windows : a split is refused when one cluster would hold fewer windows (default 4,
        about 4 s of speech).
    mixture_margin : a split is also refused when one cluster's centroid is closer to each of two
        other clusters than they are to each other by this much (default 0.14): windows laid across
        quick exchanges of two voices hold both and gather into a cluster between them. Only with
        `mixture_between` of the cluster's windows between the two voices in time.
    mixture_between : share of a would-be mixture cluster's windows that must lie between the two
        voices' windows in time (runs preceded by one, followed by the other) for the split to be
        refused (default 0.15). Applied only where every pair of clusters is less than
        `mixture_distinct` alike (default 0.83); otherwise a cluster flagged by `mixture_margin`
        refuses the split whatever its timing. These three values: bench/voices.md, "Diarization on
        real speech" (the mixture rule).
    min_speaker_s : a speaker holding less speech than this after frame assignment is dropped and
        its frames go to the next closest speaker (default 3.0 s: less is too little to tell a new
        voice from a variation of a known one). Turns of 2-3 s survive: what is dropped is a speaker,
        not a turn.
    min_turn_s : runs of one speaker shorter than this are given to a neighbour (default 0.5 s).
    max_cluster_windows : most windows clustered at once (default 800): the affinity matrix and its
        eigen decomposition grow with its square and cube; beyond it, windows spread evenly over the
        speech are clustered and the rest join the nearest centroid.
    embed_batch : windows handed to the encoder at once (default 256, about 6 MB of mel frames).
    """

    window_s: float = 1.6
    hop_s: float = 0.77
    frame_s: float = 0.01
    max_speakers: int = 8
    p_percentile: float = 0.95
    gaussian_blur_sigma: float = 0.0
    distinct_similarity: float = 0.88
    narrowband_distinct_similarity: float = 0.90
    min_cluster_windows: int = 4
    mixture_margin: float = 0.14
    mixture_between: float = 0.15
    mixture_distinct: float = 0.83
    min_speaker_s: float = 3.0
    min_turn_s: float = 0.5
    max_cluster_windows: int = 800
    embed_batch: int = 256

    # -- windows -----------------------------------------------------------------------------

    def window_starts(self, n_speech_frames: int) -> tuple[np.ndarray, int]:
        """Start indexes (into the speech frames, pauses removed) and length in frames of every window."""
        win = max(1, int(round(self.window_s / self.frame_s)))
        step = max(1, int(round(self.hop_s / self.frame_s)))
        if n_speech_frames <= win:
            return np.array([0]), max(1, n_speech_frames)
        starts = np.arange(0, n_speech_frames - win + 1, step)
        if starts[-1] + win < n_speech_frames:
            starts = np.append(starts, n_speech_frames - win)
        return starts, win

    def embed(self, mel: np.ndarray, speech: np.ndarray, embed: Embedder) -> tuple[np.ndarray, np.ndarray, int]:
        """Embeddings of the windows over the speech frames: (window starts among the speech frames,
        embeddings, window length in frames).

        The windows are embedded `embed_batch` at a time, each batch from its own stretch of speech
        frames, so memory stays bounded however long the speech is.
        """
        idx = np.flatnonzero(speech)
        starts, win = self.window_starts(len(idx))
        out = []
        for a in range(0, len(starts), self.embed_batch):
            part = starts[a: a + self.embed_batch]
            lo, hi = int(part[0]), int(part[-1]) + win
            out.append(np.asarray(embed(mel[idx[lo:hi]], part - lo, win), np.float32))
        return starts, _normalise(np.concatenate(out)), win

    # -- clustering --------------------------------------------------------------------------

    def cluster(self, embeddings: np.ndarray, narrowband: bool = False) -> np.ndarray:
        """A cluster label per window embedding (see `distinct_similarity` for how many clusters; with
        `narrowband`, `narrowband_distinct_similarity`)."""
        n = len(embeddings)
        if n < 3:
            return np.zeros(n, int)
        distinct = self.narrowband_distinct_similarity if narrowband else self.distinct_similarity
        if n > self.max_cluster_windows:
            pick = np.unique(np.linspace(0, n - 1, self.max_cluster_windows).round().astype(int))
            labels = self._split(embeddings[pick], distinct)
            centroids = np.stack([_normalise(embeddings[pick][labels == k].mean(axis=0)) for k in np.unique(labels)])
            labels = np.argmax(embeddings @ centroids.T, axis=1)
        else:
            labels = self._split(embeddings, distinct)
        return self._merge_similar(embeddings, labels, distinct)

    def _split(self, embeddings: np.ndarray, distinct: float) -> np.ndarray:
        """Spectral clustering into k = 2, 3, ... clusters, kept while the clusters stay distinct voices.

        The partition for each k is `spectralcluster`'s (refined affinity, eigenvectors, k-means); the
        largest k whose clusters all hold at least `min_cluster_windows` windows, whose centroids are
        all less than `distinct` alike and among which no cluster is a mixture of two others
        (`mixture_margin`) is kept; 1 when no k qualifies. Every k up to `max_speakers` is tried: a
        poor two-way partition does not stop a good six-way one.
        """
        from spectralcluster import RefinementName, RefinementOptions, ThresholdType

        steps = [RefinementName.CropDiagonal, RefinementName.RowWiseThreshold, RefinementName.Symmetrize,
                 RefinementName.Diffuse, RefinementName.RowWiseNormalize]
        if self.gaussian_blur_sigma > 0:
            steps.insert(1, RefinementName.GaussianBlur)
        refinement = RefinementOptions(
            gaussian_blur_sigma=self.gaussian_blur_sigma,
            p_percentile=self.p_percentile,
            thresholding_soft_multiplier=0.01,
            thresholding_type=ThresholdType.RowMax,
            refinement_sequence=steps,
        )
        best = np.zeros(len(embeddings), int)
        top = min(self.max_speakers, len(embeddings) - 1)
        if top < 2:
            return best
        for k, labels in self._partitions(embeddings, refinement, top).items():
            labels = np.unique(np.asarray(labels, int), return_inverse=True)[1]
            if labels.max() + 1 < k or np.bincount(labels).min() < self.min_cluster_windows:
                continue
            centroids = np.stack([_normalise(embeddings[labels == j].mean(axis=0)) for j in range(k)])
            sim = centroids @ centroids.T
            np.fill_diagonal(sim, -1.0)
            if sim.max() >= distinct:
                continue
            # Where some voices are nearly alike, a cluster between two is refused whenever it is.
            between = self.mixture_between if sim.max() < self.mixture_distinct else 0.0
            if has_mixture(sim, labels, self.mixture_margin, between):
                continue
            best = labels
        return best

    @staticmethod
    def _partitions(embeddings: np.ndarray, refinement, top: int) -> dict[int, np.ndarray]:
        """`spectralcluster`'s partition of the windows into k clusters for every k = 2 .. `top`.

        The same as one `SpectralClusterer(min_clusters=k, max_clusters=k).predict` per k, whose
        refined affinity and eigenvectors do not depend on k: the clusterer is run once for `top`
        clusters and its k-means step is repeated on the first k eigenvectors for each smaller k, so
        the affinity is refined and decomposed once. One thread for k-means (OpenMP) and BLAS: on tens
        of windows, threads cost more in hand-offs and spinning than they save (bench/voices.md,
        "Speed and memory").
        """
        from spectralcluster import SpectralClusterer
        from spectralcluster.custom_distance_kmeans import run_kmeans

        partitions: dict[int, np.ndarray] = {}

        def every_k(spectral_embeddings, n_clusters, custom_dist, max_iter):
            for k in range(2, n_clusters + 1):
                partitions[k] = run_kmeans(spectral_embeddings[:, :k], k, custom_dist, max_iter)
            return partitions[n_clusters]

        clusterer = SpectralClusterer(min_clusters=top, max_clusters=top, refinement_options=refinement,
                                      custom_dist="cosine", post_eigen_cluster_function=every_k)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1):
            clusterer.predict(embeddings.astype(np.float64))
        return partitions

    def _merge_similar(self, embeddings: np.ndarray, labels: np.ndarray, distinct: float) -> np.ndarray:
        """Merge the most similar pair of clusters while their centroids are `distinct` alike or more
        (after the nearest-centroid assignment of long recordings, centroids move a little)."""
        labels = labels.copy()
        while True:
            keys = np.unique(labels)
            if len(keys) < 2:
                break
            centroids = np.stack([_normalise(embeddings[labels == k].mean(axis=0)) for k in keys])
            sim = centroids @ centroids.T
            np.fill_diagonal(sim, -np.inf)
            a, b = np.unravel_index(int(np.argmax(sim)), sim.shape)
            if sim[a, b] < distinct:
                break
            labels[labels == keys[b]] = keys[a]
        _, dense = np.unique(labels, return_inverse=True)
        return dense

    # -- turns -------------------------------------------------------------------------------

    def fit(self, mel: np.ndarray, speech: np.ndarray, embed: Embedder, narrowband: bool = False) -> Diarization:
        """Diarize: `mel` (n_frames, n_mels) and `speech` (n_frames,) on the same frame grid; `narrowband`
        for a recording that holds only the telephone band (see `narrowband_distinct_similarity`).

        Returns every frame's speaker (see `Diarization`); no speech gives no speaker.
        """
        speech = np.asarray(speech, bool)
        n_frames = len(speech)
        if not speech.any():
            return Diarization(np.full(n_frames, -1), np.zeros((0, n_frames), np.float32),
                               np.zeros((0, 0), np.float32), np.zeros(0, int), np.zeros((0, 0), np.float32),
                               np.zeros((0, 2), int), np.zeros(0, int))
        starts, emb, win = self.embed(mel, speech, embed)
        labels = self.cluster(emb, narrowband)
        return self.assign(speech, starts, win, emb, labels)

    def assign(self, speech: np.ndarray, starts: np.ndarray, win: int, embeddings: np.ndarray,
               window_labels: np.ndarray) -> Diarization:
        """Frame labels from clustered windows: nearest centroid on average over each frame's windows."""
        idx = np.flatnonzero(speech)
        n_frames = len(speech)
        keys = np.unique(window_labels)
        centroids = np.stack([_normalise(embeddings[window_labels == k].mean(axis=0)) for k in keys])
        min_run = max(1, int(round(self.min_turn_s / self.frame_s)))
        while True:
            sims = embeddings @ centroids.T  # (n_windows, k)
            # Sum of covering windows' similarities per speech frame, by a difference array.
            acc = np.zeros((len(idx) + 1, len(centroids)), np.float64)
            cnt = np.zeros(len(idx) + 1, np.float64)
            ends = np.minimum(starts + win, len(idx))
            np.add.at(acc, starts, sims)
            np.add.at(acc, ends, -sims)
            np.add.at(cnt, starts, 1.0)
            np.add.at(cnt, ends, -1.0)
            per = np.cumsum(acc, axis=0)[:-1] / np.maximum(np.cumsum(cnt)[:-1], 1.0)[:, None]
            frame_labels = np.full(n_frames, -1)
            frame_labels[idx] = np.argmax(per, axis=1)
            frame_labels = smooth_labels(frame_labels, speech, min_run)
            if len(centroids) == 1:
                break
            held = np.bincount(frame_labels[idx], minlength=len(centroids)) * self.frame_s
            k = int(np.argmin(held))
            if held[k] >= self.min_speaker_s:
                break
            centroids = np.delete(centroids, k, axis=0)
        scores = np.zeros((len(centroids), n_frames), np.float32)
        scores[:, idx] = per.T
        windows = np.stack([starts, ends], axis=1)
        return Diarization(frame_labels, scores, centroids, np.argmax(embeddings @ centroids.T, axis=1),
                           embeddings, windows, idx)
