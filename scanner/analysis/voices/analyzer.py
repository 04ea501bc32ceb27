"""Find the voices in a recording: where people speak, who speaks when, and how usable each voice is.

`VoiceAnalyzer.analyze(AudioTrack) -> VoiceAnalysis`, on mono float32 audio (resampled to 16 kHz):

1. Speech: `scanner.analysis.voices.vad.SpeechDetector`, a speech mask on a 10 ms frame grid.
2. Frames: `measure_frames`, one pass a minute at a time (memory stays bounded on long recordings):
   per frame speech-band energy, flatness and peak, the speaker encoder's mel frames, and the
   background spectrum.
3. Diarization: `scanner.analysis.voices.diarization.SpeakerDiarizer`, a speaker per frame and turns; frames that
   resemble no speaker well and two about equally count as overlapped speech.
4. Per speaker: a voiceprint (`scanner.analysis.voices.voiceprints.voiceprint_from_speech`) and quality: usable
   seconds (speech without overlap, clipping or noise), longest clean stretch, SNR, effective
   bandwidth (`spectrum_means`, a second pass), clipping ratio.

Accuracy, speed and memory of the stage: bench/voices.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.fft
import scipy.ndimage

from scanner.analysis.voices import spectra
from scanner.analysis.voices.diarization import Diarization, SpeakerDiarizer
from scanner.analysis.voices.vad import SpeechDetector
from scanner.analysis.voices.voiceprints import (
    NARROWBAND_HZ,
    VOICEPRINT_DIM,
    background_mel,
    speech_samples,
    voiceprint_from_speech,
)
from scanner.models import (
    AudioTrack,
    SpeakerCluster,
    TimeRange,
    VoiceAnalysis,
    merge_ranges,
)


@dataclass
class Frames:
    """Short-time measurements of one recording, one value per 10 ms frame (frame i centred on sample i * hop).

    Computed chunk by chunk (`measure_frames`): no spectrum of the whole recording is ever held.

    energy_db: speech-band (100-4000 Hz) energy per frame in dB.
    flatness: spectral flatness of the speech band per frame (0 tonal ... 1 white noise).
    peak: largest absolute sample value within each frame's hop (for clipping).
    mel: the speaker encoder's 40-band power mel frames, shape (n_frames, 40), float32, scaled as the
        encoder wants its input level (`speaker_encoder.normalize_volume` applied to the speech), or
        None when not asked for.
    noise: the background power spectrum, shape (n_bins,): per bin the median over non-speech frames
        (at most `max_noise_frames` of them, spread evenly), or the 5th percentile over all frames
        when there are fewer than 20 non-speech frames.
    freqs: frequency of each spectrum bin in Hz.
    hop_s: seconds between frames.
    """

    energy_db: np.ndarray
    flatness: np.ndarray
    peak: np.ndarray
    mel: np.ndarray | None
    noise: np.ndarray
    freqs: np.ndarray
    hop_s: float

    @property
    def n(self) -> int:
        return len(self.energy_db)


@dataclass(frozen=True)
class _Grid:
    """The STFT layout shared by every pass over a recording."""

    sr: int
    hop: int
    win: int
    n_fft: int

    @classmethod
    def of(cls, sr: int, frame_s: float = 0.025, hop_s: float = 0.010) -> "_Grid":
        hop = max(1, int(round(hop_s * sr)))
        win = max(hop, int(round(frame_s * sr)))
        return cls(sr, hop, win, 1 << int(np.ceil(np.log2(win))))

    def n_frames(self, n_samples: int) -> int:
        return n_samples // self.hop + 1

    def segment(self, y: np.ndarray, f0: int, f1: int, half: int) -> np.ndarray:
        """Samples of frames f0..f1-1 with `half` samples either side of the first and last centre, zero outside."""
        a, b = f0 * self.hop - half, (f1 - 1) * self.hop + half
        seg = np.zeros(b - a, np.float32)
        lo, hi = max(a, 0), min(b, len(y))
        if hi > lo:
            seg[lo - a: hi - a] = y[lo:hi]
        return seg

    def power(self, y: np.ndarray, f0: int, f1: int) -> np.ndarray:
        """Power spectrum of frames f0..f1-1, shape (n_fft // 2 + 1, f1 - f0), float32, exactly as one
        centred STFT of the whole recording (zero padding at its ends) would give them."""

        seg = self.segment(y, f0, f1, self.n_fft // 2)
        spec = spectra.stft(seg, n_fft=self.n_fft, hop_length=self.hop, win_length=self.win)
        return (spec.real ** 2 + spec.imag ** 2).astype(np.float32)


def _chunks(n_frames: int, chunk_frames: int):
    for f0 in range(0, n_frames, chunk_frames):
        yield f0, min(n_frames, f0 + chunk_frames)


def measure_frames(audio: AudioTrack, speech: np.ndarray, *, frame_s: float = 0.025, hop_s: float = 0.010,
                   chunk_s: float = 60.0, mel: bool = True, max_noise_frames: int = 20000) -> Frames:
    """Measure a recording frame by frame, `chunk_s` seconds at a time.

    Parameters
    ----------
    speech : speech mask on the same frame grid (`SpeechDetector.detect` with `hop_s`): the noise
        spectrum is taken from the other frames, and the level of the speech sets the mel frames' scale.
    frame_s, hop_s : analysis window and hop in seconds (default 25 ms / 10 ms, the usual speech values;
        the mel frames need 10 ms).
    chunk_s : audio transformed at once (default 60 s: about 25 MB of spectrum at 16 kHz).
    mel : also compute the speaker encoder's mel frames (default True).
    max_noise_frames : non-speech frames kept for the noise spectrum's median (default 20000, 200 s).
    """
    from scanner.analysis.voices.encoder import HOP_SAMPLES, SAMPLE_RATE, mel_frames, normalize_volume

    sr = audio.sample_rate
    y = np.asarray(audio.samples, dtype=np.float32)
    grid = _Grid.of(sr, frame_s, hop_s)
    n = grid.n_frames(len(y))
    speech = np.asarray(speech, bool)
    if len(speech) != n:
        raise ValueError(f"speech mask has {len(speech)} frames, the recording {n}")
    if mel and (sr != SAMPLE_RATE or grid.hop != HOP_SAMPLES):
        raise ValueError("the speaker encoder's mel frames need 16 kHz audio and a 10 ms hop")

    freqs = spectra.fft_frequencies(sr=sr, n_fft=grid.n_fft)
    band = (freqs >= 100.0) & (freqs <= min(4000.0, sr / 2.0))
    energy_db = np.empty(n, np.float32)
    flatness = np.empty(n, np.float32)
    peak = np.empty(n, np.float32)
    mels = np.empty((n, 40), np.float32) if mel else None
    quiet = np.flatnonzero(~speech)
    keep_quiet = np.zeros(n, bool)
    keep_quiet[quiet[np.unique(np.linspace(0, len(quiet) - 1, min(len(quiet), max_noise_frames)).astype(int))]
               if len(quiet) else []] = True
    noise_cols, all_low = [], []
    speech_energy, speech_samples = 0.0, 0
    chunk = max(1, int(round(chunk_s / hop_s)))
    for f0, f1 in _chunks(n, chunk):
        power = grid.power(y, f0, f1)
        pb = power[band] + np.float32(1e-10)
        band_mean = pb.mean(axis=0)
        energy_db[f0:f1] = 10.0 * np.log10(band_mean)
        flatness[f0:f1] = np.exp(np.log(pb).mean(axis=0)) / band_mean
        noise_cols.append(power[:, keep_quiet[f0:f1]])
        if len(quiet) < 20:
            all_low.append(np.percentile(power, 5, axis=1))
        # Peak and speech level over each frame's own hop (centred on the frame).
        seg = grid.segment(y, f0, f1 + 1, grid.hop // 2)[: (f1 - f0) * grid.hop].reshape(f1 - f0, grid.hop)
        peak[f0:f1] = np.abs(seg).max(axis=1)
        own = speech[f0:f1]
        speech_energy += float(np.square(seg[own], dtype=np.float64).sum())
        speech_samples += int(own.sum()) * grid.hop
        if mels is not None:
            pad = 3 * grid.hop  # covers the mel window (400 samples centred): frames j = 3 .. are f0 ..
            m = mel_frames(grid.segment(y, f0, f1, pad))
            mels[f0:f1] = m[3: 3 + f1 - f0]
    if len(quiet) >= 20:
        noise = np.median(np.concatenate(noise_cols, axis=1), axis=1)
    else:
        noise = np.mean(all_low, axis=0) if all_low else np.zeros(len(freqs), np.float32)
    if mels is not None and speech_samples:
        # The encoder was trained on speech normalised to -30 dBFS (raised only): scale the power mel
        # frames as `normalize_volume` would scale the speech samples.
        rms = np.sqrt(speech_energy / speech_samples)
        probe = np.full(1, rms, np.float32)
        gain = float(normalize_volume(probe)[0] / probe[0]) if rms > 0 else 1.0
        mels *= np.float32(gain * gain)
    return Frames(energy_db, flatness, peak, mels, noise.astype(np.float32), freqs, grid.hop / float(sr))


def spectrum_means(audio: AudioTrack, labels: np.ndarray, n_labels: int, *, frame_s: float = 0.025,
                   hop_s: float = 0.010, chunk_s: float = 60.0) -> np.ndarray:
    """Average power spectrum of the frames of each label 0 .. n_labels - 1, shape (n_labels, n_bins).

    A second pass over the recording, chunk by chunk (see `measure_frames`); frames labelled -1 are
    skipped, a label without frames gives zeros.
    """
    y = np.asarray(audio.samples, dtype=np.float32)
    grid = _Grid.of(audio.sample_rate, frame_s, hop_s)
    n = grid.n_frames(len(y))
    sums = np.zeros((n_labels, grid.n_fft // 2 + 1), np.float64)
    counts = np.zeros(n_labels, np.int64)
    for f0, f1 in _chunks(n, max(1, int(round(chunk_s / hop_s)))):
        part = labels[f0:f1]
        if not (part >= 0).any():
            continue
        power = grid.power(y, f0, f1)
        for k in np.unique(part[part >= 0]):
            sel = part == k
            sums[k] += power[:, sel].sum(axis=1)
            counts[k] += int(sel.sum())
    return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Start and end (exclusive) index of every run of True values."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def noise_floor_db(energy_db: np.ndarray, percentile: float = 10.0, absolute_floor_db: float = -75.0) -> float:
    """The recording's background level: a low percentile of its frame energies.

    A percentile adapts to whatever steady background a recording has (room tone, hiss, hum),
    and unlike a minimum it ignores isolated digital-silence frames. Never below
    `absolute_floor_db`, so that digitally silent recordings do not make every faint sound speech.
    """
    if len(energy_db) == 0:
        return absolute_floor_db
    return max(float(np.percentile(energy_db, percentile)), absolute_floor_db)


# --------------------------------------------------------------------------------------------
# The voice stage
# --------------------------------------------------------------------------------------------


@dataclass
class VoiceAnalyzer:
    """Find speech, speakers, voiceprints and voice quality in one recording.

    Parameters
    ----------
    detector : speech detection (`scanner.analysis.voices.vad.SpeechDetector`, Silero VAD).
    diarizer : speaker diarization on speaker embeddings (`scanner.analysis.voices.diarization.SpeakerDiarizer`).
    min_speech_s : a recording with less speech than this holds no speaker (default 0.3 s).
    chunk_s : audio measured at once (default 60 s; see `measure_frames`): memory stays bounded on
        recordings of any length.
    max_voiceprint_s : a speaker's voiceprint is made from at most this much of its speech (default
        120 s, whole stretches spread over the recording): the encoder's average has settled long
        before, and it bounds memory on long recordings (bench/voices.md, "Speed and memory").
    turn_gap_s : pauses shorter than this between two stretches of one speaker stay one turn (default 0.5 s).
    overlap_margin, overlap_depth : a speech frame whose closest and second closest speakers (average
        cosine similarity of the covering windows to each speaker's centroid) differ by less than
        `overlap_margin` (default 0.05), while the closest lies more than `overlap_depth` (default 1.5)
        standard deviations below that speaker's typical similarity, for at least `min_overlap_s`
        (default 0.5 s) in a row, is overlapped speech: a mix of two voices resembles both a little.
    clip_level : sample magnitude counted as clipped (default 0.99 of full scale).
    min_usable_snr_db : speech whose local level is less than this above the noise floor is too noisy
        to be usable (default 6 dB).
    bandwidth_range_db : `bandwidth_hz` is the highest frequency where the speaker's long-term
        spectrum (noise removed) is within this many dB of its strong low band (default 50 dB; why not
        an energy fraction: bench/voices.md, "Effective bandwidth").
    max_snr_db : SNR values are capped here (default 60 dB; digital silence would give infinity).
    """

    detector: SpeechDetector = field(default_factory=SpeechDetector)
    diarizer: SpeakerDiarizer = field(default_factory=SpeakerDiarizer)
    min_speech_s: float = 0.3
    chunk_s: float = 60.0
    max_voiceprint_s: float = 120.0
    turn_gap_s: float = 0.5
    overlap_margin: float = 0.05
    overlap_depth: float = 1.5
    min_overlap_s: float = 0.5
    clip_level: float = 0.99
    min_usable_snr_db: float = 6.0
    bandwidth_range_db: float = 50.0
    max_snr_db: float = 60.0

    # -- the steps -------------------------------------------------------------------------

    def speech(self, audio: AudioTrack) -> tuple[AudioTrack, np.ndarray]:
        """The recording at 16 kHz (resampled if needed) and its speech mask on the 10 ms frame grid."""
        audio = _at_16k(audio)
        n = _Grid.of(audio.sample_rate).n_frames(len(audio.samples))
        return audio, self.detector.detect(audio.samples, 0.01, n)

    def analyze(self, audio: AudioTrack) -> VoiceAnalysis:
        """Speakers, their turns, voiceprints and quality; see the module docstring for the steps."""
        from scanner.analysis.voices.encoder import load_encoder

        if len(audio.samples) == 0:
            return VoiceAnalysis(speakers=[], speech_s=0.0)
        audio, speech = self.speech(audio)
        hop = 0.01
        if speech.sum() * hop < self.min_speech_s:
            return VoiceAnalysis(speakers=[], speech_s=0.0)
        frames = measure_frames(audio, speech, chunk_s=self.chunk_s)
        diarization = self.diarizer.fit(frames.mel, speech, load_encoder().embed_frames,
                                        narrowband=0 < audio.original_sample_rate <= 2 * NARROWBAND_HZ)
        frames.mel = None  # not needed any more
        labels = diarization.labels
        overlap = self._overlap(diarization, speech)
        clipped = self._clipped_frames(frames)
        noisy = self._noisy_frames(frames, speech)
        n_speakers = diarization.n_speakers

        owned = []
        for k in range(n_speakers):
            own = speech & (labels == k)
            turns = merge_ranges([TimeRange(a * hop, b * hop) for a, b in _runs(own)], gap=self.turn_gap_s)
            # Slivers left at a speaker change by the frame smoothing are not turns anyone took.
            kept = [t for t in turns if t.duration >= 0.2] or turns
            if len(kept) < len(turns):
                turns = kept
                inside = np.zeros_like(own)
                for t in turns:
                    inside[int(round(t.start / hop)): int(round(t.end / hop))] = True
                own &= inside
            owned.append((own, turns))
        spectra = spectrum_means(audio, np.where(speech, labels, -1), n_speakers, chunk_s=self.chunk_s)
        background = background_mel(audio.samples, speech)
        speakers = []
        for k, (own, turns) in enumerate(owned):
            if not own.any():
                continue
            usable = own & ~overlap & ~clipped & ~noisy
            bandwidth = self._bandwidth_hz(frames, spectra[k], audio.original_sample_rate)
            speakers.append(SpeakerCluster(
                speaker_id=k,
                turns=[TimeRange(round(t.start, 2), round(min(t.end, audio.duration_s), 2)) for t in turns],
                voiceprint=self._voiceprint(audio, own & ~overlap, usable, background, 0 < bandwidth <= NARROWBAND_HZ),
                usable_speech_s=round(float(usable.sum() * hop), 2),
                longest_clean_s=round(self._longest_clean(usable, speech, hop), 2),
                snr_db=round(self._snr_db(frames, own, speech), 1),
                bandwidth_hz=round(bandwidth, 0),
                clipping_ratio=round(self._clipping_ratio(audio, own, hop), 5),
                overlap_s=round(float((overlap & (labels == k)).sum() * hop), 2),
            ))
        speakers.sort(key=lambda s: s.turns[0].start)
        for i, s in enumerate(speakers):
            s.speaker_id = i
        return VoiceAnalysis(speakers=speakers, speech_s=round(min(float(speech.sum() * hop), audio.duration_s), 2))

    def _voiceprint(self, audio: AudioTrack, own: np.ndarray, usable: np.ndarray,
                    background: np.ndarray | None, narrowband: bool) -> np.ndarray:
        """The speaker's voiceprint: `voiceprints.voiceprint_from_speech` of its usable speech.

        Usable speech (no other voice, overlap, clipping or noise) when it holds at least 1 s, else the
        speaker's own speech outside overlaps; levelled on its own and with the recording's background
        taken off (`voiceprints.background_mel`), as the matching thresholds were measured; for a
        narrowband voice (bandwidth at most `voiceprints.NARROWBAND_HZ`) the telephone band only. At
        most `max_voiceprint_s` of it, in stretches spread over the whole recording.
        """
        frames = usable if usable.sum() >= 100 else own
        frames = _spread_selection(frames, int(round(self.max_voiceprint_s / 0.01)))
        return voiceprint_from_speech(speech_samples(audio.samples, frames), background=background,
                                      narrowband=narrowband)

    def _overlap(self, diarization: Diarization, speech: np.ndarray) -> np.ndarray:
        """Frames where two speakers seem to talk at once (cheap heuristic, see `overlap_margin`)."""
        overlap = np.zeros(len(speech), bool)
        scores, labels = diarization.scores, diarization.labels
        if len(scores) < 2:
            return overlap
        top2 = np.sort(scores, axis=0)[-2:]
        best, second = top2[1], top2[0]
        typical = np.array([np.median(scores[k, labels == k]) if (labels == k).any() else 0.0
                            for k in range(len(scores))])
        spread = np.array([np.std(scores[k, labels == k]) if (labels == k).any() else 1.0
                           for k in range(len(scores))])
        own = np.clip(labels, 0, None)
        poor = best < typical[own] - self.overlap_depth * spread[own]
        close = (best - second) < self.overlap_margin
        overlap = speech & poor & close
        shortest = max(1, int(round(self.min_overlap_s / 0.01)))
        for a, b in _runs(overlap):
            if b - a < shortest:
                overlap[a:b] = False
        return overlap

    # -- quality ---------------------------------------------------------------------------

    def _clipped_frames(self, frames: Frames) -> np.ndarray:
        """Frames near a clipped sample (20 ms either side: the distortion is audible around it)."""
        clipped = frames.peak >= self.clip_level
        return scipy.ndimage.binary_dilation(clipped, structure=np.ones(5, bool)) if clipped.any() else clipped

    def _clipping_ratio(self, audio: AudioTrack, own: np.ndarray, hop_s: float) -> float:
        """Fraction of this speaker's samples at or above the clipping level."""
        hop = int(round(hop_s * audio.sample_rate))
        y = audio.samples
        total = clipped = 0
        for a, b in _runs(own):
            seg = np.abs(y[a * hop: b * hop])
            total += len(seg)
            clipped += int((seg >= self.clip_level).sum())
        return clipped / total if total else 0.0

    def _noisy_frames(self, frames: Frames, speech: np.ndarray) -> np.ndarray:
        """Speech whose level (averaged over 0.5 s) is within `min_usable_snr_db` of the noise floor."""
        floor = noise_floor_db(frames.energy_db)
        power = 10.0 ** (frames.energy_db / 10.0)
        level = 10.0 * np.log10(scipy.ndimage.uniform_filter1d(power, max(1, int(0.5 / frames.hop_s))) + 1e-12)
        return speech & (level - floor < self.min_usable_snr_db)

    def _longest_clean(self, usable: np.ndarray, speech: np.ndarray, hop: float) -> float:
        """Longest stretch of usable speech, counting short pauses (< `turn_gap_s`) inside it."""
        stretch = usable.copy()
        gap = int(round(self.turn_gap_s / hop))
        for a, b in _runs(~stretch):
            # A pause may be bridged; anything else (another voice, overlap, clipping) breaks the stretch.
            if 0 < a and b < len(stretch) and b - a < gap and not speech[a:b].any():
                stretch[a:b] = True
        return max(((b - a) * hop for a, b in _runs(stretch)), default=0.0)

    def _snr_db(self, frames: Frames, own: np.ndarray, speech: np.ndarray) -> float:
        """Speech-to-noise ratio: this speaker's speech-band power over the pauses' power."""
        power = 10.0 ** (frames.energy_db.astype(np.float64) / 10.0)
        quiet = ~speech
        noise = float(np.mean(power[quiet])) if quiet.sum() >= 20 else float(np.percentile(power, 5))
        signal = float(np.mean(power[own])) - noise
        if signal <= 0:
            return 0.0
        if noise <= 1e-10:
            return self.max_snr_db
        return float(min(self.max_snr_db, 10.0 * np.log10(signal / noise)))

    def _bandwidth_hz(self, frames: Frames, spectrum: np.ndarray, original_rate: int) -> float:
        """Effective bandwidth: the highest frequency the voice reaches (see `bandwidth_range_db`).

        Measured on the speaker's long-term speech spectrum (`spectrum_means`) with the background
        spectrum removed, so that hiss above the voice does not count as bandwidth; capped at half the
        original sample rate, since a recording cannot hold more than its own band however it was
        resampled later.
        """
        spectrum = np.maximum(spectrum.astype(np.float64) - frames.noise, 0.0)
        if spectrum.sum() <= 0:
            return 0.0
        level_db = 10.0 * np.log10(np.convolve(spectrum, np.ones(5) / 5.0, mode="same") + 1e-20)
        # The reference is the strong part of the voice (formant region), not the single
        # loudest bin, so that one resonance does not decide the result.
        reference = float(np.percentile(level_db[(frames.freqs >= 100) & (frames.freqs <= 4000)], 95))
        above = np.flatnonzero(level_db > reference - self.bandwidth_range_db)
        freq = float(frames.freqs[above.max()]) if len(above) else 0.0
        return min(freq, original_rate / 2.0) if original_rate else freq


def _spread_selection(mask: np.ndarray, most: int) -> np.ndarray:
    """`mask` cut down to about `most` True frames: whole runs, picked evenly over the recording."""
    mask = np.asarray(mask, bool)
    if mask.sum() <= most:
        return mask
    runs = _runs(mask)
    out = np.zeros_like(mask)
    held = 0
    # Evenly spaced runs first (a 1-in-k stride over time), then fill until `most` is reached.
    lengths = np.array([b - a for a, b in runs])
    stride = max(1, int(np.ceil(lengths.sum() / most)))
    order = list(range(0, len(runs), stride)) + [i for i in range(len(runs)) if i % stride]
    for i in order:
        if held >= most:
            break
        a, b = runs[i]
        take = min(b - a, most - held)
        out[a: a + take] = True
        held += take
    return out


def _at_16k(audio: AudioTrack) -> AudioTrack:
    """The track at the 16 kHz the speech detector and the speaker encoder need (resampled if it is not)."""
    if audio.sample_rate == 16000:
        return audio
    import librosa  # only for tracks not decoded by `load_audio`, which delivers 16 kHz

    y = librosa.resample(np.asarray(audio.samples, np.float32), orig_sr=audio.sample_rate, target_sr=16000)
    return AudioTrack(y.astype(np.float32), 16000, audio.original_sample_rate)


def voiceprint_from_audio(audio: AudioTrack, analyzer: VoiceAnalyzer | None = None) -> np.ndarray:
    """The voiceprint of a recording of a single speaker (an enrolment sample), comparable with
    `SpeakerCluster.voiceprint`.

    Made as a scan makes a speaker's: speech detected, clipped frames left out (unless that leaves
    under 1 s), the recording's background taken off, `voiceprints.voiceprint_from_speech`. All speech
    in the sample counts (the sample is assumed to hold one voice). Without speech, zeros.
    """
    analyzer = analyzer or VoiceAnalyzer()
    if len(audio.samples) == 0:
        return np.zeros(VOICEPRINT_DIM, np.float32)
    audio, speech = analyzer.speech(audio)
    if not speech.any():
        return np.zeros(VOICEPRINT_DIM, np.float32)
    frames = measure_frames(audio, speech, chunk_s=analyzer.chunk_s, mel=False)
    clean = speech & ~analyzer._clipped_frames(frames)
    use = clean if clean.sum() >= 100 else speech
    return voiceprint_from_speech(speech_samples(audio.samples, use), background=background_mel(audio.samples, speech),
                                  narrowband=0 < audio.original_sample_rate <= 2 * NARROWBAND_HZ)
