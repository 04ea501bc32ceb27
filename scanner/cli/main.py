"""The `likeness` command line.

Exit codes (as security scanners use them):
  0  no finding at or above --fail-on
  1  findings at or above --fail-on
  2  bad usage, or an invalid configuration or consent file
  3  the scan could not complete (the tool itself failed)
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from scanner import __version__
from scanner.analysis.recording import AnalysisSettings
from scanner.cli.config import LikenessConfig, find_config, load_config
from scanner.media.fileformat import FileFormatError
from scanner.media.objstore import ObjectStoreError, ObjectURL, parse_input
from scanner.models import Level, RecordingAnalysis, RecordingStatus, ScanResult
from scanner.outputs import write_reports, writers
from scanner.pipeline.execute import default_memory_ceiling, default_workers
from scanner.policy.consent.records import ConsentFileError, ConsentRecords, load_consent
from scanner.policy.manifest import find_manifest, load_manifest
from scanner.policy.rules import PolicySettings
from scanner.policy.waivers import load_waivers
from scanner.store.connection import DEFAULT_STORE, STORE_ENV, StoreError, default_store_path
from scanner.store.database import Store
from scanner.store.diff import changes_since_previous, describe_changes, scan_changes

# scanner.pipeline.scan, scanner.identity.enrolment and scanner.redaction are imported inside the
# commands that use them: they load the analysis stack (dlib, scipy.ndimage: most of a second), which --version, --help,
# history, diff and purge do not need.

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3

app = typer.Typer(
    name="likeness",
    help=(
        "Find identifiable faces and voices in recordings, score how easily each person could be "
        "cloned from them, and check that against consent records.\n\n"
        "Exit codes: 0 nothing at or above --fail-on, 1 findings at or above it, "
        "2 bad usage or invalid consent/config file, 3 the scan could not complete."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
consent_app = typer.Typer(help="Work with consent files.", no_args_is_help=True)
app.add_typer(consent_app, name="consent")

# soft_wrap: messages name files; a hard wrap would split paths across lines in CI logs.
# markup off: paths and messages are user data and may contain [brackets].
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = Console(highlight=False, soft_wrap=True, markup=False)

FORMATS = "html,json"
FORMATS_HELP = "html, json, sarif, junit, csv"


def _version_callback(value: bool) -> None:
    if value:
        out.print(f"likeness {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """likeness: a privacy-audit and deepfake-risk scanner."""


@app.command()
def scan(
    paths: Annotated[list[str], typer.Argument(
        help="Recordings and folders to scan (folders recursively), or object-store URLs such as "
        "s3://bucket/prefix/ (prefixes like folders).", show_default=False, metavar="PATH_OR_URL")],
    consent: Annotated[
        Optional[Path],
        typer.Option("--consent", "-c", help="Consent file (YAML, or CSV of grants). Without one, everybody "
                     "found is unconsented."),
    ] = None,
    out_dir: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Folder for the reports. \\[default: likeness-report]")
    ] = None,
    purpose: Annotated[
        Optional[list[str]],
        typer.Option(
            "--purpose", "-p",
            help="What the recordings will be used for (repeatable), e.g. ai-training, publication; added to "
            "the purposes a manifest or sidecar gives. With neither: recording (keeping them at all).",
        ),
    ] = None,
    fail_on: Annotated[
        Optional[Level],
        typer.Option("--fail-on", help="Exit 1 when a finding has this severity or higher; 'none' never fails. "
                     "\\[default: high]"),
    ] = None,
    show: Annotated[
        Optional[Level],
        typer.Option("--show", help="Leave findings below this severity out of the outputs (failing is "
                     "decided by --fail-on alone). \\[default: low]"),
    ] = None,
    formats: Annotated[
        Optional[str],
        typer.Option("--format", "-f", help=f"Comma-separated output formats ({FORMATS_HELP}). \\[default: html,json]"),
    ] = None,
    waivers: Annotated[
        Optional[Path],
        typer.Option("--waivers", help="Waivers file: accepted findings with reason, approver and expiry."),
    ] = None,
    manifest: Annotated[
        Optional[Path],
        typer.Option("--manifest", help="Recording metadata (purposes, dates, retention) by path glob. "
                     "\\[default: likeness-manifest.yaml at a scanned folder's root]"),
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", help="Config file mirroring these options plus policy and rubric. "
                     "\\[default: ./likeness.toml when present]"),
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option("--workers", "-w", min=1, max=256,
                                     help="Worker processes; each analyses one file at a time and holds the "
                                     "models (about 0.5 GB). \\[default: one per CPU, at most 8]")
    ] = None,
    max_memory: Annotated[
        Optional[float],
        typer.Option("--max-memory", min=0.5, max=4096.0,
                     help="Resident memory (GB) one worker may hold while analysing a file; a file that "
                     "would need more is reported unreadable with the reason, never killed by the system. "
                     "\\[default: half the machine's (or container's) memory divided by the workers, "
                     "at least 1.5]"),
    ] = None,
    sample_fps: Annotated[
        Optional[float],
        typer.Option("--sample-fps", min=0.1, max=60.0,
                     help="Video frames searched for faces per second. \\[default: 1]"),
    ] = None,
    max_width: Annotated[
        Optional[int],
        typer.Option("--max-width", min=160, max=7680, help="Frames are downscaled to this width for detection, "
                     "never so far that a 60 px face measures under 40 px. \\[default: 1280]"),
    ] = None,
    face_detector: Annotated[
        Optional[str],
        typer.Option("--face-detector", help="'hog' (fast) or 'cnn' (slow: seconds per frame, finds harder "
                     "faces). \\[default: hog]"),
    ] = None,
    as_of: Annotated[
        Optional[str],
        typer.Option("--as-of", help="Judge consent and retention as of this date (YYYY-MM-DD) instead of today."),
    ] = None,
    max_duration: Annotated[
        Optional[float],
        typer.Option("--max-duration", min=1.0, help="Refuse recordings longer than this many seconds (a finding, "
                     "not a hang). \\[default: 14400]"),
    ] = None,
    time_limit: Annotated[
        Optional[float],
        typer.Option("--time-limit", min=1.0, help="Stop analysing one file after this many seconds and report it "
                     "unreadable (checked between frames; a worker stuck past it inside one call is "
                     "ended). \\[default: 600]"),
    ] = None,
    max_pixels: Annotated[
        Optional[int],
        typer.Option("--max-pixels", min=10_000, help="Refuse images and frames with more pixels (decompression "
                     "bombs). \\[default: 100000000]"),
    ] = None,
    redact_thumbnails: Annotated[
        Optional[bool], typer.Option("--redact-thumbnails/--no-redact-thumbnails",
                                     help="Leave face thumbnails out of the HTML report. \\[default: no]")
    ] = None,
    store: Annotated[
        Optional[Path],
        typer.Option("--store", help="The scan database (history, analysis cache, embeddings). "
                     f"\\[default: ${STORE_ENV} or {DEFAULT_STORE}]"),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Analyse every recording again, even unchanged ones.")
    ] = False,
    scheduler: Annotated[
        Optional[str],
        typer.Option("--scheduler", help="Run the analysis on a Dask cluster: its scheduler address, "
                     "e.g. tcp://host:8786 (workers must see local recordings at the same paths; "
                     "they read s3:// and other URLs themselves)."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the verdict.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print debugging detail.")] = False,
) -> None:
    """Scan recordings, write the reports, and exit with a status CI can act on."""
    _setup_logging(quiet, verbose)

    try:
        paths = [parse_input(text) for text in paths]
    except ObjectStoreError as exc:
        _usage_error(str(exc))
    missing = [p for p in paths if not isinstance(p, ObjectURL) and not p.exists() and not p.is_symlink()]
    if missing:
        _usage_error("no such file or folder: " + ", ".join(str(p) for p in missing))

    cfg, base = _load_config_or_exit(config)
    table = cfg.scan

    def from_file(value: str | None) -> Path | None:
        return base / value if value is not None else None

    consent_path = consent or from_file(table.consent)
    waivers_path = waivers or from_file(table.waivers)
    manifest_path = manifest or from_file(table.manifest)
    if manifest_path is None:
        manifest_path = find_manifest(paths)
    format_list = _parse_formats(formats) if formats else _parse_formats(",".join(table.formats or ["html", "json"]))
    detector = face_detector or cfg.analysis.face_detector or AnalysisSettings.face_detector
    if detector not in ("hog", "cnn"):
        _usage_error(f"--face-detector must be 'hog' or 'cnn', not '{detector}'")

    from scanner.pipeline.scan import ScanOptions

    policy_defaults = PolicySettings()
    worker_count = _first(workers, table.workers) or default_workers()
    memory_gb = _first(max_memory, table.max_memory_gb)
    options = ScanOptions(
        purposes=list(dict.fromkeys(purpose or table.purposes or [])),
        fail_on=_first(fail_on, table.fail_on, Level.HIGH),
        show_from=_first(show, table.show, Level.LOW),
        workers=worker_count,
        max_memory_bytes=int(memory_gb * 2**30) if memory_gb else default_memory_ceiling(worker_count),
        isolated=True,  # a decoder stuck inside one call is ended with its worker, even with one worker
        as_of=_parse_date(as_of) if as_of else None,
        analysis=AnalysisSettings(
            sample_fps=_first(sample_fps, cfg.analysis.sample_fps, AnalysisSettings.sample_fps),
            max_width=_first(max_width, cfg.analysis.max_width, AnalysisSettings.max_width),
            face_detector=detector,
            max_pixels=_first(max_pixels, cfg.analysis.max_pixels, AnalysisSettings.max_pixels),
            max_duration_s=_first(max_duration, cfg.analysis.max_duration_s, AnalysisSettings.max_duration_s),
            time_limit_s=_first(time_limit, cfg.analysis.time_limit_s, AnalysisSettings.time_limit_s),
        ),
        rubric=cfg.rubric_settings(),
        policy=PolicySettings(
            severities=dict(cfg.policy.severity),
            disabled=frozenset(cfg.policy.disabled),
            retention_days=_first(cfg.policy.retention_days, policy_defaults.retention_days),
        ),
        manifest=_load_or_exit(manifest_path, "manifest") if manifest_path else None,
        waivers=_load_or_exit(waivers_path, "waivers") if waivers_path else None,
        use_cache=not no_cache,
        scheduler=scheduler,
        storage=cfg.storage.settings(base),
    )
    if scheduler and "://" not in scheduler:
        _usage_error(f"--scheduler must be an address like tcp://host:8786, not '{scheduler}'")
    records = _load_consent_or_exit(consent_path) if consent_path else None
    with _open_store_or_exit(store) as database:
        result = _run_with_progress(paths, records, options, quiet, database)
        changes = changes_since_previous(database, result)
    _write_and_exit(
        result,
        out_dir or (base / table.out if table.out else Path("likeness-report")),
        format_list,
        _first(redact_thumbnails, table.redact_thumbnails, False),
        quiet,
        changes,
    )


def _first(*values):
    """The first value that is not None: command line, then config file, then built-in default."""
    return next((v for v in values if v is not None), None)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the sample report.")] = Path(
        "likeness-report"
    ),
    fail_on: Annotated[Level, typer.Option("--fail-on", help="Severity that makes the exit status 1.")] = Level.NONE,
    workers: Annotated[
        Optional[int], typer.Option("--workers", "-w", min=1, max=256,
                                    help="Worker processes. \\[default: one per CPU, at most 8]")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the verdict.")] = False,
) -> None:
    """Scan the bundled sample_data/ for AI-training use and write its report (exits 0 by default)."""
    _setup_logging(quiet, False)
    sample = _sample_data_dir()
    if sample is None:
        _usage_error("sample_data/ not found: run `likeness demo` from a checkout of the project")
    records = _load_consent_or_exit(sample / "consent.yaml")

    from scanner.pipeline.scan import ScanOptions

    worker_count = workers or default_workers()
    options = ScanOptions(purposes=["ai-training"], fail_on=fail_on, workers=worker_count, isolated=True,
                          max_memory_bytes=default_memory_ceiling(worker_count))
    result = _run_with_progress([sample / "recordings"], records, options, quiet)
    _write_and_exit(result, out_dir, _parse_formats(FORMATS), False, quiet)


@consent_app.command("validate")
def consent_validate(
    file: Annotated[Path, typer.Argument(help="The consent file (YAML) to check.")],
    check_media: Annotated[
        bool,
        typer.Option(
            "--media/--no-media",
            help="Also open the enrolment media: each photo must show exactly one face, each voice sample speech.",
        ),
    ] = True,
) -> None:
    """Check a consent file: structure, dates, ids, purposes and enrolment media, with line numbers."""
    records = _load_consent_or_exit(file)
    for warning in records.warnings:
        err.print(str(warning), style="yellow")
    if check_media:
        from scanner.identity.enrolment import enrol_subjects

        problems = enrol_subjects(records).problems
        if problems:
            _exit_with_problems(file, "consent file", problems)
    subjects = len(records.subjects)
    grants = sum(len(s.grants) for s in records.subjects)
    out.print(f"{file}: valid ({subjects} subjects, {grants} grants)")


StoreOption = Annotated[
    Optional[Path],
    typer.Option("--store", help=f"The scan database. \\[default: ${STORE_ENV} or {DEFAULT_STORE}]"),
]


@app.command()
def history(
    store: StoreOption = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many scans.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the scans in the scan database, newest first."""
    with _open_store_or_exit(store, must_exist=True) as database:
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


@app.command()
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
    format_list = _parse_formats(formats)

    with _open_store_or_exit(store, must_exist=True) as database:
        try:
            result = database.load_result(scan_id)
        except StoreError as exc:
            _usage_error(str(exc))
    try:
        written = write_reports(result, out_dir, format_list, redact_thumbnails=redact_thumbnails)
    except OSError as exc:
        err.print(f"cannot write reports to {out_dir}: {exc}", style="red")
        raise typer.Exit(EXIT_FAILURE) from None
    for path in written:
        out.print(f"wrote {path}")


@app.command()
def redact(
    scan_id: Annotated[str, typer.Argument(help="The stored scan to work from (id, unique prefix, or 'latest'); it "
                                           "knows who appears where.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the redacted copies (mirrors the "
                                          "scanned tree), redaction.json and the verification report.")],
    people: Annotated[
        Optional[str],
        typer.Option("--people", help="Who to remove, comma-separated: subject ids (as in the consent file), "
                     "person ids such as unknown-3, or 'unknown' for every unknown person. \\[default: everyone "
                     "with an open finding at or above --severity]"),
    ] = None,
    severity: Annotated[
        Level, typer.Option("--severity", help="Without --people: remove everyone with an open (not waived) "
                            "finding at or above this severity.")
    ] = Level.HIGH,
    face: Annotated[str, typer.Option("--face", help="How faces are covered: blur, pixelate or box.")] = "blur",
    voice: Annotated[str, typer.Option("--voice", help="How speech is removed: mute or noise. Speech of "
                                       "others overlapping a removed person's turn is silenced too.")] = "mute",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (files, people, frames and "
                                          "seconds affected) and write nothing.")] = False,
    copy_all: Annotated[bool, typer.Option("--copy-all", help="Also copy the recordings nobody is removed "
                                           "from (unchanged).")] = False,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Do not rescan the copies.")] = False,
    consent: Annotated[
        Optional[Path],
        typer.Option("--consent", "-c", help="Consent file for the verification scan. \\[default: the one "
                     "the stored scan used]"),
    ] = None,
    store: StoreOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the verdict.")] = False,
) -> None:
    """Copies without the selected people: faces covered in every frame, speech silenced, proven by a rescan.

    Who: everyone with an open finding at or above --severity, or --people.

    Exit codes: 0 all removed people are gone; 1 one is still identifiable; 2 bad usage; 3 a copy or rescan failed.
    """
    _setup_logging(quiet, False)
    from scanner.redaction.command import RedactRequest, UsageError, run_redact
    from scanner.redaction.media import FACE_MODES, VOICE_MODES
    from scanner.redaction.run import RedactSettings

    if face not in FACE_MODES:
        _usage_error(f"--face must be one of {', '.join(FACE_MODES)}, not '{face}'")
    if voice not in VOICE_MODES:
        _usage_error(f"--voice must be one of {', '.join(VOICE_MODES)}, not '{voice}'")
    if consent is not None and not consent.is_file():
        _usage_error(f"--consent: no such file: {consent}")
    with _open_store_or_exit(store, must_exist=True) as database:
        try:
            result = database.load_result(scan_id)
        except StoreError as exc:
            _usage_error(str(exc))
        request = RedactRequest(
            scan=result, out_dir=out_dir, people=people.split(",") if people is not None else None,
            severity=severity, settings=RedactSettings(face=face, voice=voice), dry_run=dry_run,
            copy_all=copy_all, verify=not no_verify, consent=consent,
        )
        try:
            status = run_redact(request, out.print, lambda line: quiet or err.print(line), database)
        except UsageError as exc:
            _usage_error(str(exc))
    raise typer.Exit(status)


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="The earlier scan (id, unique prefix, or 'previous').")],
    new: Annotated[str, typer.Argument(help="The later scan (id, unique prefix, or 'latest').")],
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """What changed between two scans: new and resolved findings (by fingerprint), new and gone people,
    recordings whose status changed (ok, partial, unreadable)."""
    with _open_store_or_exit(store, must_exist=True) as database:
        try:
            a, b = database.scan(old), database.scan(new)
        except StoreError as exc:
            _usage_error(str(exc))
        changes = scan_changes(database, a.scan_id, b.scan_id)
    if as_json:
        out.print(json.dumps(changes, indent=2), soft_wrap=True)
        return
    for line in describe_changes(changes):
        out.print(line)


@app.command()
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
        records = _load_consent_or_exit(withdrawn)
        today = dt.date.today()
        subjects += [
            s.id for s in records.subjects
            if s.grants and not any(g.is_active(today) for g in s.grants)
            and any(g.withdrawn is not None and g.withdrawn <= today for g in s.grants)
        ]
    if older_than is None and not subjects and not everything:
        cfg, _ = _load_config_or_exit(config)

        older_than = _first(cfg.policy.retention_days, PolicySettings().retention_days)
    with _open_store_or_exit(store, must_exist=True) as database:
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


def _open_store_or_exit(path: Path | None, must_exist: bool = False):
    path = path or default_store_path()
    if must_exist and not path.is_file():
        _usage_error(f"no scan database at {path} (run a scan first, or give --store PATH)")
    try:
        return Store(path)
    except StoreError as exc:
        _usage_error(str(exc))
    except OSError as exc:
        _usage_error(f"cannot open the scan database {path}: {exc.strerror or exc}")


# --------------------------------------------------------------------------------------------


def _run_with_progress(
    paths: list[Path], records: ConsentRecords | None, options, quiet: bool, store=None
) -> ScanResult:
    from scanner.pipeline.scan import ScanInterrupted, ScanStats

    stats = ScanStats()
    started = time.monotonic()
    try:
        result = _scan_with_progress(paths, records, options, quiet, store, stats)
    except ObjectStoreError as exc:  # a bucket or prefix that cannot be listed: nothing was scanned
        _usage_error(str(exc))
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


def _write_and_exit(
    result: ScanResult, out_dir: Path, formats: list[str], redact: bool, quiet: bool, changes: dict | None = None
) -> None:
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


def _load_config_or_exit(path: Path | None):
    path = path or find_config()
    if path is None:
        return LikenessConfig(), Path(".")
    try:
        return load_config(path)
    except FileFormatError as exc:
        _exit_with_problems(path, "config file", exc.problems)


def _load_or_exit(path: Path, kind: str):
    try:
        return load_manifest(path) if kind == "manifest" else load_waivers(path)
    except FileFormatError as exc:
        _exit_with_problems(path, f"{kind} file", exc.problems)


def _exit_with_problems(path: Path, kind: str, problems) -> None:
    for problem in problems:
        err.print(str(problem), style="red")
    err.print(f"{path}: invalid {kind} ({len(problems)} problem(s))", style="red")
    raise typer.Exit(EXIT_USAGE)


def _load_consent_or_exit(path: Path) -> ConsentRecords:
    try:
        return load_consent(path)
    except ConsentFileError as exc:
        _exit_with_problems(path, "consent file", exc.problems)


def _parse_formats(value: str) -> list[str]:
    names = [f.strip().lower() for f in value.split(",") if f.strip()]
    available = writers()
    unknown = [n for n in names if n not in available]
    if not names or unknown:
        given = ", ".join(unknown) or "(empty)"
        _usage_error(f"--format: unknown format(s) {given}; choose from {', '.join(available)}")
    return list(dict.fromkeys(names))


def _parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        _usage_error(f"--as-of: '{value}' is not a date (YYYY-MM-DD)")
        raise  # unreachable: _usage_error exits


def _usage_error(message: str) -> None:
    err.print(f"error: {message}", style="red")
    raise typer.Exit(EXIT_USAGE)


def _sample_data_dir() -> Path | None:
    if (Path("sample_data") / "consent.yaml").is_file():
        return Path("sample_data")  # relative, so the report shows short paths
    package = Path(__file__).resolve().parents[1]
    # An installed package carries it as scanner/sample_data, a checkout at the top level.
    for candidate in (package / "sample_data", package.parent / "sample_data"):
        if (candidate / "consent.yaml").is_file():
            return candidate
    return None


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main() -> None:
    """Console entry point: turns an unexpected failure into exit status 3 without a traceback."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted", style="red")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the contract is an exit status, not a traceback
        logging.getLogger("scanner").debug("internal error", exc_info=True)
        err.print(f"likeness failed: {type(exc).__name__}: {exc}", style="red")
        err.print("Run again with --verbose for details.")
        sys.exit(EXIT_FAILURE)
