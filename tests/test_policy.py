"""Policy on real scans of sample recordings: rules, per-recording purposes, retention, waivers,
config, and fingerprints that survive renames."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from scanner.cli.main import app
from scanner.models import Level
from scanner.pipeline.scan import ScanOptions, run_scan
from scanner.policy.consent.records import load_consent
from scanner.policy.manifest import load_manifest
from scanner.policy.rules import RULES, PolicySettings
from scanner.policy.waivers import load_waivers
from scanner.store.database import Store

AS_OF = dt.date(2026, 11, 27)
runner = CliRunner()


@pytest.fixture
def corpus(tmp_path: Path, sample_data: Path) -> Path:
    """team_photo.jpg (obama + an unknown face) and voice_memo.m4a (dave, erin) in a folder of their own."""
    root = tmp_path / "archive"
    (root / "photos").mkdir(parents=True)
    (root / "calls").mkdir()
    shutil.copy(sample_data / "recordings" / "team_photo.jpg", root / "photos" / "team_photo.jpg")
    shutil.copy(sample_data / "recordings" / "voice_memo.m4a", root / "calls" / "voice_memo.m4a")
    return root


@pytest.fixture(scope="module")
def consent(sample_data):
    return load_consent(sample_data / "consent.yaml")


def scan(root: Path, consent, **options):
    """Scan with the session's database, so each test analyses only what no test analysed before."""
    with Store(os.environ["LIKENESS_STORE"]) as store:
        return run_scan([root], consent, ScanOptions(as_of=AS_OF, **options), store=store)


def rules_of(result) -> set[tuple[str, str | None]]:
    return {(f.rule_id, f.person_id) for f in result.findings}


def test_rule_ids_are_unique_and_complete():
    assert len({r.id for r in RULES}) == len(RULES) and len({r.name for r in RULES}) == len(RULES)
    assert {r.name for r in RULES} >= {
        "unknown-person", "consent-withdrawn", "consent-expired", "purpose-not-covered", "risk-above-accepted",
        "unreadable-recording", "unconsented-face", "unconsented-voiceprint", "retention-exceeded", "waiver-expired",
        "partial-recording",
    }


def test_purposes_come_from_the_manifest_and_sidecars(corpus, consent):
    (corpus / "likeness-manifest.yaml").write_text(
        "defaults:\n  purposes: [internal-use]\n"
        "recordings:\n  - path: 'calls/**'\n    purposes: [publication]\n"
    )
    manifest = load_manifest(corpus / "likeness-manifest.yaml")
    result = scan(corpus, consent, manifest=manifest)
    purposes = {p.name: ctx.purposes for p, ctx in result.contexts.items()}
    assert purposes == {"team_photo.jpg": ("internal-use",), "voice_memo.m4a": ("publication",)}
    # dave's grant covers recording, internal-use, ai-training (expired); erin's covers publication
    assert ("LK003", "dave") in rules_of(result) or ("LK004", "dave") in rules_of(result)
    assert not any(f.person_id == "erin" for f in result.findings)

    (corpus / "calls" / "voice_memo.m4a.likeness.yaml").write_text("purposes: [ai-training]\n")
    result = scan(corpus, consent, manifest=manifest, purposes=["research"])
    ctx = {p.name: c for p, c in result.contexts.items()}["voice_memo.m4a"]
    assert ctx.purposes == ("ai-training", "research")  # sidecar wins, command line adds (fails closed)
    assert ("LK004", "erin") in rules_of(result)
    # each consent finding names the purposes it is about, for the report's per-purpose consent table
    (erin,) = [f for f in result.findings if f.rule_id == "LK004" and f.subject_id == "erin"]
    assert erin.purposes == ("ai-training", "research")  # her grant covers publication only
    unknown = [f for f in result.findings if f.rule_id == "LK001"]
    assert unknown and all(f.purposes == ("internal-use", "research") for f in unknown)  # the photo's and --purpose


def consent_variant(sample_data: Path, folder: Path, text: str) -> Path:
    """A changed copy of the sample consent file, with its enrolment media beside it."""
    shutil.copytree(sample_data / "enrol", folder / "enrol")
    (folder / "consent.yaml").write_text(text)
    return folder / "consent.yaml"


def test_per_recording_consent_covers_only_that_recording(corpus, sample_data, tmp_path):
    text = (sample_data / "consent.yaml").read_text()
    text += (
        "\nrecordings:\n  - path: 'calls/voice_memo.m4a'\n    subjects: [erin]\n"
        "    purposes: [ai-training]\n    given: 2026-10-01\n"
    )
    path = consent_variant(sample_data, tmp_path, text)
    result = scan(corpus, load_consent(path), purposes=["ai-training"])
    assert not any(f.person_id == "erin" for f in result.findings)
    assert ("LK003", "dave") in rules_of(result)


def test_enrolled_subject_without_grants_gets_face_and_voice_findings(corpus, sample_data, tmp_path):
    erin_grant = (
        "    grants:\n      - purposes: [recording, internal-use, publication]\n"
        "        given: 2026-02-01\n        expires: 2027-02-01\n"
    )
    text = (sample_data / "consent.yaml").read_text().replace(erin_grant, "")
    path = consent_variant(sample_data, tmp_path, text)
    result = scan(corpus, load_consent(path), purposes=["recording"])
    assert ("LK008", "erin") in rules_of(result)
    assert ("LK007", "obama") not in rules_of(result)  # obama's grant covers recording


@pytest.mark.slow
def test_retention_exceeded_and_settings(corpus, consent):
    (corpus / "photos" / "team_photo.jpg.likeness.yaml").write_text("recorded: 2020-01-15\nretention_days: 365\n")
    result = scan(corpus, consent)
    retention = [f for f in result.findings if f.rule_id == "LK009"]
    assert len(retention) == 1 and retention[0].recordings[0].name == "team_photo.jpg"
    assert "2020-01-15" in retention[0].message and retention[0].severity is Level.MEDIUM

    policy = PolicySettings(severities={"LK009": Level.CRITICAL, "LK001": Level.LOW}, disabled=frozenset({"LK004"}))
    result = scan(corpus, consent, policy=policy)
    assert [f.severity for f in result.findings if f.rule_id == "LK009"] == [Level.CRITICAL]
    assert all(f.severity is Level.LOW for f in result.findings if f.rule_id == "LK001")
    assert not any(f.rule_id == "LK004" for f in result.findings)


@pytest.mark.slow
def test_fingerprints_survive_renames_and_unrelated_recordings(corpus, consent, sample_data):
    before = {(f.rule_id, f.person_id): f.fingerprint for f in scan(corpus, consent).findings}
    (corpus / "photos" / "team_photo.jpg").rename(corpus / "photos" / "renamed.jpg")
    (corpus / "calls").rename(corpus / "phone")
    shutil.copy(sample_data / "recordings" / "webinar.mp4", corpus / "webinar.mp4")
    after = {(f.rule_id, f.person_id): f.fingerprint for f in scan(corpus, consent).findings}
    assert len(before) >= 3
    assert set(before.values()) <= set(after.values())


@pytest.mark.slow
def test_people_seen_together_from_the_first_frame_get_distinct_fingerprints(tmp_path, sample_data):
    # Three unknown faces in a meeting grid, all visible from 0 s: one finding each, none shared
    # (a waiver for one must not silence the others).
    shutil.copy(sample_data / "recordings" / "meeting_grid.mp4", tmp_path / "grid.mp4")
    result = scan(tmp_path, None)
    faces = [f for f in result.findings if f.rule_id == "LK001" and any("face" in e for e in f.evidence)]
    assert len(faces) == 3
    fingerprints = [f.fingerprint for f in result.findings]
    assert len(set(fingerprints)) == len(fingerprints)
    again = scan(tmp_path, None)
    assert sorted(f.fingerprint for f in again.findings) == sorted(fingerprints)


def write_waivers(path: Path, entries: str) -> Path:
    path.write_text("waivers:\n" + entries)
    return path


def test_waived_findings_are_listed_but_do_not_fail(corpus, consent, tmp_path):
    first = scan(corpus, consent)
    unknown = next(f for f in first.findings if f.rule_id == "LK001")
    waivers = write_waivers(tmp_path / "waivers.yaml", (
        f"  - fingerprint: {unknown.fingerprint}\n    reason: Crowd scene, released under contract 7\n"
        "    approved_by: Jane Doe (DPO)\n    expires: 2027-06-30\n"
        "  - rule: LK003\n    person: dave\n    path: 'calls/**'\n    reason: Renewal signed, scan pending\n"
        "    approved_by: Sam Lee\n    expires: 2027-01-31\n"
        "  - rule: LK002\n    person: nobody\n    reason: Stale entry\n    approved_by: Sam Lee\n"
        "    expires: 2027-01-31\n"
    ))
    result = scan(corpus, consent, waivers=load_waivers(waivers))
    assert unknown.fingerprint not in {f.fingerprint for f in result.findings}
    suppressed = {(s.finding.rule_id, s.finding.person_id): s.waiver for s in result.suppressed}
    assert suppressed[("LK001", unknown.person_id)].approved_by == "Jane Doe (DPO)"
    assert ("LK003", "dave") in suppressed
    assert any("matches no finding" in w and "waivers.yaml:" in w for w in result.warnings)


def test_expired_waiver_fails_the_build(corpus, consent, tmp_path, sample_data):
    first = scan(corpus, consent)
    unknown = next(f for f in first.findings if f.rule_id == "LK001")
    waivers = write_waivers(tmp_path / "waivers.yaml", (
        f"  - fingerprint: {unknown.fingerprint}\n    reason: Crowd scene\n"
        "    approved_by: Jane Doe\n    expires: 2026-10-31\n"
    ))
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "scan", str(corpus), "--consent", str(sample_data / "consent.yaml"), "--waivers", str(waivers),
        "--as-of", AS_OF.isoformat(), "--fail-on", "high", "--out", str(out), "--format", "json",
    ])
    assert result.exit_code == 1, result.output
    doc = json.loads((out / "results.json").read_text())
    expired = [f for f in doc["findings"] if f["rule_id"] == "LK010"]
    assert len(expired) == 1 and "expired on 2026-10-31" in expired[0]["message"]
    assert unknown.fingerprint in {f["fingerprint"] for f in doc["findings"]}  # no longer suppressed
    assert doc["suppressed"] == []


def test_waivers_file_mistakes_exit_2(corpus, tmp_path):
    waivers = write_waivers(tmp_path / "w.yaml", "  - rule: LK001\n    reason: because\n    expires: 2027-01-01\n")
    result = runner.invoke(app, ["scan", str(corpus), "--waivers", str(waivers), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert f"{waivers}:2: error [waivers.0.approved_by]" in result.output


def test_config_file_mirrors_the_flags_and_flags_win(corpus, sample_data, tmp_path):
    config = tmp_path / "likeness.toml"
    shutil.copy(sample_data / "consent.yaml", tmp_path / "consent.yaml")
    shutil.copytree(sample_data / "enrol", tmp_path / "enrol")
    config.write_text(
        '[scan]\nconsent = "consent.yaml"\npurposes = ["ai-training"]\nfail_on = "critical"\n'
        'formats = ["json", "csv"]\nout = "report"\n\n[policy]\ndisabled = ["LK001"]\n'
        '[policy.severity]\nLK003 = "critical"\n'
    )
    args = ["scan", str(corpus), "--config", str(config), "--as-of", AS_OF.isoformat()]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output  # LK003 (dave's expired consent) raised to critical
    doc = json.loads((tmp_path / "report" / "results.json").read_text())
    assert (tmp_path / "report" / "findings.csv").is_file() and not (tmp_path / "report" / "report.html").exists()
    assert not any(f["rule_id"] == "LK001" for f in doc["findings"])
    assert doc["summary"]["fail_on"] == "critical"
    result = runner.invoke(app, [*args, "--fail-on", "none"])
    assert result.exit_code == 0


def test_show_threshold_hides_without_changing_the_verdict(corpus, consent):
    result = scan(corpus, consent, purposes=["ai-training"], show_from=Level.CRITICAL, fail_on=Level.HIGH)
    assert result.shown_findings() == [] and result.failing_findings()


def test_bad_config_exits_2_with_its_line(corpus, tmp_path):
    config = tmp_path / "likeness.toml"
    config.write_text('[scan]\nfail_on = "high"\n\n[policy]\ndisabled = ["LK999"]\n')
    result = runner.invoke(app, ["scan", str(corpus), "--config", str(config)])
    assert result.exit_code == 2 and f"{config}:5: error [policy.disabled]" in result.output
    assert "LK999" in result.output
    config.write_text('[scan]\nfail_on = "high\n')
    result = runner.invoke(app, ["scan", str(corpus), "--config", str(config)])
    assert result.exit_code == 2 and f"{config}:2:" in result.output and "not valid TOML" in result.output


def test_html_report_lists_waived_findings(corpus, consent, tmp_path):
    from scanner.outputs import write_reports

    first = scan(corpus, consent)
    unknown = next(f for f in first.findings if f.rule_id == "LK001")
    waivers = write_waivers(tmp_path / "waivers.yaml", (
        f"  - fingerprint: {unknown.fingerprint}\n    reason: Crowd <b>scene</b>\n"
        "    approved_by: Jane Doe\n    expires: 2027-06-30\n"
    ))
    result = scan(corpus, consent, waivers=load_waivers(waivers))
    (html,) = write_reports(result, tmp_path / "out", ["html"])
    text = html.read_text()
    assert "Suppressed by waivers (1)" in text and "Jane Doe" in text
    assert "Crowd &lt;b&gt;scene&lt;/b&gt;" in text


@pytest.mark.slow
def test_report_shows_what_changed_since_the_previous_scan(corpus, sample_data, tmp_path):
    from tests.helpers import run_cli

    # The session's database (LIKENESS_STORE): the corpus's folder is new, so the first scan has no previous one.
    common = ["scan", str(corpus), "--as-of", AS_OF.isoformat(), "--purpose", "ai-training"]
    first = run_cli(*common, "--out", str(tmp_path / "first"))
    assert first.returncode == 1, first.stderr
    assert "since the previous scan" not in (tmp_path / "first" / "report.html").read_text()
    second = run_cli(*common, "--consent", str(sample_data / "consent.yaml"), "--out", str(tmp_path / "second"))
    assert second.returncode == 1, second.stderr
    html = (tmp_path / "second" / "report.html").read_text()
    assert "since the previous scan" in html
    assert "LK002" in html or "LK003" in html  # findings that only the consent records could raise are new
