"""Coverage accounting: what of each recording was decoded, and the status and finding it gives.

Every case is real media: the bundled sample and small files from tests/media_factory.py, cut or
bit-flipped the way damaged storage and interrupted downloads leave them. The decoding runs as
the scan runs it (`iter_frames` for the picture, `load_audio` for the sound); the
status comes from the same rule (`Coverage.status`), and one damaged file goes through the whole
analysis and the policy.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from scanner.media.audio import load_audio
from scanner.media.coverage import decode_log
from scanner.media.frames import iter_frames
from scanner.media.probe import probe
from scanner.models import Coverage, MediaError, RecordingStatus, StreamCoverage, TimeRange
from tests.media_factory import (
    bitflip_copy,
    make_aac,
    make_vfr_video,
    make_video,
    make_wav,
    packet_offsets,
    sine,
    truncate_copy,
)


def coverage_of(path: Path, sample_fps: float = 2.0) -> Coverage:
    """The coverage of one file's decoding passes, as the scan makes them."""
    info = probe(path)
    video = audio = None
    if info.kind.value != "audio":
        with decode_log() as log:
            try:
                list(iter_frames(path, info, sample_fps=sample_fps))
            except MediaError as exc:
                if getattr(exc, "coverage", None) is None:
                    raise
        video = log.video_coverage()
    if info.audio_sample_rate:
        try:
            audio = load_audio(path).coverage
        except MediaError as exc:
            audio = getattr(exc, "coverage", None)
            if audio is None:
                raise
    return Coverage(video=video, audio=audio)


def near(ranges, t: float, within: float = 0.6) -> bool:
    return any(r.start - within <= t <= r.end + within for r in ranges)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """6 s of 160x120 H.264 at 10 fps with 6 s of AAC, index in front (as web downloads are)."""
    return make_video(tmp_path_factory.mktemp("cov") / "clip.mp4", frames=60, fps=10, size=(160, 120),
                      audio_seconds=6.0, faststart=True)


# --------------------------------------------------------------------------------------------
# The acceptance case: interview.mp4 with 4 KB damaged a third of the way in
# --------------------------------------------------------------------------------------------


def test_the_damaged_interview_is_partial_and_the_undamaged_one_ok(sample_data, tmp_path):
    src = sample_data / "recordings" / "interview.mp4"
    size = src.stat().st_size
    damaged = bitflip_copy(src, tmp_path / "interview_damaged.mp4", [size // 3], length=4096, every=7)

    whole = coverage_of(src, sample_fps=1.0)
    assert whole.status is RecordingStatus.OK
    assert whole.video.frames_decoded == whole.video.frames_planned == 20
    assert whole.video.decoded_s == whole.audio.decoded_s == pytest.approx(20.0)

    part = coverage_of(damaged, sample_fps=1.0)
    assert part.status is RecordingStatus.PARTIAL
    # Decoding goes on past the damage: all 20 sampled frames, not the 8 it stopped at before.
    assert part.video.frames_decoded == 20
    assert part.video.errors > 0 and part.audio.errors > 0
    assert all(7.0 <= r.start and r.end <= 8.0 for r in part.missing), part.missing
    assert 19.0 < part.analysed_s < 20.0
    assert any("rejected damaged data" in c for c in part.causes)


def test_a_damaged_file_goes_through_analysis_and_policy_as_partial_with_a_finding(clip, tmp_path):
    from scanner.analysis.recording import AnalysisSettings, analyze_recording
    from scanner.models import Level, RecordingContext
    from scanner.policy.consent.records import ConsentDocument, ConsentRecords
    from scanner.policy.rules import PARTIAL_RECORDING, PolicySettings, check_policy

    (offset, at), = packet_offsets(clip, "video", [0.5])
    damaged = bitflip_copy(clip, tmp_path / "damaged.mp4", [offset], length=300)
    rec = analyze_recording(damaged, AnalysisSettings(link_voices=False))
    assert rec.status is RecordingStatus.PARTIAL, rec.error
    assert rec.faces is not None and rec.voices is not None  # what decoded is analysed
    assert near(rec.coverage.missing, at)

    contexts = {rec.path: RecordingContext(purposes=("recording",))}
    no_consent = ConsentRecords(tmp_path / "consent.yaml", ConsentDocument())
    findings = check_policy([], [rec], no_consent, contexts, dt.date(2026, 6, 1))
    (finding,) = [f for f in findings if f.rule_id == PARTIAL_RECORDING.id]
    assert finding.severity is Level.MEDIUM and finding.rule_name == "partial-recording"
    assert finding.time_ranges[str(rec.path)] == list(rec.coverage.missing)
    assert "only partly analysed" in finding.message and "rejected damaged data" in finding.message
    assert any(e.startswith("video: ") and "damaged packet" in e for e in finding.evidence)

    # Configurable like every rule: another severity, or off.
    raised = check_policy([], [rec], no_consent, contexts, dt.date(2026, 6, 1),
                          PolicySettings(severities={"LK011": Level.HIGH}))
    assert [f.severity for f in raised if f.rule_id == "LK011"] == [Level.HIGH]
    off = check_policy([], [rec], no_consent, contexts, dt.date(2026, 6, 1),
                       PolicySettings(disabled=frozenset({"LK011"})))
    assert not [f for f in off if f.rule_id == "LK011"]


# --------------------------------------------------------------------------------------------
# Damage of each kind
# --------------------------------------------------------------------------------------------


def test_bit_flips_at_several_offsets_in_the_video_are_located(clip, tmp_path):
    hits = packet_offsets(clip, "video", [0.25, 0.5, 0.75])
    damaged = bitflip_copy(clip, tmp_path / "vflip.mp4", [o for o, _ in hits], length=300)
    cov = coverage_of(damaged)
    assert cov.status is RecordingStatus.PARTIAL
    assert cov.video.errors >= 3
    for _, at in hits:
        assert near(cov.video.missing, at), (at, cov.video.missing)
    assert cov.video.missing_s < 1.0  # the rest of the picture was decoded
    assert cov.video.frames_decoded == cov.video.frames_planned == 12


def test_bit_flips_at_several_offsets_in_the_audio_are_located_and_keep_the_time_line(tmp_path):
    m4a = make_aac(tmp_path / "tone.m4a", 4.0)
    hits = packet_offsets(m4a, "audio", [0.2, 0.6])
    damaged = bitflip_copy(m4a, tmp_path / "aflip.m4a", [o for o, _ in hits], length=100, every=5)
    track = load_audio(damaged)
    cov = track.coverage
    assert cov.errors >= 2 and not cov.complete
    for _, at in hits:
        assert near(cov.missing, at, within=0.1), (at, cov.missing)
    # Rejected stretches become silence of their length: what follows keeps its time codes.
    assert track.duration_s == pytest.approx(load_audio(m4a).duration_s, abs=0.01)


def test_a_truncated_video_misses_its_tail(clip, tmp_path):
    cut = truncate_copy(clip, tmp_path / "cut.mp4", 0.5)
    cov = coverage_of(cut)
    assert cov.status is RecordingStatus.PARTIAL
    (tail,) = cov.video.missing
    assert 2.0 < tail.start < 4.0 and tail.end == pytest.approx(6.0)
    assert cov.video.frames_decoded < cov.video.frames_planned == 12
    assert any("data ends at" in c and "truncated" in c for c in cov.causes)


def test_a_truncated_wav_is_partial_although_ffmpeg_trims_its_length(tmp_path):
    wav = make_wav(tmp_path / "tone.wav", sine(4.0, 16000), 16000)
    cov = coverage_of(truncate_copy(wav, tmp_path / "cut.wav", 0.5))
    assert cov.status is RecordingStatus.PARTIAL
    assert cov.audio.duration_s == pytest.approx(4.0)
    assert cov.audio.decoded_s == pytest.approx(2.0, abs=0.05)
    assert coverage_of(wav).status is RecordingStatus.OK


def test_a_truncated_mp4_without_its_index_is_unreadable(clip, tmp_path):
    slow = make_video(tmp_path / "slow.mp4", frames=20, fps=10, size=(160, 120))  # index at the end
    with pytest.raises(MediaError, match="truncated or corrupt"):
        coverage_of(truncate_copy(slow, tmp_path / "cut.mp4", 0.5))


@pytest.mark.parametrize("frames,audio_s", [(40, 2.0), (20, 4.0)], ids=["audio-ends-first", "video-ends-first"])
def test_a_stream_that_ends_before_the_other_is_whole(tmp_path, frames, audio_s):
    """Each stream is held to the length its own header declares: a shorter stream lost nothing."""
    path = make_video(tmp_path / "av.mp4", frames=frames, fps=10, size=(160, 120), audio_seconds=audio_s)
    cov = coverage_of(path)
    assert cov.status is RecordingStatus.OK
    assert cov.video.duration_s == pytest.approx(frames / 10)
    assert cov.audio.duration_s == pytest.approx(audio_s, abs=0.05)
    assert cov.duration_s == pytest.approx(4.0, abs=0.05) and cov.analysed_s == cov.duration_s


def test_a_variable_frame_rate_video_with_a_held_frame_is_whole(tmp_path):
    path = make_vfr_video(tmp_path / "vfr.mp4", [0.1] * 10 + [2.5] + [0.04] * 25 + [1.0])
    cov = coverage_of(path)
    assert cov.status is RecordingStatus.OK, cov.video
    assert cov.video.duration_s > 4.0
    # The frame held 2.5 s is one picture: sampled once, not counted as missed grid points.
    assert cov.video.frames_decoded == cov.video.frames_planned


def test_a_damaged_still_image_is_unreadable_or_whole_never_silent(tmp_path):
    from PIL import Image

    from scanner.analysis.recording import AnalysisSettings, analyze_recording

    photo = tmp_path / "photo.jpg"
    # Seeded noise: Image.effect_noise draws from C's rand(), which earlier tests in the process move on,
    # and some noise images give a flipped stream that libjpeg rejects.
    noise = np.random.default_rng(7).normal(128, 60, (240, 320, 3)).clip(0, 255).astype(np.uint8)
    Image.fromarray(noise).save(photo, quality=90)
    cut = truncate_copy(photo, tmp_path / "cut.jpg", 0.5)
    rec = analyze_recording(cut, AnalysisSettings())
    assert rec.status is RecordingStatus.UNREADABLE and "truncated or corrupt" in rec.error
    flipped = bitflip_copy(photo, tmp_path / "flipped.jpg", [photo.stat().st_size // 2], length=200)
    rec = analyze_recording(flipped, AnalysisSettings())
    # JPEG has no checksums: flipped entropy-coded data decodes (to wrong pixels); the image is analysed.
    assert rec.status is RecordingStatus.OK, rec.error
    assert rec.coverage.video == StreamCoverage("image", 0.0, 0.0, frames_planned=1, frames_decoded=1)


def test_status_rule():
    whole = StreamCoverage("video", 0.0, 10.0, frames_planned=10, frames_decoded=10)
    damaged = StreamCoverage("audio", 0.0, 10.0, errors=1)
    nothing = StreamCoverage("audio", 0.0, 10.0, missing=(TimeRange(0.0, 10.0),))
    assert Coverage(whole, None).status is RecordingStatus.OK
    assert Coverage(whole, damaged).status is RecordingStatus.PARTIAL
    assert Coverage(whole, nothing).status is RecordingStatus.PARTIAL
    assert Coverage(None, nothing).status is RecordingStatus.UNREADABLE
    assert Coverage(whole, nothing).analysed_s == 0.0 and Coverage(whole, nothing).duration_s == 10.0


# --------------------------------------------------------------------------------------------
# A real scan: the report, the database and `likeness diff` follow the status
# --------------------------------------------------------------------------------------------


def test_a_recording_damaged_between_two_scans_shows_in_diff_and_report(clip, tmp_path):
    import json
    from importlib import resources

    import jsonschema
    from typer.testing import CliRunner

    from scanner.cli.main import app
    from scanner.models import Level
    from scanner.outputs.document import build_document
    from scanner.outputs.html_report import HtmlWriter
    from scanner.pipeline.scan import ScanOptions, run_scan
    from scanner.store.database import Store

    folder = tmp_path / "recordings"
    folder.mkdir()
    target = folder / "meeting.mp4"
    target.write_bytes(clip.read_bytes())
    options = ScanOptions(purposes=["recording"], fail_on=Level.MEDIUM, as_of=dt.date(2026, 11, 1))
    db = tmp_path / "scan.db"
    with Store(db) as store:
        before = run_scan([folder], None, options, store=store)
        hits = packet_offsets(clip, "video", [0.5])
        bitflip_copy(clip, target, [o for o, _ in hits], length=300)
        after = run_scan([folder], None, options, store=store)
    assert [r.status for r in before.recordings] == [RecordingStatus.OK]
    assert [r.status for r in after.recordings] == [RecordingStatus.PARTIAL]
    assert [f.rule_id for f in after.failing_findings()] == ["LK011"]  # --fail-on medium gates on it
    schema = json.loads((resources.files("scanner.schemas") / "results.schema.json").read_text())
    doc = build_document(after)
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["summary"]["partial"] == 1 and doc["summary"]["analysed_seconds"] < doc["summary"]["media_seconds"]
    assert doc["recordings"][0]["coverage"]["video"]["errors"] >= 1

    res = CliRunner().invoke(app, ["diff", before.scan_id, after.scan_id, "--store", str(db), "--json"])
    assert res.exit_code == 0, res.output
    changes = json.loads(res.output)
    assert changes["status_changes"] == [{"path": str(target), "old": "ok", "new": "partial"}]
    assert [f["rule_id"] for f in changes["new_findings"]] == ["LK011"]
    res = CliRunner().invoke(app, ["diff", before.scan_id, after.scan_id, "--store", str(db)])
    assert "recordings that changed status: 1" in res.output and "meeting.mp4: ok -> partial" in res.output

    html = HtmlWriter(changes=changes).render(after)
    cov = after.recordings[0].coverage
    total = f"{cov.analysed_s:.1f} s of {cov.duration_s:.1f} s analysed"
    assert total in html  # the overview's total and the recording's own line
    assert "Partly analysed recordings" in html and 'class="bm"' in html  # listed, and grey on its timeline
    assert "recording status" in html and "ok &rarr; <strong>partial</strong>" in html
    assert "6.0 s of 6.0 s analysed" in HtmlWriter().render(before)
