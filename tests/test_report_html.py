"""The HTML compliance report: content, hostile names, thumbnail redaction, and a real browser.

The browser tests drive Debian's headless Chromium (/usr/bin/chromium, or $LIKENESS_CHROMIUM) through
Playwright; they skip, saying why, where either is missing. Screenshots and a PDF print of the report
are saved under test-artifacts/ at the repository root.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml

from scanner.outputs.html_report import HtmlWriter
from scanner.pipeline.scan import ScanOptions, run_scan
from scanner.policy.consent.records import load_consent
from scanner.policy.waivers import load_waivers

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path(os.environ.get("LIKENESS_CHROMIUM", "/usr/bin/chromium"))
AS_OF = dt.date(2026, 11, 27)
MEDIA = ("team_photo.jpg", "voice_memo.m4a")

# Strings that would run script if they reached the page as markup. File names cannot hold "/".
HOSTILE_FILES = {
    "team_photo.jpg": "<img src=x onerror=window.__pwned=1>.jpg",
    "voice_memo.m4a": '"onload="window.__pwned=2" <svg onload=window.__pwned=3>.m4a',
}
HOSTILE_NAMES = {
    "obama": "<script>window.__pwned=4</script>",
    "dave": "</style><script>window.__pwned=5</script>",
    "erin": '"onload="window.__pwned=6" x="',
    "carol": "</title></textarea><img src=x onerror=window.__pwned=7>",
}
HOSTILE_REASON = "<script>window.__pwned=8</script> legal hold"
HOSTILE_APPROVER = '"><svg onload=window.__pwned=9>'
HOSTILE_OPTION = "</script><script>window.__pwned=10</script>"
HOSTILE_WARNING = "<iframe src=javascript:window.__pwned=11></iframe>"
HOSTILE_SCAN_ID = "</title><script>window.__pwned=12</script>"
ALL_HOSTILE = [*HOSTILE_NAMES.values(), HOSTILE_REASON, HOSTILE_APPROVER, HOSTILE_OPTION, HOSTILE_WARNING,
               HOSTILE_SCAN_ID, *(Path(n).stem for n in HOSTILE_FILES.values())]


def _scan(inputs: list[Path], consent: Path, waivers: Path | None = None):
    options = ScanOptions(purposes=["ai-training"], as_of=AS_OF,
                          waivers=load_waivers(waivers) if waivers else None)
    return run_scan(inputs, load_consent(consent), options)


@pytest.fixture(scope="module")
def small_scan(sample_data):
    """A real scan of a photo and a voice memo: 4 people, 4 findings (LK001, LK003, LK004, LK005)."""
    return _scan([sample_data / "recordings" / name for name in MEDIA], sample_data / "consent.yaml")


@pytest.fixture(scope="module")
def report(small_scan, tmp_path_factory) -> Path:
    return HtmlWriter().write(small_scan, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def hostile_report(sample_data, tmp_path_factory) -> Path:
    """A real scan where file names, subject names, a waiver and the metadata hold markup and script."""
    work = tmp_path_factory.mktemp("hostile")
    media = work / "media"
    media.mkdir()
    for original, hostile in HOSTILE_FILES.items():
        shutil.copy(sample_data / "recordings" / original, media / hostile)
    consent = yaml.safe_load((sample_data / "consent.yaml").read_text())
    for subject in consent["subjects"]:
        subject["name"] = HOSTILE_NAMES.get(subject["id"], subject["name"])
    shutil.copytree(sample_data / "enrol", work / "enrol")  # enrolment paths stay relative to the file
    (work / "consent.yaml").write_text(yaml.safe_dump(consent))
    waivers = work / "waivers.yaml"
    waivers.write_text(yaml.safe_dump({"waivers": [
        {"rule": "LK001", "reason": HOSTILE_REASON, "approved_by": HOSTILE_APPROVER, "expires": "2027-06-30"},
    ]}))
    result = _scan(sorted(media.iterdir()), work / "consent.yaml", waivers)
    assert result.suppressed, "the waiver should accept the unknown person's finding"
    assert {str(r.path.name) for r in result.recordings} == set(HOSTILE_FILES.values())
    result = dataclasses.replace(
        result,
        scan_id=HOSTILE_SCAN_ID,
        options={**result.options, "note": HOSTILE_OPTION},
        warnings=[*result.warnings, HOSTILE_WARNING],
    )
    return HtmlWriter().write(result, work)


# --------------------------------------------------------------------------------------------
# Markup
# --------------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.headings: list[tuple[str, str]] = []
        self._heading: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("h1", "h2", "h3", "h4"):
            self._heading, self._text = tag, []

    def handle_endtag(self, tag):
        if tag == self._heading:
            self.headings.append((tag, " ".join("".join(self._text).split())))
            self._heading = None

    def handle_data(self, data):
        if self._heading:
            self._text.append(data)


def _tags(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    return parser


def test_report_has_the_sections_an_auditor_expects(report):
    html = report.read_text(encoding="utf-8")
    parsed = _tags(html)
    assert [t for t, _ in parsed.headings].count("h1") == 1
    h2 = [text for tag, text in parsed.headings if tag == "h2"]
    assert h2 == ["Overview", "Findings", "People", "Recordings", "Scan details for audit"]
    # Overview: verdict against --fail-on (high by default: the unknown person's LK001 is high).
    assert "FAIL" in html and "--fail-on high" in html
    assert "consent coverage: 1 of 4 people" in html  # only obama's consent covers ai-training
    # Every table header cell says what it heads; every image has a text alternative.
    for tag, attrs in parsed.tags:
        if tag == "th":
            assert attrs.get("scope") in ("col", "row"), attrs
        if tag == "img":
            assert attrs.get("alt")
        if tag == "svg":
            assert attrs.get("role") == "img" and (attrs.get("aria-label") or attrs.get("aria-labelledby"))
    # One finding row per finding, linked from the person cards.
    rows = [a for t, a in parsed.tags if t == "tr" and a.get("id", "").startswith("f-")]
    assert sorted(a["data-rule"] for a in rows) == ["LK001", "LK003", "LK004", "LK005"]
    for row in rows:
        assert f'href="#{row["id"]}"' in html
    # Audit details: input hashes and the consent file hash.
    assert re.search(r"sha256 <code>[0-9a-f]{64}</code>", html)
    assert len(re.findall(r"<td class=\"wrap\"><code>[0-9a-f]{64}</code></td>", html)) == len(MEDIA)


def test_templates_ship_with_the_package():
    """pyproject ships reports/templates/*.j2 as scanner/templates: every template must sit at the top level."""
    from scanner.outputs.html_report import template_dir

    templates = sorted(template_dir().rglob("*.j2"))
    assert templates and all(t.parent == template_dir() for t in templates)


def test_consent_status_is_shown_per_person_and_purpose(report):
    html = report.read_text(encoding="utf-8")

    def card(pid: str) -> str:
        start = html.index(f'id="p-{pid}"')
        return html[start:html.index("</article>", start)]

    assert "consent expired" in card("dave")
    assert "purpose not covered" in card("erin")
    assert "consent in force, risk above what was accepted" in card("obama")
    assert "not in the consent records" in card("unknown-1")
    # Time codes of the voice memo speakers, and the match confidence.
    assert re.search(r"voice_memo\.m4a</code></a></td><td>&ndash;</td><td>0:0\d\.\d-0:\d\d\.\d", card("dave"))
    assert "confidence 1.00" in card("obama") or "confidence 0.99" in card("obama")


def test_thumbnails_are_the_only_images_one_per_person_with_a_face(small_scan, report):
    html = report.read_text(encoding="utf-8")
    with_face = [p for p in small_scan.people if any(s.cluster.thumbnail is not None for s in p.faces)]
    assert len(with_face) == 2
    assert html.count("data:image/") == len(with_face) == len(re.findall(r"<img ", html))
    assert "encoding" not in html.lower() and "voiceprint" not in html.lower()
    for needle in ("http://", "https://", 'src="//', "url("):
        assert needle not in html


def _contrast(a: str, b: str) -> float:
    def luminance(hex_colour: str) -> float:
        channels = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_tier_badges_have_sufficient_contrast():
    from scanner.outputs.html_report import TIER_COLOURS

    for level, colour in TIER_COLOURS.items():
        assert _contrast(colour, "#ffffff") >= 4.5, level  # white badge text, WCAG AA


def _faces_in_data_uris(html: str) -> list[int]:
    import base64
    import io

    import face_recognition
    from PIL import Image

    counts = []
    for payload in re.findall(r"data:image/[a-z]+;base64,([A-Za-z0-9+/=]+)", html):
        image = np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))).convert("RGB"))
        counts.append(len(face_recognition.face_locations(image, number_of_times_to_upsample=2)))
    return counts


def test_redact_thumbnails_removes_every_face_image(small_scan, report, tmp_path):
    # Control: the ordinary report's thumbnails are faces a face detector finds.
    assert _faces_in_data_uris(report.read_text(encoding="utf-8")) == [1, 1]
    html = HtmlWriter(redact_thumbnails=True).write(small_scan, tmp_path).read_text(encoding="utf-8")
    assert "data:image" not in html and "<img" not in html
    assert _faces_in_data_uris(html) == []
    assert html.count(">thumbnail removed<") == 2 and "removed (--redact-thumbnails)" in html


def test_changes_since_the_previous_scan(small_scan, tmp_path):
    new = next(f for f in small_scan.findings if f.rule_id == "LK003")
    changes = {
        "old": "20261001-000000-abcdef01-0000", "new": small_scan.scan_id,
        "new_findings": [{"fingerprint": new.fingerprint, "rule_id": "LK003", "title": new.title}],
        "resolved_findings": [{"fingerprint": "f" * 32, "rule_id": "LK002", "person_id": "carol",
                               "title": "Consent <b>withdrawn</b>", "severity": "high"}],
        "unchanged_findings": 3,
        "new_people": [{"person_id": "unknown-1", "subject_id": None, "name": None, "combined_tier": "medium"}],
        "gone_people": [{"person_id": "carol", "subject_id": "carol", "name": "Carol Park", "combined_tier": "high"}],
    }
    html = HtmlWriter(changes=changes).write(small_scan, tmp_path).read_text(encoding="utf-8")
    assert "Changes since the previous scan" in html and "20261001-000000-abcdef01-0000" in html
    assert "1 new finding(s), 1 resolved" in html and "Consent &lt;b&gt;withdrawn&lt;/b&gt;" in html
    assert html.count("new since the previous scan") == 1
    row = html[html.index(f'id="f-{new.fingerprint}"'):]
    assert row.index("new since the previous scan") < row.index("</tr>")
    assert "Changes since the previous scan" not in HtmlWriter().render(small_scan)


def test_hostile_names_are_text_in_the_markup(hostile_report):
    html = hostile_report.read_text(encoding="utf-8")
    parsed = _tags(html)
    assert [t for t, _ in parsed.tags].count("script") == 2  # the layout guard in <head>, the page script
    assert not [t for t, _ in parsed.tags if t in ("iframe", "textarea", "object", "embed", "base", "form")]
    assert [t for t, _ in parsed.tags].count("style") == 1
    for tag, attrs in parsed.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert tag != "img" or attrs["src"].startswith("data:image/jpeg;base64,")
    for hostile in ALL_HOSTILE:
        assert hostile not in html, hostile
    assert "&lt;script&gt;window.__pwned=4&lt;/script&gt;" in html
    for script in re.findall(r"<script>(.*?)</script>", html, re.S):
        assert "__pwned" not in script


def _synthetic(**size):
    spec = importlib.util.spec_from_file_location("bench_report", REPO / "bench" / "report.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench.synthetic_result(**size)


def test_large_synthetic_report_stays_lean(tmp_path):
    """No per-row repeated blobs: one thumbnail per person, and findings do not repeat person evidence."""
    result = _synthetic(recordings=100, people=30, findings=500)
    html = HtmlWriter().write(result, tmp_path).read_text(encoding="utf-8")
    assert html.count("data:image/") == 30
    assert html.count("usable face of 180 px") == 30  # once per person card, not once per finding
    assert len(html.encode()) < 1_500_000


# --------------------------------------------------------------------------------------------
# In a real browser
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="Playwright is not installed (the browser test needs the 'playwright' dev dependency)",
    )
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (scripts/test installs Debian's chromium; "
                    f"or set LIKENESS_CHROMIUM)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


class _Page:
    """A page that records console errors, script errors and every request it makes."""

    def __init__(self, browser, report: Path):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.context.on("request", lambda r: self.requests.append(r.url))
        self.url = report.resolve().as_uri()
        self.page.goto(self.url, wait_until="load")

    def external_requests(self) -> list[str]:
        return [u for u in self.requests if u != self.url and not u.startswith("data:")]

    def close(self):
        self.context.close()


@pytest.mark.slow
def test_report_in_a_browser_filters_sorts_and_prints(browser, report):
    view = _Page(browser, report)
    page = view.page
    try:
        assert page.locator("#finding-filters").is_visible()
        assert page.locator("#filter-count").inner_text() == "4 of 4 findings shown"

        # Filter by severity, then by person; the count and the visible rows follow.
        page.select_option("#filter-severity", label="medium")
        assert page.locator("#filter-count").inner_text() == "3 of 4 findings shown"
        assert page.locator("#findings-table tbody tr:visible").count() == 3
        shown = page.eval_on_selector_all("#findings-table tbody tr:not([hidden])", "rs => rs.map(r => r.dataset.s)")
        assert set(shown) == {"2"}
        page.select_option("#filter-person", label="dave")
        assert page.locator("#findings-table tbody tr:visible").count() == 1
        assert "LK003" in page.locator("#findings-table tbody tr:visible").inner_text()
        page.click("#filter-reset")
        page.fill("#filter-text", "withdrew OR nothing-matches-this")
        assert page.locator("#filter-count").inner_text() == "0 of 4 findings shown"
        page.fill("#filter-text", "voice_memo")
        assert page.locator("#filter-count").inner_text() == "2 of 4 findings shown"
        page.click("#filter-reset")

        # Sort by rule with the keyboard: focus the header button, press Enter.
        button = page.locator("#findings-table thead th", has_text="Rule").locator("button")
        button.focus()
        page.keyboard.press("Enter")
        assert page.locator("#findings-table thead th", has_text="Rule").get_attribute("aria-sort") == "ascending"
        rules = page.eval_on_selector_all("#findings-table tbody tr", "rs => rs.map(r => r.dataset.rule)")
        assert rules == sorted(rules)
        page.keyboard.press("Enter")
        rules = page.eval_on_selector_all("#findings-table tbody tr", "rs => rs.map(r => r.dataset.rule)")
        assert rules == sorted(rules, reverse=True)

        # The first Tab reaches the skip link.
        page.mouse.click(1, 1)
        page.evaluate("document.activeElement.blur()")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.className") == "skip"

        # Thumbnails loaded (from data: URIs).
        assert page.eval_on_selector_all("img.thumb", "is => is.every(i => i.complete && i.naturalWidth > 0)")

        ARTIFACTS.mkdir(exist_ok=True)
        page.select_option("#filter-severity", label="medium")
        page.screenshot(path=str(ARTIFACTS / "report-filtered.png"), full_page=True)
        page.click("#filter-reset")
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)

        # Print: controls hidden, table headers repeat, and Chromium makes a PDF of it.
        page.emulate_media(media="print")
        assert not page.locator("#finding-filters").is_visible()
        display = page.eval_on_selector("#findings-table thead", "e => getComputedStyle(e).display")
        assert display == "table-header-group"
        page.pdf(path=str(ARTIFACTS / "report.pdf"), format="A4", print_background=True)
        assert (ARTIFACTS / "report.pdf").stat().st_size > 10_000

        assert view.errors == []
        assert view.external_requests() == []
    finally:
        view.close()


def test_hostile_names_never_run_in_a_browser(browser, hostile_report):
    view = _Page(browser, hostile_report)
    page = view.page
    try:
        page.wait_for_timeout(300)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        text = page.inner_text("body")
        present = [HOSTILE_NAMES[s] for s in ("obama", "dave", "erin")]  # carol is in neither recording
        for hostile in [*present, HOSTILE_REASON, HOSTILE_APPROVER, HOSTILE_OPTION, HOSTILE_WARNING]:
            assert hostile.strip() in text, hostile
        assert page.title() == f"likeness report {HOSTILE_SCAN_ID}"
        assert page.locator("script").count() == 2
        # The filters still work with hostile values in the options.
        page.select_option("#filter-recording", index=1)
        assert "of" in page.locator("#filter-count").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report-hostile-names.png"), full_page=True)
        assert view.errors == []
        assert view.external_requests() == []
    finally:
        view.close()


@pytest.mark.slow
def test_long_findings_table_shows_a_page_then_all(browser, tmp_path):
    report = HtmlWriter().write(_synthetic(recordings=60, people=20, findings=600), tmp_path)
    view = _Page(browser, report)
    page = view.page
    try:
        total = page.locator("#findings-table tbody tr").count()
        assert page.locator("#findings-table tbody tr:visible").count() == 200
        assert page.locator("#filter-count").inner_text() == f"200 of {total} findings shown ({total} match)"
        page.click("#filter-more")
        assert page.locator("#findings-table tbody tr:visible").count() == total
        page.select_option("#filter-severity", label="low")
        low = page.locator("#findings-table tbody tr:visible").count()
        assert 0 < low <= 200 and page.locator("#filter-more").is_hidden()
        page.select_option("#filter-recording", index=1)
        assert page.locator("#findings-table tbody tr:visible").count() <= low
        page.click("#filter-reset")
        assert page.locator("#findings-table tbody tr:visible").count() == 200
        page.pdf(path=str(tmp_path / "report.pdf"))  # printing shows every row, not the first page
        assert page.locator("#findings-table tbody tr:visible").count() == total
        assert view.errors == [] and view.external_requests() == []
    finally:
        view.close()


def test_report_is_readable_without_script(browser, report):
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(report.resolve().as_uri())
        assert page.locator("#findings-table tbody tr:visible").count() == 4
        assert page.locator("#finding-filters").is_hidden()
        assert page.locator(".person:visible").count() == 4
    finally:
        context.close()


def test_compiled_templates_are_kept_between_runs_and_a_bad_cache_never_loses_the_report(
        small_scan, tmp_path, monkeypatch):
    """The report's templates are compiled once per machine into the cache folder; the same page
    comes from the kept copies, from damaged copies and without any usable cache folder."""
    expected = HtmlWriter(redact_thumbnails=True).render(small_scan)
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    assert HtmlWriter(redact_thumbnails=True).render(small_scan) == expected
    kept = sorted((cache / "likeness" / "templates").iterdir())
    assert kept and all(p.stat().st_size > 0 for p in kept)
    assert HtmlWriter(redact_thumbnails=True).render(small_scan) == expected  # from the kept copies
    for copy in kept:
        copy.write_bytes(b"not a compiled template")
    assert HtmlWriter(redact_thumbnails=True).render(small_scan) == expected
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert HtmlWriter(redact_thumbnails=True).render(small_scan) == expected
