"""HTML report bench: render a synthetic scan of 1,000 recordings, 300 people and 5,000 findings.

    uv run python bench/report.py                       # the acceptance size, 3 runs
    uv run python bench/report.py --runs 5 --out /tmp/bench-report
    uv run python bench/report.py --recordings 200 --people 60 --findings 1000

Prints the render time (build the document and views, render the templates, write the file; wall
clock and CPU) and the size of report.html, with and without --redact-thumbnails, and with --browser
how long headless Chromium takes to open and paint it. Targets: under 3 s (median) and under 20 MB.

The scan is built directly from the dataclasses in scanner/models/ (no media is decoded): every
person has a face thumbnail (96 px, the size the face stage keeps) and 2-4 sightings per recording,
findings spread over all rules with time ranges, 2% waived, 1% of recordings unreadable.
`synthetic_result` is also used by tests/test_report_html.py at a smaller size.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanner.models import (  # noqa: E402
    FaceAnalysis,
    FaceCluster,
    FaceDetection,
    FaceExposure,
    FaceSighting,
    Finding,
    IdentityMatch,
    Level,
    MediaInfo,
    MediaKind,
    Modality,
    Person,
    RecordingAnalysis,
    RecordingContext,
    RecordingStatus,
    RiskAssessment,
    ScanResult,
    SpeakerCluster,
    SuppressedFinding,
    TimeRange,
    VoiceAnalysis,
    VoiceExposure,
    VoiceSighting,
    Waiver,
)
from scanner.policy.rules import RULES  # noqa: E402

TIERS = [Level.NONE, Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL]


def _thumbnail(rng: np.random.Generator) -> np.ndarray:
    """A 96x96 RGB image with the texture of a photo crop (smooth shading plus sensor noise)."""
    y, x = np.mgrid[0:96, 0:96]
    base = rng.uniform(60, 200, size=3)
    shade = 40 * np.sin(x / rng.uniform(8, 20)) + 30 * np.cos(y / rng.uniform(8, 20))
    image = base[None, None, :] + shade[..., None] + rng.normal(0, 6, size=(96, 96, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _spans(rng: random.Random, duration: float, n: int) -> list[TimeRange]:
    starts = sorted(rng.uniform(0, duration * 0.9) for _ in range(n))
    return [TimeRange(round(s, 2), round(min(duration, s + rng.uniform(2, 60)), 2)) for s in starts]


def synthetic_result(
    recordings: int = 1000, people: int = 300, findings: int = 5000, seed: int = 7, root: Path = Path("archive")
) -> ScanResult:
    """A finished scan of the given size, built from the model dataclasses."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    recs: list[RecordingAnalysis] = []
    contexts: dict[Path, RecordingContext] = {}
    persons = [
        Person(
            person_id=f"subject-{i:03d}" if i % 3 else f"unknown-{i // 3 + 1}",
            subject_id=f"subject-{i:03d}" if i % 3 else None,
            display_name=f"Person {i:03d} Example" if i % 3 else None,
            match=IdentityMatch(Modality.FACE, f"subject-{i:03d}", 0.31, 0.97) if i % 3 else None,
        )
        for i in range(people)
    ]
    thumbs = [_thumbnail(nrng) for _ in range(people)]
    for r in range(recordings):
        path = root / f"{2019 + r % 7}" / f"meeting-{r:04d}.mp4"
        sha = f"{r:08x}" * 8
        if r % 100 == 99:
            recs.append(RecordingAnalysis(path, sha, RecordingStatus.UNREADABLE, error="moov atom not found",
                                          size_bytes=1_000_000))
            contexts[path] = RecordingContext(("ai-training",))
            continue
        duration = rng.uniform(300, 3600)
        media = MediaInfo(MediaKind.VIDEO, duration, 1280, 720, 25.0, 48000, 1, "mp4")
        present = rng.sample(range(people), rng.randint(2, 4))
        clusters, speakers = [], []
        for k, pi in enumerate(present):
            spans = _spans(rng, duration, rng.randint(1, 6))
            detections = [FaceDetection(s.start, (10, 110, 110, 10), 180.0, 70.0, 300.0, 5.0) for s in spans]
            cluster = FaceCluster(k, detections, np.zeros((1, 128)), spans, thumbnail=thumbs[pi])
            clusters.append(cluster)
            persons[pi].faces.append(FaceSighting(path, cluster))
            if k % 2 == 0:
                turns = _spans(rng, duration, rng.randint(1, 8))
                speaker = SpeakerCluster(k, turns, np.zeros(192), 40.0, 12.0, 30.0, 7800.0)
                speakers.append(speaker)
                persons[pi].voices.append(VoiceSighting(path, speaker))
        recs.append(RecordingAnalysis(
            path, sha, RecordingStatus.OK, media=media,
            faces=FaceAnalysis(clusters, int(duration * 2), 2.0),
            voices=VoiceAnalysis(speakers, sum(t.duration for s in speakers for t in s.turns)),
            size_bytes=int(duration * 250_000),
        ))
        contexts[path] = RecordingContext(("ai-training", "internal-use") if r % 2 else ("ai-training",))

    for i, person in enumerate(persons):
        face_tier, voice_tier = TIERS[i % 5], TIERS[(i * 3) % 5]
        person.face = FaceExposure(
            usable_frames=40, detections=60, best_face_px=180.0, best_frontal_face_px=170.0,
            best_eye_distance_px=70.0, sharpness=300.0, yaw_range=(-20.0, 25.0), tier=face_tier,
            reasons=[f"{60} face detection(s) in {len(person.faces)} recording(s), 40 usable",
                     "usable face of 180 px (>= 128 px): a single-image face swap works at 128 px"],
        )
        if person.voices:
            person.voice = VoiceExposure(
                speech_s=120.0, usable_speech_s=90.0, longest_clean_s=12.0, snr_db=30.0, bandwidth_hz=7800.0,
                tier=voice_tier,
                reasons=["120 s of speech, 90 s usable, longest clean stretch 12 s, SNR 30 dB",
                         "enough for zero-shot cloning (XTTS-v2 from 6 s)"],
            )
        combined = max(face_tier, voice_tier if person.voice else Level.NONE)
        person.risk = RiskAssessment(face_tier, voice_tier, combined, 20 * combined.rank + 10,
                                     [f"combined tier is the higher of face ({face_tier.value}) and voice"])

    readable = [r for r in recs if r.status is RecordingStatus.OK]
    made: list[Finding] = []
    person_rules = [rule for rule in RULES if rule.id not in ("LK006", "LK009", "LK010")]
    for n in range(findings):
        person = persons[n % people]
        rule = person_rules[(n // people) % len(person_rules)] if person.subject_id else RULES[0]
        where = person.recordings[: 1 + n % 4] or [readable[0].path]
        evidence = [f"face: {person.face.tier.value}: " + "; ".join(person.face.reasons)]
        if person.voice:
            evidence.append(f"voice: {person.voice.tier.value}: " + "; ".join(person.voice.reasons))
        evidence.append(f"detail {n}: measured in {len(where)} recording(s)")
        made.append(Finding(
            rule_id=rule.id, rule_name=rule.name, severity=TIERS[1 + n % 4], title=rule.title,
            message=f"{person.display_name or person.person_id} ({person.person_id}): {rule.description} "
                    f"Purposes: ai-training.",
            remedy=rule.remedy, person_id=person.person_id, subject_id=person.subject_id,
            recordings=list(where), time_ranges={str(p): person.time_ranges_in(p) for p in where},
            evidence=evidence, fingerprint=f"{n:032x}",
        ))
    made.sort(key=lambda f: -f.severity.rank)
    waived = made[::50]
    kept = [f for f in made if f not in waived]
    suppressed = [SuppressedFinding(f, Waiver("Archive under legal hold, ticket PRIV-88", "Jane Doe (DPO)",
                                              "2027-06-30", fingerprint=f.fingerprint)) for f in waived]
    return ScanResult(
        scan_id="20261127-000000-bench-0000", started_at="2026-11-27T00:00:00+00:00",
        finished_at="2026-11-27T02:00:00+00:00", inputs=[str(root)],
        options={"purposes": ["ai-training"], "fail_on": "high", "workers": 8, "as_of": "2026-11-27"},
        purposes=["ai-training"], as_of="2026-11-27", consent_file="consent.yaml", consent_sha256="ab" * 32,
        recordings=recs, people=persons, findings=kept, fail_on=Level.HIGH, root=root,
        suppressed=suppressed, contexts=contexts,
    )


def open_in_browser(report: Path, runs: int = 3) -> None:
    """Time opening the report until painted, then a severity filter and a sort, in headless Chromium."""
    import os

    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("LIKENESS_CHROMIUM", "/usr/bin/chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(runs):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            t = time.perf_counter()
            page.goto(report.resolve().as_uri(), wait_until="load")
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            opened = time.perf_counter() - t
            filter_ms = page.evaluate("""() => { const t = performance.now();
                const s = document.getElementById('filter-severity'); s.value = '3';
                s.dispatchEvent(new Event('change')); return performance.now() - t; }""")
            sort_ms = page.evaluate("""() => { const t = performance.now();
                document.querySelector('#findings-table thead th:nth-child(2) button').click();
                return performance.now() - t; }""")
            print(f"browser: opened and painted in {opened:.2f} s, severity filter {filter_ms:.0f} ms, "
                  f"sort by rule {sort_ms:.0f} ms")
            page.close()
        browser.close()


def main(argv: list[str] | None = None) -> int:
    from scanner.outputs.html_report import HtmlWriter

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=1000)
    parser.add_argument("--people", type=int, default=300)
    parser.add_argument("--findings", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keep the reports in this folder")
    parser.add_argument("--browser", action="store_true",
                        help="also time opening the report in headless Chromium (needs playwright and "
                             "/usr/bin/chromium or $LIKENESS_CHROMIUM)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    result = synthetic_result(args.recordings, args.people, args.findings)
    print(f"synthetic scan: {len(result.recordings)} recordings, {len(result.people)} people, "
          f"{len(result.findings)} open + {len(result.suppressed)} waived findings "
          f"(built in {time.perf_counter() - t0:.1f} s)")
    out = args.out or Path(tempfile.mkdtemp(prefix="likeness-bench-report-"))
    ok = True
    print("| report | render + write, median | slowest run | CPU time, median | size | images |")
    print("|---|---|---|---|---|---|")
    for redact in (False, True):
        folder = out / ("redacted" if redact else "full")
        folder.mkdir(parents=True, exist_ok=True)
        times, cpu = [], []
        for _ in range(args.runs):
            t, c = time.perf_counter(), time.process_time()
            path = HtmlWriter(redact_thumbnails=redact).write(result, folder)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        size = path.stat().st_size
        images = path.read_text(encoding="utf-8").count("data:image/")
        label = "--redact-thumbnails" if redact else "with thumbnails"
        print(f"| {label} | {statistics.median(times):.2f} s | {max(times):.2f} s | "
              f"{statistics.median(cpu):.2f} s | {size / 1e6:.2f} MB | {images} |")
        ok &= statistics.median(times) < 3.0 and size < 20e6
    if args.browser:
        open_in_browser(out / "full" / "report.html")
    print(f"reports in {out}")
    print("PASS: under 3 s and 20 MB" if ok else "FAIL: over 3 s or 20 MB")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
