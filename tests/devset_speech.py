"""Real speakers from the development set (../shared/devset), for voice benchmarks and opt-in tests.

The devset's diarization clips are far-field meeting recordings with reference speaker turns (RTTM).
A speaker's speech is every stretch of its turns where nobody else speaks (overlapped speech cut
out), concatenated in file order; the talking-head clips of `av/` add one voice each (the whole
sound track). Nothing here is copied into the repository.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

SR = 16000


def _read_rttm(folder: Path) -> dict[str, list[tuple[float, float, str]]]:
    turns: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for rttm in sorted(folder.glob("*.rttm")):
        for line in rttm.read_text(encoding="utf-8").splitlines():
            p = line.split()
            if len(p) >= 8 and p[0] == "SPEAKER":
                turns[p[1]].append((float(p[3]), float(p[3]) + float(p[4]), p[7]))
    return turns


def devset_speakers(devset: Path, include_av: bool = True) -> dict[str, np.ndarray]:
    """Real speech per speaker: label -> 16 kHz float32 samples (non-overlapped turns, concatenated).

    Labels are the RTTM speaker names (one person across clips) and `av1` ... `av5` for the
    talking-head clips. Speakers are returned longest first.
    """
    import soundfile as sf

    folder = devset / "diarization"
    pieces: dict[str, list[np.ndarray]] = defaultdict(list)
    for uri, turns in sorted(_read_rttm(folder).items()):
        path = folder / f"{uri}.wav"
        if not path.is_file():
            continue
        y, sr = sf.read(path, dtype="float32")
        if y.ndim > 1:
            y = y.mean(axis=1)
        assert sr == SR, f"{path} is not 16 kHz"
        hop = SR // 100
        n = len(y) // hop + 1
        talkers = np.zeros(n, int)
        for a, b, _ in turns:
            talkers[int(a * 100): int(b * 100)] += 1
        for a, b, who in sorted(turns):
            own = np.zeros(n, bool)
            own[int(a * 100): int(b * 100)] = True
            own &= talkers == 1
            keep = np.repeat(own, hop)[: len(y)]
            if keep.any():
                pieces[who].append(y[: len(keep)][keep])
    if include_av:
        from scanner.media.audio import load_audio

        for k, clip in enumerate(sorted((devset / "av").glob("talking_head_*.mp4")), start=1):
            track = load_audio(clip, SR)
            if track is not None and len(track.samples):
                pieces[f"av{k}"].append(np.asarray(track.samples, np.float32))
    speech = {who: np.concatenate(p) for who, p in pieces.items()}
    return dict(sorted(speech.items(), key=lambda item: -len(item[1])))


def chunks(y: np.ndarray, seconds: float) -> list[np.ndarray]:
    """Consecutive non-overlapping pieces of `seconds` each (the remainder is dropped)."""
    step = int(seconds * SR)
    return [y[i: i + step] for i in range(0, len(y) - step + 1, step)]


def identification_material(speakers: dict[str, np.ndarray], voiceprint, enrol_s: float = 10.0,
                            probe_s: float = 3.0) -> tuple[dict[str, np.ndarray], list[tuple[str, np.ndarray]],
                                                           list[tuple[str, np.ndarray]]]:
    """Enrolments, genuine probes and impostor probes of an open-set identification test.

    Speakers with at least `enrol_s + probe_s` seconds are enrolled with their first `enrol_s`
    seconds and probed with the following pieces of `probe_s`; every other speaker with at least
    `probe_s` seconds is held out, and its pieces of `probe_s` are impostor probes (voices nobody
    enrolled). `voiceprint(samples)` makes a voiceprint of 16 kHz speech.
    Returns (enrolled: label -> voiceprint, probes: [(label, voiceprint)], impostors: [(label, voiceprint)]).
    """
    enrolled, probes, impostors = {}, [], []
    enrol_n = int(enrol_s * SR)
    for who, y in speakers.items():
        if len(y) >= enrol_n + int(probe_s * SR):
            enrolled[who] = voiceprint(y[:enrol_n])
            probes += [(who, voiceprint(piece)) for piece in chunks(y[enrol_n:], probe_s)]
        else:
            impostors += [(who, voiceprint(piece)) for piece in chunks(y, probe_s)]
    return enrolled, probes, impostors
