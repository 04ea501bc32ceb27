"""Running a scan on the terminal: a progress bar (or one line per recording), the summary and the verdict."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from scanner.cli.shared import (
    EXIT_FAILURE,
    EXIT_FINDINGS,
    EXIT_OK,
    err,
    out,
    usage_error,
)
from scanner.media.objstore import ObjectStoreError
from scanner.models import RecordingAnalysis, RecordingStatus, ScanResult
from scanner.outputs import write_reports
from scanner.policy.consent.records import ConsentRecords


def run_with_progress(
    paths: list[Path], records: ConsentRecords | None, options, quiet: bool, store=None
) -> ScanResult:
    """Run the scan (`scanner.pipeline.scan.run_scan`) with progress on stderr, and return its result.

    A bucket that cannot be listed exits 2; Ctrl-C exits 130 saying what is saved in `store` to resume.
    The scan pipeline is imported here, not at the top: it loads the analysis stack (see scan_command).
    """
    from scanner.pipeline.scan import ScanInterrupted, ScanStats

    stats = ScanStats()
    started = time.monotonic()
    try:
        result = _scan_with_progress(paths, records, options, quiet, store, stats)
    except ObjectStoreError as exc:  # a bucket or prefix that cannot be listed: nothing was scanned
        usage_error(str(exc))
    except ScanInterrupted:
        saved = f"; {stats.analysed} analysed recording(s) are saved in {store.path}" if store is not None else ""
        err.print(f"interrupted after {stats.analysed + stats.reused} of {stats.total} recording(s){saved}. "
                  "Run the same command again to resume.", style="red")
        raise typer.Exit(130) from None
    if not quiet:
        reused = f", {stats.reused} unchanged reused from the scan database" if stats.reused else ""
        err.print(f"Scanned {len(result.recordings)} recording(s) in {time.monotonic() - started:.1f} s "
                  f"({stats.analysed} analysed{reused})")
        if store is not None:
            err.print(f"Scan {result.scan_id} stored in {store.path}")
    for warning in result.warnings:
        err.print(f"warning: {warning}", style="yellow")
    return result


def _scan_with_progress(paths, records, options, quiet: bool, store, stats) -> ScanResult:
    from scanner.pipeline.scan import run_scan

    if sys.stderr.isatty() and not quiet:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[media]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        ) as bar:
            task = bar.add_task("Scanning", total=None, media="")
            media_s = 0.0

            def tick(done: int, total: int, rec: RecordingAnalysis) -> None:
                nonlocal media_s
                media_s += rec.media.duration_s if rec.media else 0.0
                reused = f", {stats.reused} unchanged" if stats.reused else ""
                bar.update(task, completed=done, total=total, media=f"{media_s / 60:.1f} min of media{reused}")
                _report_unreadable(rec)

            result = run_scan(paths, records, options, progress=tick, store=store, stats=stats)
    else:

        def log_line(done: int, total: int, rec: RecordingAnalysis) -> None:
            if rec.status is not RecordingStatus.OK:
                _report_unreadable(rec)
            elif not quiet:
                duration = f"{rec.media.duration_s:.1f} s" if rec.media else ""
                cached = " (unchanged: from the scan database)" if stats.last_reused else ""
                err.print(f"[{done}/{total}] {rec.path} ({duration}){cached}")

        result = run_scan(paths, records, options, progress=log_line, store=store, stats=stats)
    return result


def _report_unreadable(rec: RecordingAnalysis) -> None:
    """Name a file that could not be analysed, or only in part, on the terminal."""
    if rec.status is RecordingStatus.UNREADABLE:
        err.print(f"unreadable: {rec.path}: {rec.error}", style="red")
    elif rec.status is RecordingStatus.PARTIAL and rec.coverage is not None:
        cov = rec.coverage
        err.print(f"partial: {rec.path}: {cov.analysed_s:.1f} of {cov.duration_s:.1f} s analysed "
                  f"({'; '.join(cov.causes)})", style="yellow")


def write_and_exit(
    result: ScanResult, out_dir: Path, formats: list[str], redact: bool, quiet: bool, changes: dict | None = None
) -> None:
    """Write the reports in `formats` to `out_dir`, print the summary and verdict, and exit.

    Exit status: 1 when a finding is at or above the result's `fail_on`, else 0; 3 when the reports
    cannot be written. `changes` (since the previous scan) goes into the reports that show it.
    """
    try:
        written = write_reports(result, out_dir, formats, redact_thumbnails=redact, changes=changes)
    except OSError as exc:
        err.print(f"cannot write reports to {out_dir}: {exc}", style="red")
        raise typer.Exit(EXIT_FAILURE) from None
    failing = result.failing_findings()
    if not quiet:
        by_severity = {}
        for f in result.findings:
            by_severity[f.severity.value] = by_severity.get(f.severity.value, 0) + 1
        summary = ", ".join(f"{n} {sev}" for sev, n in by_severity.items()) or "none"
        out.print(f"{len(result.people)} people, {len(result.findings)} findings ({summary})")
        for path in written:
            out.print(f"wrote {path}")
    if failing:
        out.print(f"FAIL: {len(failing)} finding(s) at or above --fail-on {result.fail_on.value}")
        raise typer.Exit(EXIT_FINDINGS)
    out.print(f"PASS: no finding at or above --fail-on {result.fail_on.value}")
    raise typer.Exit(EXIT_OK)
