"""Voiceprints: how they are made, compared, matched to enrolled subjects and linked across recordings.

A voiceprint (`SpeakerCluster.voiceprint`, and every enrolment voiceprint; `VOICEPRINT_DIM` values)
holds two of the speaker encoder's L2-normalised 256-d embeddings (`scanner.analysis.voices.encoder`) of a
voice's speech (`voiceprint_from_speech`): as recorded, and through a 300-3400 Hz telephone band
(`phone_band`). The encoder is channel-sensitive, so a pair where either side is narrowband
(`NARROWBAND_HZ`) is compared by the telephone-band parts and every other pair by the parts as
recorded, by cosine similarity (`voice_similarity`). An embedding averaged over much speech sits
closer to every other voice's than a short one does, so the acceptance threshold rises with the
speech behind the longer of the two (`VoiceMatchSettings.threshold`).

`resolve_voices`, used when people are resolved over a whole scan: a speaker is the enrolled subject
whose closest sample is the most similar, when that similarity clears the threshold; speakers that
match nobody are linked across recordings by average linkage of the same thresholds (`link_voices`).
The thresholds are set on real speech only, with voiceprints made exactly as `voiceprint_from_speech`
makes them: bench/voice_id.md ("Thresholds", "Telephone band").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scanner.analysis.clustering import average_linkage, label_groups
from scanner.analysis.voices.encoder import mean_embedding, mel_frames

EMBEDDING_DIM = 256
"""Length of one speaker embedding."""

VOICEPRINT_DIM = 2 * EMBEDDING_DIM
"""Length of a voiceprint: the embedding of the speech as recorded, then of its telephone band."""

PHONE_BAND_HZ = (300.0, 3400.0)
"""The telephone band the second embedding of a voiceprint is made in."""

NARROWBAND_HZ = 4000.0
"""A voice whose effective bandwidth is at most this (an 8 kHz or telephone recording) is narrowband."""

ENROLMENT_SPEECH_S = 10.0
"""Seconds of speech an enrolment voiceprint is taken to hold when thresholds are chosen (enrolment
samples hold at least 5 s, usually 10-20 s): the long-speech threshold, the stricter one, applies."""

ENCODER_RATE = 16000
"""Sample rate the speaker encoder needs; other rates are resampled."""

TARGET_DBFS = -30.0
"""Level a voice's speech is raised to before embedding (as resemblyzer does; `normalize_volume`)."""

WINDOW_RATE = 0.625
"""Encoder windows (1.6 s) per second of speech in a voiceprint: 0.625 lays them end to end, half the
encoder time of resemblyzer's 1.3 for the same accuracy (bench/voice_id.md, "What else was measured")."""

MAX_WINDOWS = 32
"""Most encoder windows one voiceprint band averages (about 51 s of speech end to end); longer speech
gives that many, spread evenly over it, so the cost of a voiceprint is bounded however long the
speaker talks (bench/voice_id.md, "Speed")."""

NOISE_OVERSUBTRACTION = 2.0
"""How many times the background's mel spectrum is taken off the speech's before embedding (`denoise_mel`)."""

NOISE_FLOOR = 0.05
"""Share of each mel value kept at least when the background is subtracted (`denoise_mel`)."""


def speech_samples(samples: np.ndarray, frames: np.ndarray, hop: int = ENCODER_RATE // 100) -> np.ndarray:
    """The samples of the marked frames (frame i covering samples i*hop .. (i+1)*hop), concatenated."""
    y = np.asarray(samples, np.float32)
    keep = np.repeat(np.asarray(frames, bool), hop)[: len(y)]
    return y[: len(keep)][keep]


def background_mel(samples: np.ndarray, speech: np.ndarray, hop: int = ENCODER_RATE // 100,
                   max_s: float = 120.0, min_frames: int = 20) -> np.ndarray | None:
    """The recording's background as the speaker encoder sees it: the median mel frame (40,) of its pauses.

    `samples` are 16 kHz, `speech` marks speech per 10 ms frame; the non-speech frames (at most
    `max_s` seconds of them, spread evenly over the recording) are the background. None when there
    are fewer than `min_frames` of them (nothing to estimate it from).
    """
    quiet = ~np.asarray(speech, bool)
    idx = np.flatnonzero(quiet[: len(samples) // hop])
    if len(idx) < min_frames:
        return None
    most = int(max_s * 100)
    if len(idx) > most:
        idx = idx[np.linspace(0, len(idx) - 1, most).astype(int)]
    pick = np.zeros(len(quiet), bool)
    pick[idx] = True
    mel = mel_frames(speech_samples(samples, pick, hop))
    return np.median(mel, axis=0).astype(np.float32)


def denoise_mel(mel: np.ndarray, background: np.ndarray | None, over: float = NOISE_OVERSUBTRACTION,
                floor: float = NOISE_FLOOR) -> np.ndarray:
    """Mel frames with a steady background taken off: max(mel - over * background, floor * mel).

    The encoder was trained on clean speech, and steady noise under a voice moves its embedding a long
    way (bench/voice_id.md, "What else was measured").
    """
    if background is None:
        return mel
    return np.maximum(mel - over * np.asarray(background, np.float32)[None, :], floor * mel).astype(np.float32)


def phone_band(samples: np.ndarray, sample_rate: int = ENCODER_RATE) -> np.ndarray:
    """`samples` through the telephone band (`PHONE_BAND_HZ`; a 6th-order Butterworth band-pass)."""
    import scipy.signal

    sos = scipy.signal.butter(6, PHONE_BAND_HZ, btype="bandpass", fs=sample_rate, output="sos")
    return scipy.signal.sosfilt(sos, np.asarray(samples, np.float32)).astype(np.float32)


def _embed_speech(y: np.ndarray, background: np.ndarray | None, encoder, rate: float) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))
    if rms <= 0:
        return np.zeros(EMBEDDING_DIM, np.float32)
    gain = max(1.0, 10.0 ** (TARGET_DBFS / 20.0) / rms)
    mel = mel_frames(y * np.float32(gain))
    if background is not None:
        mel = denoise_mel(mel, np.asarray(background, np.float32) * np.float32(gain * gain))
    starts = encoder.utterance_starts(len(y), rate=rate)
    if len(starts) > MAX_WINDOWS:  # spread over the whole speech
        starts = starts[np.linspace(0, len(starts) - 1, MAX_WINDOWS).round().astype(int)]
    return mean_embedding(encoder.embed_frames(mel, starts))


def voiceprint_from_speech(samples: np.ndarray, sample_rate: int = ENCODER_RATE, background: np.ndarray | None = None,
                           narrowband: bool = False, rate: float | None = None, encoder=None) -> np.ndarray:
    """A voiceprint (512,) of one voice's speech (mono float samples with the pauses cut out).

    The speech is resampled to 16 kHz if needed, levelled to -30 dBFS (raised only, as
    `speaker_encoder.normalize_volume`); its mel frames have the recording's `background` (from
    `background_mel`, at the recording's own level) taken off (`denoise_mel`) and are embedded in
    1.6 s windows laid as resemblyzer's `embed_utterance` lays them, `rate` a second (default
    `WINDOW_RATE`, end to end), at most `MAX_WINDOWS` of them, averaged. The same again through the
    telephone band gives the second half. For
    `narrowband` speech (the recording holds no more than the telephone band) only the
    telephone-band embedding is made, and stands for both halves. Under 0.1 s of samples give zeros
    (similarity 0 to everything).
    """
    from scanner.analysis.voices.encoder import load_encoder

    y = np.asarray(samples, np.float32).ravel()
    if sample_rate != ENCODER_RATE and len(y):
        import librosa

        y = librosa.resample(y, orig_sr=sample_rate, target_sr=ENCODER_RATE).astype(np.float32)
    if len(y) < ENCODER_RATE // 10:
        return np.zeros(VOICEPRINT_DIM, np.float32)
    encoder = encoder or load_encoder()
    rate = WINDOW_RATE if rate is None else rate
    phone = _embed_speech(phone_band(y), background, encoder, rate)
    wide = phone if narrowband else _embed_speech(y, background, encoder, rate)
    return np.concatenate([wide, phone]).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Comparing voiceprints
# --------------------------------------------------------------------------------------------


def _parts(voiceprint: np.ndarray) -> np.ndarray:
    """The two embeddings of a voiceprint, shape (2, 256): as recorded, telephone band."""
    v = np.asarray(voiceprint, np.float64).ravel()
    if len(v) != VOICEPRINT_DIM:
        raise ValueError(f"voiceprint of length {len(v)} is not a GE2E voiceprint ({VOICEPRINT_DIM} values); "
                         "it was made by another version of the scanner")
    return v.reshape(2, EMBEDDING_DIM)


def voice_similarity(a: np.ndarray, b: np.ndarray, narrowband: bool = False) -> float:
    """Cosine similarity of two voiceprints, 0 ... 1 (GE2E embeddings are non-negative).

    Compares the embeddings as recorded, or with `narrowband` (either voice is narrowband) the
    telephone-band ones. 0 when either holds no speech.
    """
    return float(similarity_matrix([a], [b], [narrowband], [narrowband])[0, 0])


@dataclass(frozen=True)
class VoiceMatchSettings:
    """When two voiceprints are taken to be one voice: a cosine threshold that depends on their speech.

    The threshold rises linearly from `short_threshold`, where the longer of the two voiceprints was
    made from `short_s` seconds of speech or less, to `long_threshold` at `long_s` seconds or more:
    averaging more speech pulls every voice's embedding towards the common mean, so different voices
    score higher against a long voiceprint than against a 3 s one. The defaults are set on real
    speech (bench/voice_id.md, "Thresholds"), preferring a missed match (an unknown person, which is
    reported) to a false one (which would credit a voice with someone else's consent).

    short_threshold: cosine similarity, default 0.79 (short against short).
    long_threshold: cosine similarity, default 0.83 (3 s probe against a 10 s enrolment, and longer).
    short_s, long_s: the speech durations (s) where the two thresholds apply (defaults 3 and 10).
    narrowband_margin: added to the threshold of a pair compared in the telephone band (default 0.07;
        the band holds less of what tells voices apart, so a phone voice is matched only when very
        close to its enrolment; bench/voice_id.md, "Telephone band").
    scale: width of the logistic map from similarity to confidence (`confidence`; default 0.02:
        0.5 at the threshold, 0.92 at 0.05 above it; chosen, not fitted, bench/voice_id.md).
    """

    short_threshold: float = 0.79
    long_threshold: float = 0.83
    short_s: float = 3.0
    long_s: float = 10.0
    narrowband_margin: float = 0.07
    scale: float = 0.02

    def threshold(self, speech_a: float, speech_b: float, narrowband: bool = False) -> float:
        """Similarity at or above which two voiceprints with this much speech (s) are the same voice
        (`narrowband`: the pair is compared in the telephone band)."""
        longer = max(float(speech_a), float(speech_b))
        span = max(self.long_s - self.short_s, 1e-9)
        t = float(np.clip((longer - self.short_s) / span, 0.0, 1.0))
        base = self.short_threshold + t * (self.long_threshold - self.short_threshold)
        return base + (self.narrowband_margin if narrowband else 0.0)

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


def similarity_matrix(a: list[np.ndarray], b: list[np.ndarray], narrow_a: list[bool] | None = None,
                      narrow_b: list[bool] | None = None) -> np.ndarray:
    """Cosine similarities (len(a), len(b)) of two lists of voiceprints (0 where one holds no speech).

    A pair is compared in the telephone band when either side is flagged narrowband (`narrow_a`,
    `narrow_b`; default none), otherwise as recorded.
    """
    if not a or not b:
        return np.zeros((len(a), len(b)))

    def unit(vs, part):
        e = np.stack([_parts(v)[part] for v in vs])
        n = np.linalg.norm(e, axis=1, keepdims=True)
        return e / np.where(n > 0, n, 1.0)

    wide = unit(a, 0) @ unit(b, 0).T
    phone = unit(a, 1) @ unit(b, 1).T
    na = np.asarray(narrow_a if narrow_a is not None else [False] * len(a), bool)
    nb = np.asarray(narrow_b if narrow_b is not None else [False] * len(b), bool)
    return np.where(na[:, None] | nb[None, :], phone, wide)


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
    return label_groups(average_linkage(distance, threshold, metric="precomputed"))


def link_voices(voiceprints: list[np.ndarray], speech_s: list[float], narrowband: list[bool] | None = None,
                settings: VoiceMatchSettings = DEFAULT_SETTINGS) -> list[list[int]]:
    """Group voiceprints that are one voice: average linkage of (threshold - similarity) below 0.

    `speech_s` gives the seconds of speech behind each voiceprint, `narrowband` which voices are
    narrowband (default none); each pair is judged against its own threshold
    (`VoiceMatchSettings.threshold`), so a group holds voices whose average similarity clears the
    average of their thresholds. Every voiceprint is in exactly one group.
    """
    if not voiceprints:
        return []
    narrow = list(narrowband) if narrowband is not None else [False] * len(voiceprints)
    sims = similarity_matrix(voiceprints, voiceprints, narrow, narrow)
    thresholds = np.array([[settings.threshold(a, b, na or nb) for b, nb in zip(speech_s, narrow)]
                           for a, na in zip(speech_s, narrow)])
    distance = 1.0 + thresholds - sims  # >= 0 since similarities are at most 1
    np.fill_diagonal(distance, 0.0)
    return _average_linkage(np.maximum(distance, 0.0), 1.0)


def resolve_voices(speakers: list[np.ndarray], subjects: list[list[np.ndarray]], speech_s: list[float] | None = None,
                   narrowband: list[bool] | None = None, settings: VoiceMatchSettings = DEFAULT_SETTINGS
                   ) -> VoiceResolution:
    """Match a scan's speakers to enrolled subjects and link the unmatched ones across recordings.

    Parameters
    ----------
    speakers : the voiceprint of every speaker found (`SpeakerCluster.voiceprint`).
    subjects : per enrolled subject, the voiceprints of its voice samples (possibly none).
    speech_s : seconds of speech behind each speaker's voiceprint (default: `ENROLMENT_SPEECH_S` each).
        Enrolment voiceprints count as `ENROLMENT_SPEECH_S`.
    narrowband : per speaker, whether its voice is narrowband (default none is); such a speaker is
        compared with the telephone-band part of every voiceprint, at the narrowband threshold.
        Enrolment samples count as wideband.
    settings : the thresholds (`VoiceMatchSettings`).

    A speaker is the subject whose closest sample has the highest similarity, when that similarity
    reaches the threshold for the speaker's speech against an enrolment; speakers that match nobody
    are linked with `link_voices`.
    """
    speech = list(speech_s) if speech_s is not None else [ENROLMENT_SPEECH_S] * len(speakers)
    narrow = list(narrowband) if narrowband is not None else [False] * len(speakers)
    if len(speech) != len(speakers) or len(narrow) != len(speakers):
        raise ValueError("speech_s and narrowband need one value per speaker")
    n_subj = len(subjects)
    scores = np.full((len(speakers), n_subj), np.nan)
    for k, samples in enumerate(subjects):
        if samples and speakers:
            scores[:, k] = similarity_matrix(list(speakers), list(samples), narrow).max(axis=1)
    matches: list[VoiceMatch | None] = []
    for i in range(len(speakers)):
        if n_subj == 0 or not np.isfinite(scores[i]).any():
            matches.append(None)
            continue
        k = int(np.nanargmax(scores[i]))
        sim = float(scores[i, k])
        threshold = settings.threshold(speech[i], ENROLMENT_SPEECH_S, narrow[i])
        if sim < threshold:
            matches.append(None)
            continue
        matches.append(VoiceMatch(k, round(1.0 - sim, 4), round(settings.confidence(sim, threshold), 4)))
    unknown = [i for i, m in enumerate(matches) if m is None]
    groups = link_voices([speakers[i] for i in unknown], [speech[i] for i in unknown], [narrow[i] for i in unknown],
                         settings)
    return VoiceResolution(matches, [[unknown[g] for g in group] for group in groups], scores)
