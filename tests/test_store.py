"""The scan database: permissions, migrations, whole-recording transactions, the analysis cache,
incremental rescans, re-rendered reports, history and diff, and purge that really deletes."""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import re
import shutil
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from scanner.analysis.recording import AnalysisSettings
from scanner.analysis.voices.voiceprints import VOICEPRINT_DIM
from scanner.cli.main import app
from scanner.identity.people import EnrolledSubject
from scanner.media.objstore import ObjectURL
from scanner.models import (
    FaceAnalysis,
    FaceCluster,
    FaceDetection,
    Level,
    MediaInfo,
    MediaKind,
    RecordingAnalysis,
    RecordingStatus,
    SpeakerCluster,
    TimeRange,
    VoiceAnalysis,
)
from scanner.outputs.document import build_document
from scanner.pipeline.scan import ScanOptions, ScanStats, run_scan
from scanner.policy.consent.records import load_consent
from scanner.store.analyses import analysis_version, settings_hash
from scanner.store.blobs import loads
from scanner.store.database import Store
from scanner.store.schema import SCHEMA_VERSION

KEY = ("settings-hash", "tool-1")


def synthetic_analysis(path: str = "a.mp4", sha: str = "ab" * 32, seed: int = 0) -> RecordingAnalysis:
    rng = np.random.default_rng(seed)
    cluster = FaceCluster(
        cluster_id=0,
        detections=[FaceDetection(1.0, (10, 60, 60, 10), 50.0, 20.0, 300.0, 3.0)],
        encodings=rng.normal(size=(2, 128)),
        time_ranges=[TimeRange(1.0, 2.0)],
        thumbnail=rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8),
    )
    voiceprint = np.abs(rng.normal(size=VOICEPRINT_DIM)).astype(np.float32)  # two GE2E embeddings' shape
    speaker = SpeakerCluster(0, [TimeRange(0.0, 3.0)], voiceprint, 3.0, 3.0, 20.0, 8000.0)
    return RecordingAnalysis(
        Path(path), sha, RecordingStatus.OK,
        media=MediaInfo(MediaKind.VIDEO, 3.0, 640, 360, 25.0, 16000, 1, "mp4"),
        faces=FaceAnalysis([cluster], 6, 2.0), voices=VoiceAnalysis([speaker], 3.0), size_bytes=123,
    )


def db_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


def pieces_in(data: bytes, needle: bytes, size: int = 64) -> int:
    """How many `size`-byte pieces of `needle` occur in `data` (blobs span pages, so whole needles may not)."""
    return sum(needle[i:i + size] in data for i in range(0, len(needle) - size + 1, size))


# ------------------------------------------------------------------------------------------ store


def test_database_is_owner_only_with_schema_version_and_migrations(tmp_path):
    path = tmp_path / "state" / "scan.db"
    with Store(path) as store:
        store.save_analysis(synthetic_analysis(), *KEY)
        assert store.schema_version() == SCHEMA_VERSION
        applied = [r[0] for r in store.db.execute("SELECT version FROM migrations ORDER BY version")]
        assert applied == list(range(1, SCHEMA_VERSION + 1))
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        for p in (path, Path(f"{path}-wal")):
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # Reopening does not migrate again; a newer schema is refused instead of damaged.
    with Store(path) as store:
        assert store.db.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == SCHEMA_VERSION
        store.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    from scanner.store.connection import StoreError

    with pytest.raises(StoreError, match="newer"):
        Store(path)


def test_analysis_round_trips_with_its_arrays(tmp_path):
    original = synthetic_analysis()
    with Store(tmp_path / "scan.db") as store:
        store.save_analysis(original, *KEY)
        back = store.lookup_analysis(original.sha256, *KEY)
        assert store.lookup_analysis(original.sha256, "other-settings", KEY[1]) is None
        assert store.lookup_analysis(original.sha256, KEY[0], "tool-2") is None
    assert back.media == original.media and back.status is RecordingStatus.OK
    np.testing.assert_array_equal(back.faces.clusters[0].encodings, original.faces.clusters[0].encodings)
    np.testing.assert_array_equal(back.voices.speakers[0].voiceprint, original.voices.speakers[0].voiceprint)
    np.testing.assert_array_equal(back.faces.clusters[0].thumbnail, original.faces.clusters[0].thumbnail)


def test_a_recording_is_stored_whole_or_not_at_all(tmp_path, monkeypatch):
    with Store(tmp_path / "scan.db") as store:
        store.begin_scan("s1", "2026-01-01T00:00:00+00:00", [], {}, 1, None)

        def fail(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(store, "add_scan_recording", fail)  # fails after the analysis row is written
        with pytest.raises(OSError):
            store.save_analysis(synthetic_analysis(), *KEY, scan_id="s1")
        assert store.analysis_count() == 0
        assert store.db.execute("SELECT COUNT(*) FROM recordings").fetchone()[0] == 0
        assert store.db.execute("SELECT analysed FROM scans").fetchone()[0] == 0


def test_foreign_objects_in_a_blob_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    with Store(tmp_path / "scan.db") as store:
        store.save_analysis(synthetic_analysis(), *KEY)
        store.db.execute("UPDATE analyses SET blob=?", (pickle.dumps(Payload()),))
        assert store.lookup_analysis("ab" * 32, *KEY) is None  # a cache miss, nothing executed
    assert not (tmp_path / "pwned").exists()


def test_blobs_written_before_the_modules_moved_still_load(tmp_path):
    # Databases written before the sub-packages name scanner.people and scanner.objstore.
    subject = EnrolledSubject("alice", "Alice", face_encodings=np.ones((1, 128)))
    url = ObjectURL("s3://bucket/talk.mp4")
    old = pickle.dumps([subject, url], protocol=3)  # names classes as text: "c<module>\n<name>\n"
    for new_name, old_name in ((b"scanner.identity.people", b"scanner.people"),
                               (b"scanner.media.objstore", b"scanner.objstore")):
        assert b"c" + new_name + b"\n" in old
        old = old.replace(b"c" + new_name + b"\n", b"c" + old_name + b"\n")
    with Store(tmp_path / "scan.db") as store:
        store.save_enrolment("key", [subject])
        store.db.execute("UPDATE enrolments SET blob=?", (old,))
        back_subject, back_url = store.lookup_enrolment("key")
    assert isinstance(back_subject, EnrolledSubject) and back_subject.subject_id == "alice"
    np.testing.assert_array_equal(back_subject.face_encodings, subject.face_encodings)
    assert isinstance(back_url, ObjectURL) and str(back_url) == "s3://bucket/talk.mp4"
    # Records were all in the module scanner.models, which re-exports them.
    analysis = synthetic_analysis()
    flat = re.sub(rb"cscanner\.models\.\w+\n", b"cscanner.models\n", pickle.dumps(analysis, protocol=3))
    assert b"cscanner.models\nRecordingAnalysis\n" in flat
    back = loads(flat)
    assert isinstance(back, RecordingAnalysis) and back.media == analysis.media
    np.testing.assert_array_equal(back.faces.clusters[0].encodings, analysis.faces.clusters[0].encodings)
    with pytest.raises(pickle.UnpicklingError):  # the old names map to the new ones, not to anything
        loads(old.replace(b"cscanner.objstore\n", b"cscanner.evil\n"))


def test_cache_key_follows_settings_and_code():
    assert settings_hash(AnalysisSettings()) == settings_hash(AnalysisSettings())
    assert settings_hash(AnalysisSettings()) != settings_hash(AnalysisSettings(sample_fps=0.5))
    assert "+" in analysis_version()


# ------------------------------------------------------------------------------------------ real scans


@pytest.fixture(scope="module")
def corpus(sample_data, tmp_path_factory) -> Path:
    """Two quick sample recordings (a photo with faces, a phone call) and an editable consent file."""
    root = tmp_path_factory.mktemp("store")
    (root / "recordings").mkdir()
    for name in ("team_photo.jpg", "phone_call.wav"):
        shutil.copy(sample_data / "recordings" / name, root / "recordings" / name)
    shutil.copytree(sample_data / "enrol", root / "enrol")
    shutil.copy(sample_data / "consent.yaml", root / "consent.yaml")
    return root


def options(**kw) -> ScanOptions:
    return ScanOptions(purposes=["ai-training"], fail_on=Level.NONE, as_of=dt.date(2026, 11, 1), **kw)


def scan(corpus: Path, store: Store, consent: Path | None = None, **kw):
    stats = ScanStats()
    result = run_scan([corpus / "recordings"], load_consent(consent or corpus / "consent.yaml"), options(**kw),
                      store=store, stats=stats)
    return result, stats


@pytest.fixture(scope="module")
def scanned(corpus, tmp_path_factory):
    """A store holding a cold scan, an unchanged rescan and a rescan after a consent change."""
    path = tmp_path_factory.mktemp("db") / "scan.db"
    store = Store(path)
    cold = scan(corpus, store)
    warm = scan(corpus, store)
    data = yaml.safe_load((corpus / "consent.yaml").read_text())
    obama = next(s for s in data["subjects"] if s["id"] == "obama")
    obama["grants"][0]["max_risk"]["face"] = "critical"  # now accepts the exposure of his face
    changed_consent = corpus / "consent-changed.yaml"
    changed_consent.write_text(yaml.safe_dump(data))
    changed = scan(corpus, store, changed_consent)
    yield {"path": path, "store": store, "cold": cold, "warm": warm, "changed": changed, "consent": changed_consent}
    store.close()


def test_unchanged_rescan_reuses_every_analysis(scanned):
    (cold, cold_stats), (warm, warm_stats) = scanned["cold"], scanned["warm"]
    assert cold_stats.analysed == 2 and cold_stats.reused == 0
    assert warm_stats.analysed == 0 and warm_stats.reused == 2
    a, b = build_document(cold), build_document(warm)
    for key in ("recordings", "people", "findings", "summary"):
        assert a[key] == b[key], key


def test_consent_change_reruns_only_the_decisions(scanned):
    (cold, _), (changed, stats) = scanned["cold"], scanned["changed"]
    assert stats.analysed == 0 and stats.reused == 2
    before = {f.fingerprint: f for f in cold.findings}
    after = {f.fingerprint: f for f in changed.findings}
    gone = [f for fp, f in before.items() if fp not in after]
    assert [(f.rule_id, f.subject_id) for f in gone] == [(gone[0].rule_id, "obama")]


def test_no_cache_analyses_everything_again(scanned, corpus):
    _, stats = scan(corpus, scanned["store"], use_cache=False)
    assert stats.analysed == 2 and stats.reused == 0


def test_report_rerenders_a_stored_scan_in_any_format(scanned, tmp_path):
    cold, _ = scanned["cold"]
    runner = CliRunner()
    out = tmp_path / "again"
    others = [row.scan_id for row in scanned["store"].scans() if row.scan_id != cold.scan_id]
    # Scans of the same inputs in the same second share a long prefix: use the shortest unique one.
    prefix = next(cold.scan_id[:n] for n in range(8, len(cold.scan_id) + 1)
                  if not any(other.startswith(cold.scan_id[:n]) for other in others))
    res = runner.invoke(app, ["report", prefix, "--store", str(scanned["path"]), "--out", str(out),
                              "--format", "html,json,sarif,junit,csv"])
    assert res.exit_code == 0, res.output
    assert json.loads((out / "results.json").read_text()) == json.loads(json.dumps(build_document(cold)))
    html = (out / "report.html").read_text()
    assert "data:image/" in html  # thumbnails survive in the stored scan
    for name in ("results.sarif", "junit.xml", "findings.csv"):
        assert (out / name).stat().st_size > 0


def test_history_and_diff(scanned):
    runner = CliRunner()
    store = str(scanned["path"])
    res = runner.invoke(app, ["history", "--store", store])
    assert res.exit_code == 0, res.output
    cold, warm, changed = (scanned[k][0] for k in ("cold", "warm", "changed"))
    for result in (cold, warm, changed):
        assert result.scan_id in res.output
    assert "complete" in res.output

    res = runner.invoke(app, ["diff", cold.scan_id, changed.scan_id, "--store", store, "--json"])
    assert res.exit_code == 0, res.output
    changes = json.loads(res.output)
    assert changes["new_findings"] == [] and changes["new_people"] == []
    assert [f["subject_id"] for f in changes["resolved_findings"]] == ["obama"]
    assert changes["unchanged_findings"] == len(changed.findings)
    res = runner.invoke(app, ["diff", cold.scan_id, warm.scan_id, "--store", store])
    assert "new findings: 0" in res.output and "resolved findings: 0" in res.output


def test_purge_subject_deletes_the_embeddings_from_the_file(scanned, tmp_path):
    path = tmp_path / "copy.db"
    with Store(scanned["path"]) as src:  # work on a copy: other tests read the original
        src.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        src.db.execute(f"VACUUM INTO '{path}'")
    cold, _ = scanned["cold"]
    obama = next(p for p in cold.people if p.subject_id == "obama")
    encoding = obama.faces[0].cluster.encodings[0].tobytes()
    thumbnail = obama.faces[0].cluster.thumbnail.tobytes()
    assert pieces_in(db_bytes(path), encoding) >= 8 and pieces_in(db_bytes(path), thumbnail) >= 8

    res = CliRunner().invoke(app, ["purge", "--subject", "obama", "--store", str(path)])
    assert res.exit_code == 0, res.output
    data = db_bytes(path)
    assert pieces_in(data, encoding) == 0 and pieces_in(data, thumbnail) == 0
    with Store(path) as store:
        sha = next(r.sha256 for r in cold.recordings if r.path.name == "team_photo.jpg")
        assert store.db.execute("SELECT COUNT(*) FROM analyses WHERE sha256=?", (sha,)).fetchone()[0] == 0
        assert store.db.execute("SELECT COUNT(*) FROM enrolments").fetchone()[0] == 0
        # The phone call holds no trace of him and stays cached; history and findings stay.
        assert store.analysis_count() == 1
        assert len(store.scans()) >= 3 and store.findings(cold.scan_id)
        report = store.load_result(cold.scan_id)
        assert all(s.cluster.thumbnail is None for p in report.people if p.subject_id == "obama" for s in p.faces)


def test_purge_by_age_and_everything(tmp_path):
    path = tmp_path / "scan.db"
    with Store(path) as store:
        store.save_analysis(synthetic_analysis(sha="aa" * 32, seed=1), *KEY)
        store.save_analysis(synthetic_analysis(sha="bb" * 32, seed=2), *KEY)
        old = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc).isoformat()
        store.db.execute("UPDATE analyses SET last_used_at=? WHERE sha256=?", (old, "aa" * 32))
        gone = synthetic_analysis(seed=1).faces.clusters[0].encodings.tobytes()
        assert pieces_in(db_bytes(path), gone) >= 8
        stats = store.purge(older_than_days=30)
        assert stats.analyses == 1
        assert [r[0] for r in store.db.execute("SELECT sha256 FROM analyses")] == ["bb" * 32]
        assert store.purge(everything=True).analyses == 1
    assert pieces_in(db_bytes(path), gone) == 0
    assert sqlite3.connect(path).execute("PRAGMA freelist_count").fetchone()[0] == 0  # vacuumed


def test_report_refuses_an_ambiguous_scan_id_prefix(scanned, tmp_path):
    ids = [row.scan_id for row in scanned["store"].scans()]
    assert len(ids) >= 2
    shared = os.path.commonprefix(ids)
    res = CliRunner().invoke(app, ["report", shared, "--store", str(scanned["path"]), "--out", str(tmp_path / "x")])
    assert res.exit_code == 2
    assert f"matches {len(ids)} scans" in res.output
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------- people reused

def test_rescan_reuses_the_stored_people_and_rebuilds_them_on_its_own_recordings(corpus, tmp_path, monkeypatch):
    from scanner.pipeline import scan as stage

    with Store(tmp_path / "scan.db") as store:
        cold, _ = scan(corpus, store)
        assert store.db.execute("SELECT COUNT(*) FROM resolutions").fetchone()[0] == 1

        def refuse(*args, **kwargs):
            raise AssertionError("an unchanged rescan resolved people again")

        monkeypatch.setattr(stage, "resolve_people", refuse)
        warm, _ = scan(corpus, store)
        assert build_document(warm)["people"] == build_document(cold)["people"]
        by_path = {r.path: r for r in warm.recordings}
        for person in warm.people:  # sightings point into this scan's recordings, not copies
            for sighting in person.faces:
                assert any(sighting.cluster is c for c in by_path[sighting.recording].faces.clusters)
            for sighting in person.voices:
                assert any(sighting.speaker is s for s in by_path[sighting.recording].voices.speakers)
        with pytest.raises(AssertionError, match="resolved people again"):
            scan(corpus, store, use_cache=False)  # --no-cache resolves again


def test_resolution_key_follows_what_resolving_reads():
    from scanner.identity.people import EnrolledSubject, ResolverSettings, resolution_key

    recordings = [synthetic_analysis("a.mp4", seed=1), synthetic_analysis("b.mp4", "cd" * 32, seed=2)]
    subjects = [EnrolledSubject("s1", "S One", np.random.default_rng(5).normal(size=(2, 128)))]
    key = resolution_key(recordings, subjects)
    moved = [synthetic_analysis("elsewhere/a.mp4", seed=1), synthetic_analysis("elsewhere/b.mp4", "cd" * 32, seed=2)]
    assert resolution_key(moved, subjects) == key
    changed = [synthetic_analysis("a.mp4", seed=1), synthetic_analysis("b.mp4", "cd" * 32, seed=2)]
    changed[1].faces.clusters[0].encodings[0, 0] += 1e-6
    assert resolution_key(changed, subjects) != key
    voice = [synthetic_analysis("a.mp4", seed=1), synthetic_analysis("b.mp4", "cd" * 32, seed=2)]
    voice[0].voices.speakers[0].voiceprint[3] += 1e-3
    assert resolution_key(voice, subjects) != key
    assert resolution_key(recordings[::-1], subjects) != key  # order numbers the unknowns
    assert resolution_key(recordings, []) != key
    assert resolution_key(recordings, subjects, ResolverSettings(face_tolerance=0.5)) != key


def test_stored_people_that_do_not_fit_the_recordings_are_not_used():
    from scanner.identity.people import people_from_records, people_to_records, resolve_people

    recordings = [synthetic_analysis("a.mp4", seed=1), synthetic_analysis("b.mp4", "cd" * 32, seed=2)]
    people = resolve_people(recordings, [])
    records = json.loads(json.dumps(people_to_records(people, recordings)))
    rebuilt = people_from_records(records, recordings)
    assert [(p.person_id, len(p.faces), len(p.voices)) for p in rebuilt] == \
        [(p.person_id, len(p.faces), len(p.voices)) for p in people]
    assert people_from_records(records, recordings[:1]) is None  # a recording gone
    recordings[0].faces.clusters[0].cluster_id = 7
    assert people_from_records(records, recordings) is None  # a cluster renumbered


def test_purge_forgets_stored_people(tmp_path):
    with Store(tmp_path / "scan.db") as store:
        store.save_people("k1", [{"person_id": "obama", "subject_id": "obama"}])
        assert store.lookup_people("k1") == [{"person_id": "obama", "subject_id": "obama"}]
        store.purge(subjects=["obama"])
        assert store.lookup_people("k1") is None


def test_only_the_most_recently_used_resolutions_are_kept(tmp_path):
    from scanner.store.rescan import RESOLUTIONS_KEPT

    with Store(tmp_path / "scan.db") as store:
        for n in range(RESOLUTIONS_KEPT + 5):
            store.save_people(f"k{n}", [])
        assert store.db.execute("SELECT COUNT(*) FROM resolutions").fetchone()[0] == RESOLUTIONS_KEPT
        assert store.lookup_people(f"k{RESOLUTIONS_KEPT + 4}") == [] and store.lookup_people("k0") is None


def test_rescan_reads_only_files_whose_stat_facts_changed(sample_data, tmp_path, monkeypatch):
    import hashlib
    import time

    from scanner.pipeline import scan as stage

    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("team_photo.jpg", "phone_call.wav"):
        shutil.copy(sample_data / "recordings" / name, folder / name)
    read: list[list[str]] = []
    real = stage.hash_files
    monkeypatch.setattr(stage, "hash_files",
                        lambda paths: read.append(sorted(p.name for p in paths)) or real(paths))

    def rescan(store: Store, **kw):
        stats = ScanStats()
        return run_scan([folder], None, options(**kw), store=store, stats=stats), stats

    with Store(tmp_path / "scan.db") as store:
        rescan(store)  # the copies were written a moment ago: their digests are not trusted yet
        assert store.db.execute("SELECT COUNT(*) FROM file_digests").fetchone()[0] == 0
        time.sleep(2.1)
        rescan(store)
        assert store.db.execute("SELECT COUNT(*) FROM file_digests").fetchone()[0] == 2
        _, stats = rescan(store)
        assert read == [["phone_call.wav", "team_photo.jpg"]] * 2 + [[]]
        assert stats.reused == 2

        call = folder / "phone_call.wav"
        before = call.stat()
        data = bytearray(call.read_bytes())
        data[len(data) // 2:len(data) // 2 + 4000] = bytes(4000)  # same size, a stretch of silence
        call.write_bytes(bytes(data))
        os.utime(call, ns=(before.st_atime_ns, before.st_mtime_ns))  # modification time put back
        result, stats = rescan(store)
        assert read[-1] == ["phone_call.wav"]
        assert stats.analysed == 1 and stats.reused == 1
        assert next(r for r in result.recordings if r.path.name == "phone_call.wav").sha256 == \
            hashlib.sha256(bytes(data)).hexdigest()

        rescan(store, use_cache=False)
        assert read[-1] == ["phone_call.wav", "team_photo.jpg"]
