"""Speaker identification and cross-recording linking on real speech (the devset), with the product's matching.

    uv run python bench/voice_id.py            # about 1-3 minutes on 2 cores

Real speakers: the devset's far-field meeting clips cut by their RTTM turns (overlapped speech left
out; one speaker label is one person across clips) plus the five talking-head clips of `av/`
(`tests/devset_speech.py`). Voiceprints are made as `scanner.analysis.voices.voiceprints.voiceprint_from_speech`
makes them (levelled to -30 dBFS, GE2E windows of 1.6 s, averaged); decisions are
`scanner.analysis.voices.voiceprints.resolve_voices` and `link_voices` with the default `VoiceMatchSettings`.

- identification: speakers with at least enrolment + probe seconds are enrolled with their first
  10 s and probed with the following pieces; all other speakers are held out and give impostor probes.
  Reports top-1 (closed set), probes accepted as the right speaker, accepted as another enrolled
  speaker, impostor probes accepted; for 3 s and 10 s probes, and for 3 s probes through a 300-3400 Hz
  telephone band (narrowband voiceprints against the wideband enrolments).
- pairs: every pair of 3 s pieces of all speakers, same / different speaker, at several thresholds.
- linking: each speaker with at least 36 s split into three 12 s "recordings", linked with every
  other speaker's first 12 s: are the three one voice, and only theirs?
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scanner.analysis.voices.voiceprints import (  # noqa: E402
    VoiceMatchSettings,
    link_voices,
    phone_band,
    resolve_voices,
    similarity_matrix,
    voiceprint_from_speech,
)
from tests.devset_speech import SR, chunks, devset_speakers, identification_material  # noqa: E402

DEVSET = REPO.parent / "shared" / "devset"


def identification(speakers: dict, probe_s: float, settings: VoiceMatchSettings, phone: bool = False) -> dict:
    """Open-set identification; with `phone`, the probes (not the enrolments) go through a telephone band."""
    enrolled, probes, impostors = identification_material(speakers, voiceprint_from_speech, 10.0, probe_s)
    if phone:
        _, probes, impostors = identification_material(
            speakers, lambda y: voiceprint_from_speech(phone_band(y), narrowband=True), 10.0, probe_s)
    names = list(enrolled)
    subjects = [[enrolled[n]] for n in names]
    res = resolve_voices([p for _, p in probes], subjects, [probe_s] * len(probes), [phone] * len(probes),
                         settings=settings)
    held = resolve_voices([p for _, p in impostors], subjects, [probe_s] * len(impostors), [phone] * len(impostors),
                          settings=settings)
    return {
        "enrolled": len(names), "probes": len(probes), "held_out": len({w for w, _ in impostors}),
        "impostor_probes": len(impostors),
        "top1": sum(names[int(np.nanargmax(r))] == w for (w, _), r in zip(probes, res.scores)),
        "right": sum(m is not None and names[m.subject] == w for (w, _), m in zip(probes, res.matches)),
        "wrong": sum(m is not None and names[m.subject] != w for (w, _), m in zip(probes, res.matches)),
        "impostors_accepted": sum(m is not None for m in held.matches),
    }


def pairs(speakers: dict, settings: VoiceMatchSettings) -> list[tuple[float, float, float, int, int]]:
    labels, prints = [], []
    for who, y in speakers.items():
        for piece in chunks(y, 3.0):
            labels.append(who)
            prints.append(voiceprint_from_speech(piece))
    sims = similarity_matrix(prints, prints)
    iu = np.triu_indices(len(labels), 1)
    same = (np.array(labels)[:, None] == np.array(labels)[None, :])[iu]
    s = sims[iu]
    return [(t, float((s[same] < t).mean()), float((s[~same] >= t).mean()), int(same.sum()), int((~same).sum()))
            for t in (0.75, settings.short_threshold, 0.80, 0.82, settings.long_threshold)]


def linking(speakers: dict, settings: VoiceMatchSettings) -> list[tuple[str, bool]]:
    out = []
    long_ones = [w for w, y in speakers.items() if len(y) >= 36 * SR]
    for who in long_ones:
        prints = [voiceprint_from_speech(p) for p in chunks(speakers[who], 12.0)[:3]]
        others = [w for w, y in speakers.items() if w != who and len(y) >= 12 * SR]
        prints += [voiceprint_from_speech(speakers[w][: 12 * SR]) for w in others]
        groups = [sorted(g) for g in link_voices(prints, [12.0] * len(prints), settings=settings)]
        out.append((who, [0, 1, 2] in groups and len(groups) == 1 + len(others)))
    return out


def main() -> None:
    if not DEVSET.is_dir():
        sys.exit(f"the development set is not at {DEVSET}")
    settings = VoiceMatchSettings()
    t0 = time.perf_counter()
    speakers = devset_speakers(DEVSET)
    print(f"{len(speakers)} real speakers; with >= 13 s: {sum(len(y) >= 13 * SR for y in speakers.values())}; "
          f"with >= 3 s: {sum(len(y) >= 3 * SR for y in speakers.values())}")
    print("\n| probe | enrolled | probes | top-1 | accepted as the right speaker | as another enrolled | "
          "held-out speakers | impostor probes accepted |\n|---|---|---|---|---|---|---|---|")
    for probe_s, phone in ((3.0, False), (10.0, False), (3.0, True)):
        r = identification(speakers, probe_s, settings, phone)
        kind = f"{probe_s:.0f} s" + (" phone band" if phone else "")
        print(f"| {kind} | {r['enrolled']} | {r['probes']} | {r['top1']}/{r['probes']} | "
              f"{r['right']}/{r['probes']} ({100 * r['right'] / max(1, r['probes']):.0f}%) | {r['wrong']} | "
              f"{r['held_out']} | {r['impostors_accepted']}/{r['impostor_probes']} "
              f"({100 * r['impostors_accepted'] / max(1, r['impostor_probes']):.1f}%) |")
    print("\n| 3 s vs 3 s, threshold | same speaker rejected | different speakers accepted |\n|---|---|---|")
    for t, frr, far, n_same, n_diff in pairs(speakers, settings):
        print(f"| {t:.2f} | {100 * frr:.1f}% of {n_same} | {100 * far:.2f}% of {n_diff} |")
    print("\n| speaker split over three 12 s recordings | linked into one voice, apart from the others |\n|---|---|")
    for who, ok in linking(speakers, settings):
        print(f"| {who} | {'yes' if ok else 'no'} |")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
