"""Benchmark of the voice stage: speech detection, diarization, speaker counts, linking, speed, memory.

Run from the repository root:

    uv run python bench/voices.py            # everything (about 5-8 minutes on 2 cores)
    uv run python bench/voices.py --only der # one part: vad | der | devset | six | phone | id | av | speed | memory

What it measures (see bench/voices.md for the table and how to read it):

0. **Speech detection** (`--only vad`): the speech detector's frames against the devset's reference
   turns (missed speech, false speech), on instrumental music (Debian's `singularity-music`, 30 s
   from the middle of each track; skipped when not installed) and on generated noises.
1. **Generated conversations** (needs Debian's `flite` and `festival` with `festival-freebsoft-utils`
   / `ked_diphone`): five distinct recorded voices (flite awb, kal, rms, slt; festival ked_diphone),
   2 to 4 speakers per conversation, turns of 1 to 10 s, clean, with overlapping turns, under 15 dB
   pink noise, and through an 8 kHz phone band. Diarization error rate (DER, 0.25 s collar, overlapped
   speech scored) and exact speaker counts. Synthesised speech is cached in `--cache`.
2. **Devset** (`../shared/devset/diarization`, real recordings with RTTM references): the close-talk
   two-speaker `sample.wav` on its own, and DER pooled over the 14 far-field meeting clips inside
   their UEM regions, with speaker-count accuracy (reference speakers with at least 3 s of speech)
   and how many of those speakers were found.
3. **Six real speakers, turns of about 3 s** (`--only six`): a conversation assembled from the devset's
   real speech: the six speakers with the most single-speaker speech, 2.5-3.5 s pieces of it taking
   turns (never the same speaker twice in a row), 0.2-0.5 s pauses. Speakers found, count, DER.
   **Through a telephone band** (`--only phone`): the devset clips and the six-speaker conversation
   band-passed as a phone call carries speech (8 kHz, 300-3400 Hz), diarized as narrowband recordings.
4. **Speaker identification and cross-recording linking** on real speech: `bench/voice_id.py` (the
   devset's real speakers, the product's `resolve_voices` and `link_voices`; see its docstring).
5. **Face-voice linking on real footage** (`--only av`): each of `../shared/devset/av`'s talking heads
   analysed, and scanned as a user would (`run_scan`): its links and whether one person holds both
   the face and the voice.
6. **Speed**: CPU seconds of `VoiceAnalyzer.analyze` per minute of audio, and real-time factor with
   one process per core on the 2-core machine. **Memory** (`--only memory`): peak RSS of a process
   analysing 60 minutes of real speech (the devset's clips tiled), measured in a fresh process.
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
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scanner.analysis.voices.analyzer import VoiceAnalyzer  # noqa: E402
from scanner.models import AudioTrack  # noqa: E402

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
    audio = AudioTrack(x.astype(np.float32), SR, SR)
    return (telephone_band(audio) if phone else audio), ref


def telephone_band(audio: AudioTrack) -> AudioTrack:
    """The track as a phone call carries it: 8 kHz, 300-3400 Hz, back at 16 kHz (original rate 8000)."""
    import librosa
    import scipy.signal

    x8 = librosa.resample(np.asarray(audio.samples, np.float32), orig_sr=audio.sample_rate, target_sr=8000)
    b, a = scipy.signal.butter(4, [300, 3400], btype="band", fs=8000)
    x8 = scipy.signal.lfilter(b, a, x8)
    return AudioTrack(librosa.resample(x8, orig_sr=8000, target_sr=SR).astype(np.float32), SR, 8000)


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


def bench_devset(analyzer: VoiceAnalyzer, phone: bool = False) -> dict:
    """The close-talk `sample.wav` on its own, and the 14 far-field clips pooled; with `phone`, all of
    them through a telephone band first (`telephone_band`)."""
    ref, uem = devset_reference()
    counts, exact, found, findable, lines = [], 0, 0, 0, []
    sample = None
    for name in sorted(ref):
        audio = load_wav(DEVSET / f"{name}.wav")
        audio = telephone_band(audio) if phone else audio
        result = analyzer.analyze(audio)
        c = der_counts(ref[name], hypothesis(result), audio.duration_s, uem=uem.get(name))
        per = {}
        for w, s, e in ref[name]:
            per[w] = per.get(w, 0.0) + e - s
        n_ref = sum(d >= 3.0 for d in per.values())
        d = pooled([c])
        line = f"{name}: ref {n_ref} (all {len(per)}) found {len(result.speakers)}  DER {100 * d['der']:.1f}%"
        if name == "sample":
            sample = {**d, "ref": n_ref, "found": len(result.speakers), "line": line}
            continue
        counts.append(c)
        exact += len(result.speakers) == n_ref
        f, t = speakers_found(ref[name], result)
        found += f
        findable += t
        lines.append(line)
    empty = analyzer.analyze(load_wav(DEVSET / "empty.wav")) if (DEVSET / "empty.wav").exists() else None
    return {**pooled(counts), "exact": exact, "n": len(counts), "found": found, "findable": findable, "lines": lines,
            "empty_ok": empty is None or not empty.speakers, "sample": sample}


# --------------------------------------------------------------------------------------------
# 3. Six real speakers taking turns of about 3 s
# --------------------------------------------------------------------------------------------


def single_speaker_pieces(min_s: float = 2.5) -> dict[str, list[np.ndarray]]:
    """Per devset speaker, the stretches where only that speaker speaks (RTTM), at least `min_s` long."""
    ref, _ = devset_reference()
    out: dict[str, list[np.ndarray]] = {}
    for name, turns in ref.items():
        audio = load_wav(DEVSET / f"{name}.wav")
        n = int(audio.duration_s * 100) + 1
        count = np.zeros(n, int)
        for _, s, e in turns:
            count[int(s * 100):int(e * 100)] += 1
        for who in {w for w, _, _ in turns}:
            own = np.zeros(n, bool)
            for w, s, e in turns:
                if w == who:
                    own[int(s * 100):int(e * 100)] = True
            m = np.concatenate([[False], own & (count == 1), [False]])
            edges = np.flatnonzero(m[1:] != m[:-1])
            for a, b in zip(edges[0::2], edges[1::2]):
                if (b - a) / 100 >= min_s:
                    out.setdefault(f"{name}:{who}", []).append(audio.samples[a * 160:b * 160])
    return out


def six_speakers(seed: int = 0, n_speakers: int = 6, turn_s: tuple[float, float] = (2.5, 3.5)):
    """A conversation of the `n_speakers` devset speakers with the most single-speaker speech, in turns of
    `turn_s` seconds; returns the audio and the reference turns."""
    rng = random.Random(seed)
    pieces = single_speaker_pieces(turn_s[0])
    by_total = sorted(pieces, key=lambda w: -sum(len(p) for p in pieces[w]))
    chosen, speakers = [], set()
    for w in by_total:  # one speaker per person: the devset names some people in several clips
        person = w.split(":")[1]
        if person not in speakers:
            chosen.append(w)
            speakers.add(person)
        if len(chosen) == n_speakers:
            break
    cuts = {}
    for w in chosen:
        cuts[w] = []
        for y in pieces[w]:
            i = 0
            while True:
                n = int(rng.uniform(*turn_s) * SR)
                if i + n > len(y):
                    break
                cuts[w].append(y[i:i + n])
                i += n
    order, last = [], None
    while any(cuts.values()):
        options = [w for w in chosen if cuts[w] and w != last] or [w for w in chosen if cuts[w]]
        w = max(options, key=lambda k: (len(cuts[k]), rng.random()))
        order.append((w, cuts[w].pop(0)))
        last = w
    t, parts, ref = 0.3, [np.zeros(int(0.3 * SR), np.float32)], []
    for w, y in order:
        parts.append(y)
        ref.append((w, t, t + len(y) / SR))
        gap = rng.uniform(0.2, 0.5)
        parts.append(np.zeros(int(gap * SR), np.float32))
        t += len(y) / SR + gap
    return AudioTrack(np.concatenate(parts).astype(np.float32), SR, SR), ref


def bench_six(analyzer: VoiceAnalyzer, phone: bool = False) -> dict:
    audio, ref = six_speakers()
    audio = telephone_band(audio) if phone else audio
    result = analyzer.analyze(audio)
    found, findable = speakers_found(ref, result)
    per = {}
    for w, s, e in ref:
        per[w] = per.get(w, 0.0) + e - s
    turns = [e - s for _, s, e in ref]
    return {**pooled([der_counts(ref, hypothesis(result), audio.duration_s)]), "speakers": len(per),
            "found_count": len(result.speakers), "found": found, "findable": findable,
            "duration_s": audio.duration_s, "turns": len(ref), "turn_s": (min(turns), max(turns)),
            "per_speaker_s": {w: round(v, 1) for w, v in per.items()}}


# --------------------------------------------------------------------------------------------
# 0. Speech detection
# --------------------------------------------------------------------------------------------

MUSIC = Path("/usr/share/games/singularity/music")


def _noises(seconds: float = 30.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    t = np.arange(n) / SR

    def coloured(power: float) -> np.ndarray:
        f = np.fft.rfft(rng.standard_normal(n))
        k = np.arange(len(f))
        k[0] = 1
        return np.fft.irfft(f / k ** power, n)

    clicks = 0.01 * rng.standard_normal(n)
    for s in rng.integers(0, n - 400, 150):
        clicks[s:s + 400] += rng.standard_normal(400) * np.exp(-np.arange(400) / 60)
    out = {"white": rng.standard_normal(n), "pink": coloured(0.5), "brown": coloured(1.0),
           "50 Hz hum": sum(np.sin(2 * np.pi * 50 * h * t) / h for h in range(1, 8)) + 0.05 * rng.standard_normal(n),
           "fan (pink, 0.2 Hz swell)": coloured(0.5) * (1 + 0.5 * np.sin(2 * np.pi * 0.2 * t)),
           "keyboard clicks": clicks}
    return {k: (0.1 * y / np.abs(y).max()).astype(np.float32) for k, y in out.items()}


def bench_vad(analyzer: VoiceAnalyzer) -> dict:
    """Missed and false speech of the voice stage's speech detector (10 ms frames, no collar)."""
    ref, _ = devset_reference()
    miss = ref_frames = false = other = 0
    for name in sorted(ref):
        audio = load_wav(DEVSET / f"{name}.wav")
        _, speech = analyzer.speech(audio)
        truth = np.zeros(len(speech), bool)
        for _, s, e in ref[name]:
            truth[int(round(s * 100)):int(round(e * 100))] = True
        miss += int((truth & ~speech).sum())
        ref_frames += int(truth.sum())
        false += int((~truth & speech).sum())
        other += int((~truth).sum())
    out = {"devset_missed": miss / ref_frames, "devset_false": false / other}
    music_s = music_speech = 0.0
    if MUSIC.is_dir():
        import librosa

        for path in sorted(MUSIC.glob("*.ogg")):
            y, sr = sf.read(path, dtype="float32")
            y = y.mean(axis=1) if y.ndim > 1 else y
            mid = len(y) // 2
            y = librosa.resample(y[max(0, mid - 15 * sr): mid + 15 * sr], orig_sr=sr, target_sr=SR)
            _, speech = analyzer.speech(AudioTrack(y.astype(np.float32), SR, SR))
            music_s += len(y) / SR
            music_speech += speech.sum() * 0.01
        out["music_s"], out["music_speech"] = music_s, music_speech / max(music_s, 1e-9)
    noise = {}
    for name, y in _noises().items():
        _, speech = analyzer.speech(AudioTrack(y, SR, SR))
        noise[name] = float(speech.mean())
    out["noise"] = noise
    return out


# --------------------------------------------------------------------------------------------
# 5. Face-voice linking on real footage
# --------------------------------------------------------------------------------------------


def bench_av() -> list[dict]:
    import datetime as dt

    from scanner.analysis.recording import analyze_recording
    from scanner.pipeline.scan import ScanOptions, run_scan

    rows = []
    for path in sorted((REPO.parent / "shared" / "devset" / "av").glob("*.mp4")):
        analysis = analyze_recording(path)
        result = run_scan([path], None, ScanOptions(as_of=dt.date(2026, 11, 27)))
        rows.append({"clip": path.name, "faces": len(analysis.faces.clusters) if analysis.faces else 0,
                     "voices": len(analysis.voices.speakers) if analysis.voices else 0,
                     "links": [(k.evidence, k.mouth_movement, k.correlation) for k in analysis.links],
                     "people": len(result.people),
                     "one_person": any(p.faces and p.voices for p in result.people) and len(result.people) == 1})
    return rows


# --------------------------------------------------------------------------------------------
# 4. Speed (3., speaker identification, is bench/voice_id.py)
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
    from scanner.pipeline.worker_setup import one_blas_thread

    one_blas_thread()  # as the scan's worker processes run
    _analyze_cpu(jobs[0])  # warm-up (librosa and numba compile once)
    cpu = dur = 0.0
    for j in jobs:
        c, d = _analyze_cpu(j)
        cpu += c
        dur += d
    workers = os.cpu_count() or 1
    # spawn, not fork: the parent already holds onnxruntime's and OpenBLAS's threads, which a forked child
    # inherits in an unusable state (the forked workers hung).
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=spawn, initializer=one_blas_thread) as pool:
        list(pool.map(_analyze_cpu, jobs[:workers]))  # warm each worker
        start = time.perf_counter()
        list(pool.map(_analyze_cpu, jobs))
        wall = time.perf_counter() - start
    return {"audio_s": dur, "cpu_per_min": cpu / dur * 60.0, "rt_one_core": dur / cpu, "workers": workers,
            "rt_all_cores": dur / wall}


_MEMORY_CHILD = """
import json, resource, sys, time
import numpy as np, soundfile as sf
sys.path.insert(0, {repo!r})
from scanner.models import AudioTrack
from scanner.analysis.voices.analyzer import VoiceAnalyzer
clips = [sf.read(p, dtype="float32")[0] for p in {clips!r}]
block = np.concatenate(clips)
n = int({minutes} * 60 * 16000)
audio = np.tile(block, int(np.ceil(n / len(block))))[:n]
del clips, block
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cpu = time.process_time()
result = VoiceAnalyzer().analyze(AudioTrack(audio, 16000, 16000))
cpu = time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"minutes": {minutes}, "audio_mb": audio.nbytes / 1e6, "peak_before_mb": before, "peak_mb": peak,
                  "cpu_s": cpu, "speech_s": result.speech_s, "speakers": len(result.speakers)}}))
"""


def bench_memory(minutes: float = 60.0) -> dict:
    """Peak RSS and CPU time of one process analysing `minutes` of real speech (the devset clips tiled),
    on one core (OPENBLAS_NUM_THREADS=1)."""
    clips = [str(DEVSET / f"{n}.wav") for n in ("sample", "dev00", "trn03", "tst00", "trn05", "trn09")]
    code = _MEMORY_CHILD.format(repo=str(REPO), clips=clips, minutes=minutes)
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["vad", "der", "devset", "six", "phone", "id", "av", "speed", "memory"],
                    action="append")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "likeness-bench-voices")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args()
    parts = args.only or ["vad", "der", "devset", "six", "phone", "id", "av", "speed", "memory"]
    analyzer = VoiceAnalyzer()
    out = {}
    if "vad" in parts and DEVSET.exists():
        v = out["vad"] = bench_vad(analyzer)
        print("\n## Speech detection\n")
        print(f"devset reference speech missed {100 * v['devset_missed']:.1f}%, non-speech marked as speech "
              f"{100 * v['devset_false']:.1f}%")
        if "music_s" in v:
            print(f"instrumental music: {100 * v['music_speech']:.1f}% of {v['music_s']:.0f} s marked as speech")
        print("generated noises marked as speech: " + ", ".join(f"{k} {100 * x:.1f}%" for k, x in v["noise"].items()))
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
        s = d["sample"]
        print("\n## Devset\n")
        if s:
            print(f"sample.wav (close-talk, 2 speakers): DER {100 * s['der']:.1f}% (miss {100 * s['miss']:.1f}%, "
                  f"false alarm {100 * s['fa']:.1f}%, confusion {100 * s['conf']:.1f}%), {s['found']} speakers found\n")
        print(f"Far-field meeting clips (pooled over {d['n']} clips, UEM regions)\n")
        print("| DER | miss | false alarm | confusion | speaker count exact | speakers >= 3 s found | empty clip |")
        print("|---|---|---|---|---|---|---|")
        print(f"| {100 * d['der']:.1f}% | {100 * d['miss']:.1f}% | {100 * d['fa']:.1f}% | {100 * d['conf']:.1f}% | "
              f"{d['exact']}/{d['n']} | {d['found']}/{d['findable']} | {'no speaker' if d['empty_ok'] else 'FAIL'} |")
        for line in d["lines"]:
            print("  " + line)
    if "six" in parts and DEVSET.exists():
        s = out["six"] = bench_six(analyzer)
        print("\n## Six real speakers, turns of 2.5-3.5 s\n")
        print(f"{s['duration_s']:.0f} s, {s['turns']} turns ({s['turn_s'][0]:.1f}-{s['turn_s'][1]:.1f} s), "
              f"{s['speakers']} speakers: {s['found_count']} found, {s['found']}/{s['findable']} matched to one "
              f"(half their speech or more); DER {100 * s['der']:.1f}% (miss {100 * s['miss']:.1f}%, "
              f"false alarm {100 * s['fa']:.1f}%, confusion {100 * s['conf']:.1f}%)")
        print("  speech per speaker: " + ", ".join(f"{k} {v} s" for k, v in s["per_speaker_s"].items()))
    if "phone" in parts and DEVSET.exists():
        d, s = bench_devset(analyzer, phone=True), bench_six(analyzer, phone=True)
        out["phone"] = {"devset": d, "six": s}
        print("\n## Real speech through a telephone band (8 kHz, 300-3400 Hz)\n")
        print("| material | DER | speakers |")
        print("|---|---|---|")
        if d["sample"]:
            print(f"| sample.wav (2 speakers) | {100 * d['sample']['der']:.1f}% | {d['sample']['found']} found |")
        print(f"| far-field clips, pooled | {100 * d['der']:.1f}% | counts {d['exact']}/{d['n']} exact, "
              f"{d['found']}/{d['findable']} speakers >= 3 s found |")
        print(f"| six speakers, turns of about 3 s | {100 * s['der']:.1f}% | {s['found_count']} found, "
              f"{s['found']}/{s['findable']} matched |")
    if "id" in parts and DEVSET.exists():
        # Real-speech identification and cross-recording linking with the product's matching (bench/voice_id.py).
        sys.path.insert(0, str(REPO / "bench"))
        import voice_id

        voice_id.main()
    if "av" in parts and (REPO.parent / "shared" / "devset" / "av").exists():
        rows = out["av"] = bench_av()
        print("\n## Face-voice linking, ../shared/devset/av\n")
        for r in rows:
            print(f"  {r['clip']}: {r['faces']} face, {r['voices']} voice, links {r['links']}, {r['people']} "
                  f"person(s), {'one person with face and voice' if r['one_person'] else 'NOT one person'}")
        print(f"{sum(r['one_person'] for r in rows)}/{len(rows)} clips give one person with face and voice")
    if "speed" in parts:
        s = out["speed"] = bench_speed(args.cache)
        print("\n## Speed\n")
        print(f"{s['audio_s'] / 60:.1f} min of audio: {s['cpu_per_min']:.2f} CPU s per minute, "
              f"{s['rt_one_core']:.0f}x real time on one core, {s['rt_all_cores']:.0f}x with {s['workers']} processes")
    if "memory" in parts and DEVSET.exists():
        m = out["memory"] = bench_memory()
        print("\n## Memory, 60 minutes of real speech (one process, one core)\n")
        print(f"{m['minutes']:.0f} min ({m['audio_mb']:.0f} MB of samples, {m['speech_s']:.0f} s of speech, "
              f"{m['speakers']} speakers): peak RSS {m['peak_mb']:.0f} MB ({m['peak_before_mb']:.0f} MB before the "
              f"voice stage), {m['cpu_s']:.1f} CPU s ({m['minutes'] * 60 / m['cpu_s']:.0f}x real time)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
