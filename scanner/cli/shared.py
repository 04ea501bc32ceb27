"""What the `likeness` commands share: the consoles, exit codes, and reading inputs or exiting with a clear message.

Exit codes (as security scanners use them):
  0  no finding at or above --fail-on
  1  findings at or above --fail-on
  2  bad usage, or an invalid configuration or consent file
  3  the scan could not complete (the tool itself failed)

Every `*_or_exit` function prints what is wrong with which file on stderr and exits with status 2
instead of raising: bad input never ends in a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from scanner.cli.config import LikenessConfig, find_config, load_config
from scanner.media.fileformat import FileFormatError
from scanner.outputs import writers
from scanner.policy.consent.records import ConsentFileError, ConsentRecords, load_consent
from scanner.store.connection import DEFAULT_STORE, STORE_ENV, StoreError, default_store_path
from scanner.store.database import Store

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


# soft_wrap: messages name files; a hard wrap would split paths across lines in CI logs.
# markup off: paths and messages are user data and may contain [brackets].
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = Console(highlight=False, soft_wrap=True, markup=False)

FORMATS = "html,json"
FORMATS_HELP = "html, json, sarif, junit, csv"


def first_set(*values):
    """The first value that is not None: command line, then config file, then built-in default."""
    return next((v for v in values if v is not None), None)


StoreOption = Annotated[
    Optional[Path],
    typer.Option("--store", help=f"The scan database. \\[default: ${STORE_ENV} or {DEFAULT_STORE}]"),
]


def open_store_or_exit(path: Path | None, must_exist: bool = False):
    """The scan database at `path` (default: `default_store_path()`) opened; exits 2 if it cannot be.

    `must_exist`: a missing file is an error (commands that read history) instead of a new database.
    """
    path = path or default_store_path()
    if must_exist and not path.is_file():
        usage_error(f"no scan database at {path} (run a scan first, or give --store PATH)")
    try:
        return Store(path)
    except StoreError as exc:
        usage_error(str(exc))
    except OSError as exc:
        usage_error(f"cannot open the scan database {path}: {exc.strerror or exc}")


def load_config_or_exit(path: Path | None):
    """(config, folder its relative paths start from): `path`, else `./likeness.toml` when present, else defaults."""
    path = path or find_config()
    if path is None:
        return LikenessConfig(), Path(".")
    try:
        return load_config(path)
    except FileFormatError as exc:
        exit_with_problems(path, "config file", exc.problems)


def exit_with_problems(path: Path, kind: str, problems) -> None:
    """Print each problem (line-precise where the loader knows it) and exit 2 naming `path` an invalid `kind`."""
    for problem in problems:
        err.print(str(problem), style="red")
    err.print(f"{path}: invalid {kind} ({len(problems)} problem(s))", style="red")
    raise typer.Exit(EXIT_USAGE)


def load_consent_or_exit(path: Path) -> ConsentRecords:
    """The consent records in `path`; exits 2 listing the problems if the file is invalid."""
    try:
        return load_consent(path)
    except ConsentFileError as exc:
        exit_with_problems(path, "consent file", exc.problems)


def parse_formats(value: str) -> list[str]:
    """The output format names in a comma-separated `--format` value, each once; exits 2 on an unknown one."""
    names = [f.strip().lower() for f in value.split(",") if f.strip()]
    available = writers()
    unknown = [n for n in names if n not in available]
    if not names or unknown:
        given = ", ".join(unknown) or "(empty)"
        usage_error(f"--format: unknown format(s) {given}; choose from {', '.join(available)}")
    return list(dict.fromkeys(names))


def usage_error(message: str) -> None:
    """Print `error: message` on stderr and exit 2 (bad usage)."""
    err.print(f"error: {message}", style="red")
    raise typer.Exit(EXIT_USAGE)


def setup_logging(quiet: bool, verbose: bool) -> None:
    """Log to stderr: debug detail with `verbose`, errors only with `quiet`, else warnings."""
    level = logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
