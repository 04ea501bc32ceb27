"""Scanning recordings where they live: s3:// inputs against a real S3 server (SeaweedFS, loopback only).

One server per module on free ports (`tests/s3_server.py`), with one access key. Small real inputs:
three sample recordings (a 15 s video, a phone call, a photo), as tests/test_execute.py uses.
"""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from scanner.media.objstore import ObjectStoreError, ObjectURL, StorageSettings, list_objects, parse_input
from scanner.models import RecordingStatus
from scanner.outputs.document import build_document
from scanner.pipeline.discover import pass_over_object
from scanner.pipeline.scan import ScanOptions, ScanStats, run_scan
from scanner.policy.consent.records import load_consent
from scanner.store.database import Store
from tests.helpers import run_cli
from tests.s3_server import SECRET_KEY, SeaweedS3

pytestmark = pytest.mark.slow  # the tests share a SeaweedFS server and whole scans of a bucket

FILES = ("lobby.mp4", "phone_call.wav", "team_photo.jpg")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    reason = SeaweedS3.available()
    if reason is not None:
        pytest.skip(reason)
    s3 = SeaweedS3.start(tmp_path_factory.mktemp("seaweedfs"))
    yield s3
    s3.stop()


@pytest.fixture()
def aws_env(server, monkeypatch):
    """The standard AWS variables pointing at the test server (worker processes inherit them)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def bucket(server, sample_data) -> str:
    """A bucket holding the three recordings under rec/, plus a text object and a hidden one."""
    fs = server.filesystem()
    fs.mkdir("archive")
    for name in FILES:
        fs.put_file(str(sample_data / "recordings" / name), f"archive/rec/{name}")
    fs.pipe("archive/rec/notes.txt", b"minutes of the meeting")
    fs.pipe("archive/rec/.trash/old.mp4", b"not scanned")
    return "archive"


@pytest.fixture(scope="module")
def consent(sample_data):
    return load_consent(sample_data / "consent.yaml")


@pytest.fixture(scope="module")
def local_folder(sample_data, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("objstore-local") / "rec"
    folder.mkdir()
    for name in FILES:
        shutil.copy(sample_data / "recordings" / name, folder / name)
    return folder


def _options(**kw) -> ScanOptions:
    import datetime as dt

    from scanner.models import Level

    return ScanOptions(purposes=["ai-training"], fail_on=Level.NONE, as_of=dt.date(2026, 11, 1), **kw)


def _comparable(result, prefix: str) -> str:
    """The results document without run-specific parts, recordings named relative to `prefix`."""
    doc = build_document(result)
    doc.pop("scan")
    doc.pop("skipped")
    doc["summary"].pop("skipped")  # the bucket also holds a text object
    return json.dumps(doc, sort_keys=True).replace(prefix, "<root>/")


@pytest.fixture(scope="module")
def local_result(local_folder, consent):
    return run_scan([local_folder], consent, _options(workers=1))


def test_bucket_scans_like_the_folder_and_rescans_only_what_changed(
        server, bucket, aws_env, consent, local_result, local_folder, sample_data, tmp_path):
    url = parse_input(f"s3://{bucket}/rec/")
    assert isinstance(url, ObjectURL)
    with Store(tmp_path / "scan.db") as store:
        first = ScanStats()
        result = run_scan([url], consent, _options(workers=1), store=store, stats=first)
        # Same people and findings as the local scan; recordings named by their URL.
        assert _comparable(result, f"s3://{bucket}/rec/") == _comparable(local_result, f"{local_folder}/")
        assert [str(r.path) for r in result.recordings] == [f"s3://{bucket}/rec/{n}" for n in sorted(FILES)]
        assert [(str(s.path), s.reason) for s in result.skipped] == [
            (f"s3://{bucket}/rec/notes.txt", "not a media file")]
        assert first.analysed == 3

        # Unchanged: no recording downloaded (the server's own byte counter), nothing decoded. The one
        # read is the sniff of notes.txt's first bytes: without a media extension, it is looked at again.
        sniff = len(b"minutes of the meeting")
        before = server.bytes_sent(bucket)
        again = ScanStats()
        run_scan([url], consent, _options(workers=1), store=store, stats=again)
        assert (again.analysed, again.reused) == (0, 3)
        assert server.bytes_sent(bucket) - before == sniff

        # One object replaced: that one is read (once) and analysed again, the others are not.
        replacement = sample_data / "enrol" / "obama.jpg"
        server.filesystem().put_file(str(replacement), f"{bucket}/rec/team_photo.jpg")
        changed = ScanStats()
        rescan = run_scan([url], consent, _options(workers=1), store=store, stats=changed)
        assert (changed.analysed, changed.reused) == (1, 2)
        assert server.bytes_sent(bucket) - before == 2 * sniff + replacement.stat().st_size
        photo = next(r for r in rescan.recordings if r.path.name == "team_photo.jpg")
        assert photo.size_bytes == replacement.stat().st_size
        server.filesystem().put_file(str(sample_data / "recordings" / "team_photo.jpg"),
                                     f"{bucket}/rec/team_photo.jpg")
        # The scan database names objects by URL and holds no credential.
        dump = "\n".join(sqlite3.connect(tmp_path / "scan.db").iterdump())
        assert f"s3://{bucket}/rec/lobby.mp4" in dump
        assert SECRET_KEY not in dump


def test_an_object_deleted_mid_scan_is_unreadable_and_the_scan_goes_on(server, aws_env, sample_data):
    fs = server.filesystem()
    fs.mkdir("volatile")
    for name in ("a.jpg", "b.jpg"):
        fs.put_file(str(sample_data / "recordings" / "team_photo.jpg"), f"volatile/{name}")

    def delete_b(done, total, analysis):
        if done == 1:
            fs.rm("volatile/b.jpg")

    result = run_scan([ObjectURL("s3://volatile/")], None, _options(workers=1), progress=delete_b)
    a, b = result.recordings
    assert a.status is RecordingStatus.OK and b.status is RecordingStatus.UNREADABLE
    assert "does not exist" in b.error
    assert any(str(b.path) in [str(p) for p in f.recordings] and "could not be read" in f.message
               for f in result.findings)


def test_objects_that_may_be_listed_but_not_read_are_unreadable(server, bucket, aws_env, monkeypatch):
    from tests.s3_server import LIST_ONLY_KEY, LIST_ONLY_SECRET

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", LIST_ONLY_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", LIST_ONLY_SECRET)
    result = run_scan([ObjectURL(f"s3://{bucket}/rec/")], None, _options(workers=1))
    # notes.txt cannot be sniffed either: scanned, so that the problem is reported
    assert [r.path.name for r in result.recordings] == sorted([*FILES, "notes.txt"])
    for rec in result.recordings:
        assert rec.status is RecordingStatus.UNREADABLE
        assert rec.error.startswith("object cannot be read: access denied"), rec.error


def test_a_bucket_that_cannot_be_listed_is_a_clear_error(server, aws_env):
    with pytest.raises(ObjectStoreError, match=r"s3://no-such-bucket.*cannot be listed: does not exist"):
        run_scan([ObjectURL("s3://no-such-bucket/x/")], None, _options(workers=1))
    storage = StorageSettings(endpoint_url=server.endpoint, retries=0)
    with pytest.raises(ObjectStoreError, match="no object found"):
        run_scan([ObjectURL("s3://archive/nothing-here/")], None, _options(workers=1, storage=storage))




def test_credentials_come_from_a_named_profile(server, bucket, aws_env, tmp_path, monkeypatch):
    """AWS_PROFILE picks a profile of the shared credentials file, as the AWS tools do; a profile
    with a wrong key is refused."""
    from tests.s3_server import ACCESS_KEY

    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[auditor]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
                           f"[intruder]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = wrong\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_PROFILE", "auditor")
    listing = list_objects([ObjectURL(f"s3://{bucket}/rec/")], StorageSettings(retries=0), pass_over_object)
    assert sorted(url.name for url in listing.objects) == sorted(FILES)
    monkeypatch.setenv("AWS_PROFILE", "intruder")
    with pytest.raises(ObjectStoreError, match="cannot be listed"):
        list_objects([ObjectURL(f"s3://{bucket}/rec/")], StorageSettings(retries=0), pass_over_object)
@pytest.fixture()
def silent_endpoint():
    """A loopback TCP server that accepts connections and never answers (a stalled store)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []

    def hold():
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()
    for connection in held:
        connection.close()


def test_a_store_that_stops_answering_times_out_after_the_retries(silent_endpoint, monkeypatch):
    from scanner.analysis.recording import AnalysisSettings
    from scanner.media.objstore import list_objects
    from scanner.pipeline.objects import analyze_object

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storage = StorageSettings(endpoint_url=silent_endpoint, timeout_s=0.3, retries=0)
    with pytest.raises(ObjectStoreError, match=r"s3://archive/rec: cannot be listed: timed out \(no answer within 0.3"):
        list_objects([ObjectURL("s3://archive/rec/")], storage, pass_over_object)
    analysis = analyze_object(ObjectURL("s3://archive/rec/a.mp4"), AnalysisSettings(), storage, None, 1000)
    assert analysis.status is RecordingStatus.UNREADABLE and str(analysis.path) == "s3://archive/rec/a.mp4"
    assert analysis.error == "object cannot be read: timed out (no answer within 0.3 s, after 0 retries)"


def test_command_line_wrong_key_and_malformed_urls_exit_2(server, bucket, tmp_path, monkeypatch, caplog):
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-key")
    proc = run_cli("scan", f"s3://{bucket}/rec/", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "db"))
    assert proc.returncode == 2, proc.stderr
    assert f"s3://{bucket}/rec: cannot be listed: access denied" in proc.stderr
    assert "Traceback" not in proc.stderr and "not-the-secret-key" not in proc.stderr
    # --verbose logs at DEBUG, where the storage client would print its request headers
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-that-must-not-leak")
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ObjectStoreError, match="cannot be listed"):
        list_objects([ObjectURL(f"s3://{bucket}/rec/")], StorageSettings(), pass_over_object)
    assert "session-token-that-must-not-leak" not in caplog.text
    proc = run_cli("scan", f"s3://key:secret@{bucket}/x", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "credentials, query strings" in proc.stderr, proc.stderr
    assert "secret@" not in proc.stderr and "Traceback" not in proc.stderr
    for url, message in (("s3://", "malformed URL"), ("nope://bucket/x", "unknown URL scheme"),
                         ("https://host/a.mp4?X-Amz-Signature=abc", "query strings")):
        with pytest.raises(ObjectStoreError, match=message):
            parse_input(url)


def test_urls_are_named_whole_and_a_manifest_matches_them_by_glob(tmp_path):
    import pickle

    from scanner.policy.manifest import load_manifest, recording_context

    url = parse_input("s3://archive/training/2026/call.m4a")
    assert str(url) == "s3://archive/training/2026/call.m4a" and url.name == "call.m4a"
    assert pickle.loads(pickle.dumps(url)) == url and str(pickle.loads(pickle.dumps(url))) == str(url)
    assert parse_input("file:///tmp/x.mp4") == Path("/tmp/x.mp4") and parse_input("x/y.mp4") == Path("x/y.mp4")
    (tmp_path / "likeness-manifest.yaml").write_text(
        "defaults: {retention_days: 30}\n"
        "recordings:\n  - {path: 's3://archive/training/**', purposes: [ai-training]}\n")
    manifest = load_manifest(tmp_path / "likeness-manifest.yaml")
    context = recording_context(url, manifest, [], None)
    assert context.purposes == ("ai-training",) and context.retention_days == 30
    other = recording_context(ObjectURL("s3://archive/hr/call.m4a"), manifest, [], None)
    assert other.purposes == ("recording",) and other.retention_days == 30


def test_an_object_larger_than_the_spool_folder_is_unreadable_without_being_read(tmp_path):
    from scanner.analysis.recording import AnalysisSettings
    from scanner.pipeline.objects import analyze_object

    huge = shutil.disk_usage(tmp_path).free + 1
    storage = StorageSettings(endpoint_url="http://127.0.0.1:9", spool_dir=str(tmp_path))  # nothing listens there
    analysis = analyze_object(ObjectURL("s3://archive/huge.mp4"), AnalysisSettings(), storage, None, huge)
    assert analysis.status is RecordingStatus.UNREADABLE
    assert f"of local space to be analysed, {tmp_path} has" in analysis.error and "spool_dir" in analysis.error
    assert list(tmp_path.iterdir()) == []


def test_storage_settings_come_from_likeness_toml_and_never_hold_secrets(tmp_path):
    from scanner.cli.config import load_config
    from scanner.media.fileformat import FileFormatError

    config = tmp_path / "likeness.toml"
    config.write_text('[storage]\nendpoint_url = "http://127.0.0.1:8333"\nprofile = "audit"\n'
                      'timeout_s = 5\nretries = 1\nspool_dir = "spool"\n')
    cfg, base = load_config(config)
    assert cfg.storage.settings(base) == StorageSettings(endpoint_url="http://127.0.0.1:8333", profile="audit",
                                                         timeout_s=5.0, retries=1, spool_dir=str(tmp_path / "spool"))
    for text, where in (('secret_access_key = "abc"', "storage.secret_access_key"),
                        ('endpoint_url = "http://key:secret@host:9000"', "storage.endpoint_url")):
        config.write_text(f"[storage]\n{text}\n")
        with pytest.raises(FileFormatError) as caught:
            load_config(config)
        assert [(p.line, p.field) for p in caught.value.problems] == [(2, where)]


def test_command_line_on_a_dask_cluster_reads_the_bucket_and_names_objects_by_url(
        server, bucket, aws_env, local_folder, tmp_path):
    """The workers of a Dask LocalCluster read the object themselves (no shared file system): same results
    as the local scan; results.json, SARIF and HTML name the recording by its URL; no credential anywhere."""
    distributed = pytest.importorskip("distributed")
    url = f"s3://{bucket}/rec/phone_call.wav"
    local = run_scan([local_folder / "phone_call.wav"], None, _options(workers=1))
    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        before = server.bytes_sent(bucket)
        proc = run_cli("scan", url, "--scheduler", cluster.scheduler_address, "--purpose", "ai-training",
                       "--as-of", "2026-11-01", "--fail-on", "none", "--out", str(out),
                       "--format", "html,json,sarif", "--store", str(tmp_path / "scan.db"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert server.bytes_sent(bucket) - before == (local_folder / "phone_call.wav").stat().st_size
    doc = json.loads((out / "results.json").read_text())
    assert [(r["path"], r["status"]) for r in doc["recordings"]] == [(url, "ok")]
    expected = build_document(local)
    for part in ("people", "findings"):
        got = json.dumps(doc[part], sort_keys=True).replace(url, "<recording>")
        assert got == json.dumps(expected[part], sort_keys=True).replace(str(local_folder / "phone_call.wav"),
                                                                          "<recording>")
    sarif = json.loads((out / "results.sarif").read_text())
    uris = {loc["physicalLocation"]["artifactLocation"]["uri"]
            for run in sarif["runs"] for res in run["results"] for loc in res.get("locations", [])}
    assert uris == {url}
    assert url in (out / "report.html").read_text()
    for path in [*out.iterdir(), tmp_path / "scan.db"]:
        assert SECRET_KEY.encode() not in path.read_bytes(), path
