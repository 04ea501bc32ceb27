"""`likeness redact`: copies with the selected people removed, checked on media with a known cast.

Every check looks at the written copies the way an attacker would: dlib's HOG detector with one
upsampling on every frame (more sensitive than the scan, which samples one frame a second), and
the speech energy inside and outside the removed person's turns.

Most runs are in-process (typer's CliRunner, or the redaction functions), so the models are
loaded once for the whole test session; one run goes through the real command line.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from scanner.cli.main import app
from scanner.media.probe import probe
from scanner.models import Level
from scanner.pipeline.scan import ScanOptions, run_scan
from scanner.redaction.media import audio_target, redact_audio, redact_video
from scanner.redaction.plan import plan_redaction, select_people
from scanner.redaction.run import RedactSettings, carry_out
from scanner.redaction.tracking import Anchor, FaceFollower
from tests.helpers import run_cli
from tests.media_factory import face_crops, make_aac, make_video, make_wav

pytestmark = pytest.mark.slow  # the tests share a scan of a generated meeting, then redact and rescan it

FPS = 10
SIZE = (480, 272)
FACE = 96
SR = 16000
runner = CliRunner()


def _every_frame_faces(path: Path) -> list[tuple[float, list[tuple[int, int, int, int]]]]:
    """(time, HOG boxes with one upsampling) for every frame of a video."""
    from scanner.analysis.faces.dlib_models import face_api
    from scanner.analysis.faces.quality import grey_levels

    api = face_api()
    found = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            found.append((float(frame.time), api.face_locations(grey_levels(frame.to_ndarray(format="rgb24")), 1)))
    return found


def _inside(box, left: int, top: int, size: int) -> bool:
    t, r, b, l = box
    cx, cy = (l + r) / 2, (t + b) / 2
    return left <= cx <= left + size and top <= cy <= top + size


def _stream_seconds(path: Path) -> dict[str, float]:
    with av.open(str(path)) as container:
        return {s.type: float(s.duration * s.time_base) for s in container.streams if s.duration is not None}


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
    leaks = [t for i, (t, boxes) in enumerate(after)
             if any(_inside(b, positions[i] - 10, 30, FACE + 20) for b in boxes)]
    assert leaks == []
    still_before = sum(any(_inside(b, 370, 150, FACE) for b in boxes) for _, boxes in before)
    still_after = sum(any(_inside(b, 370, 150, FACE) for b in boxes) for _, boxes in after)
    assert still_after >= still_before - 1 and still.person_id not in records[0].frames_covered
    assert records[0].frames_covered[mover.person_id] == 4 * FPS
    assert abs(probe(output).duration_s - rec.media.duration_s) < 0.001


def test_a_face_the_detector_loses_stays_covered_around_the_scans_detections():
    """Blank frames: every search for the face fails, as the detector's misses do now and then.
    The scan saw it at 1, 2 and 3 s: it stays covered from one sample interval before the first of
    those to at least one after the last (longer while its track still searches for it), and only
    there; a detection far from the previous one (a jump) is not joined to it by one large cover."""
    box, jumped = (100, 200, 180, 120), (20, 310, 100, 230)
    anchors = [Anchor(1.0, box, "p", 0), Anchor(2.0, box, "p", 0), Anchor(3.0, jumped, "p", 0),
               Anchor(2.0, (150, 80, 230, 0), None, 1)]
    follower = FaceFollower(anchors, 1.0, 1 / FPS, (240, 320))
    grey = np.full((240, 320), 90, dtype=np.uint8)
    times = [i / FPS for i in range(6 * FPS)]
    for t in times:
        if follower.wants(t):
            follower.observe(t, grey)
    follower.finish()
    covered = [t for t in times if follower.covers(t).get("p")]
    assert covered[0] == 0.0 and 4.0 <= covered[-1] <= 4.5
    assert covered == [t for t in times if covered[0] <= t <= covered[-1]]  # no frame left out
    assert all(set(follower.covers(t)) == {"p"} for t in covered)  # never the other person's face
    widest = max(r - l for t in covered for (_, r, _, l) in follower.covers(t)["p"])
    assert widest < 2 * 80  # a grown face box, not the union of the two places


def test_copies_keep_the_duration_and_noise_replaces_the_speech(tmp_path):
    """AAC and MP3 decoders hand back the last frame's padding; the copies stay as long as the
    sources all the same (video with AAC, audio-only AAC and MP3). `noise` leaves a faint hiss."""
    video = make_video(tmp_path / "talk.mp4", frames=15, fps=10, size=(64, 48), audio_seconds=1.5)
    m4a = make_aac(tmp_path / "memo.m4a", 1.5, rate=44100)
    mp3 = tmp_path / "memo.mp3"
    with av.open(str(m4a)) as inp, av.open(str(mp3), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=44100)
        stream.layout = "mono"
        for frame in inp.decode(audio=0):
            frame.pts = None
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    from scanner.models import TimeRange

    silence = [TimeRange(0.5, 1.0)]
    redact_video(video, tmp_path / "out.mp4", None, silence, "blur", "noise", preset="ultrafast")
    copies = {video: tmp_path / "out.mp4"}
    for src in (m4a, mp3):
        dst, muxer, encoder, note = audio_target(src, tmp_path / f"out{src.suffix}")
        assert note is None and dst.suffix == src.suffix  # written in the source's own format
        redact_audio(src, dst, muxer, encoder, silence, "noise")
        copies[src] = dst
    for src, dst in copies.items():
        assert abs(probe(dst).duration_s - probe(src).duration_s) < 0.001, src.name
        assert abs(_stream_seconds(dst)["audio"] - _stream_seconds(src)["audio"]) < 0.001, src.name
    with av.open(str(tmp_path / "out.m4a")) as container:
        samples = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    rms = lambda a, b: float(np.sqrt(np.mean(samples[int(a * 44100): int(b * 44100)] ** 2)))  # noqa: E731
    assert 0.005 < rms(0.6, 0.9) < 0.02  # -40 dBFS noise, not the 0.5-amplitude tone
    assert rms(0.1, 0.4) > 0.3 and rms(1.1, 1.4) > 0.3


@pytest.fixture(scope="module")
def call_and_photo(tmp_path_factory, sample_data):
    """A call (carol, whose recording consent was withdrawn, then dave, consented), the team photo
    as PNG (obama, consented, and an unknown face) and a blank picture, scanned in this process."""
    root = tmp_path_factory.mktemp("redact")
    recordings = root / "recordings"
    (recordings / "photos").mkdir(parents=True)
    carol, _ = sf.read(sample_data / "enrol" / "carol.wav", dtype="float32")
    dave, _ = sf.read(sample_data / "enrol" / "dave.wav", dtype="float32")
    track = np.concatenate([carol[: 6 * SR], np.zeros(SR, dtype=np.float32), dave[: 6 * SR]])
    make_wav(recordings / "call.wav", track, SR)
    Image.open(sample_data / "recordings" / "team_photo.jpg").save(recordings / "photos" / "team.png")
    Image.new("RGB", (64, 48), (30, 90, 160)).save(recordings / "photos" / "blank.png")
    (root / "enrol").mkdir()
    for name in ("carol.wav", "dave.wav", "obama.jpg"):
        (root / "enrol" / name).write_bytes((sample_data / "enrol" / name).read_bytes())
    consent = root / "consent.yaml"
    consent.write_text(
        "subjects:\n"
        "  - id: carol\n    name: Carol\n    enrolment: {voices: [enrol/carol.wav]}\n"
        "    grants: [{purposes: [recording], given: 2026-01-10, withdrawn: 2026-02-01}]\n"
        "  - id: dave\n    name: Dave\n    enrolment: {voices: [enrol/dave.wav]}\n"
        "    grants: [{purposes: [recording], given: 2026-01-10}]\n"
        "  - id: obama\n    name: Obama\n    enrolment: {faces: [enrol/obama.jpg]}\n"
        "    grants: [{purposes: [recording], given: 2026-01-10, max_risk: {face: critical}}]\n"
    )
    store = root / "scan.db"
    scanned = runner.invoke(app, ["scan", str(recordings), "--consent", str(consent), "--purpose", "recording",
                                  "--store", str(store), "--out", str(root / "report"), "--workers", "1"])
    assert scanned.exit_code == 1, scanned.output
    sources = {p: p.read_bytes() for p in recordings.rglob("*") if p.is_file()}
    return {"root": root, "recordings": recordings, "store": store, "track": track, "sources": sources}


def _faces(path: Path) -> list[tuple[int, int, int, int]]:
    from scanner.analysis.faces.dlib_models import face_api

    return face_api().face_locations(np.asarray(Image.open(path).convert("RGB")), 1)


def test_plan_and_bad_usage(call_and_photo):
    store, out = str(call_and_photo["store"]), call_and_photo["root"] / "plan"
    dry = runner.invoke(app, ["redact", "latest", "--store", store, "--out", str(out), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "carol" in dry.output and "unknown-" in dry.output and "silenced" in dry.output
    assert "dave" not in dry.output and "obama" not in dry.output
    assert not out.exists()
    wrong = runner.invoke(app, ["redact", "latest", "--store", store, "--out", str(out), "--people", "nobody"])
    assert wrong.exit_code == 2 and "nobody" in wrong.output
    bad = runner.invoke(app, ["redact", "latest", "--store", store, "--out", str(out), "--face", "sparkle"])
    assert bad.exit_code == 2 and "--face" in bad.output
    inside = runner.invoke(app, ["redact", "latest", "--store", store, "--out", str(call_and_photo["recordings"])])
    assert inside.exit_code == 2 and "overwrite" in inside.output


def test_voice_muted_face_blurred_others_kept_and_the_rescan_proves_it(call_and_photo):
    root, track = call_and_photo["root"], call_and_photo["track"]
    out = root / "release"
    done = runner.invoke(app, ["redact", "latest", "--store", str(call_and_photo["store"]), "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "carol: not found" in done.output and "PASS" in done.output

    copy, rate = sf.read(out / "call.wav", dtype="float32")
    assert rate == SR and len(copy) == len(track)
    carol_part, dave_part = slice(int(0.5 * SR), int(5.5 * SR)), slice(int(7.5 * SR), int(12.5 * SR))
    assert np.abs(copy[carol_part]).max() == 0.0
    assert np.allclose(copy[dave_part], track[dave_part], atol=1e-4)
    before, after = _faces(call_and_photo["recordings"] / "photos" / "team.png"), _faces(out / "photos" / "team.png")
    assert len(before) == 2 and len(after) == 1 and after[0] in before  # obama (consented) stays
    assert not (out / "photos" / "blank.png").exists()  # nobody removed from it: not copied

    report = json.loads((out / "redaction.json").read_text())
    assert sorted(p["subject_id"] or "unknown" for p in report["people"]) == ["carol", "unknown"]
    assert {Path(o["output"]).name for o in report["outputs"]} == {"call.wav", "team.png"}
    assert all(o["source_sha256"] != o["output_sha256"] for o in report["outputs"])
    assert report["verification"]["identifiable"] == []
    assert (out / "verification" / "report.html").is_file()
    assert "voiceprint" not in json.dumps(report).replace("voiceprint similarity", "")
    assert all(p.read_bytes() == data for p, data in call_and_photo["sources"].items())


def test_command_line_box_noise_copy_all(call_and_photo):
    """The one run through the real command line (no rescan: the test above proves that part)."""
    root, track = call_and_photo["root"], call_and_photo["track"]
    out = root / "boxed"
    done = run_cli("redact", "latest", "--store", str(call_and_photo["store"]), "--out", str(out), "--face", "box",
                   "--voice", "noise", "--copy-all", "--no-verify")
    assert done.returncode == 0, done.stdout + done.stderr
    source = call_and_photo["recordings"] / "photos"
    gone = [b for b in _faces(source / "team.png") if b not in _faces(out / "photos" / "team.png")]
    assert len(gone) == 1
    top, right, bottom, left = gone[0]
    assert np.asarray(Image.open(out / "photos" / "team.png").convert("L"))[top:bottom, left:right].max() == 0
    assert (out / "photos" / "blank.png").read_bytes() == (source / "blank.png").read_bytes()

    copy, _ = sf.read(out / "call.wav", dtype="float32")
    carol_part = copy[int(0.5 * SR): int(5.5 * SR)]
    assert 0.005 < float(np.sqrt(np.mean(carol_part ** 2))) < 0.02  # -40 dBFS noise instead of carol
    assert np.allclose(copy[int(7.5 * SR): int(12.5 * SR)], track[int(7.5 * SR): int(12.5 * SR)], atol=1e-4)
    report = json.loads((out / "redaction.json").read_text())
    assert report["settings"]["face"] == "box" and report["settings"]["voice"] == "noise"
    assert report["verification"] is None
    blank = next(o for o in report["outputs"] if o["source"].endswith("blank.png"))
    assert blank["redacted"] == [] and blank["output_sha256"] == blank["source_sha256"]


def test_pixelate_leaves_blocks_and_no_face(call_and_photo):
    out = call_and_photo["root"] / "pixelated"
    done = runner.invoke(app, ["redact", "latest", "--store", str(call_and_photo["store"]), "--out", str(out),
                               "--people", "unknown", "--face", "pixelate", "--no-verify"])
    assert done.exit_code == 0, done.output
    source = call_and_photo["recordings"] / "photos" / "team.png"
    gone = [b for b in _faces(source) if b not in _faces(out / "photos" / "team.png")]
    assert len(gone) == 1
    top, right, bottom, left = gone[0]
    region = np.asarray(Image.open(out / "photos" / "team.png").convert("RGB"))[top:bottom, left:right]
    colours = np.unique(region.reshape(-1, 3), axis=0)
    assert 4 <= len(colours) <= 8 * 8 * 2  # a few cells across, each one flat colour
    assert not (out / "call.wav").exists()  # only the unknown face was asked for


def test_recordings_not_analysed_whole_are_named_and_never_copied(tmp_path):
    """A partial recording (decoded only in part) is not redacted: what its undecoded stretches show
    is unknown, so no copy of it could be proven clean; the plan says so, as for an unreadable one."""
    from scanner.models import Level, RecordingAnalysis, RecordingStatus, ScanResult
    from scanner.redaction.plan import not_redacted_reason, plan_redaction

    partial = RecordingAnalysis(tmp_path / "cut.wav", "ab" * 32, RecordingStatus.PARTIAL)
    broken = RecordingAnalysis(tmp_path / "bad.mp4", "", RecordingStatus.UNREADABLE, error="not a media file")
    scan = ScanResult("s", "t0", "t1", [str(tmp_path)], {}, ["recording"], "2026-12-03", None, None,
                      [partial, broken], [], [], Level.HIGH, root=tmp_path)
    plan = plan_redaction(scan, [], tmp_path / "out")
    assert not plan.recordings and plan.unreadable == [partial, broken]
    assert "only partly decoded" in not_redacted_reason(partial)
    assert not_redacted_reason(broken) == "unreadable in the scan (not a media file)"
