"""The library API: scan recordings, load consent records and write reports from Python.

    from scanner import scan, load_consent, write_reports

    result = scan("sample_data/recordings", consent=load_consent("sample_data/consent.yaml"), purposes=["ai-training"])
    write_reports(result, "likeness-report")

`scan` runs the same stages as `likeness scan` (discover, analyse, resolve people, score, check
consent) and returns a `ScanResult`; `write_reports` writes it in any of the command line's
formats. `scanner.pipeline.scan.run_scan` with a `ScanOptions` gives every knob the command line has.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

from scanner.media.objstore import ObjectURL, parse_input
from scanner.models import Level, ScanResult
from scanner.outputs import write_reports as _write_formats
from scanner.pipeline.scan import ScanOptions, run_scan
from scanner.policy.consent.records import ConsentRecords, load_consent
from scanner.store.database import Store

__all__ = ["load_consent", "scan", "write_reports"]

PathLike = str | os.PathLike


def scan(
    paths: PathLike | Iterable[PathLike],
    *,
    consent: ConsentRecords | PathLike | None = None,
    purposes: Iterable[str] = (),
    fail_on: Level | str = Level.HIGH,
    as_of: dt.date | None = None,
    workers: int = 1,
    store: PathLike | None = None,
    use_cache: bool = True,
) -> ScanResult:
    """Scan recordings and folders (recursively) for faces and voices and check them against consent.

    paths: one file, folder or object-store URL (`s3://bucket/prefix/`), or a list of them.
    consent: the consent records (from `load_consent`) or the path of a consent file (YAML or CSV);
        None (the default): no records, so everybody found is unconsented.
    purposes: what the recordings will be used for, e.g. `["ai-training"]`, added to the purposes a
        manifest or sidecar file gives; with neither, `recording` (keeping them at all). Default: none.
    fail_on: the severity (`Level` or its name: none, low, medium, high, critical) from which
        `result.failing_findings()` lists a finding. Default: high.
    as_of: judge consent and retention as of this date. Default: today.
    workers: worker processes for the analysis. Default 1: everything runs in this process.
    store: the scan database (SQLite file, created if missing) that keeps the history and lets a
        rescan reuse the analyses of unchanged files. Default None: nothing is stored.
    use_cache: with a `store`, reuse stored analyses of unchanged files (False analyses everything).

    Returns the `ScanResult`: `recordings` (what each file holds), `people` (with their cloneability),
    `findings` (with rule id, severity, recordings, time ranges and remedy).

    A recording that cannot be decoded is a finding, not an exception. Raises FileNotFoundError for a
    local input that does not exist, `scanner.policy.consent.records.ConsentFileError` for an invalid consent file and
    `scanner.media.objstore.ObjectStoreError` for an unusable URL.
    """
    inputs = [parse_input(os.fspath(p)) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    missing = [str(p) for p in inputs if not isinstance(p, ObjectURL) and not p.exists() and not p.is_symlink()]
    if missing:
        raise FileNotFoundError(f"no such file or folder: {', '.join(missing)}")
    records = consent if isinstance(consent, ConsentRecords) or consent is None else load_consent(Path(consent))
    options = ScanOptions(purposes=list(dict.fromkeys(purposes)), fail_on=Level(fail_on), as_of=as_of,
                          workers=workers, use_cache=use_cache)
    if store is None:
        return run_scan(inputs, records, options)
    with Store(Path(store)) as database:
        return run_scan(inputs, records, options, store=database)


def write_reports(
    result: ScanResult,
    out_dir: PathLike = "likeness-report",
    *,
    formats: Iterable[str] = ("html", "json"),
    redact_thumbnails: bool = False,
) -> list[Path]:
    """Write `result` into `out_dir` (created if needed) and return the files written.

    out_dir: the report folder. Default: `likeness-report`.
    formats: any of html (report.html), json (results.json), sarif, junit, csv. Default: html and json.
    redact_thumbnails: leave face thumbnails out of the HTML report. Default: False.

    Raises ValueError for an unknown format and OSError when the folder cannot be written.
    """
    return _write_formats(result, Path(out_dir), list(formats), redact_thumbnails=redact_thumbnails)
