"""A whole scan: find the recordings, analyse them, resolve people, score, check consent.

This module wires the stages together; each stage lives in its own module and can be used alone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import stat
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scanner import __version__
from scanner.analysis.clustering import import_in_background
from scanner.analysis.recording import AnalysisSettings
from scanner.identity.enrolment import EnrolmentResult, enrol_subjects
from scanner.identity.people import (
    EnrolledSubject,
    ResolverSettings,
    people_from_records,
    people_to_records,
    resolution_key,
    resolve_people,
)
from scanner.media.fileformat import FileFormatError
from scanner.media.files import sha256_file
from scanner.media.limits import MEMORY_CEILING_REASON
from scanner.media.objstore import ObjectFacts, ObjectURL, StorageSettings
from scanner.models import (
    Level,
    MediaError,
    Modality,
    Person,
    RecordingAnalysis,
    RecordingContext,
    RecordingStatus,
    ScanResult,
)
from scanner.outputs.document import build_document
from scanner.pipeline.discover import discover_inputs
from scanner.pipeline.execute import run_jobs
from scanner.pipeline.planning import Job, Splitting
from scanner.policy.consent.records import ConsentDocument, ConsentRecords
from scanner.policy.manifest import Manifest, recording_context
from scanner.policy.risk import DEFAULT_RUBRIC, Rubric, score_person
from scanner.policy.rules import PolicySettings, apply_settings, check_policy
from scanner.policy.waivers import WaiverFile, apply_waivers
from scanner.source_digest import source_digest
from scanner.store.analyses import analysis_version, settings_hash
from scanner.store.blobs import dumps, loads
from scanner.store.database import Store
from scanner.store.rescan import FileFacts


@dataclass
class ScanOptions:
    """Everything that shapes a scan besides the inputs and the consent records."""

    purposes: list[str] = field(default_factory=list)  # command-line purposes, added to every recording's
    fail_on: Level = Level.HIGH
    workers: int = 1
    isolated: bool = False  # analyse in worker processes even with one worker (the command line does)
    # Resident memory one local worker may hold while analysing a file (None: no ceiling); a file that
    # would need more is reported unreadable with the reason, and not reused from the cache later.
    max_memory_bytes: int | None = None
    as_of: dt.date | None = None
    analysis: AnalysisSettings = field(default_factory=AnalysisSettings)
    resolver: ResolverSettings = field(default_factory=ResolverSettings)
    rubric: Rubric = DEFAULT_RUBRIC
    policy: PolicySettings = field(default_factory=PolicySettings)
    manifest: Manifest | None = None
    waivers: WaiverFile | None = None
    show_from: Level = Level.LOW
    use_cache: bool = True  # reuse stored analyses of unchanged files (False: --no-cache)
    scheduler: str | None = None  # Dask scheduler address (tcp://host:8786); None: local processes
    splitting: Splitting = field(default_factory=Splitting)  # when a long video is split over workers
    storage: StorageSettings = field(default_factory=StorageSettings)  # how s3:// and other URL inputs are read


@dataclass
class ScanStats:
    """What a scan did, besides what it found: filled in by `run_scan` as it goes."""

    scan_id: str | None = None
    total: int = 0
    analysed: int = 0  # decoded and analysed in this scan
    reused: int = 0  # taken from the scan database (same content, same settings, same tool version)
    media_seconds: float = 0.0
    stored: bool = False
    last_reused: bool = False  # whether the recording just reported to the progress callback was reused


class ScanInterrupted(Exception):
    """The scan was stopped (Ctrl-C) after `stats.analysed` recordings were analysed and stored."""

    def __init__(self, stats: ScanStats):
        super().__init__(f"interrupted after {stats.analysed + stats.reused} of {stats.total} recordings")
        self.stats = stats


ProgressCallback = Callable[[int, int, RecordingAnalysis], None]
HASH_THREADS = 4


def run_scan(
    inputs: list[Path],
    consent: ConsentRecords | None,
    options: ScanOptions,
    progress: ProgressCallback | None = None,
    store: Store | None = None,
    stats: ScanStats | None = None,
) -> ScanResult:
    """Scan `inputs` against `consent` and return every decision the scan made.

    With a `store` (the scan database), recordings whose content (sha256), analysis settings and
    tool version match a stored analysis are not decoded again, each new analysis is stored as soon
    as it finishes (so a killed scan resumes where it stopped), and the scan's people, findings and
    results are recorded for `history`, `diff` and `report`.
    """
    stats = stats if stats is not None else ScanStats()
    started = _now()
    as_of = options.as_of or dt.date.today()
    if consent is None:
        consent = ConsentRecords(Path("<none>"), ConsentDocument())
        consent_sha = None
        consent_file = None
    else:
        consent_sha = sha256_file(consent.path)
        consent_file = str(consent.path)

    found = discover_inputs(inputs, consent.all_enrolment_paths(), options.storage)
    paths, skipped, objects = found.recordings, found.skipped, found.objects
    enrolment = _enrol(consent, options, store)
    digests = _file_digests([p for p in paths if p not in objects], store, options.use_cache)
    digests.update(_object_digests(objects, store, options.use_cache))
    stats.total = len(paths)
    scan_id = _scan_id(started, [d for d in digests.values() if isinstance(d, str)])
    stats.scan_id = scan_id
    options_record = _options_record(options)

    key = (settings_hash(options.analysis), analysis_version())
    if store is not None:
        store.begin_scan(scan_id, started, [str(p) for p in inputs], options_record, len(paths), consent_sha)
        stats.stored = True

    analysed: dict[Path, RecordingAnalysis] = {}

    def done(analysis: RecordingAnalysis, reused: bool) -> None:
        analysed[analysis.path] = analysis
        stats.media_seconds += analysis.media.duration_s if analysis.media else 0.0
        stats.last_reused = reused
        if reused:
            stats.reused += 1
        else:
            stats.analysed += 1
        if progress:
            progress(len(analysed), len(paths), analysis)

    jobs: list[Job] = []
    first_of: dict[str, Path] = {}  # identical copies are analysed once
    copies: dict[Path, list[Path]] = {}
    try:
        for path in paths:
            digest = digests[path]
            if digest is None:  # an object not seen unchanged before: its worker reads and hashes it
                jobs.append(Job(path, None, options.storage, objects[path].size))
                continue
            if not isinstance(digest, str):  # could not be read: a finding, never skipped
                unreadable = RecordingAnalysis(path, "", RecordingStatus.UNREADABLE, error=digest.args[0])
                if store is not None:
                    store.save_analysis(unreadable, *key, scan_id=scan_id)
                done(unreadable, False)
                continue
            cached = None
            if store is not None and options.use_cache:
                cached = store.lookup_analysis(digest, *key)
            if cached is not None and cached.status is RecordingStatus.UNREADABLE and (cached.error or "").startswith(
                    MEMORY_CEILING_REASON):
                cached = None  # stopped at a memory ceiling: with the memory allowed now it may succeed
            if cached is not None:
                cached.path = path
                store.note_reused(scan_id, cached)
                done(cached, True)
            elif digest in first_of:
                copies.setdefault(first_of[digest], []).append(path)
            else:
                first_of[digest] = path
                facts = objects.get(path)
                jobs.append(Job(path, digest, options.storage if facts else None, facts.size if facts else None))

        isolate, starting = frozenset(), None
        if store is not None:  # a file that killed an earlier run is analysed in a separate process
            isolate = frozenset(store.crashed_on())
            starting = lambda job: store.note_analysing(scan_id, job.sha256)  # noqa: E731
        if jobs and (options.workers > 1 or options.isolated or options.scheduler):
            import_in_background()  # the people stage's clustering, while this process waits for the workers
        for analysis in run_jobs(jobs, options.analysis, options.workers, options.scheduler, options.splitting,
                                 isolate, starting, options.isolated, options.max_memory_bytes):
            if store is not None:
                store.save_analysis(analysis, *key, scan_id=scan_id)
                if analysis.path in objects and analysis.sha256:
                    store.remember_object_digests([(str(analysis.path), objects[analysis.path], analysis.sha256)])
            done(analysis, False)
            for other in copies.get(analysis.path, []):
                twin = _copy_for(analysis, other)
                if store is not None:
                    store.note_reused(scan_id, twin)
                done(twin, True)
        if store is not None and starting is not None:
            store.note_analysing(scan_id, None)
    except KeyboardInterrupt:
        if store is not None:
            store.set_scan_status(scan_id, "interrupted")
        raise ScanInterrupted(stats) from None
    except BaseException:
        if store is not None:
            try:
                store.set_scan_status(scan_id, "failed")
            except Exception:  # noqa: BLE001 - report the original failure
                pass
        raise
    recordings = [analysed[p] for p in paths]

    people = _resolve_people(recordings, enrolment.subjects, options, store)
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
    result = ScanResult(
        scan_id=scan_id,
        started_at=started,
        finished_at=_now(),
        inputs=[str(p) for p in inputs],
        options=options_record,
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
    if store is not None:
        store.finish_scan(result, build_document(result), *key)
    return result


def _enrol(consent: ConsentRecords, options: ScanOptions, store: Store | None):
    """Enrol the consent file's subjects, reusing stored references when the enrolment media are unchanged."""
    if store is None or not consent.subjects:
        return enrol_subjects(consent, options.analysis.audio_sample_rate)
    key_parts: list = [analysis_version(), options.analysis.audio_sample_rate,
                       source_digest("identity/enrolment.py")]
    try:
        for subject in consent.subjects:
            key_parts.append([
                subject.id, subject.name,
                [sha256_file(p) for p in consent.enrolment_paths(subject, Modality.FACE)],
                [sha256_file(p) for p in consent.enrolment_paths(subject, Modality.VOICE)],
            ])
    except MediaError:
        return enrol_subjects(consent, options.analysis.audio_sample_rate)  # reports the problem
    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()
    if options.use_cache:
        subjects = store.lookup_enrolment(key)
        if subjects is not None:
            return EnrolmentResult(subjects, [])
    result = enrol_subjects(consent, options.analysis.audio_sample_rate)
    if not result.problems:  # problems point at consent-file lines: always computed afresh
        store.save_enrolment(key, result.subjects)
    return result


def _resolve_people(recordings: list[RecordingAnalysis], subjects: list[EnrolledSubject], options: ScanOptions,
                    store: Store | None) -> list[Person]:
    """`resolve_people`, or the people of an earlier scan that read exactly the same biometrics."""
    if store is None:
        return resolve_people(recordings, subjects, options.resolver)
    key = resolution_key(recordings, subjects, options.resolver)
    if options.use_cache:
        records = store.lookup_people(key)
        people = people_from_records(records, recordings) if records is not None else None
        if people is not None:
            return people
    people = resolve_people(recordings, subjects, options.resolver)
    store.save_people(key, people_to_records(people, recordings))
    return people


def _file_digests(paths: list[Path], store: Store | None, use_cache: bool) -> dict[Path, str | MediaError]:
    """`hash_files`, except that a file whose stat facts match the scan database's entry is not read.

    New digests are remembered for the next scan (see `scanner.store.rescan.FileFacts` for when a file's
    facts are trusted); `use_cache=False` reads every file.
    """
    if store is None:
        return hash_files(paths)
    where = {p: os.fsencode(os.path.abspath(p)) for p in paths}  # bytes: any file name
    known = store.known_digests(list(where.values())) if use_cache else {}
    digests: dict[Path, str | MediaError] = {}
    to_read: dict[Path, FileFacts | None] = {}
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            to_read[path] = None  # reading reports the problem
            continue
        facts = FileFacts.of(st) if stat.S_ISREG(st.st_mode) else None
        entry = known.get(where[path])
        if facts is not None and entry is not None and entry[0] == facts:
            digests[path] = entry[1]
        else:
            to_read[path] = facts
    reading_from = time.time_ns()
    digests.update(hash_files(list(to_read)))
    remembered = [(where[p], known[where[p]][0], digests[p]) for p in paths if p not in to_read]
    remembered += [(where[p], facts, digests[p]) for p, facts in to_read.items()
                   if facts is not None and isinstance(digests[p], str) and facts.settled_before(reading_from)]
    store.remember_digests(remembered)
    return {p: digests[p] for p in paths}


def _object_digests(
    objects: dict[ObjectURL, ObjectFacts], store: Store | None, use_cache: bool
) -> dict[Path, str | None]:
    """The digest of each object whose listed facts (ETag, size, last-modified) match the scan database's
    entry; None for the others, which their worker reads, hashes and analyses (one download each)."""
    if store is None or not use_cache or not objects:
        return dict.fromkeys(objects)
    known = store.known_object_digests([str(url) for url in objects])
    digests: dict[Path, str | None] = {}
    for url, facts in objects.items():
        entry = known.get(str(url))
        digests[url] = entry[1] if entry is not None and facts.identifies_content and entry[0] == facts else None
    # Entries in use are remembered again, so that `purge` by age keeps them.
    store.remember_object_digests([(str(url), objects[url], d) for url, d in digests.items() if d is not None])
    return digests


def hash_files(paths: list[Path]) -> dict[Path, str | MediaError]:
    """sha256 of each file (the cache key), a few files at a time; a file that cannot be read maps to the error."""

    def one(path: Path) -> str | MediaError:
        try:
            return sha256_file(path)
        except MediaError as exc:
            return exc
        except OSError as exc:
            return MediaError(f"cannot open file: {exc.strerror or exc}")

    if len(paths) <= 1:
        return {p: one(p) for p in paths}
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:  # hashlib releases the GIL
        return dict(zip(paths, pool.map(one, paths)))


def _copy_for(analysis: RecordingAnalysis, path: Path) -> RecordingAnalysis:
    """The analysis of an identical file at another path (the measurements are the same)."""
    twin = loads(dumps(analysis))
    twin.path = path
    return twin


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
        except OSError as exc:
            warnings.append(
                f"{rec.path}: recording metadata unreadable ({exc.strerror or exc}); purposes from the command line"
            )
            contexts[rec.path] = recording_context(
                rec.path, options.manifest, options.purposes, options.policy.retention_days, use_sidecar=False
            )
    return contexts, warnings


def _options_record(options: ScanOptions) -> dict:
    return {
        "purposes": list(options.purposes),
        "fail_on": options.fail_on.value,
        "workers": options.workers,
        "scheduler": options.scheduler,
        "cache": options.use_cache,
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
        "manifest_sha256": _file_hash(options.manifest.path) if options.manifest else None,
        "waivers": str(options.waivers.path) if options.waivers else None,
        "waivers_sha256": _file_hash(options.waivers.path) if options.waivers else None,
        "show_from": options.show_from.value,
        "tool_version": __version__,
    }


def _file_hash(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except (OSError, MediaError):
        return None


def _common_root(inputs: list[Path]) -> Path | None:
    """The folder the local inputs share (reports name local recordings relative to it); objects
    are always named by their whole URL."""
    try:
        resolved = [p.resolve() for p in inputs if not isinstance(p, ObjectURL)]
        root = Path(os.path.commonpath([str(p) for p in resolved]))
    except ValueError:
        return None
    return root if root.is_dir() else root.parent


def _scan_id(started: str, digests: list[str]) -> str:
    digest = hashlib.sha256("".join(digests).encode()).hexdigest()[:8]
    stamp = started.replace("-", "").replace(":", "").replace("T", "-")[:15]
    return f"{stamp}-{digest}-{uuid.uuid4().hex[:4]}"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
