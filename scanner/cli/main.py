"""The `likeness` command line: the Typer app, its commands and the console entry point.

Each command lives in the module of its job (`scan_command`, `consent_command`, `stored_scans`,
`redact_command`); this module assembles them. Exit codes: see `scanner.cli.shared`.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Optional

import typer

from scanner import __version__
from scanner.cli.consent_command import consent_validate
from scanner.cli.redact_command import redact
from scanner.cli.scan_command import demo, scan
from scanner.cli.shared import EXIT_FAILURE, err, out
from scanner.cli.stored_scans import diff, history, purge, report

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

def _version_callback(value: bool) -> None:
    if value:
        out.print(f"likeness {__version__}")
        raise typer.Exit()


def main_options(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """likeness: a privacy-audit and deepfake-risk scanner."""


app.callback()(main_options)

for command in (scan, demo, history, report, redact, diff, purge):
    app.command()(command)
consent_app.command("validate")(consent_validate)


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
