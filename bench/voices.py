"""Benchmark of the voice stage: diarization, speaker counts, speaker identification, speed.

Run from the repository root:

    uv run python bench/voices.py            # everything (about 3-5 minutes on 2 cores)
    uv run python bench/voices.py --only der # one part: der | devset | id | scan | speed

What it measures (see bench/voices.md for the table and how to read it):

1. **Generated conversations** (needs Debian's `flite` and `festival` with `festival-freebsoft-utils`
   / `ked_diphone`): five distinct recorded voices (flite awb, kal, rms, slt; festival ked_diphone),
   2 to 4 speakers per conversation, turns of 1 to 10 s, clean, with overlapping turns, under 15 dB
   pink noise, and through an 8 kHz phone band. Diarization error rate (DER, 0.25 s collar, overlapped
   speech scored) and exact speaker counts. Synthesised speech is cached in `--cache`.
2. **Devset** (`../shared/devset/diarization`, real far-field meeting clips with RTTM references):
   pooled DER over all clips inside their UEM regions and speaker-count accuracy (reference speakers
   with at least 3 s of speech), plus how many of those speakers were found.
3. **Speaker identification**: enrolment of at least 10 s, probes of 3 s, top-1 accuracy among the
   enrolled voices, impostor acceptance (a probe scoring at or above the acceptance threshold against
   an enrolled voice that is not its own: unenrolled speakers, and every enrolled speaker with its own
   enrolment left out) and the equal error rate over all enrolled-voice/probe pairs, for three speaker
   models (the cepstral voiceprint with `VOICE_MATCH_THRESHOLD`, the raw GMM-UBM with
   `UBM_MATCH_PROBABILITY`, the GMM-UBM normalised against a cohort of the material's other speakers
   with `CohortSettings.threshold`), on the real devset speakers (single-speaker stretches cut from
   the RTTM turns), on the five synthetic voices, and on all of them enrolled together; then what a
   scan of the same material decides (`resolve_voices`, whose cohort is not told who is who).
   A scan of the 48 generated conversations (`--only scan`): the speakers the diarization finds,
   matched to the five enrolled voices, with the cohort normalisation and without it.
4. **Speed**: CPU seconds of `VoiceAnalyzer.analyze` per minute of audio, and real-time factor with
   one process per core on the 2-core machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scanner.models import AudioTrack  # noqa: E402
from scanner.voices import (  # noqa: E402
    UBM_MATCH_PROBABILITY,
    VOICE_MATCH_THRESHOLD,
    CohortSettings,
    VoiceAnalyzer,
    VoiceCohort,
    resolve_voices,
    ubm_voice_probability,
    unpack_voiceprint,
    voice_similarity,
    voiceprint_from_audio,
)

# The speaker models compared and the score at which each accepts a match.
THRESHOLDS = {
    "cepstrum": VOICE_MATCH_THRESHOLD,
    "gmm-ubm": UBM_MATCH_PROBABILITY,
    "gmm-ubm s-norm": CohortSettings().threshold,
}

SR = 16000
DEVSET = REPO.parent / "shared" / "devset" / "diarization"
VOICES = ["awb", "kal", "rms", "slt", "ked"]

SENTENCES = [
    "Please call Stella and ask her to bring these things with her from the store.",
    "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.",
    "We also need a small plastic snake and a big toy frog for the kids.",
    "She can scoop these things into three red bags, and we will go meet her Wednesday at the train station.",
    "When the sunlight strikes raindrops in the air, they act as a prism and form a rainbow.",
    "The rainbow is a division of white light into many beautiful colors.",
    "These take the shape of a long round arch, with its path high above.",
    "There is, according to legend, a boiling pot of gold at one end.",
    "People look, but no one ever finds it.",
    "When a man looks for something beyond his reach, his friends say he is looking for the pot of gold.",
    "The budget meeting has been moved to Thursday afternoon because of the holiday.",
    "I think we should review the quarterly numbers before we decide anything.",
    "Our customers have asked for a faster way to export their reports.",
    "Could you send me the slides from yesterday's presentation?",
    "The new office will open in the spring, if the builders finish on time.",
    "Let me check my calendar and get back to you later today.",
    "I agree with most of that, but the timeline seems too optimistic.",
    "We hired two engineers last month and they are settling in well.",
    "The server went down for about an hour on Sunday night.",
    "Nobody noticed until the monitoring system sent an alert at midnight.",
    "Do you remember the name of the restaurant we visited in Lisbon?",
    "The weather forecast says it will rain for most of the weekend.",
    "My brother plays the violin in a small orchestra downtown.",
    "The library closes early on Fridays during the summer months.",
    "It took us nearly three hours to drive through the mountains.",
    "Honestly, I would rather take the train than fly to the conference.",
    "The report should be ready by the end of next week.",
    "We need to talk about the privacy policy before the launch.",
    "Everyone in the team signed the new consent forms yesterday.",
    "The coffee machine on the third floor is broken again.",
    "Let's schedule a follow up call with the legal department.",
    "I'm not sure the numbers in the second table add up correctly.",
    "The museum has a wonderful collection of old maps and globes.",
    "Last year the garden produced more tomatoes than we could eat.",
    "Remember to back up your files before installing the update.",
    "The children built a sandcastle that lasted until the evening tide.",
    "A good night's sleep is the best preparation for an exam.",
    "The package was delivered to the wrong address twice this month.",
    "He painted the fence a bright shade of yellow that nobody liked.",
    "We should ask the vendor whether they store any recordings.",
]
# Short replies, for turns of about one second.
SHORT = ["Yes, exactly.", "Okay, sure.", "Right.", "I see.", "Not really.", "Good point.", "Thanks.", "Maybe later.",
         "Absolutely.", "No problem.", "That's fine.", "Go ahead."]
ENROL_SENTENCES = range(0, 5)  # enrolment uses these; probes and conversations never do


# --------------------------------------------------------------------------------------------
# Synthetic speech
# --------------------------------------------------------------------------------------------


def synth(voice: str, text: str, cache: Path) -> np.ndarray:
    """One utterance of `text` by `voice` at 16 kHz, leading and trailing silence trimmed, peak 0.5."""
    import librosa

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{voice}_{hashlib.sha1(text.encode()).hexdigest()[:12]}.wav"
    if not path.exists():
        if voice == "ked":
            subprocess.run(["text2wave", "-eval", "(voice_ked_diphone)", "-o", str(path)], input=text.encode(),
                           check=True, capture_output=True)
        else:
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(path)], check=True, capture_output=True)
    y, sr = sf.read(path, dtype="float32")
    if sr != SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=SR)
    y, _ = librosa.effects.trim(y, top_db=40)
    return (y / (np.abs(y).max() + 1e-9) * 0.5).astype(np.float32)


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    f = np.fft.rfft(rng.standard_normal(n))
    k = np.arange(len(f))
    k[0] = 1
    y = np.fft.irfft(f / np.sqrt(k), n)
    return y / y.std()


def conversation(voices: list[str], seed: int, cache: Path, *, n_turns: int = 14, overlap: bool = False,
                 noise_snr: float | None = None, phone: bool = False) -> tuple[AudioTrack, list]:
    """A conversation of `voices` with turns of 1-10 s; returns the audio and the reference turns.

    Turn lengths are drawn uniformly from 1-10 s and filled with whole sentences (short replies for the
    shortest). With `overlap`, about a third of the turns start up to 1 s before the previous one ends.
    """
    rng = random.Random(seed)
    order = list(voices)
    while len(order) < n_turns:
        order.append(rng.choice([v for v in voices if v != order[-1]]))
    pools = {v: [s for i, s in enumerate(SENTENCES) if i not in ENROL_SENTENCES] for v in voices}
    for p in pools.values():
        rng.shuffle(p)
    t = 0.5
    pieces, ref = [], []
    for v in order:
        target = rng.uniform(1.0, 10.0)
        if target < 2.0:
            y = synth(v, rng.choice(SHORT), cache)
        else:
            parts, total = [], 0.0
            while total < target - 1.0:
                if not pools[v]:
                    pools[v] = [s for i, s in enumerate(SENTENCES) if i not in ENROL_SENTENCES]
                    rng.shuffle(pools[v])
                u = synth(v, pools[v].pop(), cache)
                if parts and total + len(u) / SR > target + 2.0:
                    break
                parts += [u, np.zeros(int(0.2 * SR), np.float32)]
                total += len(u) / SR + 0.2
            y = np.concatenate(parts[:-1])
        y = y * rng.uniform(0.5, 1.0)
        if overlap and pieces and rng.random() < 0.35:
            start = max(pieces[-1][0] + 0.5, t - rng.uniform(0.4, 1.0) - 0.6)
        else:
            start = t
        pieces.append((start, y))
        ref.append((v, start, start + len(y) / SR))
        t = start + len(y) / SR + rng.uniform(0.2, 0.8)
    x = np.zeros(int((t + 0.5) * SR), np.float64)
    for s, y in pieces:
        a = int(s * SR)
        x[a:a + len(y)] += y
    nrng = np.random.default_rng(seed)
    if noise_snr is not None:
        speech = np.concatenate([y for _, y in pieces])
        x += pink(len(x), nrng) * np.sqrt(np.mean(speech ** 2)) * 10 ** (-noise_snr / 20)
    if phone:
        import librosa
        import scipy.signal

        x8 = librosa.resample(x, orig_sr=SR, target_sr=8000)
        b, a = scipy.signal.butter(4, [300, 3400], btype="band", fs=8000)
        x8 = scipy.signal.lfilter(b, a, x8)
        return AudioTrack(librosa.resample(x8, orig_sr=8000, target_sr=SR).astype(np.float32), SR, 8000), ref
    return AudioTrack(x.astype(np.float32), SR, SR), ref


# --------------------------------------------------------------------------------------------
# Scoring
# --------------------------------------------------------------------------------------------


def der_counts(ref, hyp, duration: float, collar: float = 0.25, uem=None, step: float = 0.01) -> dict[str, float]:
    """Frame-based DER components in seconds (NIST style: 0.25 s collar around reference boundaries,
    overlapped speech scored, optimal one-to-one speaker mapping)."""
    from scipy.optimize import linear_sum_assignment

    n = int(np.ceil(duration / step)) + 1
    rs = sorted({r[0] for r in ref})
    hs = sorted({h[0] for h in hyp})
    R = np.zeros((len(rs), n), bool)
    H = np.zeros((len(hs), n), bool)
    ignore = np.zeros(n, bool)
    for w, s, e in ref:
        R[rs.index(w), int(round(s / step)):int(round(e / step))] = True
        for b in (s, e):
            ignore[max(0, int(round((b - collar) / step))):int(round((b + collar) / step))] = True
    for w, s, e in hyp:
        H[hs.index(w), int(round(s / step)):int(round(e / step))] = True
    if uem is not None:
        inside = np.zeros(n, bool)
        for a, b in uem:
            inside[int(round(a / step)):int(round(b / step))] = True
        ignore |= ~inside
    R, H = R[:, ~ignore], H[:, ~ignore]
    nr, nh = R.sum(0), H.sum(0)
    correct = 0
    if len(rs) and len(hs):
        C = (R.astype(np.int32) @ H.T.astype(np.int32))
        ri, ci = linear_sum_assignment(-C)
        correct = C[ri, ci].sum()
    return {
        "ref": nr.sum() * step,
        "miss": np.maximum(nr - nh, 0).sum() * step,
        "fa": np.maximum(nh - nr, 0).sum() * step,
        "conf": (np.minimum(nr, nh).sum() - correct) * step,
    }


def pooled(counts: list[dict[str, float]]) -> dict[str, float]:
    total = {k: sum(c[k] for c in counts) for k in ("ref", "miss", "fa", "conf")}
    r = max(total["ref"], 1e-9)
    return {"der": (total["miss"] + total["fa"] + total["conf"]) / r, "miss": total["miss"] / r,
            "fa": total["fa"] / r, "conf": total["conf"] / r}


def hypothesis(analysis) -> list[tuple[int, float, float]]:
    return [(s.speaker_id, t.start, t.end) for s in analysis.speakers for t in s.turns]


# --------------------------------------------------------------------------------------------
# 1. Generated conversations
# --------------------------------------------------------------------------------------------

SETS = [["awb", "slt"], ["kal", "ked"], ["rms", "slt"], ["awb", "rms"],
        ["awb", "slt", "rms"], ["kal", "ked", "slt"], ["rms", "kal", "awb"], ["ked", "awb", "rms"],
        ["rms", "kal", "awb", "ked"], ["slt", "awb", "kal", "rms"], ["ked", "slt", "rms", "awb"],
        ["awb", "kal", "ked", "slt"]]
CONDITIONS = {
    "clean": {},
    "clean, overlapping turns": {"overlap": True},
    "pink noise 15 dB": {"noise_snr": 15.0},
    "8 kHz phone band": {"phone": True},
}


def bench_generated(cache: Path, analyzer: VoiceAnalyzer) -> list[dict]:
    rows = []
    for cond, kw in CONDITIONS.items():
        counts, exact, found, findable, wrong = [], 0, 0, 0, []
        for i, voices in enumerate(SETS):
            audio, ref = conversation(voices, seed=100 + i, cache=cache, **kw)
            result = analyzer.analyze(audio)
            counts.append(der_counts(ref, hypothesis(result), audio.duration_s))
            n_ref = len(set(voices))
            exact += len(result.speakers) == n_ref
            if len(result.speakers) != n_ref:
                wrong.append(f"{'+'.join(voices)}:{len(result.speakers)}")
            f, total = speakers_found(ref, result)
            found += f
            findable += total
        rows.append({"condition": cond, **pooled(counts), "exact": exact, "n": len(SETS), "found": found,
                     "findable": findable, "wrong": wrong})
    return rows


def speakers_found(ref, result, min_s: float = 3.0) -> tuple[int, int]:
    """Reference speakers with >= min_s of speech that the optimal mapping gives a found speaker
    covering at least half of their speech."""
    from scipy.optimize import linear_sum_assignment

    per = {}
    for w, s, e in ref:
        per[w] = per.get(w, 0.0) + e - s
    big = [w for w, d in per.items() if d >= min_s]
    hyp = result.speakers
    if not hyp or not big:
        return 0, len(big)
    C = np.zeros((len(big), len(hyp)))
    for i, w in enumerate(big):
        for j, sp in enumerate(hyp):
            C[i, j] = sum(max(0.0, min(e, t.end) - max(s, t.start)) for ww, s, e in ref if ww == w for t in sp.turns)
    ri, ci = linear_sum_assignment(-C)
    return int(sum(C[i, j] >= 0.5 * per[big[i]] for i, j in zip(ri, ci))), len(big)


# --------------------------------------------------------------------------------------------
# 2. Devset
# --------------------------------------------------------------------------------------------


def devset_reference() -> tuple[dict, dict]:
    ref, uem = {}, {}
    for p in DEVSET.glob("*.rttm"):
        for line in p.read_text().splitlines():
            q = line.split()
            if len(q) >= 8 and q[0] == "SPEAKER":
                ref.setdefault(q[1], []).append((q[7], float(q[3]), float(q[3]) + float(q[4])))
    for p in DEVSET.glob("*.uem"):
        for line in p.read_text().splitlines():
            q = line.split()
            if len(q) >= 4:
                uem.setdefault(q[0], []).append((float(q[2]), float(q[3])))
    return ref, uem


def load_wav(path: Path) -> AudioTrack:
    y, sr = sf.read(path, dtype="float32")
    if y.ndim > 1:
        y = y.mean(axis=1)
    return AudioTrack(y, sr, sr)


def bench_devset(analyzer: VoiceAnalyzer) -> dict:
    ref, uem = devset_reference()
    counts, exact, found, findable, lines = [], 0, 0, 0, []
    for name in sorted(ref):
        audio = load_wav(DEVSET / f"{name}.wav")
        result = analyzer.analyze(audio)
        c = der_counts(ref[name], hypothesis(result), audio.duration_s, uem=uem.get(name))
        counts.append(c)
        per = {}
        for w, s, e in ref[name]:
            per[w] = per.get(w, 0.0) + e - s
        n_ref = sum(d >= 3.0 for d in per.values())
        exact += len(result.speakers) == n_ref
        f, t = speakers_found(ref[name], result)
        found += f
        findable += t
        d = pooled([c])
        lines.append(f"{name}: ref {n_ref} (all {len(per)}) found {len(result.speakers)}  DER {100 * d['der']:.1f}%")
    empty = analyzer.analyze(load_wav(DEVSET / "empty.wav")) if (DEVSET / "empty.wav").exists() else None
    return {**pooled(counts), "exact": exact, "n": len(ref), "found": found, "findable": findable, "lines": lines,
            "empty_ok": empty is None or not empty.speakers}


# --------------------------------------------------------------------------------------------
# 3. Speaker identification
# --------------------------------------------------------------------------------------------


def single_speaker_audio(name: str, who: str, ref: list, audio: AudioTrack) -> list[np.ndarray]:
    """Stretches of clip `name` where only `who` speaks (per the RTTM), longest first."""
    step = 0.01
    n = int(audio.duration_s / step) + 1
    own = np.zeros(n, bool)
    anyone = np.zeros(n, int)
    for w, s, e in ref:
        a, b = int(s / step), int(e / step)
        anyone[a:b] += 1
        if w == who:
            own[a:b] = True
    sel = own & (anyone == 1)
    m = np.concatenate([[False], sel, [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    hop = int(step * audio.sample_rate)
    return [audio.samples[a * hop:b * hop] for a, b in zip(edges[0::2], edges[1::2]) if b - a >= 20]


@dataclass
class Trials:
    """The voiceprints of one identification material: enrolments, probes of enrolled speakers, impostor probes.

    Every voiceprint is a scan voiceprint (`voiceprint_from_audio`: cepstral and GMM-UBM parts), made
    once and scored by every speaker model.
    """

    enrolled: dict[str, np.ndarray]
    probes: list[tuple[str, np.ndarray]]
    impostors: list[tuple[str, np.ndarray]]

    @property
    def names(self) -> list[str]:
        return list(self.enrolled)

    def all_prints(self) -> tuple[list[str], np.ndarray]:
        """Speaker label and voiceprint of every enrolment and probe (the material a scan of it would hold)."""
        items = list(self.enrolled.items()) + self.probes + self.impostors
        return [w for w, _ in items], np.vstack([v for _, v in items])


def make_trials(speakers: dict[str, list[np.ndarray]], enrol_s: float = 10.0, probe_s: float = 3.0,
                min_enrolled_total: float = 13.0) -> Trials:
    """Enrolment and probes with `enrol_s` of enrolment and `probe_s` probes.

    `speakers` maps a speaker to a list of audio chunks (single-speaker stretches, in order). A speaker
    with at least `min_enrolled_total` s is enrolled with its first `enrol_s` s, and the rest is cut
    into `probe_s` probes. Speakers with less (but at least one probe) are impostors.
    """
    enrolled, probes, impostors = {}, [], []
    step = int(probe_s * SR)
    for who, chunks in speakers.items():
        y = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        total = len(y) / SR
        if total >= min_enrolled_total:
            enrolled[who] = voiceprint_from_audio(AudioTrack(y[: int(enrol_s * SR)], SR, SR))
            rest = y[int(enrol_s * SR):]
            probes += [(who, voiceprint_from_audio(AudioTrack(rest[i:i + step], SR, SR)))
                       for i in range(0, len(rest) - step + 1, step)]
        elif total >= probe_s:
            impostors += [(who, voiceprint_from_audio(AudioTrack(y[i:i + step], SR, SR)))
                          for i in range(0, len(y) - step + 1, step)]
    return Trials(enrolled, probes, impostors)


def _ubm(v: np.ndarray) -> np.ndarray:
    return unpack_voiceprint(v).ubm


def pairwise_scores(trials: Trials, method: str) -> np.ndarray:
    """Score of every (probe or impostor probe, enrolled voice), shape (n_probes + n_impostors, n_enrolled).

    `method`: "cepstrum" (cosine), "gmm-ubm" (calibrated probability), or "gmm-ubm s-norm": the
    product's `VoiceCohort` over every voiceprint of the material, each labelled with its speaker, so
    that the cohort of a trial is every enrolment and probe of the *other* speakers (both voices under
    test left out; no minimum cohort size here, see `cohort_sizes`).
    """
    gallery = list(trials.enrolled.values())
    tests = [v for _, v in trials.probes + trials.impostors]
    if method == "cepstrum":
        return np.array([[voice_similarity(e, t) for e in gallery] for t in tests])
    if method == "gmm-ubm":
        return np.array([[ubm_voice_probability(_ubm(e), _ubm(t)) for e in gallery] for t in tests])
    labels, prints = trials.all_prints()
    cohort = VoiceCohort(np.vstack([_ubm(v) for v in prints]), np.array(labels), CohortSettings(min_cohort=0))
    n_e = len(gallery)
    return np.array([[cohort.score(n_e + i, k) for k in range(n_e)] for i in range(len(tests))])


def cohort_sizes(trials: Trials) -> tuple[int, int]:
    """Smallest and median cohort (voiceprints of the other speakers) over the trials of `pairwise_scores`."""
    labels, _ = trials.all_prints()
    labels = np.array(labels)
    sizes = [int(((labels != w) & (labels != e)).sum()) for w, _ in trials.probes + trials.impostors
             for e in trials.names]
    return min(sizes), int(np.median(sizes))


def identification(trials: Trials, method: str = "gmm-ubm") -> dict:
    """Top-1 accuracy, genuine and impostor acceptance, and EER of one speaker model on `trials`.

    Top-1: the probe's best enrolled match is its own speaker. Impostor trials: every unenrolled
    speaker's probe against all enrolled voices, and every enrolled speaker's probe against everyone
    but itself (leave one out); accepted when any of those scores reaches the model's threshold
    (`THRESHOLDS`). EER over all (enrolled voice, probe) pairs.
    """
    threshold = THRESHOLDS[method]
    scores = pairwise_scores(trials, method)
    names = trials.names
    correct = accepted_genuine = imp_accepted = 0
    target, nontarget = [], []
    for (who, _), s in zip(trials.probes + trials.impostors, scores):
        if who in trials.enrolled:
            own = names.index(who)
            correct += int(np.argmax(s)) == own
            accepted_genuine += s[own] >= threshold
            target.append(s[own])
            others = np.delete(s, own)
        else:
            others = s
        nontarget += others.tolist()
        imp_accepted += others.max() >= threshold
    n_probes, n_trials = len(trials.probes), len(scores)
    return {"enrolled": len(names), "probes": n_probes, "top1": correct / max(1, n_probes),
            "genuine_accept": accepted_genuine / max(1, n_probes), "impostor_trials": n_trials,
            "impostor_accept": imp_accepted / max(1, n_trials),
            "impostor_speakers": len({w for w, _ in trials.impostors}),
            "eer": equal_error_rate(target, nontarget), "target": target, "nontarget": nontarget}


def identification_as_scanned(trials: Trials, settings: CohortSettings | None = None) -> dict:
    """What a scan decides (`resolve_voices`) when the material is scanned: probes are the speakers found.

    The enrolled voices are the subjects; every probe and impostor probe is a speaker of the scan.
    Nothing tells the scan which voiceprints share a voice: the cohort leaves out only what the scan's
    own decisions group together (see `resolve_voices`). Genuine accepted: the probe is matched to
    its own subject. Impostor trials: unenrolled probes (accepted when matched to anyone), and every
    enrolled speaker's probes in a second scan of the same material without that speaker's
    enrolment (leave one out). Top-1 and EER from the normalised scores when the cohort decided,
    otherwise from the cepstral similarities.
    """
    names = trials.names
    tests = trials.probes + trials.impostors
    prints = [v for _, v in tests]

    def scan(gallery: list[str]):
        return resolve_voices(prints, [[trials.enrolled[n]] for n in gallery], settings=settings or CohortSettings())

    full = scan(names)
    scores = full.scores if full.scores is not None else pairwise_scores(trials, "cepstrum")
    correct = accepted = imp_accepted = imp_trials = 0
    target, nontarget = [], []
    for (who, _), m, s in zip(tests, full.matches, scores):
        if who in trials.enrolled:
            own = names.index(who)
            correct += int(np.nanargmax(s)) == own
            accepted += m is not None and m.subject == own
            target.append(s[own])
            nontarget += np.delete(s, own).tolist()
        else:
            nontarget += s.tolist()
            imp_trials += 1
            imp_accepted += m is not None
    models = {full.model}
    for left_out in names:
        gallery = [n for n in names if n != left_out]
        res = scan(gallery)
        models.add(res.model)
        for (who, _), m in zip(tests, res.matches):
            if who == left_out:
                imp_trials += 1
                imp_accepted += m is not None
    n_probes = len(trials.probes)
    return {"enrolled": len(names), "probes": n_probes, "top1": correct / max(1, n_probes),
            "genuine_accept": accepted / max(1, n_probes), "impostor_trials": imp_trials,
            "impostor_accept": imp_accepted / max(1, imp_trials),
            "impostor_speakers": len({w for w, _ in trials.impostors}),
            "eer": equal_error_rate(target, [x for x in nontarget if np.isfinite(x)]),
            "model": "/".join(sorted(models)), "items": len(tests) + len(names)}


def equal_error_rate(target: list[float], nontarget: list[float]) -> float:
    """The error rate where false rejections of `target` scores equal false acceptances of `nontarget` ones."""
    if not target or not nontarget:
        return float("nan")
    t, n = np.sort(target), np.sort(nontarget)
    best = 1.0
    for th in np.concatenate([t, n]):
        frr = np.searchsorted(t, th, side="left") / len(t)
        far = 1.0 - np.searchsorted(n, th, side="left") / len(n)
        best = min(best, max(frr, far))
    return float(best)


def devset_speakers() -> dict[str, list[np.ndarray]]:
    """Single-speaker stretches of every devset speaker, clips of one meeting pooled, train clips first."""
    ref, _ = devset_reference()
    speakers: dict[str, list[np.ndarray]] = {}
    for name in sorted(ref, key=lambda n: (n[:3] != "trn", n)):
        audio = load_wav(DEVSET / f"{name}.wav")
        for who in sorted({w for w, _, _ in ref[name]}):
            speakers.setdefault(who, []).extend(single_speaker_audio(name, who, ref[name], audio))
    return speakers


def generated_speakers(cache: Path) -> dict[str, list[np.ndarray]]:
    """Each synthetic voice's five enrolment sentences, then 16 others."""
    speakers = {}
    for v in VOICES:
        enrol = [synth(v, SENTENCES[i], cache) for i in ENROL_SENTENCES]
        rest = [synth(v, s, cache) for i, s in enumerate(SENTENCES) if i not in ENROL_SENTENCES][:16]
        speakers[v] = enrol + rest
    return speakers


def majority_voice(ref: list, speaker) -> str | None:
    """The reference voice that covers most of a found speaker's turns (None when none overlaps)."""
    cover: dict[str, float] = {}
    for w, s, e in ref:
        for t in speaker.turns:
            cover[w] = cover.get(w, 0.0) + max(0.0, min(e, t.end) - max(s, t.start))
    best = max(cover, key=cover.get, default=None)
    return best if best is not None and cover[best] > 0 else None


def bench_scan(cache: Path, analyzer: VoiceAnalyzer) -> list[dict]:
    """Resolution of a whole scan of the 48 generated conversations (every condition of `CONDITIONS`).

    Each speaker the diarization finds is labelled with the voice covering most of its turns. The five
    voices are enrolled with 10 s of their enrolment sentences (never used in conversations). The scan's
    voices are resolved twice: by the shipped `resolve_voices` (which normalises, the scan holding far
    more than `CohortSettings.min_cohort` voiceprints) and with the cohort switched off (the cepstral
    voiceprint, what scans used before). Leave one out: each voice's enrolment is removed in turn and its
    speakers must match nobody. This material played no part in choosing the normalisation.
    """
    prints, truth = [], []
    for kw in CONDITIONS.values():
        for i, voices in enumerate(SETS):
            audio, ref = conversation(voices, seed=100 + i, cache=cache, **kw)
            for speaker in analyzer.analyze(audio).speakers:
                prints.append(speaker.voiceprint)
                truth.append(majority_voice(ref, speaker))
    enrolled = {}
    for v in VOICES:
        y = np.concatenate([synth(v, SENTENCES[i], cache) for i in ENROL_SENTENCES])
        enrolled[v] = voiceprint_from_audio(AudioTrack(y[: 10 * SR], SR, SR))
    rows = []
    for label, settings in (("cepstrum (cohort off)", CohortSettings(min_cohort=10 ** 9)),
                            ("as scanned (shipped)", CohortSettings())):
        full = resolve_voices(prints, [[enrolled[v]] for v in VOICES], settings=settings)
        got = [VOICES[m.subject] if m else None for m in full.matches]
        correct = sum(g == t for g, t in zip(got, truth))
        wrong = sum(g is not None and g != t for g, t in zip(got, truth))
        imp_trials = imp_accepted = 0
        for left_out in VOICES:
            gallery = [v for v in VOICES if v != left_out]
            res = resolve_voices(prints, [[enrolled[v]] for v in gallery], settings=settings)
            for m, t in zip(res.matches, truth):
                if t == left_out:
                    imp_trials += 1
                    imp_accepted += m is not None
        rows.append({"model": label, "decided_by": full.model, "speakers": len(prints), "correct": correct,
                     "wrong": wrong, "missed": len(prints) - correct - wrong, "impostor_trials": imp_trials,
                     "impostor_accepted": imp_accepted})
    return rows


def bench_identification(cache: Path) -> list[tuple[str, str, dict]]:
    """(speaker model, material, result) rows: real devset speakers, the five synthetic voices, and all
    of them enrolled together (every distinct voice the material holds)."""
    real = devset_speakers() if DEVSET.exists() else {}
    synthetic = generated_speakers(cache)
    materials = []
    if real:
        materials.append(("devset real speakers", make_trials(real)))
    materials.append(("5 synthetic voices", make_trials(synthetic)))
    if real:
        materials.append(("all distinct voices together", make_trials({**real, **synthetic})))
    rows = []
    for method in THRESHOLDS:
        for material, trials in materials:
            result = identification(trials, method=method)
            if method == "gmm-ubm s-norm":
                result["cohort"] = cohort_sizes(trials)
            rows.append((method, material, result))
    for material, trials in materials:
        rows.append(("as scanned", material, identification_as_scanned(trials)))
    return rows


# --------------------------------------------------------------------------------------------
# 4. Speed
# --------------------------------------------------------------------------------------------


def _analyze_cpu(args) -> tuple[float, float]:
    samples, rate, orig = args
    a = AudioTrack(samples, rate, orig)
    t = time.process_time()
    VoiceAnalyzer().analyze(a)
    return time.process_time() - t, a.duration_s


def bench_speed(cache: Path) -> dict:
    tracks = [conversation(v, seed=100 + i, cache=cache, noise_snr=15.0)[0] for i, v in enumerate(SETS)]
    if DEVSET.exists():
        tracks += [load_wav(p) for p in sorted(DEVSET.glob("*.wav")) if p.stem != "empty"]
    jobs = [(t.samples, t.sample_rate, t.original_sample_rate) for t in tracks]
    _analyze_cpu(jobs[0])  # warm-up (librosa and numba compile once)
    cpu = dur = 0.0
    for j in jobs:
        c, d = _analyze_cpu(j)
        cpu += c
        dur += d
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_analyze_cpu, jobs[:workers]))  # warm each worker
        start = time.perf_counter()
        list(pool.map(_analyze_cpu, jobs))
        wall = time.perf_counter() - start
    return {"audio_s": dur, "cpu_per_min": cpu / dur * 60.0, "rt_one_core": dur / cpu, "workers": workers,
            "rt_all_cores": dur / wall}


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["der", "devset", "id", "scan", "speed"], action="append")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "likeness-bench-voices")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    parts = args.only or ["der", "devset", "id", "scan", "speed"]
    analyzer = VoiceAnalyzer()
    out = {}
    if "der" in parts:
        out["generated"] = bench_generated(args.cache, analyzer)
        print("\n## Generated conversations (12 per condition, 2-4 of 5 voices, turns 1-10 s)\n")
        print("| condition | DER | miss | false alarm | confusion | speaker count exact | speakers >= 3 s found |")
        print("|---|---|---|---|---|---|---|")
        for r in out["generated"]:
            print(f"| {r['condition']} | {100 * r['der']:.1f}% | {100 * r['miss']:.1f}% | {100 * r['fa']:.1f}% | "
                  f"{100 * r['conf']:.1f}% | {r['exact']}/{r['n']} | {r['found']}/{r['findable']} |")
        for r in out["generated"]:
            if r["wrong"]:
                print(f"  {r['condition']}: wrong counts {', '.join(r['wrong'])}")
    if "devset" in parts and DEVSET.exists():
        d = out["devset"] = bench_devset(analyzer)
        print("\n## Devset far-field meeting clips (pooled over 14 clips, UEM regions)\n")
        print("| DER | miss | false alarm | confusion | speaker count exact | speakers >= 3 s found | empty clip |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {100 * d['der']:.1f}% | {100 * d['miss']:.1f}% | {100 * d['fa']:.1f}% | {100 * d['conf']:.1f}% | "
              f"{d['exact']}/{d['n']} | {d['found']}/{d['findable']} | {'no speaker' if d['empty_ok'] else 'FAIL'} |")
        for line in d["lines"]:
            print("  " + line)
    if "id" in parts:
        rows = bench_identification(args.cache)
        out["id"] = [{"method": m, "material": k, **r} for m, k, r in rows]
        print(f"\n## Speaker identification (10 s enrolment, 3 s probes; accepted at cosine {VOICE_MATCH_THRESHOLD}, "
              f"GMM-UBM probability {UBM_MATCH_PROBABILITY} or normalised score {CohortSettings().threshold})\n")
        print("| speaker model | material | enrolled | probes | top-1 | genuine accepted | impostor trials | "
              "impostor accepted | EER | cohort |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for m, k, r in rows:
            if "cohort" in r:
                cohort = f"{r['cohort'][0]}-{r['cohort'][1]} (min-median)"
            elif "model" in r:
                cohort = f"{r['items']} voiceprints, decided by {r['model']}"
            else:
                cohort = "-"
            print(f"| {m} | {k} | {r['enrolled']} | {r['probes']} | {100 * r['top1']:.1f}% | "
                  f"{100 * r['genuine_accept']:.1f}% | "
                  f"{r['impostor_trials']} ({r['impostor_speakers']} unenrolled + leave-one-out) | "
                  f"{100 * r['impostor_accept']:.1f}% | {100 * r['eer']:.1f}% | {cohort} |")
    if "scan" in parts:
        out["scan"] = bench_scan(args.cache, analyzer)
        print("\n## A scan of the 48 generated conversations: speakers matched to the 5 enrolled voices\n")
        print("| speaker model | decided by | speakers found | matched to own voice | matched to another | "
              "unmatched | leave-one-out impostor accepted |")
        print("|---|---|---|---|---|---|---|")
        for r in out["scan"]:
            print(f"| {r['model']} | {r['decided_by']} | {r['speakers']} | {r['correct']} | {r['wrong']} | "
                  f"{r['missed']} | {r['impostor_accepted']}/{r['impostor_trials']} "
                  f"({100 * r['impostor_accepted'] / max(1, r['impostor_trials']):.1f}%) |")
    if "speed" in parts:
        s = out["speed"] = bench_speed(args.cache)
        print("\n## Speed\n")
        print(f"{s['audio_s'] / 60:.1f} min of audio: {s['cpu_per_min']:.2f} CPU s per minute, "
              f"{s['rt_one_core']:.0f}x real time on one core, {s['rt_all_cores']:.0f}x with {s['workers']} processes")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
