"""The `likeness redact` command's work, apart from its option parsing (in `scanner.cli.redact_command`).

Exit codes: 0 every redacted person is gone from the copies (or `--dry-run`, or `--no-verify`
with every copy written); 1 the verification rescan still identifies a redacted person; 2 bad
usage (unknown people, bad options, an output folder that would overwrite a source); 3 a copy
could not be written, a source changed since the scan, or the verification scan failed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from scanner.models import Level, MediaKind, ScanResult, merge_ranges
from scanner.redaction.plan import RedactionPlan, SelectionError, not_redacted_reason, plan_redaction, select_people
from scanner.redaction.run import RedactSettings, carry_out, silence_ranges, write_report
from scanner.redaction.verify import VerificationError, verify_outputs

EXIT_OK, EXIT_LEFT, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


class UsageError(Exception):
    """Bad usage: the message says what to change (exit 2)."""


@dataclass
class RedactRequest:
    scan: ScanResult
    out_dir: Path
    people: list[str] | None
    severity: Level
    settings: RedactSettings
    dry_run: bool = False
    copy_all: bool = False
    verify: bool = True
    consent: Path | None = None  # None: the consent file the scan used


def make_plan(request: RedactRequest) -> RedactionPlan:
    try:
        selected = select_people(request.scan, request.people, request.severity)
    except SelectionError as exc:
        raise UsageError(str(exc)) from None
    return plan_redaction(request.scan, selected, request.out_dir)


def describe_plan(plan: RedactionPlan, settings: RedactSettings) -> list[str]:
    """The plan in plain lines: people, then per file what is covered and silenced (estimated from the scan)."""
    lines = []
    if not plan.people:
        lines.append("nobody to redact (no open finding at or above the severity, or no --people)")
        return lines
    lines.append("people to remove:")
    for p in plan.people:
        name = f" ({p.name})" if p.name else ""
        lines.append(f"  {p.person_id}{name}: {p.reason}")
    changed = plan.changed()
    lines.append(f"files: {len(changed)} to redact")
    for rec in changed:
        media = rec.recording.media
        parts = []
        if rec.faces:
            ranges = _face_ranges(rec)
            seconds = sum(r.end - r.start for r in ranges)
            if rec.kind is MediaKind.IMAGE:
                parts.append(f"faces of {', '.join(sorted(rec.faces))} covered")
            else:
                frames = int(round(seconds * (media.fps or 25.0)))
                parts.append(f"faces of {', '.join(sorted(rec.faces))} covered in about {frames} frames "
                             f"({seconds:.1f} s, more where tracking finds them beyond the scan's samples)")
        if rec.silence:
            seconds = sum(r.duration for r in silence_ranges(rec, settings.voice_pad_s))
            parts.append(f"speech of {', '.join(sorted(rec.silence))} silenced: {seconds:.1f} s")
        lines.append(f"  {rec.path} -> {rec.output}")
        for part in parts:
            lines.append(f"      {part}")
    for rec in plan.unreadable:
        lines.append(f"  {rec.path}: not redacted: {not_redacted_reason(rec)}")
    return lines


def _face_ranges(rec) -> list:
    clusters = {c.cluster_id: c for c in (rec.recording.faces.clusters if rec.recording.faces else [])}
    return merge_ranges([r for cids in rec.faces.values() for cid in cids if cid in clusters
                         for r in clusters[cid].time_ranges])


def check_out_dir(plan: RedactionPlan) -> None:
    """Refuse an output folder where a copy would land on a source recording."""
    sources = {Path(r.path).resolve() for r in plan.scan.recordings}
    for rec in plan.recordings:
        if rec.output.resolve() in sources or rec.output.with_suffix(rec.path.suffix).resolve() in sources:
            raise UsageError(f"--out {rec.output.parent}: the copy of {rec.path} would overwrite a scanned "
                             "recording; choose a folder outside the scanned tree")


def run_redact(request: RedactRequest, say, warn, store=None) -> int:
    """Plan, write the copies and redaction.json, verify; returns the exit status.

    `say(line)` prints to stdout, `warn(line)` to stderr.
    """
    plan = make_plan(request)
    check_out_dir(plan)
    if request.dry_run:
        for line in describe_plan(plan, request.settings):
            say(line)
        say("dry run: nothing written")
        return EXIT_OK
    if not plan.people:
        say("nobody to redact (no open finding at or above the severity, or no --people): nothing written")
        return EXIT_OK
    started = time.monotonic()

    def progress(rec_plan, record) -> None:
        if record.error:
            warn(f"not redacted: {record.source}: {record.error}")
        else:
            covered = ", ".join(f"{p} {n}" for p, n in record.frames_covered.items())
            what = []
            if covered:
                what.append(f"frames covered: {covered} of {record.frames}")
            if record.seconds_silenced:
                what.append(f"{record.seconds_silenced:.1f} s silenced")
            say(f"wrote {record.output} ({'; '.join(what) or 'copied'})")

    records = carry_out(plan, request.settings, request.copy_all, progress)
    failed = [r for r in records if r.error]
    warn(f"Redacted {len(records) - len(failed)} file(s) in {time.monotonic() - started:.1f} s")
    verification = None
    status = EXIT_FAILURE if failed else EXIT_OK
    if request.verify:
        try:
            verification = verify_outputs(plan, records, request.out_dir, request.consent, say, warn, store)
        except VerificationError as exc:
            warn(f"verification scan failed: {exc}")
            write_report(request.out_dir, plan, request.settings, records, {"error": str(exc)})
            return EXIT_FAILURE
        if verification["identifiable"] and status == EXIT_OK:
            status = EXIT_LEFT
    path = write_report(request.out_dir, plan, request.settings, records, verification)
    say(f"wrote {path}")
    if verification is not None:
        say("PASS: no redacted person is identifiable in the copies" if not verification["identifiable"]
            else f"FAIL: still identifiable in the copies: {', '.join(verification['identifiable'])}")
    return status
