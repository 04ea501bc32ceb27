"""Cloneability tiers end to end on generated media made from real faces and real recorded speech."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
from PIL import Image, ImageFilter

from scanner.models import Level, Modality
from scanner.pipeline.scan import ScanOptions, run_scan

AS_OF = dt.date(2026, 11, 27)


@pytest.fixture(scope="module")
def speech(sample_data) -> tuple[np.ndarray, int]:
    """Dave's enrolment sample: about 18 s of one real voice, starting at 0.3 s."""
    samples, rate = sf.read(sample_data / "enrol" / "dave.wav", dtype="float32")
    return samples, rate


def only_person(paths: list[Path]):
    result = run_scan(paths, None, ScanOptions(as_of=AS_OF))
    assert len(result.people) == 1, [p.person_id for p in result.people]
    return result.people[0]


def clip(samples: np.ndarray, rate: int, seconds: float, start: float = 0.3) -> np.ndarray:
    return samples[int(start * rate): int((start + seconds) * rate)]


def test_a_two_second_recording_is_none(speech, tmp_path):
    samples, rate = speech
    sf.write(tmp_path / "short.wav", clip(samples, rate, 2.0, start=0.0), rate)  # 1.7 s of speech in it
    person = only_person([tmp_path / "short.wav"])
    assert person.risk.voice_tier is Level.NONE
    assert "too little" in person.voice.reasons[1]


def test_ten_seconds_of_clean_speech_is_high_and_a_phone_line_one_tier_lower(speech, tmp_path):
    samples, rate = speech
    ten = clip(samples, rate, 10.0)
    sf.write(tmp_path / "ten.wav", ten, rate)
    wide = only_person([tmp_path / "ten.wav"])
    assert wide.risk.voice_tier is Level.HIGH and wide.voice.longest_clean_s >= 6.0

    b, a = scipy.signal.butter(8, 3400 / (rate / 2))
    phone = scipy.signal.resample_poly(scipy.signal.lfilter(b, a, ten), 1, 2).astype(np.float32)
    sf.write(tmp_path / "ten-8k.wav", phone, rate // 2)
    narrow = only_person([tmp_path / "ten-8k.wav"])
    assert narrow.voice.bandwidth_hz <= 4000
    assert narrow.risk.voice_tier is Level.MEDIUM
    assert any("telephone-band" in reason for reason in narrow.voice.reasons)


@pytest.fixture(scope="module")
def three_recordings(speech, tmp_path_factory) -> list[Path]:
    """35 s, 25 s and 10 s of the same voice in three files: 70 s in all."""
    samples, rate = speech
    folder = tmp_path_factory.mktemp("corpus")
    voiced = clip(samples, rate, 18.0)
    long_take = np.concatenate([voiced, voiced])
    paths = []
    for name, seconds in (("town-hall.wav", 35.0), ("podcast.wav", 25.0), ("voicemail.wav", 10.0)):
        sf.write(folder / name, long_take[: int(seconds * rate)], rate)
        paths.append(folder / name)
    return paths


def test_seventy_seconds_over_three_recordings_is_critical(three_recordings):
    person = only_person(three_recordings)
    assert len(person.voices) == 3  # the same voice, linked across the files
    assert person.voice.usable_speech_s >= 60.0
    assert person.risk.voice_tier is Level.CRITICAL
    tiers = {e.recording.name: e.voice_tier for e in person.by_recording}
    assert tiers == {"town-hall.wav": Level.HIGH, "podcast.wav": Level.HIGH, "voicemail.wav": Level.HIGH}


def test_what_to_remove_brings_the_voice_down_a_tier(three_recordings):
    person = only_person(three_recordings)
    (plan,) = [p for p in person.reductions if p.modality is Modality.VOICE]
    assert [p.name for p in plan.remove] == ["town-hall.wav"]
    assert (plan.tier_before, plan.tier_after) == (Level.CRITICAL, Level.HIGH)
    assert "remove town-hall.wav and the voice drops from critical to high" == plan.describe()


def test_a_sharp_300px_frontal_face_is_high(sample_data, tmp_path):
    photo = Image.open(sample_data / "enrol" / "obama.jpg").convert("RGB")
    photo.resize((photo.width * 17 // 10, photo.height * 17 // 10), Image.LANCZOS).save(tmp_path / "portrait.jpg")
    person = only_person([tmp_path / "portrait.jpg"])
    assert person.face.best_frontal_face_px >= 256
    assert person.risk.face_tier is Level.HIGH


def test_a_60px_blurry_face_is_low(sample_data, tmp_path):
    photo = Image.open(sample_data / "enrol" / "obama.jpg").convert("RGB")
    small = photo.resize((photo.width * 60 // 186, photo.height * 60 // 186), Image.LANCZOS)
    canvas = Image.new("RGB", (640, 480), (90, 90, 90))
    canvas.paste(small.filter(ImageFilter.GaussianBlur(2)), (200, 100))
    canvas.save(tmp_path / "crowd.jpg")
    person = only_person([tmp_path / "crowd.jpg"])
    assert person.face.best_eye_distance_px >= 10 and person.face.usable_frames == 0
    assert person.risk.face_tier is Level.LOW
