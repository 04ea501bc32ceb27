"""Report writers, one module per output format behind one small interface.

Every writer takes a finished `ScanResult` and an output folder and returns the file it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from scanner.models import ScanResult


class ReportWriter(Protocol):
    """One output format: its `format` name (for `--format`) and the `filename` it writes."""

    format: str
    filename: str

    def write(self, result: ScanResult, out_dir: Path) -> Path:
        """Write `result` into the existing folder `out_dir`; return the path of the file written."""
        ...


def writers(redact_thumbnails: bool = False, changes: dict | None = None) -> dict[str, ReportWriter]:
    """The available writers by format name (`changes`: the diff against the previous scan, for HTML)."""
    # Deferred: the writers bring jinja2, PIL and the XML and SARIF code, which commands that write
    # no report (--version, --help, history, diff, purge) do not need.
    from scanner.outputs.csv_report import CsvWriter
    from scanner.outputs.html_report import HtmlWriter
    from scanner.outputs.json_report import JsonWriter
    from scanner.outputs.junit_report import JunitWriter
    from scanner.outputs.sarif_report import SarifWriter

    html = HtmlWriter(redact_thumbnails=redact_thumbnails, changes=changes)
    writers = (html, JsonWriter(), SarifWriter(), JunitWriter(), CsvWriter())
    return {w.format: w for w in writers}


def write_reports(
    result: ScanResult,
    out_dir: Path,
    formats: list[str],
    redact_thumbnails: bool = False,
    changes: dict | None = None,
) -> list[Path]:
    """Write `result` in each of `formats` into `out_dir` (created if needed)."""
    available = writers(redact_thumbnails, changes)
    unknown = [f for f in formats if f not in available]
    if unknown:
        raise ValueError(f"unknown format(s): {', '.join(unknown)} (available: {', '.join(sorted(available))})")
    out_dir.mkdir(parents=True, exist_ok=True)
    return [available[f].write(result, out_dir) for f in formats]
