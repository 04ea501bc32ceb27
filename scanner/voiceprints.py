"""Voice matching: GE2E voiceprints compared by cosine similarity, with thresholds measured on real speech.

A voiceprint (`SpeakerCluster.voiceprint`, and every enrolment voiceprint) is the speaker encoder's
L2-normalised 256-d embedding of a voice's speech (`scanner.speaker_encoder`, resemblyzer's GE2E
network run on numpy), made by the voice stage (`scanner.voices`). Two voiceprints are compared by
cosine similarity (`voice_similarity`). What a similarity means depends on how much speech is behind
the voiceprints: an embedding averaged over many windows sits closer to every other voice's average
than that of a 3 s probe does (measured on real speech, bench/voices.md), so the acceptance threshold
rises with the speech behind the longer of the two (`VoiceMatchSettings.threshold`).

`resolve_voices`, used when people are resolved over a whole scan: a speaker is the enrolled subject
whose closest sample is the most similar, when that similarity clears the threshold; speakers that match nobody are
linked across recordings by average linkage of the same thresholds (`link_voices`). Thresholds come
from real speech only (the development set's meeting speakers and talking-head clips; generated
voices are never used to set them). `voiceprint_from_speech` embeds a stretch of one voice's speech
the way those thresholds were measured (bench/voices.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EMBEDDING_DIM = 256
"""Length of a voiceprint (the speaker encoder's embedding)."""

ENROLMENT_SPEECH_S = 10.0
"""Seconds of speech an enrolment voiceprint is taken to hold when thresholds are chosen (enrolment
samples hold at least 5 s, usually 10-20 s): the long-speech threshold, the stricter one, applies."""

ENCODER_RATE = 16000
"""Sample rate the speaker encoder needs; other rates are resampled."""


def voiceprint_from_speech(samples: np.ndarray, sample_rate: int = ENCODER_RATE, encoder=None) -> np.ndarray:
    """A voiceprint (256,) of one voice's speech (mono float samples with the pauses cut out).

    The speech is resampled to 16 kHz if needed, levelled to -30 dBFS (raised only,
    `speaker_encoder.normalize_volume`) and embedded in 1.6 s windows, 1.3 a second, averaged
    (`SpeakerEncoder.embed_utterance`). Under 0.1 s of samples give zeros (similarity 0 to everything).
    """
    from scanner.speaker_encoder import load_encoder, normalize_volume

    y = np.asarray(samples, np.float32).ravel()
    if sample_rate != ENCODER_RATE and len(y):
        import librosa

        y = librosa.resample(y, orig_sr=sample_rate, target_sr=ENCODER_RATE).astype(np.float32)
    if len(y) < ENCODER_RATE // 10:
        return np.zeros(EMBEDDING_DIM, np.float32)
    encoder = encoder or load_encoder()
    return encoder.embed_utterance(normalize_volume(y)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Comparing voiceprints
# --------------------------------------------------------------------------------------------


def _embedding(voiceprint: np.ndarray) -> np.ndarray:
    v = np.asarray(voiceprint, np.float64).ravel()
    if len(v) != EMBEDDING_DIM:
        raise ValueError(f"voiceprint of length {len(v)} is not a GE2E voiceprint ({EMBEDDING_DIM} values); "
                         "it was made by another version of the scanner")
    return v


def voice_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two voiceprints' embeddings, 0 ... 1 (GE2E embeddings are non-negative).

    0 when either holds no speech.
    """
    ea = _embedding(a)
    eb = _embedding(b)
    na, nb = np.linalg.norm(ea), np.linalg.norm(eb)
    if na == 0 or nb == 0:
        return 0.0
    return float(ea @ eb / (na * nb))


@dataclass(frozen=True)
class VoiceMatchSettings:
    """When two voiceprints are taken to be one voice: a cosine threshold that depends on their speech.

    The threshold rises linearly from `short_threshold`, where the longer of the two voiceprints was
    made from `short_s` seconds of speech or less, to `long_threshold` at `long_s` seconds or more.
    Measured on real far-field meeting speech and talking-head clips (bench/voices.md, volume-levelled
    GE2E embeddings): averaging more speech pulls every voice's embedding towards the common mean, so
    different voices score higher against a long voiceprint than against a 3 s one.

    short_threshold: default 0.79 (3 s against 3 s: 2,081 pairs of different real speakers, 0.7% of
        them at 0.80 and above, 3.2% at 0.75; 197 same-speaker pairs, 59% at 0.80 and above).
    long_threshold: default 0.84 (10 s enrolment against 3 s probes of 4 real speakers: 21 of 26
        probes accepted as the right speaker, 2 of 29 probes of 19 held-out real speakers accepted;
        10 s against 10 s: 6 of 6 accepted, none of 9 other-speaker trials).
    short_s, long_s: the speech durations (s) where the two thresholds apply (defaults 3 and 10).
    scale: width of the logistic map from similarity to confidence (`confidence`; default 0.02:
        0.5 at the threshold, 0.92 at 0.05 above it). Not fitted: too few real trials to fit it on.
    """

    short_threshold: float = 0.79
    long_threshold: float = 0.84
    short_s: float = 3.0
    long_s: float = 10.0
    scale: float = 0.02

    def threshold(self, speech_a: float, speech_b: float) -> float:
        """Similarity at or above which two voiceprints with this much speech (s) are the same voice."""
        longer = max(float(speech_a), float(speech_b))
        span = max(self.long_s - self.short_s, 1e-9)
        t = float(np.clip((longer - self.short_s) / span, 0.0, 1.0))
        return self.short_threshold + t * (self.long_threshold - self.short_threshold)

    def confidence(self, similarity: float, threshold: float) -> float:
        """Probability-like confidence that `similarity` means the same voice (0.5 at `threshold`)."""
        return voice_match_confidence(similarity, threshold, self.scale)


DEFAULT_SETTINGS = VoiceMatchSettings()

VOICE_MATCH_THRESHOLD = DEFAULT_SETTINGS.long_threshold
"""Cosine similarity at which voiceprints of 10 s of speech or more are the same voice (see `VoiceMatchSettings`)."""


def voice_match_confidence(score: float, threshold: float = VOICE_MATCH_THRESHOLD, scale: float = 0.02) -> float:
    """Probability-like confidence that a similarity `score` means the same voice.

    A logistic curve centred on `threshold` (0.5 there) with width `scale`.
    """
    return float(1.0 / (1.0 + np.exp(-(score - threshold) / scale)))


def similarity_matrix(a: list[np.ndarray], b: list[np.ndarray]) -> np.ndarray:
    """Cosine similarities (len(a), len(b)) of two lists of voiceprints (0 where one holds no speech)."""
    if not a or not b:
        return np.zeros((len(a), len(b)))

    def unit(vs):
        e = np.stack([_embedding(v) for v in vs])
        n = np.linalg.norm(e, axis=1, keepdims=True)
        return e / np.where(n > 0, n, 1.0)

    return unit(a) @ unit(b).T


# --------------------------------------------------------------------------------------------
# Resolving a scan's voices
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceMatch:
    """A speaker tied to an enrolled subject.

    subject: index of the subject in the list given to `resolve_voices`.
    distance: 1 - cosine similarity to the subject's closest sample.
    confidence: probability-like confidence (`VoiceMatchSettings.confidence`).
    """

    subject: int
    distance: float
    confidence: float


@dataclass
class VoiceResolution:
    """Who the speakers of a scan are: matches to enrolled subjects and links between the others.

    matches: per speaker, its `VoiceMatch` or None.
    links: groups of unmatched speakers (indexes) that are one voice; every unmatched speaker is in one group.
    scores: cosine similarities, shape (n_speakers, n_subjects), each the best over the subject's
        samples (NaN for a subject without samples).
    """

    matches: list[VoiceMatch | None]
    links: list[list[int]]
    scores: np.ndarray


def _average_linkage(distance: np.ndarray, threshold: float) -> list[list[int]]:
    """Groups of items whose average-linkage distance (a square matrix) stays under `threshold`."""
    n = len(distance)
    if n == 0:
        return []
    if n == 1:
        return [[0]]
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(n_clusters=None, metric="precomputed", linkage="average",
                                     distance_threshold=threshold).fit_predict(distance)
    groups: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(int(label), []).append(i)
    return list(groups.values())


def link_voices(voiceprints: list[np.ndarray], speech_s: list[float],
                settings: VoiceMatchSettings = DEFAULT_SETTINGS) -> list[list[int]]:
    """Group voiceprints that are one voice: average linkage of (threshold - similarity) below 0.

    `speech_s` gives the seconds of speech behind each voiceprint; each pair is judged against its own
    threshold (`VoiceMatchSettings.threshold`), so a group holds voices whose average similarity
    clears the average of their thresholds. Every voiceprint is in exactly one group.
    """
    if not voiceprints:
        return []
    sims = similarity_matrix(voiceprints, voiceprints)
    thresholds = np.array([[settings.threshold(a, b) for b in speech_s] for a in speech_s])
    distance = 1.0 + thresholds - sims  # >= 0 since similarities are at most 1
    np.fill_diagonal(distance, 0.0)
    return _average_linkage(np.maximum(distance, 0.0), 1.0)


def resolve_voices(speakers: list[np.ndarray], subjects: list[list[np.ndarray]], speech_s: list[float] | None = None,
                   settings: VoiceMatchSettings = DEFAULT_SETTINGS) -> VoiceResolution:
    """Match a scan's speakers to enrolled subjects and link the unmatched ones across recordings.

    Parameters
    ----------
    speakers : the voiceprint of every speaker found (`SpeakerCluster.voiceprint`).
    subjects : per enrolled subject, the voiceprints of its voice samples (possibly none).
    speech_s : seconds of speech behind each speaker's voiceprint (default: `ENROLMENT_SPEECH_S` each).
        Enrolment voiceprints count as `ENROLMENT_SPEECH_S`.
    settings : the thresholds (`VoiceMatchSettings`).

    A speaker is the subject whose closest sample has the highest similarity, when that similarity
    reaches the threshold for the speaker's speech against an enrolment; speakers that match nobody
    are linked with `link_voices`.
    """
    speech = list(speech_s) if speech_s is not None else [ENROLMENT_SPEECH_S] * len(speakers)
    if len(speech) != len(speakers):
        raise ValueError("speech_s needs one duration per speaker")
    n_subj = len(subjects)
    scores = np.full((len(speakers), n_subj), np.nan)
    for k, samples in enumerate(subjects):
        if samples and speakers:
            scores[:, k] = similarity_matrix(list(speakers), list(samples)).max(axis=1)
    matches: list[VoiceMatch | None] = []
    for i in range(len(speakers)):
        if n_subj == 0 or not np.isfinite(scores[i]).any():
            matches.append(None)
            continue
        k = int(np.nanargmax(scores[i]))
        sim = float(scores[i, k])
        threshold = settings.threshold(speech[i], ENROLMENT_SPEECH_S)
        if sim < threshold:
            matches.append(None)
            continue
        matches.append(VoiceMatch(k, round(1.0 - sim, 4), round(settings.confidence(sim, threshold), 4)))
    unknown = [i for i, m in enumerate(matches) if m is None]
    groups = link_voices([speakers[i] for i in unknown], [speech[i] for i in unknown], settings)
    return VoiceResolution(matches, [[unknown[g] for g in group] for group in groups], scores)
