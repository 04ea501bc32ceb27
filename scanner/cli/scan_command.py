"""`likeness scan` and `likeness demo`: options (command line, then `likeness.toml`, then defaults) to a scan.

scanner.pipeline.scan is imported inside the commands that use it, as scanner.identity.enrolment and
scanner.redaction are in theirs: they load the analysis stack (dlib, scipy.ndimage: most of a
second), which --version, --help, history, diff and purge do not need.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.analysis.recording import AnalysisSettings
from scanner.cli.progress import run_with_progress, write_and_exit
from scanner.cli.shared import (
    FORMATS,
    FORMATS_HELP,
    exit_with_problems,
    first_set,
    load_config_or_exit,
    load_consent_or_exit,
    open_store_or_exit,
    parse_formats,
    setup_logging,
    usage_error,
)
from scanner.media.fileformat import FileFormatError
from scanner.media.objstore import ObjectStoreError, ObjectURL, parse_input
from scanner.models import Level
from scanner.pipeline.resources import default_memory_ceiling, default_workers
from scanner.policy.manifest import find_manifest, load_manifest
from scanner.policy.rules import PolicySettings
from scanner.policy.waivers import load_waivers
from scanner.store.connection import DEFAULT_STORE, STORE_ENV
from scanner.store.diff import changes_since_previous


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
    setup_logging(quiet, verbose)

    try:
        paths = [parse_input(text) for text in paths]
    except ObjectStoreError as exc:
        usage_error(str(exc))
    missing = [p for p in paths if not isinstance(p, ObjectURL) and not p.exists() and not p.is_symlink()]
    if missing:
        usage_error("no such file or folder: " + ", ".join(str(p) for p in missing))

    cfg, base = load_config_or_exit(config)
    table = cfg.scan

    def from_file(value: str | None) -> Path | None:
        return base / value if value is not None else None

    consent_path = consent or from_file(table.consent)
    waivers_path = waivers or from_file(table.waivers)
    manifest_path = manifest or from_file(table.manifest)
    if manifest_path is None:
        manifest_path = find_manifest(paths)
    format_list = parse_formats(formats) if formats else parse_formats(",".join(table.formats or ["html", "json"]))
    detector = face_detector or cfg.analysis.face_detector or AnalysisSettings.face_detector
    if detector not in ("hog", "cnn"):
        usage_error(f"--face-detector must be 'hog' or 'cnn', not '{detector}'")

    from scanner.pipeline.scan import ScanOptions

    policy_defaults = PolicySettings()
    worker_count = first_set(workers, table.workers) or default_workers()
    memory_gb = first_set(max_memory, table.max_memory_gb)
    options = ScanOptions(
        purposes=list(dict.fromkeys(purpose or table.purposes or [])),
        fail_on=first_set(fail_on, table.fail_on, Level.HIGH),
        show_from=first_set(show, table.show, Level.LOW),
        workers=worker_count,
        max_memory_bytes=int(memory_gb * 2**30) if memory_gb else default_memory_ceiling(worker_count),
        isolated=True,  # a decoder stuck inside one call is ended with its worker, even with one worker
        as_of=_parse_date(as_of) if as_of else None,
        analysis=AnalysisSettings(
            sample_fps=first_set(sample_fps, cfg.analysis.sample_fps, AnalysisSettings.sample_fps),
            max_width=first_set(max_width, cfg.analysis.max_width, AnalysisSettings.max_width),
            face_detector=detector,
            max_pixels=first_set(max_pixels, cfg.analysis.max_pixels, AnalysisSettings.max_pixels),
            max_duration_s=first_set(max_duration, cfg.analysis.max_duration_s, AnalysisSettings.max_duration_s),
            time_limit_s=first_set(time_limit, cfg.analysis.time_limit_s, AnalysisSettings.time_limit_s),
        ),
        rubric=cfg.rubric_settings(),
        policy=PolicySettings(
            severities=dict(cfg.policy.severity),
            disabled=frozenset(cfg.policy.disabled),
            retention_days=first_set(cfg.policy.retention_days, policy_defaults.retention_days),
        ),
        manifest=_load_or_exit(manifest_path, "manifest") if manifest_path else None,
        waivers=_load_or_exit(waivers_path, "waivers") if waivers_path else None,
        use_cache=not no_cache,
        scheduler=scheduler,
        storage=cfg.storage.settings(base),
    )
    if scheduler and "://" not in scheduler:
        usage_error(f"--scheduler must be an address like tcp://host:8786, not '{scheduler}'")
    records = load_consent_or_exit(consent_path) if consent_path else None
    with open_store_or_exit(store) as database:
        result = run_with_progress(paths, records, options, quiet, database)
        changes = changes_since_previous(database, result)
    write_and_exit(
        result,
        out_dir or (base / table.out if table.out else Path("likeness-report")),
        format_list,
        first_set(redact_thumbnails, table.redact_thumbnails, False),
        quiet,
        changes,
    )


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
    setup_logging(quiet, False)
    sample = _sample_data_dir()
    if sample is None:
        usage_error("sample_data/ not found: run `likeness demo` from a checkout of the project")
    records = load_consent_or_exit(sample / "consent.yaml")

    from scanner.pipeline.scan import ScanOptions

    worker_count = workers or default_workers()
    options = ScanOptions(purposes=["ai-training"], fail_on=fail_on, workers=worker_count, isolated=True,
                          max_memory_bytes=default_memory_ceiling(worker_count))
    result = run_with_progress([sample / "recordings"], records, options, quiet)
    write_and_exit(result, out_dir, parse_formats(FORMATS), False, quiet)


def _load_or_exit(path: Path, kind: str):
    try:
        return load_manifest(path) if kind == "manifest" else load_waivers(path)
    except FileFormatError as exc:
        exit_with_problems(path, f"{kind} file", exc.problems)


def _parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        usage_error(f"--as-of: '{value}' is not a date (YYYY-MM-DD)")
        raise  # unreachable: usage_error exits


def _sample_data_dir() -> Path | None:
    if (Path("sample_data") / "consent.yaml").is_file():
        return Path("sample_data")  # relative, so the report shows short paths
    package = Path(__file__).resolve().parents[1]
    # An installed package carries it as scanner/sample_data, a checkout at the top level.
    for candidate in (package / "sample_data", package.parent / "sample_data"):
        if (candidate / "consent.yaml").is_file():
            return candidate
    return None
