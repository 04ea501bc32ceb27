"""A whole scan: find the recordings, analyse them, resolve people, score, check consent.

This module wires the stages together; each stage lives in its own module and can be used alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import filetype

from scanner import __version__, media
from scanner.analyze import AnalysisSettings
from scanner.consent import ConsentDocument, ConsentRecords
from scanner.enrolment import enrol_subjects
from scanner.execute import run_local
from scanner.fileformat import FileFormatError
from scanner.manifest import Manifest, is_metadata_file, recording_context
from scanner.models import Level, RecordingAnalysis, RecordingContext, ScanResult, SkippedFile
from scanner.people import ResolverSettings, resolve_people
from scanner.policy import PolicySettings, apply_settings, check_policy
from scanner.risk import DEFAULT_RUBRIC, Rubric, score_person
from scanner.waivers import WaiverFile, apply_waivers

#: Extensions taken as recordings when walking folders; other files are sniffed by content.
MEDIA_EXTENSIONS = frozenset(
    ".mp4 .m4v .mkv .webm .mov .avi .wmv .flv .mpg .mpeg .ts .3gp "
    ".m4a .wav .mp3 .ogg .oga .opus .flac .aac .wma .aiff .aif "
    ".jpg .jpeg .png .webp .bmp .tif .tiff .gif".split()
)


@dataclass
class ScanOptions:
    """Everything that shapes a scan besides the inputs and the consent records."""

    purposes: list[str] = field(default_factory=list)  # command-line purposes, added to every recording's
    fail_on: Level = Level.HIGH
    workers: int = 1
    as_of: dt.date | None = None
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    resolver: ResolverSettings = field(default_factory=ResolverSettings)
    rubric: Rubric = DEFAULT_RUBRIC
    policy: PolicySettings = field(default_factory=PolicySettings)
    manifest: Manifest | None = None
    waivers: WaiverFile | None = None
    show_from: Level = Level.LOW


ProgressCallback = Callable[[int, int, RecordingAnalysis], None]


def discover_recordings(inputs: list[Path], exclude: set[Path] = frozenset()) -> tuple[list[Path], list[SkippedFile]]:
    """Files to scan under `inputs`, sorted, plus files in folders that were passed over and why.

    A file named on the command line is always scanned (so a broken one is reported). Inside folders,
    files with a media extension are scanned and others only when their content looks like media;
    hidden files, enrolment media of the consent file and symlinked folders are passed over.
    """
    found: dict[Path, None] = {}
    skipped: list[SkippedFile] = []
    for item in inputs:
        if item.is_dir():
            for dirpath, dirnames, filenames in os.walk(item, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    if name.startswith("."):
                        continue
                    if path.resolve() in exclude:
                        skipped.append(SkippedFile(path, "enrolment media of the consent file"))
                    elif is_metadata_file(path):
                        continue
                    elif _looks_like_media(path):
                        found.setdefault(path, None)
                    else:
                        skipped.append(SkippedFile(path, "not a media file"))
        else:
            found.setdefault(item, None)
    return sorted(found, key=lambda p: p.as_posix()), skipped


def _looks_like_media(path: Path) -> bool:
    if path.suffix.lower() in MEDIA_EXTENSIONS:
        return True
    try:
        kind = filetype.guess(str(path))
    except OSError:
        return True  # unreadable: scan it so the problem is reported
    return kind is not None and kind.mime.split("/")[0] in ("video", "audio", "image")


def run_scan(
    inputs: list[Path],
    consent: ConsentRecords | None,
    options: ScanOptions,
    progress: ProgressCallback | None = None,
) -> ScanResult:
    """Scan `inputs` against `consent` and return every decision the scan made."""
    started = _now()
    as_of = options.as_of or dt.date.today()
    if consent is None:
        consent = ConsentRecords(Path("<none>"), ConsentDocument())
        consent_sha = None
        consent_file = None
    else:
        consent_sha = media.sha256_file(consent.path)
        consent_file = str(consent.path)

    paths, skipped = discover_recordings(inputs, consent.all_enrolment_paths())
    enrolment = enrol_subjects(consent, options.analysis.audio_sample_rate)

    analysed: dict[Path, RecordingAnalysis] = {}
    for analysis in run_local(paths, options.analysis, options.workers):
        analysed[analysis.path] = analysis
        if progress:
            progress(len(analysed), len(paths), analysis)
    recordings = [analysed[p] for p in paths]

    people = resolve_people(recordings, enrolment.subjects, options.resolver)
    for person in people:
        score_person(person, options.rubric)

    root = _common_root(inputs)
    contexts, context_warnings = _contexts(recordings, options)
    findings = check_policy(people, recordings, consent, contexts, as_of, options.policy, root, options.rubric)
    suppressed = []
    if options.waivers is not None:
        outcome = apply_waivers(findings, options.waivers, as_of, root)
        findings = apply_settings(outcome.findings, options.policy)
        suppressed = outcome.suppressed
        context_warnings += outcome.warnings
    return ScanResult(
        scan_id=_scan_id(started, recordings),
        started_at=started,
        finished_at=_now(),
        inputs=[str(p) for p in inputs],
        options=_options_record(options),
        purposes=list(options.purposes),
        as_of=as_of.isoformat(),
        consent_file=consent_file,
        consent_sha256=consent_sha,
        recordings=recordings,
        people=people,
        findings=findings,
        fail_on=options.fail_on,
        skipped=skipped,
        warnings=[str(w) for w in [*consent.warnings, *enrolment.problems]] + context_warnings,
        root=root,
        contexts=contexts,
        show_from=options.show_from,
        suppressed=suppressed,
    )


def _contexts(
    recordings: list[RecordingAnalysis], options: ScanOptions
) -> tuple[dict[Path, RecordingContext], list[str]]:
    """Each recording's purposes, date and retention; a broken sidecar is a warning, not the end of the scan."""
    contexts: dict[Path, RecordingContext] = {}
    warnings: list[str] = []
    for rec in recordings:
        try:
            contexts[rec.path] = recording_context(
                rec.path, options.manifest, options.purposes, options.policy.retention_days
            )
        except FileFormatError as exc:
            warnings += [f"{p} (metadata ignored; purposes from the command line)" for p in exc.problems]
            contexts[rec.path] = recording_context(
                rec.path, options.manifest, options.purposes, options.policy.retention_days, use_sidecar=False
            )
    return contexts, warnings


def _options_record(options: ScanOptions) -> dict:
    return {
        "purposes": list(options.purposes),
        "fail_on": options.fail_on.value,
        "workers": options.workers,
        "as_of": options.as_of.isoformat() if options.as_of else None,
        "analysis": asdict(options.analysis),
        "resolver": asdict(options.resolver),
        "rubric": asdict(options.rubric),
        "policy": {
            "severities": {k: v.value for k, v in options.policy.severities.items()},
            "disabled": sorted(options.policy.disabled),
            "retention_days": options.policy.retention_days,
        },
        "manifest": str(options.manifest.path) if options.manifest else None,
        "waivers": str(options.waivers.path) if options.waivers else None,
        "show_from": options.show_from.value,
        "tool_version": __version__,
    }


def _common_root(inputs: list[Path]) -> Path | None:
    try:
        resolved = [p.resolve() for p in inputs]
        root = Path(os.path.commonpath([str(p) for p in resolved]))
    except ValueError:
        return None
    return root if root.is_dir() else root.parent


def _scan_id(started: str, recordings: list[RecordingAnalysis]) -> str:
    digest = hashlib.sha256("".join(r.sha256 for r in recordings).encode()).hexdigest()[:8]
    stamp = started.replace("-", "").replace(":", "").replace("T", "-")[:15]
    return f"{stamp}-{digest}-{uuid.uuid4().hex[:4]}"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
