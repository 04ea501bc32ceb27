"""Fit the voice background model shipped as `scanner/voice_ubm.npz` (a GMM-UBM, see scanner/voices.py).

Run from the repository root (needs Debian's `flite` and `festival` with the `kal_diphone`,
`ked_diphone` and `cmu_us_slt_arctic_hts` voices; about two minutes on 2 cores):

    uv run python bench/fit_voice_ubm.py            # writes scanner/voice_ubm.npz and prints its SHA-256

then paste the printed `UBM_SHA256` and `VOICE_SCORE_CALIBRATION` into scanner/voices.py (the digest there
is checked when the model loads, and is part of the analysis cache key because it is in that file).

Training speech is synthesised locally, never downloaded: every installed flite and festival voice reads
sentences of the GNU licence texts in /usr/share/common-licenses (text that the benchmark's
sentences never use). A background model only has to cover the sounds of speech and the ways
recordings distort them, not particular people, so each utterance also enters with its vocal tract
stretched or shortened (resampling by 0.88-1.14, which moves formants and pitch like a different
talker), through an 8 kHz phone band, and under pink noise. The synthesis voices are recordings of
five real people (kal, awb, rms, slt, ked); the benchmark's identification table uses them too,
with other sentences, and reports the real devset speakers, whom the model never heard, separately.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scanner.models import AudioTrack  # noqa: E402
from scanner.voices import UBM_PATH, VoiceAnalyzer, ubm_features  # noqa: E402

SR = 16000
FLITE = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]
N_VARIANTS = 5
LICENCES = ["GPL-3", "LGPL-2.1", "GFDL-1.3", "Apache-2.0", "MPL-2.0", "Artistic"]


def sentences(limit: int) -> list[str]:
    """Plain sentences of 6-30 words from the licence texts, in file order."""
    out = []
    for name in LICENCES:
        text = Path("/usr/share/common-licenses", name).read_text(errors="replace")
        text = re.sub(r"\s+", " ", re.sub(r"[^A-Za-z0-9,.;:'\s-]", " ", text))
        for s in re.split(r"(?<=[.;:])\s", text):
            words = s.split()
            if 6 <= len(words) <= 30 and sum(w.isupper() for w in words) < 3:
                out.append(" ".join(words))
    seen, unique = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique[:limit]


def synth(voice: str, text: str, cache: Path) -> np.ndarray:
    import librosa

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{voice}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.wav"
    if not path.exists():
        if voice in FESTIVAL:
            subprocess.run(["text2wave", "-eval", f"(voice_{voice})", "-o", str(path)], input=text.encode(),
                           check=True, capture_output=True)
        else:
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True, capture_output=True)
    y, sr = sf.read(path, dtype="float32")
    if sr != SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    return (y / (np.abs(y).max() + 1e-9) * 0.5).astype(np.float32)


def variant(y: np.ndarray, rng: np.random.Generator, kind: int, stretch: bool = True) -> AudioTrack:
    """Vocal-tract-length and channel variants: 0 as is, 1 stretched, 2 phone band, 3 pink noise, 4 a reverberant room.

    Every variant but 0 is also stretched. The room is a synthetic impulse response (exponentially
    decaying noise after the direct sound, reverberation time 0.3-0.9 s), as in meeting rooms and
    far-field microphones, where real recordings are most often made.
    """
    import librosa
    import scipy.signal

    if kind >= 1 and stretch:
        # Resampling without changing the rate scales every frequency (formants and pitch) by `factor`.
        factor = rng.uniform(0.88, 1.14)
        y = librosa.resample(y, orig_sr=SR, target_sr=int(SR / factor)).astype(np.float32)
    y = np.concatenate([np.zeros(SR // 4, np.float32), y, np.zeros(SR // 4, np.float32)])
    if kind == 2:
        y8 = librosa.resample(y, orig_sr=SR, target_sr=8000)
        b, a = scipy.signal.butter(4, [300, 3400], btype="band", fs=8000)
        y = librosa.resample(scipy.signal.lfilter(b, a, y8), orig_sr=8000, target_sr=SR).astype(np.float32)
        return AudioTrack(y, SR, 8000)
    if kind == 4:
        rt60 = rng.uniform(0.3, 0.9)
        t = np.arange(int(rt60 * SR)) / SR
        rir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60) * rng.uniform(0.2, 0.5)
        rir[0] = 1.0
        y = scipy.signal.fftconvolve(y, rir)[: len(y) + SR // 4].astype(np.float32)
        y = y / (np.abs(y).max() + 1e-9) * 0.5
    if kind == 3:
        f = np.fft.rfft(rng.standard_normal(len(y)))
        k = np.arange(len(f))
        k[0] = 1
        noise = np.fft.irfft(f / np.sqrt(k), len(y))
        y = y + noise / noise.std() * np.sqrt(np.mean(y ** 2)) * 10 ** (-rng.uniform(10, 25) / 20)
    return AudioTrack(y.astype(np.float32), SR, SR)


def training_frames(cache: Path, per_voice: int, seed: int = 0) -> np.ndarray:
    """The speech frames of every voice and variant, shape (n, D)."""
    rng = np.random.default_rng(seed)
    pool = sentences(per_voice * 3)
    analyzer = VoiceAnalyzer()
    frames = []
    for v_i, voice in enumerate(FLITE + FESTIVAL):
        # Each voice reads its own share of the sentences, so the model hears more text.
        mine = pool[v_i % 3::3][:per_voice]
        for s_i, text in enumerate(mine):
            track = variant(synth(voice, text, cache), rng, s_i % N_VARIANTS)
            fr, speech, _noise, feats = analyzer.frames(track)
            frames.append(ubm_features(feats)[:, speech].T)
        print(f"{voice}: {sum(len(f) for f in frames)} frames so far", file=sys.stderr)
    return np.concatenate(frames).astype(np.float64)


DISTINCT = ["kal", "awb", "rms", "slt", "ked_diphone"]  # the five different people among the voices


def calibration_scores(ubm, cache: Path, skip: int, enrol_s: float = 10.0, probe_s: float = 3.0,
                       seed: int = 1) -> tuple[list[float], list[float]]:
    """Same-voice and different-voice scores (`voice_score`, both directions averaged) on held-out text.

    Each distinct voice is enrolled with `enrol_s` of clean speech and probed with `probe_s` pieces of
    other sentences, each through a random channel of `variant` (as is, phone band, noise, room), never
    stretched: the probes must stay the same person. Sentences before `skip` trained the model.
    """
    from scanner.voices import ubm_voiceprint_from_audio as voiceprint_from_audio
    from scanner.voices import voice_score

    rng = np.random.default_rng(seed)
    pool = sentences(skip + 40)[skip:]
    enrolled, probes = {}, []
    for voice in DISTINCT:
        ys = [synth(voice, text, cache) for text in pool]
        y = np.concatenate(ys)
        cut = int(enrol_s * SR)
        enrolled[voice] = voiceprint_from_audio(AudioTrack(y[:cut], SR, SR))
        rest = y[cut:]
        step = int(probe_s * SR)
        for i in range(0, min(len(rest), 20 * step) - step + 1, step):
            track = variant(rest[i:i + step], rng, [0, 2, 3, 4][(i // step) % 4], stretch=False)
            probes.append((voice, voiceprint_from_audio(track)))
    same, different = [], []
    for who, p in probes:
        for voice, e in enrolled.items():
            score = 0.5 * (voice_score(e, p, ubm) + voice_score(p, e, ubm))
            (same if voice == who else different).append(score)
    return same, different


def fit(x: np.ndarray, n_components: int, seed: int = 0):
    from sklearn.mixture import GaussianMixture

    gmm = GaussianMixture(n_components=n_components, covariance_type="diag", reg_covar=1e-3, max_iter=100,
                          tol=1e-4, init_params="k-means++", random_state=seed)
    gmm.fit(x)
    return gmm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--components", type=int, default=128)
    ap.add_argument("--per-voice", type=int, default=60, help="sentences each voice reads")
    ap.add_argument("--relevance", type=float, default=16.0)
    ap.add_argument("--out", type=Path, default=UBM_PATH)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/likeness-ubm-speech"))
    args = ap.parse_args()
    x = training_frames(args.cache, args.per_voice)
    print(f"fitting {args.components} components to {len(x)} frames of {x.shape[1]} features", file=sys.stderr)
    gmm = fit(x, args.components)
    buf = io.BytesIO()
    np.savez_compressed(buf, weights=gmm.weights_.astype(np.float32), means=gmm.means_.astype(np.float32),
                        variances=gmm.covariances_.astype(np.float32), relevance=np.float32(args.relevance))
    args.out.write_bytes(buf.getvalue())
    print("UBM_SHA256 =", hashlib.sha256(buf.getvalue()).hexdigest())

    from sklearn.linear_model import LogisticRegression

    import scanner.voices as voices

    ubm = voices.BackgroundModel(gmm.weights_, gmm.means_, gmm.covariances_, args.relevance)
    voices.background_model = lambda: ubm  # the new model, before its digest is in scanner/voices.py
    same, different = calibration_scores(ubm, args.cache, skip=3 * args.per_voice)
    scores = np.array(same + different)[:, None]
    labels = np.array([1] * len(same) + [0] * len(different))
    lr = LogisticRegression(class_weight="balanced", C=100.0).fit(scores, labels)
    print(f"same voice: {len(same)} scores, 5/50/95th percentile {np.percentile(same, [5, 50, 95]).round(3)}")
    print(f"different voices: {len(different)} scores, 50/95/99th percentile "
          f"{np.percentile(different, [50, 95, 99]).round(3)}, max {max(different):.3f}")
    print(f"VOICE_SCORE_CALIBRATION = ({lr.coef_[0, 0]:.3f}, {lr.intercept_[0]:.3f})")


if __name__ == "__main__":
    main()
