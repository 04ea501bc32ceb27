"""report.html: one self-contained page for auditors (inline CSS and script, no external requests).

The page renders the results.json document (`build_document`) plus a few views computed here from the
same `ScanResult`: consent status per person and purpose, per-person time codes, the face x voice
risk matrix, and indices that let the findings table filter and sort without repeating data per row.

Biometric content: the face thumbnails (one small JPEG per person, the best frame) are the only
biometric content in the page. With `redact_thumbnails=True` they are left out entirely: no image,
blurred or not, is written; the card shows a placeholder saying so. Blurring was rejected because a
blurred face can still be recognised or de-blurred, and the auditor needs the ids and evidence, not
the face.

Everything that comes from outside (file names, subject names, waiver reasons, metadata) goes through
Jinja2's autoescaping in HTML text and quoted attributes, never into the style sheet, and into the
script only as indices; the Content-Security-Policy forbids every external request.
"""

from __future__ import annotations

import base64
import datetime as dt
import gc
import io
import math
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, pass_context, select_autoescape
from markupsafe import Markup
from PIL import Image

from scanner.analysis.model_cache import cache_path
from scanner.media.objstore import is_url
from scanner.models import Level, Person, ScanResult, timecode
from scanner.outputs.document import build_document

TIER_COLOURS = {  # white text on each has a contrast ratio of at least 4.5:1 (WCAG AA)
    "none": "#4b5563",
    "low": "#1d4ed8",
    "medium": "#92400e",
    "high": "#c2410c",
    "critical": "#991b1b",
}
LEVELS = [level.value for level in Level]
RANK = {level: i for i, level in enumerate(LEVELS)}

# Consent rules and what each says about a person's consent for a purpose, worst first.
CONSENT_STATUS = {
    "LK001": "unknown",
    "LK007": "no-consent",
    "LK008": "no-consent",
    "LK002": "withdrawn",
    "LK003": "expired",
    "LK004": "not-covered",
    "LK005": "risk-above",
}
STATUS_ORDER = ["unknown", "no-consent", "withdrawn", "expired", "not-covered", "risk-above", "granted"]
STATUS_LABELS = {
    "unknown": "not in the consent records",
    "no-consent": "no consent on record",
    "withdrawn": "consent withdrawn",
    "expired": "consent expired",
    "not-covered": "purpose not covered",
    "risk-above": "consent in force, risk above what was accepted",
    "granted": "consent in force",
}
COVERED = {"granted", "risk-above"}  # consent exists for the purpose
# Finding evidence lines that restate the person card (shown once there, linked from each finding).
PERSON_EVIDENCE = ("face: ", "voice: ", "matched to subject ")
THUMBNAIL_PX = 96


_timecode = lru_cache(maxsize=65536)(timecode)


def format_ranges(ranges: list[dict]) -> str:
    """'0:01.0-0:18.5; 0:20.0-0:22.1' (as document.format_ranges, with cached time codes: reports are big)."""
    parts = []
    for r in ranges:
        start, end = _timecode(r["start"]), _timecode(r["end"])
        parts.append(start if start == end else f"{start}-{end}")
    return "; ".join(parts)


def template_dir() -> Path:
    """Where the Jinja2 templates are: the source tree's reports/templates, or the installed copy."""
    source_tree = Path(__file__).resolve().parents[2] / "reports" / "templates"
    if source_tree.is_dir():
        return source_tree
    return Path(str(resources.files("scanner") / "templates"))


@lru_cache(maxsize=1)
class _CompiledTemplates(FileSystemBytecodeCache):
    """Jinja2's cache of compiled templates in a folder, skipped where the folder cannot be used: a
    report is never lost to its cache."""

    def load_bytecode(self, bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # noqa: BLE001 - an unreadable copy: the template is compiled again
            bucket.reset()

    def dump_bytecode(self, bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:  # a full or read-only disk: this run compiled it, the next will again
            pass


def compiled_templates() -> FileSystemBytecodeCache | None:
    """Where compiled report templates are kept between runs (`model_cache`'s folder, `templates`):
    compiling the report's templates costs every command about 0.35 CPU s, loading them a few
    milliseconds. Jinja2 names each copy by its template and checks it against the template's source,
    so a changed template is compiled again. None when no cache folder can be made."""
    folder = cache_path("templates")
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _CompiledTemplates(str(folder))


def environment() -> Environment:
    """The report's Jinja2 environment (compiled templates are kept between runs: `compiled_templates`)."""
    env = Environment(
        loader=FileSystemLoader(str(template_dir())),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        bytecode_cache=compiled_templates(),
    )
    env.globals["tier_colour"] = lambda tier: TIER_COLOURS.get(tier or "none", TIER_COLOURS["none"])
    env.filters["timecode"] = lambda s: "" if s is None else timecode(s)
    env.filters["ranges"] = format_ranges
    env.filters["rel"] = _rel
    env.filters["span"] = media_span
    return env


@pass_context
def _rel(context, path: str) -> str:
    """A path as shown in the report: relative to the scan root (the render's `rel` function)."""
    return context["rel"](path)


class HtmlWriter:
    """report.html for auditors (see the module docstring)."""

    format = "html"
    filename = "report.html"

    def __init__(self, redact_thumbnails: bool = False, changes: dict | None = None):
        """`changes`: what changed since the previous scan in the store, in the shape `likeness diff --json`
        prints (old, new, new_findings, resolved_findings, unchanged_findings, new_people, gone_people)."""
        self.redact_thumbnails = redact_thumbnails
        self.changes = changes

    def render(self, result: ScanResult) -> str:
        """The report page for `result`, as HTML text."""
        # Building a large report allocates millions of small objects and no cycles: the cyclic
        # garbage collector would only slow it down by a third.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._render(result)
        finally:
            if collecting:
                gc.enable()

    def _render(self, result: ScanResult) -> str:
        doc = build_document(result)
        thumbnails = {} if self.redact_thumbnails else {p.person_id: thumbnail(p) for p in result.people}
        root, rel = relative_paths(result.root)
        return environment().get_template("report.html.j2").render(
            doc=doc,
            root=root,
            rel=rel,
            view=build_view(doc, result),
            changes=self.changes,
            new_fingerprints={f.get("fingerprint") for f in (self.changes or {}).get("new_findings", [])},
            thumbnails=thumbnails,
            redacted=self.redact_thumbnails,
            levels=LEVELS,
            colours=TIER_COLOURS,
            status_labels=STATUS_LABELS,
        )

    def write(self, result: ScanResult, out_dir: Path) -> Path:
        """Write report.html into `out_dir`; return its path."""
        path = out_dir / self.filename
        # File names that are not valid UTF-8 show as \udcXX escapes instead of breaking the page.
        path.write_text(self.render(result), encoding="utf-8", errors="backslashreplace")
        return path


def relative_paths(root: Path | None):
    """(root shown in the report, filter showing a path relative to it). Paths outside stay whole."""
    if root is None:
        return None, lambda path: path
    prefix = os.path.abspath(str(root)).rstrip(os.sep) + os.sep
    if prefix == os.sep:
        return None, lambda path: path

    @lru_cache(maxsize=None)
    def rel(path: str) -> str:
        if is_url(path):  # objects are named by their whole URL
            return path
        full = os.path.abspath(path)
        return full[len(prefix):] if full.startswith(prefix) else path

    return prefix.rstrip(os.sep), rel


def thumbnail(person: Person) -> str | None:
    """The person's best face crop as a small JPEG data: URI (one per person), or None without a face."""
    clusters = [s.cluster for s in person.faces if s.cluster.thumbnail is not None]
    if not clusters:
        return None
    best = max(clusters, key=lambda c: c.best_face_px)
    image = Image.fromarray(np.asarray(best.thumbnail, dtype=np.uint8)).convert("RGB")
    if max(image.size) > THUMBNAIL_PX:
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=82, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------------------
# Views computed for the page
# --------------------------------------------------------------------------------------------


def build_view(doc: dict, result: ScanResult) -> dict:
    """What the page shows beyond `doc` (the results document of `result`): per-person and
    per-recording views, findings with the indices the table filters and sorts by, consent coverage
    per purpose, the face x voice risk matrix and the chart peaks.
    """
    recordings = doc["recordings"]
    rec_index: dict[str, int] = {r["path"]: i for i, r in enumerate(recordings)}
    extra_paths: list[str] = []  # paths findings name that are not scanned recordings (a waivers file)

    def rec_idx(path: str) -> int:
        if path not in rec_index:
            rec_index[path] = len(rec_index)
            extra_paths.append(path)
        return rec_index[path]

    people = sorted(
        doc["people"],
        key=lambda p: (-RANK[p["risk"]["combined_tier"]] if p["risk"] else 0,
                       -(p["risk"]["score"] if p["risk"] else 0), p["person_id"]),
    )
    person_index = {p["person_id"]: i for i, p in enumerate(people)}
    rec_purposes = {r["path"]: r["purposes"] for r in recordings}

    # Who is visible / speaks where: person -> recording -> {"face": [...], "voice": [...]}.
    presence: dict[str, dict[str, dict[str, list]]] = {}
    for r in recordings:
        for kind, spans in (("face", r["appearances"]), ("voice", r["speech"])):
            for span in spans:
                if span["person_id"]:
                    entry = presence.setdefault(span["person_id"], {}).setdefault(r["path"], {"face": [], "voice": []})
                    entry[kind].append(span)

    findings = [_finding_row(f, i, rec_idx, person_index) for i, f in enumerate(doc["findings"])]
    suppressed = [_finding_row(f, i, rec_idx, person_index, prefix="w") for i, f in enumerate(doc["suppressed"])]

    by_person: dict[str, list[dict]] = {}
    for row in [*findings, *suppressed]:
        if row["f"]["person_id"]:
            by_person.setdefault(row["f"]["person_id"], []).append(row)

    person_views = {}
    for p in people:
        pid = p["person_id"]
        purposes = list(dict.fromkeys(x for path in p["recordings"] for x in rec_purposes.get(path, [])))
        consent = _consent_status(p, purposes, by_person.get(pid, []))
        person_views[pid] = {
            "index": person_index[pid],
            "consent": consent,
            "covered": bool(consent) and all(c["status"] in COVERED for c in consent),
            "presence": [
                {"path": path, "index": rec_idx(path),
                 "face": format_ranges(presence.get(pid, {}).get(path, {}).get("face", [])),
                 "voice": format_ranges(presence.get(pid, {}).get(path, {}).get("voice", []))}
                for path in p["recordings"]
            ],
            "findings": sorted(by_person.get(pid, []),
                               key=lambda row: (row["waived"], -row["rank"], row["f"]["rule_id"])),
        }

    # Per recording: timeline rows (one per person), open findings naming it.
    open_per_rec: dict[int, int] = {}
    for row in findings:
        for i in row["recs"]:
            open_per_rec[i] = open_per_rec.get(i, 0) + 1
    names = {p["person_id"]: p["name"] for p in people}
    recording_views = []
    for i, r in enumerate(recordings):
        pids = list(dict.fromkeys(s["person_id"] for s in [*r["appearances"], *r["speech"]]))
        rows = []
        for pid in pids:
            face = [s for s in r["appearances"] if s["person_id"] == pid]
            voice = [s for s in r["speech"] if s["person_id"] == pid]
            rows.append({"person_id": pid, "name": names.get(pid) if pid else None,
                         "face_text": format_ranges(face), "voice_text": format_ranges(voice),
                         "bars": _bars(face, voice, r["media"]["duration_s"] if r["media"] else 0.0, len(rows))})
        missing = (r.get("coverage") or {}).get("missing") or []
        if missing and r["media"]:  # the stretches a partial recording's analysis could not see
            rows.append({"person_id": None, "label": "not analysed", "name": None,
                         "missing_text": format_ranges(missing),
                         "bars": _bars([], [], r["media"]["duration_s"], len(rows), missing)})
        recording_views.append({"index": i, "rows": rows, "open_findings": open_per_rec.get(i, 0)})

    # Summary figures beyond the document's.
    summary = doc["summary"]
    covered = sum(1 for v in person_views.values() if v["covered"])
    purpose_coverage = {}
    for p in people:
        for c in person_views[p["person_id"]]["consent"]:
            entry = purpose_coverage.setdefault(c["purpose"], {"purpose": c["purpose"], "people": 0, "covered": 0})
            entry["people"] += 1
            entry["covered"] += c["status"] in COVERED
    matrix = [[0] * len(LEVELS) for _ in LEVELS]  # [face rank][voice rank]
    for p in people:
        if p["risk"]:
            matrix[RANK[p["risk"]["face_tier"]]][RANK[p["risk"]["voice_tier"]]] += 1
    shown = [f["severity"] for f in doc["findings"]]
    would_fail = {lvl: sum(1 for s in shown if RANK[s] >= RANK[lvl]) for lvl in LEVELS[1:]}
    media_s = summary["media_seconds"]
    # older stored scans carry no analysed_seconds: all of their readable media counted as analysed
    analysed_s = summary.get("analysed_seconds", media_s)

    rules = {}
    for row in [*findings, *suppressed]:
        rules.setdefault(row["f"]["rule_id"], row["f"]["rule_name"])

    return {
        "people": people,
        "person": person_views,
        "findings": findings,
        "suppressed": suppressed,
        "recordings": recording_views,
        "filter_recordings": sorted({i for row in findings for i in row["recs"]},
                                    key=lambda i: _path_of(i, recordings, extra_paths)),
        "filter_people": sorted({row["f"]["person_id"] for row in findings if row["f"]["person_id"]}),
        "rec_path": lambda i: _path_of(i, recordings, extra_paths),
        "rules": sorted(rules.items()),
        "coverage": {"covered": covered, "people": len(people),
                     "percent": round(100 * covered / len(people)) if people else 100,
                     "purposes": sorted(purpose_coverage.values(), key=lambda e: e["purpose"])},
        "matrix": matrix,
        "matrix_peak": max([1, *(n for row in matrix for n in row)]),
        "tier_peak": max([1, *summary["people_by_tier"].values()]),
        "severity_peak": max([1, *summary["findings_by_severity"].values()]),
        "would_fail": would_fail,
        "media_hours": media_s / 3600.0,
        "media_hms": "%d:%02d:%02d" % (media_s // 3600, media_s % 3600 // 60, media_s % 60),
        "unreadable": [r for r in recordings if r["status"] == "unreadable"],
        "partial": [r for r in recordings if r["status"] == "partial"],
        "analysed": f"{media_span(analysed_s)} of {media_span(media_s)} analysed",
        # floored, so that a recording missing a few seconds never reads as 100%
        "analysed_percent": f"{math.floor(1000 * analysed_s / media_s) / 10:g}%" if media_s else "-",
        "options": _flatten(doc["scan"]["options"]),
        "waiver_days_left": {row["anchor"]: _days_between(doc["scan"]["as_of"], row["f"]["waiver"]["expires"])
                             for row in suppressed},
    }


TIMELINE_X, TIMELINE_W, TIMELINE_ROW = 110, 345, 18


def media_span(seconds: float) -> str:
    """A length of media in words: '2 h 14 min', '5 min 3 s', '19.8 s'."""
    seconds = max(0.0, float(seconds))
    if seconds >= 3600:
        hours, rest = divmod(int(round(seconds / 60)), 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    if seconds >= 60:
        minutes, rest = divmod(int(round(seconds)), 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    return f"{seconds:.1f} s"


def _bars(face: list[dict], voice: list[dict], duration: float, row: int, missing: list[dict] = ()) -> Markup:
    """SVG bars of one timeline row: a person's face and voice, or the stretches not analysed
    (numbers only, so the markup needs no escaping)."""
    scale = TIMELINE_W / max(duration, 0.1)
    y = TIMELINE_ROW * row + 3
    parts = []
    for spans, css, dy, height in ((face, "bf", 0, 6), (voice, "bv", 7, 6), (missing, "bm", 0, 13)):
        for s in spans:
            x = TIMELINE_X + scale * s["start"]
            w = max(scale * (s["end"] - s["start"]), 2.0)
            parts.append(f'<rect x="{x:.1f}" y="{y + dy}" width="{w:.1f}" height="{height}" class="{css}"/>')
    return Markup("".join(parts))


def _path_of(i: int, recordings: list[dict], extra: list[str]) -> str:
    return recordings[i]["path"] if i < len(recordings) else extra[i - len(recordings)]


def _finding_row(f: dict, i: int, rec_idx, person_index: dict[str, int], prefix: str = "f") -> dict:
    has_card = f["person_id"] in person_index
    own = [e for e in f["evidence"] if not (has_card and e.startswith(PERSON_EVIDENCE))]
    grouped: dict[str, list[dict]] = {path: [] for path in f["recordings"]}
    for r in f["time_ranges"]:
        grouped.setdefault(r["recording"], []).append(r)
    return {
        "f": f,
        "anchor": f"{prefix}-{f['fingerprint'] or i}",
        "rank": RANK[f["severity"]],
        "recs": [rec_idx(path) for path in grouped],
        "where": [(path, rec_idx(path), format_ranges(ranges)) for path, ranges in grouped.items()],
        "person": person_index.get(f["person_id"], -1),
        "evidence": own,
        "person_evidence": has_card and len(own) < len(f["evidence"]),
        "waived": "waiver" in f,
    }


def _consent_status(person: dict, purposes: list[str], rows: list[dict]) -> list[dict]:
    """Consent status of one person for each purpose their recordings serve, from the consent findings."""
    status = {p: {"purpose": p, "status": "granted", "rules": [], "waived": False} for p in purposes}
    for row in rows:
        f = row["f"]
        kind = CONSENT_STATUS.get(f["rule_id"])
        if kind is None:
            continue
        for purpose in finding_purposes(f, purposes):
            entry = status.setdefault(purpose, {"purpose": purpose, "status": "granted", "rules": [], "waived": False})
            if STATUS_ORDER.index(kind) < STATUS_ORDER.index(entry["status"]):
                entry["status"] = kind
                entry["waived"] = row["waived"]
            entry["rules"].append({"rule_id": f["rule_id"], "anchor": row["anchor"], "waived": row["waived"]})
    return list(status.values())


def finding_purposes(finding: dict, candidates: list[str]) -> list[str]:
    """The purposes a consent finding is about: its own `purposes`, or all `candidates` when it names none."""
    return list(finding.get("purposes") or candidates)


def _flatten(options: dict, prefix: str = "") -> list[tuple[str, str]]:
    """Options as (dotted key, value) rows for the audit table."""
    rows: list[tuple[str, str]] = []
    for key, value in options.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            rows.extend(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            rows.append((name, ", ".join(str(v) for v in value) if value else "(none)"))
        else:
            rows.append((name, "(not set)" if value is None else str(value)))
    return rows


def _days_between(as_of: str, expires: str) -> int | None:
    try:
        return (dt.date.fromisoformat(str(expires)[:10]) - dt.date.fromisoformat(str(as_of)[:10])).days
    except ValueError:
        return None
