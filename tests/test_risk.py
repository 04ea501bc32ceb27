"""The cloneability rubric on each side of its thresholds."""

from __future__ import annotations

import pytest

from scanner.models import Level
from scanner.policy.risk import DEFAULT_RUBRIC, assess, grade_face, grade_voice


def face(**kw):
    args = dict(usable_frames=10, best_face_px=0.0, best_frontal_face_px=0.0, best_eye_distance_px=40.0)
    args.update(kw)
    return grade_face(**args)[0]


def voice(**kw):
    args = dict(usable_speech_s=0.0, longest_clean_s=0.0, snr_db=30.0, bandwidth_hz=7000.0)
    args.update(kw)
    return grade_voice(**args)[0]


@pytest.mark.parametrize(
    "kw, tier",
    [
        (dict(best_eye_distance_px=9.9, best_face_px=30), Level.NONE),
        (dict(best_eye_distance_px=10.0, best_face_px=30), Level.LOW),
        (dict(usable_frames=0, best_face_px=0), Level.LOW),  # only blurred or profile views
        (dict(best_face_px=127.9), Level.LOW),
        (dict(best_face_px=128.0), Level.MEDIUM),
        (dict(best_face_px=300, best_frontal_face_px=255.9), Level.MEDIUM),
        (dict(best_face_px=300, best_frontal_face_px=256.0), Level.HIGH),
        (dict(best_face_px=130, usable_frames=499), Level.MEDIUM),
        (dict(best_face_px=130, usable_frames=500), Level.HIGH),
        (dict(best_face_px=300, best_frontal_face_px=300, usable_frames=1200, large_usable_frames=1000,
              yaw_range=(-50.0, 20.0)), Level.CRITICAL),
        (dict(best_face_px=300, best_frontal_face_px=300, usable_frames=1200, large_usable_frames=1000,
              yaw_range=(-30.0, 30.0)), Level.HIGH),
    ],
)
def test_face_thresholds(kw, tier):
    assert face(**kw) is tier


@pytest.mark.parametrize(
    "kw, tier",
    [
        (dict(usable_speech_s=1.99, longest_clean_s=1.99), Level.NONE),
        (dict(usable_speech_s=2.0, longest_clean_s=2.0), Level.LOW),
        (dict(usable_speech_s=20.0, longest_clean_s=8.0, snr_db=9.9), Level.LOW),
        (dict(usable_speech_s=5.0, longest_clean_s=2.9), Level.LOW),
        (dict(usable_speech_s=5.0, longest_clean_s=3.0), Level.MEDIUM),
        (dict(usable_speech_s=10.0, longest_clean_s=5.9), Level.MEDIUM),
        (dict(usable_speech_s=10.0, longest_clean_s=6.0), Level.HIGH),
        (dict(usable_speech_s=10.0, longest_clean_s=6.0, bandwidth_hz=3800.0), Level.MEDIUM),
        (dict(usable_speech_s=30.0, longest_clean_s=4.0), Level.HIGH),
        (dict(usable_speech_s=59.9, longest_clean_s=10.0), Level.HIGH),
        (dict(usable_speech_s=60.0, longest_clean_s=10.0), Level.CRITICAL),
        (dict(usable_speech_s=70.0, longest_clean_s=10.0, bandwidth_hz=4000.0), Level.HIGH),
    ],
)
def test_voice_thresholds(kw, tier):
    assert voice(**kw) is tier


def test_reasons_cite_numbers_and_evidence():
    tier, reasons = grade_voice(usable_speech_s=43.0, longest_clean_s=11.0, snr_db=25.0, bandwidth_hz=7000.0)
    assert tier is Level.HIGH
    assert "11.0 s" in reasons[0] and "XTTS" in reasons[0]
    tier, reasons = grade_face(usable_frames=3, best_face_px=300, best_frontal_face_px=300, best_eye_distance_px=90)
    assert "300 px" in reasons[0]


def test_face_and_voice_together_raise_the_combined_tier():
    from scanner.models import FaceExposure, VoiceExposure

    f = FaceExposure(5, 5, 200, 200, 60, 300, (-5, 5), Level.MEDIUM, [])
    v = VoiceExposure(12, 12, 7, 25, 7000, Level.HIGH, [])
    both = assess(f, v)
    assert both.combined_tier is Level.CRITICAL and 85 <= both.score <= 100
    voice_only = assess(None, v)
    assert voice_only.combined_tier is Level.HIGH and 60 <= voice_only.score <= 84
    nothing = assess(None, None)
    assert nothing.combined_tier is Level.NONE and nothing.score <= 9


def test_rubric_defaults_match_the_published_starting_rubric():
    r = DEFAULT_RUBRIC
    assert (r.voice_none_s, r.voice_high_longest_s, r.voice_critical_total_s) == (2.0, 6.0, 60.0)
    assert (r.face_medium_px, r.face_high_px, r.face_critical_frames) == (128.0, 256.0, 1000)
