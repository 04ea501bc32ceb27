"""Hostile and broken inputs: every one ends as a clear, located outcome, never a crash or a hang.

The corpus is generated here (nothing binary is committed): tiny real media from
tests/media_factory.py, then cut, bit-flipped, mislabelled or given lying headers. One real scan
(`python -m scanner scan`, every output format) runs over all of it; each case then asserts its
outcome (an `unreadable` recording with the reason, a `skipped` file with the reason, or an
ordinary analysis), that the message names the file, and that it appears in every output.

docs/hostile-inputs.md lists the same cases (CASES below is the source of truth).
"""

from __future__ import annotations

import csv
import html
import json
import os
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from scanner.media.audio import load_audio
from scanner.media.files import sha256_file
from scanner.media.frames import iter_frames
from scanner.media.limits import Deadline, time_limit
from scanner.media.probe import probe
from scanner.models import MediaError
from scanner.pipeline.discover import discover_recordings
from tests.helpers import REPO
from tests.media_factory import (
    bitflip_copy,
    frame_with_counter,
    make_png,
    make_vfr_video,
    make_video,
    make_wav,
    packet_offsets,
    sine,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ROOT_REASON = "running as root: chmod 000 does not stop root from reading"
SR = 16000


# The command line as installed: `likeness` names itself in usage messages.
_CLI = "import sys; from scanner.cli.main import main; sys.argv[0] = 'likeness'; main()"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line in a fresh interpreter, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


# --------------------------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One hostile input: its file name under the corpus root, the outcome and words of the reason."""

    name: str
    outcome: str  # "unreadable", "partial", "skipped", "ok"
    words: tuple[str, ...] = ()
    what: str = ""  # one line for docs/hostile-inputs.md


CASES = [
    Case("zero.mp4", "unreadable", ("empty file", "0 bytes"), "zero-byte MP4"),
    Case("zero.wav", "unreadable", ("empty file",), "zero-byte WAV"),
    Case("zero.mkv", "unreadable", ("empty file",), "zero-byte MKV"),
    Case("truncated.mp4", "unreadable", ("truncated or corrupt", "MP4"), "MP4 cut to a third (index at the end lost)"),
    Case(
        "interrupted_faststart.mp4",
        "partial",
        ("data ends at", "truncated file"),
        "web-optimised MP4 (index in front) cut at 40% (an interrupted download): analysed as far as its data "
        "goes, the rest named as missing",
    ),
    Case(
        "bitflip_data.mp4",
        "partial",
        ("rejected damaged data",),
        "MP4 with 300 bytes bit-flipped at three places in its picture and sound data: decoding goes on past "
        "each, the damaged stretches named",
    ),
    Case("truncated_data.wav", "partial", ("data ends at",), "WAV cut at half its data (header intact)"),
    Case("audio_ends_first.mp4", "ok", (), "4 s of video with 2 s of audio (each stream whole by its own header)"),
    Case("video_ends_first.mp4", "ok", (), "2 s of video with 4 s of audio"),
    Case("vfr.mp4", "ok", (), "variable frame rate video holding one frame for 2.5 s"),
    Case("truncated.jpg", "unreadable", ("truncated or corrupt",), "JPEG cut at half its bytes"),
    Case("truncated.mkv", "unreadable", ("truncated or corrupt",), "MKV cut inside its header"),
    Case("truncated.wav", "unreadable", ("truncated or corrupt",), "WAV cut inside its header"),
    Case("bitflip_header.mp4", "unreadable", ("corrupt",), "MP4 with its index (moov) bit-flipped"),
    Case("bitflip_header.mkv", "unreadable", (), "MKV with its header bit-flipped"),
    Case("bitflip_samples.wav", "ok", (), "WAV with bit-flipped samples (still valid PCM: analysed)"),
    Case("wav_named.mp4", "ok", (), "real WAV audio named .mp4 (detected by content)"),
    Case("png_named.wav", "ok", (), "real PNG image named .wav (detected by content)"),
    Case("notes.mp4", "unreadable", ("not a media file",), "plain text named .mp4"),
    Case("page.wav", "unreadable", ("not a media file",), "HTML page named .wav"),
    Case("script.mkv", "unreadable", ("not a media file",), "shell script named .mkv"),
    Case("audio_only.m4a", "ok", (), "AAC audio in an MP4 container, no video stream"),
    Case("video_only.mp4", "ok", (), "H.264 video, no audio stream"),
    Case("one_frame.mp4", "ok", (), "a video of exactly one frame"),
    Case(
        "huge_16000x16000.png",
        "unreadable",
        ("image too large", "256 megapixels", "limit 100"),
        "a real 16000x16000 PNG (256 megapixels)",
    ),
    Case(
        "bomb_header.png",
        "unreadable",
        ("image too large", "10000 megapixels", "not decoded"),
        "70-byte PNG declaring 100000x100000 pixels (decompression bomb)",
    ),
    Case(
        "bomb_header.jpg",
        "unreadable",
        ("image too large", "4225 megapixels"),
        "small JPEG declaring 65000x65000 pixels",
    ),
    Case("long_duration.mkv", "unreadable", ("longer than the 4 h limit",), "MKV whose header claims 31,000 years"),
    Case("absurd_fps.mp4", "unreadable", ("implausible frame rate",), "MP4 whose time scale makes it ~2 million fps"),
    Case("tiny_fps.mp4", "unreadable", ("implausible frame rate",), "MP4 whose time scale makes it 0.001 fps"),
    Case(
        "rate_1hz.wav",
        "unreadable",
        ("implausible audio sample rate", "1 Hz"),
        "WAV declaring a 1 Hz sample rate (would upsample to gigabytes)",
    ),
    Case("silence.wav", "ok", (), "5 s of digital silence: analysed, nobody found"),
    Case("noise.wav", "ok", (), "5 s of white noise: analysed, nobody found"),
    Case("music.wav", "ok", (), "5 s of held chords: analysed, no voice found"),
    Case("pipe.mp4", "skipped", ("named pipe",), "a named pipe (FIFO) called .mp4 (would block a reader)"),
    Case("loop_a", "skipped", ("symlink loop",), "symlink loop loop_a -> loop_b -> loop_a"),
    Case("outside.mp4", "skipped", ("outside the scanned folders",), "symlink to a recording outside the scan root"),
    Case("dangling.mp4", "skipped", ("dangling symlink",), "symlink to nothing"),
    Case("folder_link", "skipped", ("symlink to a folder",), "symlink to a folder inside the root (not walked twice)"),
    Case("<img src=x onerror=alert(1)>.wav", "ok", (), "HTML markup in a file name (real audio)"),
    Case("=cmd|' calc'!A0.mp4", "unreadable", ("not a media file",), "spreadsheet-formula file name (text inside)"),
    Case("readme.txt", "skipped", ("not a media file",), "a text file without a media extension"),
]
DEEP = "deep"  # the very long path case lives under this folder
MANY = 1500  # tiny non-media files in many/


def _flip(data: bytes, start: int, end: int, every: int = 7) -> bytes:
    out = bytearray(data)
    for i in range(start, min(end, len(out)), every):
        out[i] ^= 0x5A
    return bytes(out)


def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def _jpeg_declaring(path: Path, width: int, height: int) -> None:
    Image.new("RGB", (16, 16), (120, 30, 30)).save(path, format="JPEG")
    data = bytearray(path.read_bytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    path.write_bytes(bytes(data))


def _make_mkv(path: Path, frames: int = 10) -> Path:
    with av.open(str(path), mode="w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame_with_counter(i, 64, 48), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _make_aac_only(path: Path, seconds: float = 1.0) -> Path:
    rate = 22050
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        stream.layout = "mono"
        wave = sine(seconds, rate)
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(wave[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _patch_all(data: bytes, tag: bytes, offset: int, value: bytes) -> bytes:
    out = bytearray(data)
    start = 0
    while (i := out.find(tag, start)) >= 0:
        out[i + offset : i + offset + len(value)] = value
        start = i + 4
    return bytes(out)


def _mkv_duration(data: bytes, duration: float) -> bytes:
    out = bytearray(data)
    i = out.find(b"\x44\x89\x88")  # Duration element, 8-byte float
    assert i >= 0
    out[i + 3 : i + 11] = struct.pack(">d", duration)
    return bytes(out)


def build_corpus(root: Path, outside: Path) -> Path:
    """Write every case of CASES under `root` (and a recording in `outside` for the symlink).

    Returns the path of the recording at the end of the very long path.
    """
    root.mkdir(parents=True)
    outside.mkdir(parents=True)
    video = make_video(outside / "source.mp4", frames=10, fps=10, size=(64, 48), audio_seconds=1.0)
    mkv = _make_mkv(outside / "source.mkv")
    wav = make_wav(outside / "source.wav", sine(1.0, SR), SR)
    mp4, mk, wv = video.read_bytes(), mkv.read_bytes(), wav.read_bytes()

    for name in ("zero.mp4", "zero.wav", "zero.mkv"):
        (root / name).write_bytes(b"")
    (root / "truncated.mp4").write_bytes(mp4[: len(mp4) // 3])
    fast = make_video(outside / "fast.mp4", frames=30, fps=10, size=(64, 48), faststart=True).read_bytes()
    (root / "interrupted_faststart.mp4").write_bytes(fast[: int(len(fast) * 0.4)])
    hits = packet_offsets(video, "video", [0.25]) + packet_offsets(video, "audio", [0.5, 0.75])
    bitflip_copy(video, root / "bitflip_data.mp4", [o for o, _ in hits], length=300)
    (root / "truncated_data.wav").write_bytes(wv[: len(wv) // 2])
    make_video(root / "audio_ends_first.mp4", frames=40, fps=10, size=(64, 48), audio_seconds=2.0)
    make_video(root / "video_ends_first.mp4", frames=20, fps=10, size=(64, 48), audio_seconds=4.0)
    make_vfr_video(root / "vfr.mp4", [0.1] * 10 + [2.5] + [0.1] * 5, size=(64, 48))
    Image.effect_noise((160, 120), 60).convert("RGB").save(outside / "photo.jpg", quality=90)
    photo = (outside / "photo.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(photo[: len(photo) // 2])
    (root / "truncated.mkv").write_bytes(mk[:40])
    (root / "truncated.wav").write_bytes(wv[:30])
    moov = mp4.find(b"moov")
    (root / "bitflip_header.mp4").write_bytes(_flip(mp4, moov - 4, moov + 400, every=3))
    (root / "bitflip_header.mkv").write_bytes(_flip(mk, 0, 200, every=3))
    (root / "bitflip_samples.wav").write_bytes(_flip(wv, 60, len(wv), every=97))
    (root / "wav_named.mp4").write_bytes(wv)
    make_png(root / "png_named.wav", size=(64, 48))
    (root / "notes.mp4").write_text("Meeting notes\nnothing to see here\n")
    (root / "page.wav").write_text("<!doctype html><html><body><script>alert(1)</script></body></html>\n")
    (root / "script.mkv").write_text("#!/bin/sh\nrm -rf /\n")
    _make_aac_only(root / "audio_only.m4a")
    make_video(root / "video_only.mp4", frames=5, fps=10, size=(64, 48))
    make_video(root / "one_frame.mp4", frames=1, fps=10, size=(64, 48))
    Image.new("1", (16000, 16000)).save(root / "huge_16000x16000.png", format="PNG")
    (root / "bomb_header.png").write_bytes(_png_declaring(100_000, 100_000))
    _jpeg_declaring(root / "bomb_header.jpg", 65_000, 65_000)
    (root / "long_duration.mkv").write_bytes(_mkv_duration(mk, 1e15))
    (root / "absurd_fps.mp4").write_bytes(_patch_all(mp4, b"mdhd", 16, struct.pack(">I", 2_000_000_000)))
    (root / "tiny_fps.mp4").write_bytes(_patch_all(mp4, b"mdhd", 16, struct.pack(">I", 1)))
    fmt = wv.find(b"fmt ")
    low = bytearray(wv)
    low[fmt + 12 : fmt + 16] = struct.pack("<I", 1)
    low[fmt + 16 : fmt + 20] = struct.pack("<I", 2)
    (root / "rate_1hz.wav").write_bytes(bytes(low))
    make_wav(root / "silence.wav", np.zeros(5 * SR, dtype=np.float32), SR)
    rng = np.random.default_rng(9)
    make_wav(root / "noise.wav", (0.3 * rng.standard_normal(5 * SR)).astype(np.float32), SR)
    chord = sum(sine(1.25, SR, hz, 0.15) for hz in (261.63, 329.63, 392.0))
    chord2 = sum(sine(1.25, SR, hz, 0.15) for hz in (220.0, 277.18, 329.63))
    make_wav(root / "music.wav", np.concatenate([chord, chord2, chord, chord2]).astype(np.float32), SR)
    os.mkfifo(root / "pipe.mp4")
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    os.symlink(video, root / "outside.mp4")
    os.symlink("no-such-file.mp4", root / "dangling.mp4")
    (root / "folder").mkdir()
    make_wav(root / "folder" / "inside.wav", sine(0.5, SR), SR)
    os.symlink("folder", root / "folder_link")
    (root / "<img src=x onerror=alert(1)>.wav").write_bytes(wv)
    (root / "=cmd|' calc'!A0.mp4").write_text("=cmd|' /C calc'!A0\n")
    (root / "readme.txt").write_text("not a recording\n")
    deep = _deep_folder(root / DEEP, wv)
    many = root / "many"
    many.mkdir()
    for i in range(MANY):
        (many / f"note{i:05d}.txt").write_bytes(b"x")
    return deep


def _deep_folder(base: Path, wav_bytes: bytes, total: int = 4300) -> Path:
    """A chain of folders whose full path is longer than PATH_MAX (4096), with a WAV at the end.

    Created through folder descriptors (the path itself is too long for mkdir); returns the
    file's path.
    """
    base.mkdir()
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    path = base
    try:
        while len(str(path)) < total:
            name = "d" * 200
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd, path = child, path / name
        out = os.open("recording.wav", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, wav_bytes)
        os.close(out)
    finally:
        os.close(fd)
    return path / "recording.wav"


# --------------------------------------------------------------------------------------------
# One real scan over the whole corpus
# --------------------------------------------------------------------------------------------

FORMATS = "html,json,sarif,junit,csv"


@dataclass
class CorpusScan:
    root: Path
    deep: Path
    out: Path
    proc: object
    seconds: float
    doc: dict
    recordings: dict  # file name -> results.json recording
    skipped: dict  # file name -> reason
    texts: dict  # format -> file text


@pytest.fixture(scope="module")
def corpus_scan(tmp_path_factory) -> CorpusScan:
    base = tmp_path_factory.mktemp("hostile")
    root = base / "root"
    started = time.monotonic()
    deep = build_corpus(root, base / "outside")
    out = base / "out"
    proc = run_cli(
        "scan",
        str(root),
        "--out",
        str(out),
        "--format",
        FORMATS,
        "--fail-on",
        "high",
        "--store",
        str(base / "scan.db"),
        timeout=300,
    )
    seconds = time.monotonic() - started
    assert (out / "results.json").is_file(), proc.stderr[-3000:]
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    recordings = {Path(r["path"]).name: r for r in doc["recordings"]}
    skipped = {Path(s["path"]).name: s["reason"] for s in doc["skipped"]}
    texts = {
        f: (out / name).read_text(encoding="utf-8")
        for f, name in (
            ("html", "report.html"),
            ("json", "results.json"),
            ("sarif", "results.sarif"),
            ("junit", "junit.xml"),
            ("csv", "findings.csv"),
        )
    }
    return CorpusScan(root, deep, out, proc, seconds, doc, recordings, skipped, texts)


@pytest.mark.slow
def test_the_scan_completes_with_the_documented_exit_code_and_no_traceback(corpus_scan):
    proc = corpus_scan.proc
    assert "Traceback" not in proc.stderr + proc.stdout
    # Unreadable recordings are high-severity findings (LK006): exit 1 at --fail-on high, not 3.
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert corpus_scan.seconds < 120, f"corpus took {corpus_scan.seconds:.0f} s"


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_input_has_its_outcome_and_a_clear_message(corpus_scan, case):
    scan = corpus_scan
    if case.outcome == "skipped":
        assert case.name in scan.skipped, f"{case.name} not listed as skipped"
        reason = scan.skipped[case.name]
        assert all(w in reason for w in case.words), reason
        assert case.name not in scan.recordings
        # Listed in every output that lists files (CSV holds findings only).
        assert case.name in html.unescape(scan.texts["html"])
        assert case.name in scan.texts["sarif"]
        junit = ET.fromstring(scan.texts["junit"].encode("utf-8"))
        assert any(case.name in (c.get("name") or "") and c.find("skipped") is not None for c in junit.iter("testcase"))
        return
    assert case.name in scan.recordings, f"{case.name} missing from results.json"
    rec = scan.recordings[case.name]
    assert rec["status"] == case.outcome, (case.name, rec["error"])
    if case.outcome == "unreadable":
        assert rec["error"] and all(w in rec["error"] for w in case.words), rec["error"]
        # The message on the terminal names the file and the problem.
        line = next(
            (ln for ln in scan.proc.stderr.splitlines() if ln.startswith("unreadable:") and case.name in ln), None
        )
        assert line is not None and rec["error"] in line
        # An unreadable-recording finding in every output.
        finding = [
            f
            for f in scan.doc["findings"]
            if f["rule_id"] == "LK006" and any(Path(r).name == case.name for r in f["recordings"])
        ]
        assert finding, case.name
        assert case.name in html.unescape(scan.texts["html"])
        rows = list(csv.DictReader(scan.texts["csv"].splitlines()))
        assert any(r["rule_id"] == "LK006" and r["recording"].lstrip("'").endswith(case.name) for r in rows)
        junit = ET.fromstring(scan.texts["junit"].encode("utf-8"))
        assert any(
            (c.get("name") or "").endswith(case.name) and c.find("failure") is not None for c in junit.iter("testcase")
        )
        sarif = json.loads(scan.texts["sarif"])
        assert any(r["ruleId"] == "LK006" for r in sarif["runs"][0]["results"])
    elif case.outcome == "partial":
        coverage = rec["coverage"]
        causes = "; ".join(coverage["causes"])
        assert rec["error"] is None and all(w in causes for w in case.words), causes
        assert coverage["missing"] and coverage["analysed_s"] < coverage["duration_s"]
        line = next((ln for ln in scan.proc.stderr.splitlines() if ln.startswith("partial:") and case.name in ln), None)
        assert line is not None and "analysed" in line, scan.proc.stderr[-2000:]
        # A partial-recording finding (LK011) naming the missing stretches, in every output.
        (finding,) = [f for f in scan.doc["findings"]
                      if f["rule_id"] == "LK011" and any(Path(r).name == case.name for r in f["recordings"])]
        assert [(r["start"], r["end"]) for r in finding["time_ranges"]] == [
            (r["start"], r["end"]) for r in coverage["missing"]]
        rows = list(csv.DictReader(scan.texts["csv"].splitlines()))
        assert any(r["rule_id"] == "LK011" and r["recording"].endswith(case.name) for r in rows)
        junit = ET.fromstring(scan.texts["junit"].encode("utf-8"))
        (tc,) = [c for c in junit.iter("testcase") if (c.get("name") or "").endswith(case.name)]
        assert "partial:" in tc.find("system-out").text and "LK011" in tc.find("system-out").text
        sarif = json.loads(scan.texts["sarif"])
        assert any(r["ruleId"] == "LK011" and case.name in json.dumps(r["locations"])
                   for r in sarif["runs"][0]["results"])
        (artifact,) = [a for a in sarif["runs"][0]["artifacts"] if a["location"]["uri"].endswith(case.name)]
        assert artifact["properties"]["status"] == "partial" and artifact["properties"]["not_analysed"]
        assert case.name in html.unescape(scan.texts["html"])
    else:
        assert rec["error"] is None and rec["media"] is not None
        assert rec["coverage"] is not None and rec["coverage"]["missing"] == []


@pytest.mark.slow
def test_quiet_media_holds_nobody(corpus_scan):
    """Silence, noise and music are analysed and hold no voice (nobody to consent)."""
    for name in ("silence.wav", "noise.wav", "music.wav"):
        rec = corpus_scan.recordings[name]
        assert rec["status"] == "ok" and rec["speech"] == [] and rec["appearances"] == [], name


@pytest.mark.slow
def test_html_and_script_names_are_inert_in_every_output(corpus_scan):
    texts = corpus_scan.texts
    assert "<img src=x" not in texts["html"]
    assert "&lt;img src=x onerror=alert(1)&gt;.wav" in texts["html"]
    ET.fromstring(texts["junit"].encode("utf-8"))  # well-formed
    rows = list(csv.DictReader(texts["csv"].splitlines()))
    formula = [r["recording"] for r in rows if "calc" in r["recording"]]
    assert formula and all(not v.startswith(("=", "+", "-", "@")) for v in formula)


@pytest.mark.slow
def test_very_long_path_is_found_and_reported(corpus_scan):
    deep = str(corpus_scan.deep)
    assert len(deep) > 4096
    item = next(s for s in corpus_scan.doc["skipped"] if s["path"] == deep)
    assert item["reason"].startswith("path too long for the operating system")


@pytest.mark.slow
def test_thousands_of_tiny_files_are_listed_as_skipped(corpus_scan):
    many = [p for p in corpus_scan.doc["skipped"] if "/many/" in p["path"]]
    assert len(many) == MANY and all(p["reason"] == "not a media file" for p in many)


@pytest.mark.slow
def test_the_corpus_files_named_on_the_command_line_are_scanned(corpus_scan, tmp_path):
    """A file given by name is always scanned, even a named pipe (reported, not opened)."""
    pipe = corpus_scan.root / "pipe.mp4"
    proc = run_cli(
        "scan",
        str(pipe),
        str(corpus_scan.root / "zero.mp4"),
        "--out",
        str(tmp_path / "o"),
        "--format",
        "json",
        "--store",
        str(tmp_path / "db"),
        timeout=120,
    )
    assert "Traceback" not in proc.stderr and proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    errors = {Path(r["path"]).name: r["error"] for r in doc["recordings"]}
    assert "named pipe" in errors["pipe.mp4"] and "empty file" in errors["zero.mp4"]


# --------------------------------------------------------------------------------------------
# Discovery alone
# --------------------------------------------------------------------------------------------


def test_discovery_of_thousands_of_tiny_files_is_fast(tmp_path):
    for folder in range(20):
        sub = tmp_path / f"f{folder:02d}"
        sub.mkdir()
        for i in range(250):
            (sub / f"clip{i:04d}.wav").write_bytes(b"")
            (sub / f"note{i:04d}.dat").write_bytes(b"abc")
    started = time.monotonic()
    found, skipped = discover_recordings([tmp_path])
    elapsed = time.monotonic() - started
    assert len(found) == 5000 and len(skipped) == 5000
    assert elapsed < 5, f"{elapsed:.1f} s for 10000 files"
    assert found == sorted(found, key=lambda p: p.as_posix())


def test_discovery_matches_the_documented_rules(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    make_wav(root / "a.wav", sine(0.2, SR), SR)
    make_wav(root / ".hidden" / "h.wav", sine(0.2, SR), SR)
    make_wav(root / ".dot.wav", sine(0.2, SR), SR)
    make_png(root / "sub" / "photo.bin")  # no media extension, sniffed as an image
    (root / "sub" / "data.bin").write_bytes(b"\x00" * 100)
    (root / "likeness-manifest.yaml").write_text("recordings: []\n")
    (root / "a.wav.likeness.yaml").write_text("purposes: [recording]\n")
    enrol = root / "enrol.wav"
    make_wav(enrol, sine(0.2, SR), SR)
    os.symlink("a.wav", root / "alias.wav")
    found, skipped = discover_recordings([root], {enrol.resolve()})
    assert [p.name for p in found] == ["a.wav", "alias.wav", "photo.bin"]
    reasons = {p.path.name: p.reason for p in skipped}
    assert reasons == {"data.bin": "not a media file", "enrol.wav": "enrolment media of the consent file"}


@pytest.mark.skipif(IS_ROOT, reason=ROOT_REASON)
def test_unreadable_permissions_are_reported(tmp_path):
    root = tmp_path / "root"
    locked = root / "locked"
    locked.mkdir(parents=True)
    make_wav(locked / "inside.wav", sine(0.2, SR), SR)
    secret = make_wav(root / "secret.wav", sine(0.2, SR), SR)
    secret.chmod(0)
    locked.chmod(0)
    try:
        found, skipped = discover_recordings([root])
        assert [p.name for p in found] == ["secret.wav"]
        assert [(s.path.name, s.reason) for s in skipped] == [("locked", "folder cannot be read: permission denied")]
        with pytest.raises(MediaError, match="permission denied|Permission denied"):
            sha256_file(secret)
        proc = run_cli(
            "scan",
            str(root),
            "--out",
            str(tmp_path / "o"),
            "--format",
            "json",
            "--store",
            str(tmp_path / "db"),
            timeout=120,
        )
        assert "Traceback" not in proc.stderr and proc.returncode == 1
        doc = json.loads((tmp_path / "o" / "results.json").read_text())
        assert doc["recordings"][0]["status"] == "unreadable"
        assert "secret.wav" in proc.stderr
    finally:
        locked.chmod(0o755)
        secret.chmod(0o644)


# --------------------------------------------------------------------------------------------
# Non-UTF-8 file names through every writer
# --------------------------------------------------------------------------------------------

FAILING_WRITERS = {
}


@pytest.fixture(scope="module")
def undecodable_result(tmp_path_factory):
    from scanner.pipeline.scan import ScanOptions, run_scan

    root = tmp_path_factory.mktemp("undecodable")
    name = os.fsdecode(b"caf\xe9 \xff<b>.wav")  # Latin-1 bytes: not UTF-8
    make_wav(root / name, sine(0.5, SR), SR)
    (root / os.fsdecode(b"notes\xfe.mp4")).write_text("not media")
    found, _ = discover_recordings([root])
    assert {p.name for p in found} == {name, os.fsdecode(b"notes\xfe.mp4")}
    return run_scan([root], None, ScanOptions()), name


@pytest.mark.parametrize("fmt", ["csv", "sarif", "junit", "json", "html"])
def test_undecodable_names_reach_every_writer(undecodable_result, fmt, tmp_path):
    from scanner.outputs import writers

    if fmt in FAILING_WRITERS:
        pytest.xfail(FAILING_WRITERS[fmt])
    result, name = undecodable_result
    path = writers()[fmt].write(result, tmp_path)
    text = path.read_text(encoding="utf-8")  # valid UTF-8
    assert "notes" in text  # the unreadable one is a finding in every format
    if fmt != "csv":  # CSV lists findings only; the readable WAV holds nobody
        assert "caf" in text
    if fmt == "junit":
        ET.fromstring(text.encode("utf-8"))
    if fmt == "sarif":
        json.loads(text)


# --------------------------------------------------------------------------------------------
# Limits in the decoders
# --------------------------------------------------------------------------------------------


def test_limits_are_configurable(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=20, fps=10, size=(64, 48), audio_seconds=2.0)
    assert probe(video).duration_s == pytest.approx(2.0, abs=0.2)
    with pytest.raises(MediaError, match=r"longer than the 1 s limit \(the header says 2(\.\d)? s\)"):
        probe(video, max_duration_s=1.0)
    with pytest.raises(MediaError, match="video frames too large: 64x48"):
        probe(video, max_pixels=1000)
    assert probe(video, max_duration_s=None).kind.value == "video"


def test_time_limit_stops_decoding(tmp_path):
    video = make_video(tmp_path / "v.mp4", frames=60, fps=30, size=(64, 48), audio_seconds=2.0)
    info = probe(video)
    with time_limit(1e-9):
        time.sleep(0.001)
        with pytest.raises(MediaError, match="took longer than the 1e-09 s per-file limit"):
            list(iter_frames(video, info, sample_fps=0))
        with pytest.raises(MediaError, match="per-file limit"):
            load_audio(video)
        with pytest.raises(MediaError, match="per-file limit"):
            probe(video)
    # An explicit deadline works without the context; no limit outside it.
    with pytest.raises(MediaError, match="per-file limit"):
        list(iter_frames(video, info, sample_fps=0, deadline=Deadline(-1)))
    assert len(list(iter_frames(video, info, sample_fps=0))) == 60


def test_analysis_of_a_file_over_the_time_limit_is_unreadable(tmp_path):
    from scanner.analysis.recording import AnalysisSettings, analyze_recording

    video = make_video(tmp_path / "v.mp4", frames=10, fps=10, size=(64, 48))
    rec = analyze_recording(video, AnalysisSettings(time_limit_s=1e-9))
    assert rec.status.value == "unreadable" and "per-file limit" in rec.error


def test_a_named_pipe_is_never_opened_for_reading(tmp_path):
    pipe = tmp_path / "p.wav"
    os.mkfifo(pipe)
    started = time.monotonic()
    with pytest.raises(MediaError, match="named pipe"):
        sha256_file(pipe)
    with pytest.raises(MediaError, match="named pipe"):
        probe(pipe)
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------------------------
# YAML tricks in consent, waivers and manifests
# --------------------------------------------------------------------------------------------


def _billion_laughs() -> str:
    text = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    previous = "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
        previous = name
    return text


YAML_TRICKS = [
    ("billion_laughs", "subjects: []\n" + _billion_laughs(), 8, "alias bomb"),
    ("many_aliases", "x: &x 1\nsubjects: [" + ", ".join(["*x"] * 1500) + "]\n", 1, "more than 1,000 aliases"),
    ("recursive_alias", "subjects: &s\n  - *s\n", 1, "refers to itself"),
    (
        "python_tag",
        "subjects:\n  - id: !!python/object/apply:os.system ['echo hi']\n    name: x\n",
        2,
        "custom YAML tag '!!python/object/apply:os.system' is not allowed",
    ),
    ("local_tag", "subjects: !include secrets.yaml\n", 1, "custom YAML tag '!include' is not allowed"),
    ("deep_nesting", "subjects: " + "[" * 5000 + "]" * 5000 + "\n", 1, "nested more than 64 levels"),
]


@pytest.mark.parametrize("name,text,line,words", YAML_TRICKS, ids=[t[0] for t in YAML_TRICKS])
@pytest.mark.parametrize("kind", ["consent", "waivers", "manifest"])
def test_yaml_tricks_are_located_problems(tmp_path, name, text, line, words, kind):
    from scanner.media.fileformat import FileFormatError
    from scanner.policy.consent.records import load_consent
    from scanner.policy.manifest import load_manifest
    from scanner.policy.waivers import load_waivers

    path = tmp_path / f"{name}.yaml"
    body = text if kind == "consent" else text.replace("subjects", "waivers" if kind == "waivers" else "recordings")
    path.write_text(body)
    loader = {"consent": load_consent, "waivers": load_waivers, "manifest": load_manifest}[kind]
    started = time.monotonic()
    with pytest.raises(FileFormatError) as err:
        loader(path)
    assert time.monotonic() - started < 5
    problem = err.value.problems[0]
    assert words in problem.message and problem.line == line, str(problem)


def test_yaml_tricks_exit_2_on_the_command_line(tmp_path):
    consent = tmp_path / "consent.yaml"
    consent.write_text("subjects: []\n" + _billion_laughs())
    wav = make_wav(tmp_path / "a.wav", sine(0.2, SR), SR)
    proc = run_cli(
        "scan",
        str(wav),
        "--consent",
        str(consent),
        "--out",
        str(tmp_path / "o"),
        "--store",
        str(tmp_path / "db"),
        timeout=120,
    )
    assert proc.returncode == 2 and f"{consent}:8" in proc.stderr and "alias bomb" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_shared_grants_through_a_few_aliases_still_work(tmp_path):
    from scanner.policy.consent.records import load_consent

    path = tmp_path / "consent.yaml"
    path.write_text(
        "subjects:\n"
        "  - id: a\n    name: A\n    grants:\n      - &std {purposes: [recording], given: 2026-01-01}\n"
        "  - id: b\n    name: B\n    grants: [*std]\n"
    )
    assert [len(s.grants) for s in load_consent(path).subjects] == [1, 1]


def test_oversized_yaml_is_refused_unread(tmp_path):
    from scanner.media.fileformat import FileFormatError
    from scanner.policy.manifest import load_manifest

    path = tmp_path / "likeness-manifest.yaml"
    with path.open("w") as fh:
        fh.truncate(21 * 1024 * 1024)
    with pytest.raises(FileFormatError, match="larger than 20 MB"):
        load_manifest(path)


# --------------------------------------------------------------------------------------------
# Determinism and the biometric data in our own outputs
# --------------------------------------------------------------------------------------------

SAMPLES = ("team_photo.jpg", "phone_call.wav")  # faces and voices, both quick to analyse


@pytest.fixture(scope="module")
def two_sample_scans(tmp_path_factory, sample_data):
    base = tmp_path_factory.mktemp("determinism")
    inputs = [str(sample_data / "recordings" / name) for name in SAMPLES]
    outs = []
    for run in ("a", "b"):
        out = base / run
        proc = run_cli(
            "scan",
            *inputs,
            "--consent",
            str(sample_data / "consent.yaml"),
            "--out",
            str(out),
            "--format",
            FORMATS,
            "--fail-on",
            "none",
            "--as-of",
            "2026-06-15",
            "--no-cache",
            "--store",
            str(base / f"{run}.db"),
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs.append(out)
    return outs


def _without_run_identity(doc: dict) -> dict:
    scan = dict(doc["scan"])
    for key in ("id", "started_at", "finished_at"):
        scan.pop(key)
    return {**doc, "scan": scan}


@pytest.mark.slow
def test_same_inputs_give_the_same_results_json(two_sample_scans):
    a, b = (json.loads((out / "results.json").read_text(encoding="utf-8")) for out in two_sample_scans)
    assert a["scan"]["id"] != b["scan"]["id"]
    assert a["people"], "the samples should hold people"
    first = json.dumps(_without_run_identity(a), indent=2, ensure_ascii=False).encode("utf-8")
    second = json.dumps(_without_run_identity(b), indent=2, ensure_ascii=False).encode("utf-8")
    assert first == second


_STAMP = __import__("re").compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)?")

_ELAPSED = __import__("re").compile(r'time="[\d.]+"')  # JUnit: how long the scan took


def test_the_other_formats_differ_only_in_run_identity(two_sample_scans):
    a_dir, b_dir = two_sample_scans
    a_doc = json.loads((a_dir / "results.json").read_text(encoding="utf-8"))
    b_doc = json.loads((b_dir / "results.json").read_text(encoding="utf-8"))
    for name in ("findings.csv", "results.sarif", "junit.xml"):
        a = (a_dir / name).read_text(encoding="utf-8")
        b = (b_dir / name).read_text(encoding="utf-8")
        a = _ELAPSED.sub('time="<s>"', _STAMP.sub("<time>", a.replace(a_doc["scan"]["id"], "<scan id>")))
        b = _ELAPSED.sub('time="<s>"', _STAMP.sub("<time>", b.replace(b_doc["scan"]["id"], "<scan id>")))
        assert a == b, name


# A run of N numbers separated by commas or whitespace (JSON arrays, CSV cells, HTML text or
# attributes). Face encodings are 128 floats, our 19-value voice statistics and landmark sets
# are longer than anything a report needs in one row.
def _number_runs(text: str, length: int) -> list[str]:
    import re

    number = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
    pattern = re.compile(rf"(?:{number}[\s,;]+){{{length - 1},}}{number}")
    return [m.group(0)[:120] for m in pattern.finditer(text) if "." in m.group(0)]


def test_no_embedding_like_array_in_any_output(two_sample_scans):
    out = two_sample_scans[0]
    files = {
        "html": "report.html",
        "json": "results.json",
        "sarif": "results.sarif",
        "junit": "junit.xml",
        "csv": "findings.csv",
    }
    for fmt, name in files.items():
        text = (out / name).read_text(encoding="utf-8")
        if fmt == "html":
            # Thumbnails are base64 images; the style sheet and script are code, not data.
            import re

            text = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", text)
        for length in (128, 19):
            runs = _number_runs(text, length)
            assert not runs, f"{fmt}: {length}-number run: {runs[0]}"


def test_the_array_detector_finds_what_it_looks_for():
    vector = ", ".join(f"{0.001 * i - 0.05:.6f}" for i in range(128))
    assert _number_runs(f'"encoding": [{vector}]', 128)
    assert _number_runs("<td>" + " ".join(["0.25"] * 19) + "</td>", 19)
    assert not _number_runs("0:01.0-0:18.5; 0:20.0-0:22.1, 12.5 s, 3 faces", 19)


# --------------------------------------------------------------------------------------------
# docs/hostile-inputs.md: the table is generated from CASES (python -m tests.test_hostile)
# --------------------------------------------------------------------------------------------

DOC = REPO / "docs" / "hostile-inputs.md"
BEGIN, END = "<!-- generated from tests/test_hostile.py: begin -->", "<!-- generated: end -->"

EXTRA_ROWS = [
    (
        "a file whose full path is longer than PATH_MAX (4096 bytes)",
        "skipped",
        "path too long for the operating system (N bytes, limit 4095); cannot be opened: move or rename it to scan it",
    ),
    (
        f"{MANY} one-byte text files in one folder",
        "skipped",
        "not a media file (each listed; discovery of 10 000 files < 5 s)",
    ),
    ("a named pipe given on the command line", "unreadable", "not a regular file (a named pipe)"),
    (
        "a file and a folder with mode 000 (not as root)",
        "unreadable / skipped",
        "cannot read file: permission denied / folder cannot be read: permission denied",
    ),
    (
        "file names with bytes that are not UTF-8",
        "as their content",
        "found and analysed; every output and the scan database write them escaped",
    ),
    ("any file whose decoding passes the per-file time limit", "unreadable", "took longer than the N s per-file limit"),
    (
        "a decoder stuck inside one call (any number of workers)",
        "unreadable",
        "stuck past the N s per-file limit and stopped twice (the worker is ended by the kernel, the file rerun alone)",
    ),
    (
        "a file whose worker process dies (decoder fault, out-of-memory kill)",
        "unreadable",
        "the process analysing this file died twice (in this scan and alone; the other files of the pool are "
        "rerun, not lost)",
    ),
    (
        "a file that kills the scanning process itself (a library scan in its own process); the scan is run again",
        "unreadable",
        "the process analysing this file died twice (in an earlier scan of this database and alone; the rerun "
        "analyses it in a separate process and finishes)",
    ),
]


def render_table() -> str:
    lines = ["| input | outcome | message (words asserted) |", "|---|---|---|"]
    for case in CASES:
        words = "; ".join(f"`{w}`" for w in case.words) or "-"
        lines.append(f"| {case.what} (`{case.name.replace('|', '&#124;')}`) | {case.outcome} | {words} |")
    for what, outcome, message in EXTRA_ROWS:
        lines.append(f"| {what} | {outcome} | {message} |")
    return "\n".join(lines)


def test_docs_list_every_hostile_input():
    text = DOC.read_text(encoding="utf-8")
    generated = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert generated == render_table(), "run: python -m tests.test_hostile"


if __name__ == "__main__":
    text = DOC.read_text(encoding="utf-8")
    head, rest = text.split(BEGIN, 1)
    DOC.write_text(head + BEGIN + "\n" + render_table() + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")
    print(f"updated {DOC}")
