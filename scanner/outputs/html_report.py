"""report.html: one self-contained page for auditors (inline CSS, no external requests)."""

from __future__ import annotations

import base64
import io
from importlib import resources
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, select_autoescape
from PIL import Image, ImageFilter

from scanner.models import Level, Person, ScanResult
from scanner.outputs.document import build_document, timecode

TIER_COLOURS = {
    "none": "#6b7280",
    "low": "#2563eb",
    "medium": "#b45309",
    "high": "#c2410c",
    "critical": "#b91c1c",
}


def template_dir() -> Path:
    """Where the Jinja2 templates are: the source tree's reports/templates, or the installed copy."""
    source_tree = Path(__file__).resolve().parents[2] / "reports" / "templates"
    if source_tree.is_dir():
        return source_tree
    return Path(str(resources.files("scanner") / "templates"))


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(template_dir())),
        autoescape=select_autoescape(["html", "j2"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["tier_colour"] = lambda tier: TIER_COLOURS.get(tier or "none", "#6b7280")
    env.filters["timecode"] = lambda s: "" if s is None else timecode(s)
    return env


class HtmlWriter:
    format = "html"
    filename = "report.html"

    def __init__(self, redact_thumbnails: bool = False):
        self.redact_thumbnails = redact_thumbnails

    def write(self, result: ScanResult, out_dir: Path) -> Path:
        doc = build_document(result)
        thumbnails = {p.person_id: self._thumbnail(p) for p in result.people}
        html = environment().get_template("report.html.j2").render(
            doc=doc,
            thumbnails=thumbnails,
            levels=[level.value for level in Level],
        )
        path = out_dir / self.filename
        path.write_text(html, encoding="utf-8")
        return path

    def _thumbnail(self, person: Person) -> str | None:
        clusters = [s.cluster for s in person.faces if s.cluster.thumbnail is not None]
        if not clusters:
            return None
        best = max(clusters, key=lambda c: c.best_face_px)
        image = Image.fromarray(np.asarray(best.thumbnail, dtype=np.uint8))
        if self.redact_thumbnails:
            image = image.filter(ImageFilter.GaussianBlur(radius=max(4, image.width // 8)))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
