"""`likeness redact`: copies with the selected people removed, checked on media with a known cast.

Every check looks at the written copies the way an attacker would: dlib's HOG detector with one
upsampling on every frame (more sensitive than the scan, which samples one frame a second), and
the speech energy inside and outside the removed person's turns.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from scanner.media import probe
from scanner.models import Level
from scanner.redaction.plan import plan_redaction, select_people
from scanner.redaction.run import RedactSettings, carry_out
from scanner.scan import ScanOptions, run_scan
from tests.conftest import run_cli
from tests.media_factory import face_crops, make_wav

FPS = 10
SIZE = (480, 272)
FACE = 96


def _every_frame_faces(path: Path) -> list[tuple[float, list[tuple[int, int, int, int]]]]:
    """(time, HOG boxes with one upsampling) for every frame of a video."""
    from scanner.faces import _face_api, grey_levels

    api = _face_api()
    found = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            found.append((float(frame.time), api.face_locations(grey_levels(frame.to_ndarray(format="rgb24")), 1)))
    return found


def _inside(box, left: int, top: int, size: int) -> bool:
    t, r, b, l = box
    cx, cy = (l + r) / 2, (t + b) / 2
    return left <= cx <= left + size and top <= cy <= top + size


@pytest.fixture(scope="module")
def moving_cast(tmp_path_factory, sample_data):
    """A 4 s video: face A crosses the frame (80 px/s, so between the scan's 1 fps samples it is
    somewhere the scan never saw it); face B sits still on the right. Returns the path and truth."""
    crops = face_crops(sample_data, size=FACE)
    a, b = crops[0], crops[3]  # the meeting grid's first face, the team photo's first
    path = tmp_path_factory.mktemp("cast") / "cast.mp4"
    positions = []
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(4 * FPS):
            x = 10 + 8 * i
            img = np.full((SIZE[1], SIZE[0], 3), 70, dtype=np.uint8)
            img[40: 40 + FACE, x: x + FACE] = a
            img[150: 150 + FACE, 370: 370 + FACE] = b
            positions.append(x)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path, positions


def test_a_face_between_the_scans_samples_is_covered_there_too(moving_cast, tmp_path):
    path, positions = moving_cast
    scan = run_scan([path], None, ScanOptions(workers=1))
    rec = scan.recordings[0]
    mover = next(p for p in scan.people for s in p.faces if s.cluster.detections[0].box[3] < 240)
    still = next(p for p in scan.people if p is not mover)
    sampled = {round(d.time_s, 2) for s in mover.faces for d in s.cluster.detections}
    assert len(sampled) <= 5  # the scan saw the moving face on its 1 fps samples only

    plan = plan_redaction(scan, select_people(scan, [mover.person_id], Level.HIGH), tmp_path / "out")
    records = carry_out(plan, RedactSettings())
    assert [r.error for r in records] == [None]
    output = Path(records[0].output)

    before, after = _every_frame_faces(path), _every_frame_faces(output)
    assert len(after) == len(before) == 4 * FPS
    between = [i for i, (t, _) in enumerate(before) if round(t, 2) not in sampled]
    assert sum(any(_inside(b, positions[i], 40, FACE) for b in before[i][1]) for i in between) >= 0.8 * len(between)
    leaks = [t for i, (t, boxes) in enumerate(after) if any(_inside(b, positions[i] - 10, 30, FACE + 20) for b in boxes)]
    assert leaks == []
    still_before = sum(any(_inside(b, 370, 150, FACE) for b in boxes) for _, boxes in before)
    still_after = sum(any(_inside(b, 370, 150, FACE) for b in boxes) for _, boxes in after)
    assert still_after >= still_before - 1  # the other person is untouched
    assert records[0].frames_covered[mover.person_id] == 4 * FPS
    assert abs(probe(output).duration_s - rec.media.duration_s) < 0.001


def test_voice_muted_other_voice_kept_and_the_rescan_proves_it(sample_data, tmp_path):
    sr = 16000
    carol, _ = sf.read(sample_data / "enrol" / "carol.wav", dtype="float32")
    dave, _ = sf.read(sample_data / "enrol" / "dave.wav", dtype="float32")
    carol, dave = carol[: 6 * sr], dave[: 6 * sr]
    gap = np.zeros(sr, dtype=np.float32)
    track = np.concatenate([carol, gap, dave])
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    make_wav(recordings / "call.wav", track, sr)
    (tmp_path / "enrol").mkdir()
    for name in ("carol", "dave"):
        (tmp_path / "enrol" / f"{name}.wav").write_bytes((sample_data / "enrol" / f"{name}.wav").read_bytes())
    consent = tmp_path / "consent.yaml"
    consent.write_text(
        "subjects:\n"
        "  - id: carol\n    name: Carol\n    enrolment: {voices: [enrol/carol.wav]}\n"
        "    grants: [{purposes: [recording], given: 2026-01-10, withdrawn: 2026-02-01}]\n"
        "  - id: dave\n    name: Dave\n    enrolment: {voices: [enrol/dave.wav]}\n"
        "    grants: [{purposes: [recording], given: 2026-01-10}]\n"
    )
    store = tmp_path / "scan.db"
    scanned = run_cli("scan", str(recordings), "--consent", str(consent), "--store", str(store),
                      "--out", str(tmp_path / "report"), "--workers", "1")
    assert scanned.returncode == 1, scanned.stderr

    dry = run_cli("redact", "latest", "--store", str(store), "--out", str(tmp_path / "out"), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "carol" in dry.stdout and "dave" not in dry.stdout and "silenced" in dry.stdout
    assert not (tmp_path / "out").exists()

    done = run_cli("redact", "latest", "--store", str(store), "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "carol: not found" in done.stdout
    out, rate = sf.read(tmp_path / "out" / "call.wav", dtype="float32")
    assert rate == sr and len(out) == len(track)
    carol_part, dave_part = slice(int(0.5 * sr), int(5.5 * sr)), slice(int(7.5 * sr), int(12.5 * sr))
    assert np.abs(out[carol_part]).max() == 0.0
    assert np.allclose(out[dave_part], track[dave_part], atol=1e-4)

    report = json.loads((tmp_path / "out" / "redaction.json").read_text())
    assert [p["person_id"] for p in report["people"]] == ["carol"]
    entry = report["outputs"][0]
    assert entry["source_sha256"] != entry["output_sha256"] and entry["seconds_silenced"] > 5
    assert report["verification"]["identifiable"] == []
    assert (tmp_path / "out" / "verification" / "report.html").is_file()
    assert "voiceprint" not in json.dumps(report).replace("voiceprint similarity", "")


def test_sample_photo_unknown_face_removed_consented_face_kept(sample_data, tmp_path):
    from scanner.faces import _face_api

    recordings = tmp_path / "recordings"
    recordings.mkdir()
    (recordings / "team_photo.jpg").write_bytes((sample_data / "recordings" / "team_photo.jpg").read_bytes())
    store = tmp_path / "scan.db"
    scanned = run_cli("scan", str(recordings), "--consent", str(sample_data / "consent.yaml"), "--purpose",
                      "ai-training", "--store", str(store), "--out", str(tmp_path / "report"), "--workers", "1")
    assert scanned.returncode == 1, scanned.stderr
    wrong = run_cli("redact", "latest", "--store", str(store), "--out", str(tmp_path / "out"), "--people", "nobody")
    assert wrong.returncode == 2 and "nobody" in wrong.stderr
    done = run_cli("redact", "latest", "--store", str(store), "--out", str(tmp_path / "out"), "--face", "pixelate")
    assert done.returncode == 0, done.stdout + done.stderr
    source = np.asarray(__import__("PIL.Image").Image.open(recordings / "team_photo.jpg").convert("RGB"))
    copy = np.asarray(__import__("PIL.Image").Image.open(tmp_path / "out" / "team_photo.jpg").convert("RGB"))
    api = _face_api()
    before, after = api.face_locations(source, 1), api.face_locations(copy, 1)
    assert len(before) == 2 and len(after) == 1  # obama (consented) stays, the unknown face is gone
    report = json.loads((tmp_path / "out" / "redaction.json").read_text())
    assert [p["subject_id"] for p in report["people"]] == [None]
    assert (recordings / "team_photo.jpg").read_bytes() == (sample_data / "recordings" / "team_photo.jpg").read_bytes()
