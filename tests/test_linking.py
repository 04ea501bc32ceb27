"""Voices tied to faces by lip movement, on generated talking videos (real face, real voices)."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pytest

from scanner.analysis.linking import STILL_MOUTH, STILL_PIXELS, LipSyncLinker
from scanner.analysis.mouth_landmarks import ScreenedCrops
from scanner.analysis.recording import analyze_recording
from scanner.models import Level
from scanner.pipeline.scan import ScanOptions, run_scan
from scanner.policy.consent.records import load_consent
from tests.helpers import DEVSET
from tests.talking_video import make_talking_video

AV = DEVSET / "av"


@pytest.fixture(scope="module")
def talking(sample_data, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("talking")
    video = folder / "talk.mp4"
    truth = make_talking_video(video, sample_data / "enrol" / "obama.jpg", sample_data / "enrol" / "carol.wav",
                               sample_data / "enrol" / "dave.wav")
    return video, truth


@pytest.fixture(scope="module")
def analysis(talking):
    return analyze_recording(talking[0])


def _speaker_during(analysis, span: tuple[float, float]) -> int:
    def overlap(speaker):
        return sum(max(0.0, min(t.end, span[1]) - max(t.start, span[0])) for t in speaker.turns)

    return max(analysis.voices.speakers, key=overlap).speaker_id


@pytest.mark.slow
def test_the_voice_whose_lips_move_is_linked_and_the_off_screen_voice_is_not(analysis, talking):
    truth = talking[1]
    assert len(analysis.faces.clusters) == 1 and len(analysis.voices.speakers) == 2
    on_screen = _speaker_during(analysis, truth["on_screen"])
    off_screen = _speaker_during(analysis, truth["off_screen"])
    assert on_screen != off_screen
    (link,) = analysis.links
    assert (link.cluster_id, link.speaker_id) == (analysis.faces.clusters[0].cluster_id, on_screen)
    assert link.correlation >= 0.5 and link.overlap_s >= 3.0


@pytest.mark.slow
def test_linked_unknown_face_and_voice_are_one_person(talking):
    result = run_scan([talking[0]], None, ScanOptions(as_of=dt.date(2026, 11, 27)))
    people = sorted(result.people, key=lambda p: (len(p.faces), len(p.voices)), reverse=True)
    assert len(people) == 2
    kit, voice_only = people
    assert len(kit.faces) == 1 and len(kit.voices) == 1
    assert voice_only.faces == [] and len(voice_only.voices) == 1
    strongest = max(kit.risk.face_tier, kit.risk.voice_tier)
    assert kit.risk.combined_tier > strongest or kit.risk.combined_tier is Level.CRITICAL
    assert any("audiovisual" in reason for reason in kit.risk.reasons)


@pytest.mark.slow
def test_an_unenrolled_voice_inherits_the_identity_of_its_face(talking, sample_data, tmp_path):
    shutil.copy(sample_data / "enrol" / "obama.jpg", tmp_path / "obama.jpg")
    (tmp_path / "consent.yaml").write_text(
        "subjects:\n  - id: obama\n    name: Barack Obama\n    enrolment: {faces: [obama.jpg]}\n"
        "    grants:\n      - {purposes: [recording], given: 2026-01-01}\n"
    )
    result = run_scan([talking[0]], load_consent(tmp_path / "consent.yaml"), ScanOptions(as_of=dt.date(2026, 11, 27)))
    obama = next(p for p in result.people if p.person_id == "obama")
    assert len(obama.faces) == 1 and len(obama.voices) == 1
    (other,) = [p for p in result.people if p is not obama]
    assert other.subject_id is None and other.faces == []


@pytest.mark.slow
def test_a_watch_budget_shorter_than_the_video_still_links_the_speaking_face(analysis, talking):
    video = talking[0]
    linker = LipSyncLinker(max_watched_s=6.0, window_s=2.0)
    windows = linker.watch_windows(analysis.faces, analysis.voices)
    assert sum(b - a for a, b in windows) <= 6.0 + 1e-6
    assert len(windows) == 3 and windows == sorted(windows)
    seen = analysis.faces.clusters[0].time_ranges
    assert all(any(r.start < b and r.end > a for r in seen) for a, b in windows)
    links = linker.link(video, analysis.media, analysis.faces, analysis.voices)
    assert [(link.cluster_id, link.speaker_id) for link in links] == [
        (link.cluster_id, link.speaker_id) for link in analysis.links]
    assert links[0].overlap_s < analysis.links[0].overlap_s  # it watched less


@pytest.mark.slow
def test_no_watch_budget_watches_every_face_in_view(analysis):
    linker = LipSyncLinker(max_watched_s=None)
    seen = analysis.faces.clusters[0].time_ranges
    assert linker.watch_windows(analysis.faces, analysis.voices) == [(seen[0].start, max(r.end for r in seen))]


@pytest.mark.parametrize("name", ["webinar.mp4", "lobby.mp4"])
def test_a_photo_on_screen_under_a_narrator_is_not_the_narrator(sample_data, name):
    """One voice, one face alone on screen, but the face is a photo panned and zoomed under the voice:
    its lips never move on their own, so the sole-face rule must not tie them."""
    analysis = analyze_recording(sample_data / "recordings" / name)
    assert len(analysis.voices.speakers) == 1 and len(analysis.faces.clusters) == 1
    assert LipSyncLinker().sole_face(analysis.faces, analysis.voices) is not None  # the rule applies ...
    assert analysis.links == []  # ... and the still mouth refuses it
    # Screened among several faces or voices, the photo goes by its pixels, before any landmark,
    # as it would by its landmarks.
    path, linker = sample_data / "recordings" / name, LipSyncLinker()
    windows = linker.screening_windows(analysis.voices)
    assert linker.mouth_pixel_motion(path, analysis.media, analysis.faces.clusters, windows)[0] < STILL_PIXELS
    assert linker.moving_mouths(path, analysis.media, analysis.faces, analysis.voices) == []
    assert LipSyncLinker(still_pixels=None).moving_mouths(path, analysis.media, analysis.faces, analysis.voices) == []


@pytest.mark.slow
def test_the_pixel_screening_keeps_the_face_whose_lips_move(analysis, talking):
    linker = LipSyncLinker()
    windows = linker.screening_windows(analysis.voices)
    assert {s for _, _, s in windows} == {0, 1}
    (motion,) = linker.mouth_pixel_motion(talking[0], analysis.media, analysis.faces.clusters, windows)
    assert motion >= 2 * STILL_PIXELS
    assert linker.moving_mouths(talking[0], analysis.media, analysis.faces, analysis.voices) == [0]


@pytest.mark.slow
def test_the_landmark_screening_reads_the_crops_the_pixel_screening_kept(analysis, talking):
    """The landmarks of the kept crops equal those of decoding the windows again, sample for sample;
    over the memory budget nothing is kept and the windows are decoded again."""
    linker = LipSyncLinker()
    windows = linker.screening_windows(analysis.voices)
    kept = ScreenedCrops(linker.screen_crops_mb)
    linker.mouth_pixel_motion(talking[0], analysis.media, analysis.faces.clusters, windows, kept)
    assert kept.complete and 0 < kept.used <= linker.screen_crops_mb * 1e6
    (from_crops,) = kept.shape_tracks([0])
    (decoded,) = linker.shape_tracks_of(talking[0], analysis.media, analysis.faces.clusters,
                                      sorted((start, end) for start, end, _ in windows))
    assert len(from_crops) == len(decoded) and sum(shape is not None for shape in decoded) >= 20
    assert all((a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))
               for a, b in zip(from_crops, decoded))
    tiny = ScreenedCrops(0.01)
    linker.mouth_pixel_motion(talking[0], analysis.media, analysis.faces.clusters, windows, tiny)
    assert not tiny.complete and tiny.windows == []
    assert LipSyncLinker(screen_crops_mb=0.01).moving_mouths(
        talking[0], analysis.media, analysis.faces, analysis.voices) == [0]


@pytest.mark.devset
@pytest.mark.skipif(not AV.exists(), reason="../shared/devset/av is absent")
@pytest.mark.parametrize("clip", [1, 2, 3, 4, 5])
def test_real_talking_head_is_one_person_with_face_and_voice(clip):
    """Real talking-head footage (one face on screen, one voice): a scan gives one person holding both."""
    path = AV / f"talking_head_{clip}.mp4"
    analysis = analyze_recording(path)
    (link,) = analysis.links
    assert link.evidence == "sole-face" and link.mouth_movement > STILL_MOUTH
    # Real lips pass the pixel screening too (used where several faces or voices are on screen).
    linker = LipSyncLinker()
    windows = linker.screening_windows(analysis.voices)
    assert linker.mouth_pixel_motion(path, analysis.media, analysis.faces.clusters, windows)[0] >= STILL_PIXELS
    result = run_scan([path], None, ScanOptions(as_of=dt.date(2026, 11, 27)))
    (person,) = result.people
    assert len(person.faces) == 1 and len(person.voices) == 1
