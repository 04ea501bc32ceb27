"""`likeness redact`: option parsing; the work is `scanner.redaction.command.run_redact`.

scanner.redaction is imported inside the command: it loads the analysis stack (most of a second),
which the other commands do not need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from scanner.cli.shared import (
    StoreOption,
    err,
    open_store_or_exit,
    out,
    setup_logging,
    usage_error,
)
from scanner.models import Level
from scanner.store.connection import StoreError


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
    setup_logging(quiet, False)
    from scanner.redaction.command import RedactRequest, UsageError, run_redact
    from scanner.redaction.media import FACE_MODES, VOICE_MODES
    from scanner.redaction.run import RedactSettings

    if face not in FACE_MODES:
        usage_error(f"--face must be one of {', '.join(FACE_MODES)}, not '{face}'")
    if voice not in VOICE_MODES:
        usage_error(f"--voice must be one of {', '.join(VOICE_MODES)}, not '{voice}'")
    if consent is not None and not consent.is_file():
        usage_error(f"--consent: no such file: {consent}")
    with open_store_or_exit(store, must_exist=True) as database:
        try:
            result = database.load_result(scan_id)
        except StoreError as exc:
            usage_error(str(exc))
        request = RedactRequest(
            scan=result, out_dir=out_dir, people=people.split(",") if people is not None else None,
            severity=severity, settings=RedactSettings(face=face, voice=voice), dry_run=dry_run,
            copy_all=copy_all, verify=not no_verify, consent=consent,
        )
        try:
            status = run_redact(request, out.print, lambda line: quiet or err.print(line), database)
        except UsageError as exc:
            usage_error(str(exc))
    raise typer.Exit(status)
