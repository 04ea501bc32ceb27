"""The commands that read the scan database: `likeness history`, `report`, `diff` and `purge`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.cli.shared import (
    EXIT_FAILURE,
    FORMATS,
    FORMATS_HELP,
    StoreOption,
    err,
    first_set,
    load_config_or_exit,
    load_consent_or_exit,
    open_store_or_exit,
    out,
    parse_formats,
    usage_error,
)
from scanner.outputs import write_reports
from scanner.policy.rules import PolicySettings
from scanner.store.connection import StoreError
from scanner.store.diff import describe_changes, scan_changes


def history(
    store: StoreOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many scans.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the scans in the scan database, newest first."""
    with open_store_or_exit(store, must_exist=True) as database:
        rows = database.scans(limit)
    if as_json:
        out.print(json.dumps([row.__dict__ for row in rows], indent=2), soft_wrap=True)
        return
    if not rows:
        out.print(f"no scans in {database.path}")
        return
    header = (f"{'SCAN ID':31} {'STARTED (UTC)':20} {'STATUS':11} {'FILES':>5} {'NEW':>5} {'REUSED':>6} "
              f"{'MEDIA MIN':>9} {'PEOPLE':>6} {'FINDINGS':>8}  VERDICT")
    out.print(header)
    for row in rows:
        summary = row.summary or {}
        out.print(
            f"{row.scan_id:31} {row.started_at.replace('+00:00', '')[:19]:20} {row.status:11} "
            f"{row.recordings_total:>5} {row.analysed:>5} {row.reused:>6} {row.media_seconds / 60:>9.1f} "
            f"{summary.get('people', ''):>6} {summary.get('findings', ''):>8}  {summary.get('verdict', '')}"
        )


def report(
    scan_id: Annotated[str, typer.Argument(help="Scan id from `likeness history` (a unique prefix, or 'latest').")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the reports.")] = Path("likeness-report"),
    formats: Annotated[
        str, typer.Option("--format", "-f", help=f"Comma-separated output formats ({FORMATS_HELP}).")
    ] = FORMATS,
    redact_thumbnails: Annotated[
        bool,
        typer.Option("--redact-thumbnails/--no-redact-thumbnails", help="Blur face thumbnails in the HTML report."),
    ] = False,
    store: StoreOption = None,
) -> None:
    """Write the reports of a stored scan again, in any format (nothing is re-analysed)."""
    format_list = parse_formats(formats)

    with open_store_or_exit(store, must_exist=True) as database:
        try:
            result = database.load_result(scan_id)
        except StoreError as exc:
            usage_error(str(exc))
    try:
        written = write_reports(result, out_dir, format_list, redact_thumbnails=redact_thumbnails)
    except OSError as exc:
        err.print(f"cannot write reports to {out_dir}: {exc}", style="red")
        raise typer.Exit(EXIT_FAILURE) from None
    for path in written:
        out.print(f"wrote {path}")


def diff(
    old: Annotated[str, typer.Argument(help="The earlier scan (id, unique prefix, or 'previous').")],
    new: Annotated[str, typer.Argument(help="The later scan (id, unique prefix, or 'latest').")],
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """What changed between two scans: new and resolved findings (by fingerprint), new and gone people,
    recordings whose status changed (ok, partial, unreadable)."""
    with open_store_or_exit(store, must_exist=True) as database:
        try:
            a, b = database.scan(old), database.scan(new)
        except StoreError as exc:
            usage_error(str(exc))
        changes = scan_changes(database, a.scan_id, b.scan_id)
    if as_json:
        out.print(json.dumps(changes, indent=2), soft_wrap=True)
        return
    for line in describe_changes(changes):
        out.print(line)


def purge(
    older_than: Annotated[
        Optional[int],
        typer.Option("--older-than", min=0, help="Delete analyses not used by any scan for this many days. "
                     "\\[default: the retention period, policy.retention_days, 1095]"),
    ] = None,
    subject: Annotated[
        Optional[list[str]],
        typer.Option("--subject", help="Delete everything stored about this subject id (repeatable)."),
    ] = None,
    withdrawn: Annotated[
        Optional[Path],
        typer.Option("--withdrawn", help="Consent file: delete what is stored about every subject whose "
                     "consent is withdrawn (no grant in force, at least one withdrawn)."),
    ] = None,
    everything: Annotated[bool, typer.Option("--all", help="Delete all stored biometric data.")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="Config file (for the retention period).")] = None,
    store: StoreOption = None,
) -> None:
    """Delete stored biometric data (face encodings, voiceprints, thumbnails) and compact the database.

    Scan history (findings, people, measured facts) stays; the next scan of a purged recording
    analyses it again.
    """
    subjects = list(subject or [])
    if withdrawn is not None:
        records = load_consent_or_exit(withdrawn)
        today = dt.date.today()
        subjects += [
            s.id for s in records.subjects
            if s.grants and not any(g.is_active(today) for g in s.grants)
            and any(g.withdrawn is not None and g.withdrawn <= today for g in s.grants)
        ]
    if older_than is None and not subjects and not everything:
        cfg, _ = load_config_or_exit(config)

        older_than = first_set(cfg.policy.retention_days, PolicySettings().retention_days)
    with open_store_or_exit(store, must_exist=True) as database:
        stats = database.purge(older_than_days=older_than, subjects=subjects, everything=everything)
    what = []
    if everything:
        what.append("everything")
    if older_than is not None:
        what.append(f"unused for {older_than} days")
    if subjects:
        what.append("subjects " + ", ".join(sorted(set(subjects))))
    out.print(f"purged {stats.analyses} stored analyses and thumbnails of {stats.snapshots_redacted} scan(s) "
              f"({'; '.join(what)}); {database.path}: {stats.bytes_before} -> {stats.bytes_after} bytes")
