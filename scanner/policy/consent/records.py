"""Consent records: load the consent file, report its problems by line, decide what a grant covers.

The file format is the product's documented core shape (see README): subjects with an id, a name,
enrolment media and consent grants. Other tools write this file, so unknown keys are rejected
loudly rather than ignored, and every problem names the file, the line and the field.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scanner.media.fileformat import FileFormatError, Problem, dotted, line_of, load_yaml_model
from scanner.media.files import sha256_file
from scanner.models import Level, Modality
from scanner.policy.consent.csv_records import read_grant_table

#: The purposes the product knows. The vocabulary is open: other purposes are accepted with a warning.
KNOWN_PURPOSES = (
    "recording",
    "internal-use",
    "publication",
    "ai-training",
    "synthetic-likeness",
    "marketing",
    "research",
    "broadcast",
)

_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_CONSENT_BYTES = 20 * 1024 * 1024


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MaxRisk(_Strict):
    """The highest cloning risk a subject accepted, per modality (absent: no limit stated)."""

    face: Level | None = None
    voice: Level | None = None

    def for_modality(self, modality: Modality) -> Level | None:
        """The accepted limit for `modality`, or None when the grant states none."""
        return self.face if modality is Modality.FACE else self.voice


class Grant(_Strict):
    """One consent grant: purposes, validity dates, accepted risk and where the evidence is kept."""

    purposes: list[str] = Field(min_length=1)
    given: dt.date
    expires: dt.date | None = None
    withdrawn: dt.date | None = None
    max_risk: MaxRisk | None = None
    evidence: str | None = None
    evidence_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    def is_active(self, on: dt.date) -> bool:
        """True if the grant is in force on `on`: given by then, not withdrawn by then, not expired before."""
        return (
            self.given <= on
            and (self.withdrawn is None or self.withdrawn > on)
            and (self.expires is None or self.expires >= on)
        )


class Enrolment(_Strict):
    """Reference media of a subject, paths relative to the consent file."""

    faces: list[str] = Field(default_factory=list)
    voices: list[str] = Field(default_factory=list)


class Subject(_Strict):
    """One person of the consent file: a stable id, a name, enrolment media and consent grants."""

    id: str
    name: str
    jurisdiction: list[str] = Field(default_factory=list)  # e.g. [EU, US-IL]: the laws that apply
    enrolment: Enrolment = Field(default_factory=Enrolment)
    grants: list[Grant] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id_is_stable_token(cls, value: str) -> str:
        if not _ID_PATTERN.match(value):
            raise ValueError(
                "must be 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        if value.startswith("unknown-"):
            raise ValueError("ids starting with 'unknown-' are reserved for unidentified people")
        return value


class RecordingConsent(Grant):
    """Consent given for particular recordings (who consented to this meeting, for what): a grant's
    terms plus the recordings and subjects it is about.

    `path` is a glob matched against recording paths relative to the scan root (`**` crosses
    folders); `sha256`, when given, must match the recording's content as well.
    """

    path: str = Field(min_length=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    subjects: list[str] = Field(min_length=1)

    def as_grant(self) -> Grant:
        """The grant's terms alone, as a subject's own grant states them."""
        return Grant(**{name: getattr(self, name) for name in Grant.model_fields})

    def covers(self, relative_path: str, sha256: str) -> bool:
        """True if this consent is about the recording at `relative_path` (glob) with content `sha256`."""
        if self.sha256 is not None and self.sha256 != sha256:
            return False
        return fnmatchcase(relative_path, self.path) or fnmatchcase(relative_path, self.path.replace("**/", ""))


class ConsentDocument(_Strict):
    """The consent file as written: subjects, and consent given per recording."""

    subjects: list[Subject] = Field(default_factory=list)
    recordings: list[RecordingConsent] = Field(default_factory=list)


#: Maps a field's key path (as in pydantic error locations) to its line in the file.
Locator = Callable[[tuple], "int | None"]


class ConsentFileError(FileFormatError):
    """The consent file cannot be used; `problems` lists every error found."""


@dataclass(frozen=True)
class ConsentRecords:
    """A loaded consent file: the subjects and the folder their enrolment paths are relative to."""

    path: Path
    document: ConsentDocument
    warnings: tuple[Problem, ...] = ()
    locate: Locator | None = field(default=None, compare=False, repr=False)

    def problem(self, loc: tuple, message: str) -> Problem:
        """A problem about the field at `loc`, located in this file."""
        return Problem(self.path, self.locate(loc) if self.locate else None, dotted(loc), message)

    @property
    def subjects(self) -> list[Subject]:
        """The subjects in file order."""
        return self.document.subjects

    @property
    def base_dir(self) -> Path:
        """The folder enrolment paths are relative to: the consent file's."""
        return self.path.parent

    def subject(self, subject_id: str) -> Subject | None:
        """The subject with this id, or None."""
        return next((s for s in self.subjects if s.id == subject_id), None)

    def enrolment_paths(self, subject: Subject, modality: Modality) -> list[Path]:
        """The subject's enrolment media for `modality` (face photos or voice samples), as paths."""
        names = subject.enrolment.faces if modality is Modality.FACE else subject.enrolment.voices
        return [(self.base_dir / name) for name in names]

    def recording_grants(self, subject_id: str, relative_path: str, sha256: str) -> list[Grant]:
        """Grants from per-recording consent that cover this subject in this recording."""
        return [
            rc.as_grant()
            for rc in self.document.recordings
            if subject_id in rc.subjects and rc.covers(relative_path, sha256)
        ]

    def all_enrolment_paths(self) -> set[Path]:
        """Every enrolment file of every subject, resolved: media the scan must not count as recordings."""
        return {
            p.resolve()
            for s in self.subjects
            for m in Modality
            for p in self.enrolment_paths(s, m)
        }


# --------------------------------------------------------------------------------------------
# Loading with line numbers
# --------------------------------------------------------------------------------------------


def load_consent(path: Path | str) -> ConsentRecords:
    """Read and validate a consent file (YAML, or a CSV of grants when its name ends in .csv).

    Raises ConsentFileError listing every problem with the file, its line (the CSV line for a
    spreadsheet) and the field; what is usable but doubtful is in the result's `warnings`.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".csv":
            document, locate = _document_from_csv(path)
        else:
            document, root = load_yaml_model(path, ConsentDocument, max_bytes=_MAX_CONSENT_BYTES)
            locate = lambda loc: line_of(root, loc)  # noqa: E731
    except FileFormatError as exc:
        raise ConsentFileError(exc.problems) from None
    problems, warnings = semantic_problems(path, locate, document)
    if problems:
        raise ConsentFileError(problems)
    return ConsentRecords(path=path, document=document, warnings=tuple(warnings), locate=locate)


def _document_from_csv(path: Path) -> tuple[ConsentDocument, Locator]:
    """A CSV of grants validated as a consent document; problems name the CSV line and column."""
    table = read_grant_table(path)
    try:
        return ConsentDocument.model_validate(table.data), table.locate
    except ValidationError as exc:
        raise FileFormatError([
            Problem(path, table.locate(err["loc"]), table.column(err["loc"]), err["msg"].removeprefix("Value error, "))
            for err in exc.errors()
        ]) from None


def semantic_problems(path: Path, locate: Locator, document: ConsentDocument) -> tuple[list[Problem], list[Problem]]:
    """Problems the schema cannot see: (errors, warnings), each located by line in `path`.

    Errors make the file unusable (a repeated subject id, for one); warnings are reported and the file
    is still used.
    """
    errors: list[Problem] = []
    warnings: list[Problem] = []
    seen: dict[str, int] = {}
    for i, subject in enumerate(document.subjects):
        loc = ("subjects", i, "id")
        if subject.id in seen:
            errors.append(
                Problem(path, locate(loc), dotted(loc),
                        f"duplicate subject id '{subject.id}' (first defined as subjects.{seen[subject.id]})")
            )
        seen.setdefault(subject.id, i)
        for modality, names in ((Modality.FACE, subject.enrolment.faces), (Modality.VOICE, subject.enrolment.voices)):
            key = "faces" if modality is Modality.FACE else "voices"
            for j, name in enumerate(names):
                loc = ("subjects", i, "enrolment", key, j)
                resolved = (path.parent / name).resolve()
                if not resolved.is_relative_to(path.parent.resolve()):
                    errors.append(Problem(path, locate(loc), dotted(loc),
                                          f"enrolment path '{name}' leaves the consent file's folder"))
                elif not resolved.is_file():
                    errors.append(Problem(path, locate(loc), dotted(loc),
                                          f"enrolment file '{name}' does not exist"))
        for g, grant in enumerate(subject.grants):
            _check_grant(path, locate, ("subjects", i, "grants", g), grant, errors, warnings)
    for r, rc in enumerate(document.recordings):
        for k, subject_id in enumerate(rc.subjects):
            if subject_id not in seen:
                loc = ("recordings", r, "subjects", k)
                errors.append(Problem(path, locate(loc), dotted(loc),
                                      f"unknown subject id '{subject_id}' (not among the subjects)"))
        _check_grant(path, locate, ("recordings", r), rc, errors, warnings)
    return errors, warnings


def _check_grant(path: Path, locate: Locator, at: tuple, grant: Grant | RecordingConsent,
                 errors: list[Problem], warnings: list[Problem]) -> None:
    for key in ("expires", "withdrawn"):
        value = getattr(grant, key)
        if value is not None and value < grant.given:
            loc = (*at, key)
            errors.append(Problem(path, locate(loc), dotted(loc),
                                  f"{key} ({value}) is before given ({grant.given})"))
    for p, purpose in enumerate(grant.purposes):
        if purpose not in KNOWN_PURPOSES:
            loc = (*at, "purposes", p)
            warnings.append(Problem(path, locate(loc), dotted(loc),
                                    f"unknown purpose '{purpose}' (known: {', '.join(KNOWN_PURPOSES)})",
                                    is_error=False))
    if grant.evidence and grant.evidence_sha256:
        evidence = path.parent / grant.evidence
        loc = (*at, "evidence_sha256")
        if not evidence.is_file():
            warnings.append(Problem(path, locate((*at, "evidence")), dotted((*at, "evidence")),
                                    f"evidence '{grant.evidence}' is not beside the consent file; hash not checked",
                                    is_error=False))
        elif sha256_file(evidence) != grant.evidence_sha256:
            errors.append(Problem(path, locate(loc), dotted(loc),
                                  f"evidence '{grant.evidence}' does not match its sha256 (the file changed)"))



# --------------------------------------------------------------------------------------------
# What a subject's grants allow
# --------------------------------------------------------------------------------------------


class ConsentOutcome(str, enum.Enum):
    """The consent status of a subject for a purpose on a date, as findings and reports name it."""

    GRANTED = "granted"
    NO_CONSENT = "no-consent"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    PURPOSE_NOT_COVERED = "purpose-not-covered"


@dataclass(frozen=True)
class ConsentDecision:
    """The consent status of one subject for one purpose on one date, and the grant behind it."""

    purpose: str
    outcome: ConsentOutcome
    grant: Grant | None = None


def decide_consent(
    subject: Subject | None, purpose: str, on: dt.date, extra_grants: list[Grant] | None = None
) -> ConsentDecision:
    """Whether `subject` consented to `purpose` on date `on`.

    An active grant covering the purpose wins. Otherwise the most telling reason is reported:
    a withdrawn grant for the purpose, then an expired one, then grants that exist but do not
    name the purpose, then no consent at all.
    """
    grants = [*(subject.grants if subject else []), *(extra_grants or [])]
    if subject is None or not grants:
        return ConsentDecision(purpose, ConsentOutcome.NO_CONSENT)
    covering = [g for g in grants if purpose in g.purposes]
    active = [g for g in covering if g.is_active(on)]
    if active:
        return ConsentDecision(purpose, ConsentOutcome.GRANTED, _most_permissive(active))
    withdrawn = [g for g in covering if g.withdrawn is not None and g.withdrawn <= on]
    if withdrawn:
        return ConsentDecision(purpose, ConsentOutcome.WITHDRAWN, max(withdrawn, key=lambda g: g.withdrawn))
    expired = [g for g in covering if g.expires is not None and g.expires < on]
    if expired:
        return ConsentDecision(purpose, ConsentOutcome.EXPIRED, max(expired, key=lambda g: g.expires))
    if covering:  # only grants that start in the future
        return ConsentDecision(purpose, ConsentOutcome.NO_CONSENT, covering[0])
    return ConsentDecision(purpose, ConsentOutcome.PURPOSE_NOT_COVERED)


def _most_permissive(grants: list[Grant]) -> Grant:
    def accepted(g: Grant) -> tuple[int, int]:
        mr = g.max_risk
        face = mr.face.rank if mr and mr.face else Level.CRITICAL.rank
        voice = mr.voice.rank if mr and mr.voice else Level.CRITICAL.rank
        return (face + voice, face)

    return max(grants, key=accepted)
