"""Consent file loading, line-precise problems, and what grants allow."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from scanner.models import Level, Modality
from scanner.policy.consent.records import (
    ConsentFileError,
    ConsentOutcome,
    decide_consent,
    load_consent,
)

GOOD = """\
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
        evidence: forms/alice.pdf
      - purposes: [ai-training]
        given: 2026-01-10
        withdrawn: 2026-06-01
"""


def write(tmp_path: Path, text: str, enrol: bool = True) -> Path:
    if enrol:
        (tmp_path / "enrol").mkdir(exist_ok=True)
        (tmp_path / "enrol" / "alice.jpg").write_bytes(b"placeholder")
    path = tmp_path / "consent.yaml"
    path.write_text(text)
    return path


def problems_of(path: Path):
    with pytest.raises(ConsentFileError) as info:
        load_consent(path)
    return info.value.problems


def test_core_shape_loads(tmp_path):
    records = load_consent(write(tmp_path, GOOD))
    alice = records.subject("alice")
    assert alice.name == "Alice Example"
    assert alice.grants[0].max_risk.for_modality(Modality.FACE) is Level.HIGH
    assert records.enrolment_paths(alice, Modality.FACE) == [tmp_path / "enrol" / "alice.jpg"]
    assert records.warnings == ()


def test_bad_date_is_reported_with_line_and_field(tmp_path):
    text = GOOD.replace("expires: 2027-01-10", "expires: 2025-01-10")
    (problem,) = problems_of(write(tmp_path, text))
    assert problem.line == 9 and problem.field == "subjects.0.grants.0.expires"
    assert "before given" in problem.message
    assert str(problem).startswith(f"{tmp_path / 'consent.yaml'}:9: error")


def test_unknown_field_and_bad_tier_point_at_their_lines(tmp_path):
    text = GOOD.replace("evidence: forms/alice.pdf", "evidnce: forms/alice.pdf").replace(
        "voice: medium", "voice: extreme"
    )
    problems = problems_of(write(tmp_path, text))
    by_field = {p.field: p for p in problems}
    assert by_field["subjects.0.grants.0.evidnce"].line == 11
    assert "unknown field" in by_field["subjects.0.grants.0.evidnce"].message
    assert by_field["subjects.0.grants.0.max_risk.voice"].line == 10


def test_duplicate_ids_and_missing_enrolment(tmp_path):
    text = GOOD + "  - id: alice\n    name: Alice Again\n    enrolment: {voices: [enrol/missing.wav]}\n"
    problems = problems_of(write(tmp_path, text))
    messages = {(p.line, p.message.split(" (")[0]) for p in problems}
    assert (15, "duplicate subject id 'alice'") in messages
    assert any(p.line == 17 and "does not exist" in p.message for p in problems)


def test_enrolment_path_may_not_leave_the_folder(tmp_path):
    text = GOOD.replace("enrol/alice.jpg", "../../etc/passwd")
    (problem,) = problems_of(write(tmp_path, text))
    assert "leaves the consent file's folder" in problem.message


def test_yaml_syntax_error_has_a_line(tmp_path):
    (problem,) = problems_of(write(tmp_path, GOOD.replace("name: Alice Example", "name: [Alice")))
    assert problem.line is not None and problem.line >= 3
    assert "not valid YAML" in problem.message


def test_unknown_purpose_is_a_warning(tmp_path):
    records = load_consent(write(tmp_path, GOOD.replace("internal-use]", "podcasting]")))
    (warning,) = records.warnings
    assert not warning.is_error and warning.line == 7 and "podcasting" in warning.message


def test_missing_file(tmp_path):
    (problem,) = problems_of(tmp_path / "nope.yaml")
    assert problem.message == "file not found"


@pytest.mark.parametrize(
    "purpose, on, outcome",
    [
        ("recording", dt.date(2026, 5, 1), ConsentOutcome.GRANTED),
        ("recording", dt.date(2027, 1, 10), ConsentOutcome.GRANTED),  # the expiry day still counts
        ("recording", dt.date(2027, 1, 11), ConsentOutcome.EXPIRED),
        ("recording", dt.date(2025, 12, 31), ConsentOutcome.NO_CONSENT),  # not yet given
        ("ai-training", dt.date(2026, 5, 31), ConsentOutcome.GRANTED),
        ("ai-training", dt.date(2026, 6, 1), ConsentOutcome.WITHDRAWN),
        ("publication", dt.date(2026, 5, 1), ConsentOutcome.PURPOSE_NOT_COVERED),
    ],
)
def test_decide_consent(tmp_path, purpose, on, outcome):
    alice = load_consent(write(tmp_path, GOOD)).subject("alice")
    assert decide_consent(alice, purpose, on).outcome is outcome


def test_nobody_on_record_has_no_consent():
    assert decide_consent(None, "recording", dt.date(2026, 1, 1)).outcome is ConsentOutcome.NO_CONSENT
