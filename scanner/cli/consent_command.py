"""`likeness consent validate`: check a consent file and its enrolment media.

scanner.identity.enrolment is imported only when the media are checked (it loads the analysis stack).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from scanner.cli.shared import (
    err,
    exit_with_problems,
    load_consent_or_exit,
    out,
)


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
    records = load_consent_or_exit(file)
    for warning in records.warnings:
        err.print(str(warning), style="yellow")
    if check_media:
        from scanner.identity.enrolment import enrol_subjects

        problems = enrol_subjects(records).problems
        if problems:
            exit_with_problems(file, "consent file", problems)
    subjects = len(records.subjects)
    grants = sum(len(s.grants) for s in records.subjects)
    out.print(f"{file}: valid ({subjects} subjects, {grants} grants)")
