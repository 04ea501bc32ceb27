"""Property-based tests: no input crashes the file parsers, and the consent policy keeps its promises.

The parsers (consent YAML and CSV, waivers, manifests) either return or raise FileFormatError with
located problems, whatever bytes they are given. The consent decision never lets a withdrawn grant
satisfy a purpose on or after its withdrawal date, nor an expired grant after its expiry.
"""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

import datetime as dt  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from scanner.media.fileformat import FileFormatError  # noqa: E402
from scanner.policy.consent.records import ConsentOutcome, Grant, Subject, decide_consent, load_consent  # noqa: E402
from scanner.policy.manifest import load_manifest  # noqa: E402
from scanner.policy.waivers import load_waivers  # noqa: E402

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KEYS = ["subjects", "recordings", "waivers", "defaults", "id", "name", "grants", "purposes", "given", "expires",
        "withdrawn", "max_risk", "face", "voice", "enrolment", "faces", "voices", "path", "sha256", "reason",
        "approved_by", "fingerprint", "rule", "person", "recorded", "retention_days", "evidence", "jurisdiction"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True), st.text(max_size=30),
    st.dates().map(str), st.sampled_from(["recording", "ai-training", "high", "low", "2026-02-30", "../../etc/passwd",
                                          "enrol/a.jpg", "LK001", "*", "**/x", "unknown-1", "a" * 70]),
)
YAML_VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5)),
    max_leaves=25,
)
RAW_TEXT = st.one_of(
    st.text(max_size=400),
    st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    st.lists(st.sampled_from(["subjects:", "  - id: a", "    name: A", "  grants:", "  - &x {purposes: [a]}",
                              "  - *x", "  - *y", "!!python/object:os.system", "!tag x", "[", "{", "- ", ": :",
                              "given: 2026-13-01", "\t", "'", '"', "%YAML 1.1", "---", "...", "<<: *x"]),
             max_size=12).map("\n".join),
)


def _write(text: str | bytes, suffix: str) -> Path:
    handle = tempfile.NamedTemporaryFile("wb", suffix=suffix, delete=False)
    with handle:
        handle.write(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    return Path(handle.name)


def _parses_or_reports(loader, text, suffix=".yaml") -> None:
    path = _write(text, suffix)
    try:
        loader(path)
    except FileFormatError as exc:
        assert exc.problems and all(str(p) for p in exc.problems)
    finally:
        path.unlink()


@pytest.mark.parametrize("loader", [load_consent, load_waivers, load_manifest], ids=["consent", "waivers", "manifest"])
@SETTINGS
@given(text=RAW_TEXT)
def test_yaml_parsers_never_crash_on_any_text(loader, text):
    _parses_or_reports(loader, text)


@pytest.mark.parametrize("loader", [load_consent, load_waivers, load_manifest], ids=["consent", "waivers", "manifest"])
@SETTINGS
@given(value=YAML_VALUES)
def test_yaml_parsers_never_crash_on_any_structure(loader, value):
    _parses_or_reports(loader, yaml.safe_dump(value, allow_unicode=True))


CSV_CELLS = st.one_of(st.text(max_size=20), st.sampled_from(["alice", "recording;ai-training", "2026-01-01", "high",
                                                             "2026-02-30", "", "=1+1", "enrol/a.jpg"]))


@SETTINGS
@given(header=st.lists(st.sampled_from(["id", "name", "purposes", "given", "expires", "withdrawn", "max_risk_face",
                                        "max_risk_voice", "evidence", "faces", "voices", "x"]) | st.text(max_size=8),
                       max_size=8),
       rows=st.lists(st.lists(CSV_CELLS, max_size=9), max_size=5))
def test_consent_csv_never_crashes(header, rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    _parses_or_reports(load_consent, buffer.getvalue(), suffix=".csv")


@SETTINGS
@given(data=st.binary(max_size=400))
def test_consent_csv_never_crashes_on_bytes(data):
    path = _write(data, ".csv")
    try:
        load_consent(path)
    except FileFormatError:
        pass
    finally:
        path.unlink()


# --------------------------------------------------------------------------------------------
# The consent decision
# --------------------------------------------------------------------------------------------

PURPOSES = ["recording", "internal-use", "ai-training", "publication"]
DATES = st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2030, 12, 31))


@st.composite
def grants(draw) -> Grant:
    given = draw(DATES)
    later = st.dates(min_value=given, max_value=dt.date(2031, 12, 31))
    return Grant(
        purposes=draw(st.lists(st.sampled_from(PURPOSES), min_size=1, max_size=3, unique=True)),
        given=given,
        expires=draw(st.none() | later),
        withdrawn=draw(st.none() | later),
    )


@SETTINGS
@given(grant_list=st.lists(grants(), max_size=5), extra=st.lists(grants(), max_size=2),
       purpose=st.sampled_from(PURPOSES), on=DATES)
def test_a_granted_decision_rests_on_a_grant_in_force(grant_list, extra, purpose, on):
    subject = Subject(id="s1", name="S", grants=grant_list)
    decision = decide_consent(subject, purpose, on, extra)
    if decision.outcome is ConsentOutcome.GRANTED:
        g = decision.grant
        assert purpose in g.purposes and g.given <= on
        assert g.withdrawn is None or on < g.withdrawn  # never on or after its withdrawal
        assert g.expires is None or on <= g.expires  # never after its expiry


@SETTINGS
@given(grant_list=st.lists(grants(), min_size=1, max_size=5), purpose=st.sampled_from(PURPOSES), on=DATES)
def test_withdrawn_or_expired_grants_alone_never_satisfy(grant_list, purpose, on):
    """When every grant naming the purpose is withdrawn or expired by `on`, consent is refused, with that reason."""
    covering = [g for g in grant_list if purpose in g.purposes]
    dead = all((g.withdrawn is not None and g.withdrawn <= on) or (g.expires is not None and g.expires < on)
               for g in covering)
    decision = decide_consent(Subject(id="s1", name="S", grants=grant_list), purpose, on)
    if covering and dead:
        assert decision.outcome is not ConsentOutcome.GRANTED
        if any(g.withdrawn is not None and g.withdrawn <= on for g in covering):
            assert decision.outcome is ConsentOutcome.WITHDRAWN
        else:
            assert decision.outcome is ConsentOutcome.EXPIRED
    if not covering:
        assert decision.outcome is ConsentOutcome.PURPOSE_NOT_COVERED


@SETTINGS
@given(grant=grants(), purpose=st.sampled_from(PURPOSES), days=st.integers(0, 3000))
def test_withdrawal_is_final(grant, purpose, days):
    """Once withdrawn, a lone grant stays refused on every later day."""
    if grant.withdrawn is None:
        return
    on = grant.withdrawn + dt.timedelta(days=days)
    decision = decide_consent(Subject(id="s1", name="S", grants=[grant]), purpose, on)
    assert decision.outcome is not ConsentOutcome.GRANTED


@SETTINGS
@given(grant_list=st.lists(grants(), max_size=4), purpose=st.sampled_from(PURPOSES), on=DATES)
def test_the_decision_does_not_depend_on_grant_order(grant_list, purpose, on):
    a = decide_consent(Subject(id="s1", name="S", grants=grant_list), purpose, on)
    b = decide_consent(Subject(id="s1", name="S", grants=list(reversed(grant_list))), purpose, on)
    assert a.outcome is b.outcome
