"""`likeness consent validate`: every mistake gets a precise message and exit 2, never a traceback."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from scanner.cli.main import app
from scanner.policy.consent.records import load_consent
from scanner.schemas.make_consent_schema import consent_schema

runner = CliRunner()

BASE = """\
subjects:
  - id: alice
    name: Alice Example
    enrolment:
      faces: [enrol/alice.jpg]
    grants:
      - purposes: [recording, internal-use]
        given: 2026-01-10
        expires: 2027-01-10
        max_risk: {face: high, voice: medium}
"""

# (name, text, expected line, words the message must contain)
MISTAKES = [
    ("yaml syntax", BASE.replace("name: Alice Example", "name: [Alice"), 4, ["not valid YAML", "started on line 3"]),
    ("top level list", "- id: alice\n  name: A\n", 1, ["top level"]),
    ("subjects not a list", "subjects: alice\n", 1, ["subjects", "list"]),
    ("missing id", BASE.replace("  - id: alice\n    name", "  - name"), 2, ["subjects.0.id", "required"]),
    ("bad id characters", BASE.replace("id: alice", "id: 'alice smith'"), 2, ["subjects.0.id", "letters"]),
    ("reserved id", BASE.replace("id: alice", "id: unknown-3"), 2, ["reserved"]),
    ("missing name", BASE.replace("    name: Alice Example\n", ""), 2, ["subjects.0.name", "required"]),
    ("unknown field", BASE.replace("    name: Alice Example\n", "    name: Alice Example\n    nmae: x\n"), 4,
     ["subjects.0.nmae", "unknown field"]),
    ("impossible date", BASE.replace("given: 2026-01-10", "given: 2026-02-30"), 8,
     ["grants.0.given", "not a valid date"]),
    ("not a date", BASE.replace("given: 2026-01-10", "given: next tuesday"), 8, ["grants.0.given", "date"]),
    ("expiry before given", BASE.replace("expires: 2027-01-10", "expires: 2025-01-10"), 9,
     ["grants.0.expires", "before given"]),
    ("withdrawn before given", BASE + "        withdrawn: 2025-12-01\n", 11, ["grants.0.withdrawn", "before given"]),
    ("no purposes", BASE.replace("purposes: [recording, internal-use]", "purposes: []"), 7,
     ["grants.0.purposes", "at least 1"]),
    ("unknown risk level", BASE.replace("voice: medium", "voice: extreme"), 10, ["max_risk.voice"]),
    ("duplicate id", BASE + "  - id: alice\n    name: Alice Again\n", 11, ["duplicate subject id 'alice'"]),
    ("missing enrolment file", BASE.replace("enrol/alice.jpg", "enrol/nobody.jpg"), 5,
     ["enrolment.faces.0", "does not exist"]),
    ("enrolment path escapes", BASE.replace("enrol/alice.jpg", "../../etc/passwd"), 5, ["leaves the consent file"]),
    ("unknown subject in recording consent",
     BASE + "recordings:\n  - path: 'meetings/*.mp4'\n    subjects: [bob]\n    purposes: [recording]\n"
     "    given: 2026-01-01\n", 13, ["recordings.0.subjects.0", "unknown subject id 'bob'"]),
    ("bad evidence hash", BASE.replace("max_risk", "evidence_sha256: abc\n        max_risk"), 10,
     ["evidence_sha256", "pattern"]),
]


@pytest.fixture
def folder(tmp_path: Path, sample_data: Path) -> Path:
    (tmp_path / "enrol").mkdir()
    shutil.copy(sample_data / "enrol" / "obama.jpg", tmp_path / "enrol" / "alice.jpg")
    return tmp_path


def validate(path: Path, *extra: str):
    return runner.invoke(app, ["consent", "validate", str(path), *extra])


def test_the_base_file_is_valid(folder):
    path = folder / "consent.yaml"
    path.write_text(BASE)
    result = validate(path)
    assert result.exit_code == 0, result.output
    assert "valid (1 subjects, 1 grants)" in result.output


@pytest.mark.parametrize("name, text, line, words", MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_mistake_is_located(folder, name, text, line, words):
    path = folder / "consent.yaml"
    path.write_text(text)
    result = validate(path, "--no-media")
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert f"{path}:{line}:" in result.output, result.output
    for word in words:
        assert word in result.output, result.output


def test_enrolment_photo_must_show_exactly_one_face(folder, sample_data):
    shutil.copy(sample_data / "recordings" / "team_photo.jpg", folder / "enrol" / "alice.jpg")
    (folder / "consent.yaml").write_text(BASE)
    result = validate(folder / "consent.yaml")
    assert result.exit_code == 2
    where = "consent.yaml:5: error [subjects.0.enrolment.faces.0]: "
    assert where + "enrolment photo 'alice.jpg' shows 2 faces" in result.output


def test_voice_sample_must_hold_speech(folder):
    import numpy as np

    from tests.media_factory import make_wav

    make_wav(folder / "enrol" / "alice.wav", np.zeros(16000 * 5, dtype=np.float32))
    (folder / "consent.yaml").write_text(BASE.replace("faces: [enrol/alice.jpg]", "voices: [enrol/alice.wav]"))
    result = validate(folder / "consent.yaml")
    assert result.exit_code == 2
    assert "consent.yaml:5: error [subjects.0.enrolment.voices.0]" in result.output
    assert "'alice.wav' holds 0.0 s of speech" in result.output


def test_unreadable_enrolment_photo(folder):
    (folder / "enrol" / "alice.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    (folder / "consent.yaml").write_text(BASE)
    result = validate(folder / "consent.yaml")
    assert result.exit_code == 2
    where = "consent.yaml:5: error [subjects.0.enrolment.faces.0]: "
    assert where + "enrolment photo 'alice.jpg' is unreadable" in result.output


def test_unknown_purpose_is_reported_but_valid(folder):
    (folder / "consent.yaml").write_text(BASE.replace("internal-use]", "podcasting]"))
    result = validate(folder / "consent.yaml", "--no-media")
    assert result.exit_code == 0
    assert ":7: warning" in result.output and "unknown purpose 'podcasting'" in result.output


def test_csv_of_grants_reads_like_the_yaml(tmp_path):
    (tmp_path / "consent.csv").write_text(
        "subject_id,name,purposes,given,expires,withdrawn,max_risk_face,max_risk_voice,evidence\n"
        "alice,Alice Example,recording;internal-use,2026-01-10,2027-01-10,,high,medium,forms/alice.pdf\n"
        "alice,Alice Example,ai-training,2026-01-10,,2026-06-01,,,\n"
        "bob,Bob Example,,,,,,,\n"
    )
    records = load_consent(tmp_path / "consent.csv")
    alice = records.subject("alice")
    assert [g.purposes for g in alice.grants] == [["recording", "internal-use"], ["ai-training"]]
    assert alice.grants[0].max_risk.voice.value == "medium" and str(alice.grants[1].withdrawn) == "2026-06-01"
    assert records.subject("bob").grants == []


def test_csv_mistakes_name_the_row_and_column(tmp_path):
    path = tmp_path / "consent.csv"
    path.write_text(
        "subject_id,name,purposes,given,max_risk_voice\n"
        "alice,Alice,recording,2026-01-10,low\n"
        "carol,Carol,publication,2026-13-01,extreme\n"
    )
    result = validate(path)
    assert result.exit_code == 2
    assert f"{path}:3: error [given]" in result.output and f"{path}:3: error [max_risk_voice]" in result.output
    path.write_text("subject,name\nalice,Alice\n")
    result = validate(path)
    assert result.exit_code == 2 and "missing column(s) subject_id" in result.output


def test_published_consent_schema_is_current_and_accepts_the_sample(sample_data):
    committed = json.loads((resources.files("scanner.schemas") / "consent.schema.json").read_text())
    assert committed == json.loads(json.dumps(consent_schema()))
    document = yaml.safe_load((sample_data / "consent.yaml").read_text())
    document = json.loads(json.dumps(document, default=str))  # YAML dates as ISO strings
    jsonschema.Draft202012Validator(committed).validate(document)
    document["subjects"][0]["grants"][0]["max_risk"]["face"] = "extreme"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(committed).validate(document)
