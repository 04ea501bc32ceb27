"""Consent records: load the consent file, report its problems by line, decide what a grant covers.

The file format is the product's documented core shape (see README): subjects with an id, a name,
enrolment media and consent grants. Other tools write this file, so unknown keys are rejected
loudly rather than ignored, and every problem names the file, the line and the field.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scanner.models import Level, Modality

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
        return self.face if modality is Modality.FACE else self.voice


class Grant(_Strict):
    """One consent grant: purposes, validity dates, accepted risk and where the evidence is kept."""

    purposes: list[str] = Field(min_length=1)
    given: dt.date
    expires: dt.date | None = None
    withdrawn: dt.date | None = None
    max_risk: MaxRisk | None = None
    evidence: str | None = None

    def is_active(self, on: dt.date) -> bool:
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
    id: str
    name: str
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


class ConsentDocument(_Strict):
    subjects: list[Subject] = Field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """One problem in a consent file, located precisely enough to fix it."""

    file: Path
    line: int | None
    field: str
    message: str
    is_error: bool = True

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        kind = "error" if self.is_error else "warning"
        field_part = f" [{self.field}]" if self.field else ""
        return f"{where}: {kind}{field_part}: {self.message}"


class ConsentFileError(Exception):
    """The consent file cannot be used; `problems` lists every error found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class ConsentRecords:
    """A loaded consent file: the subjects and the folder their enrolment paths are relative to."""

    path: Path
    document: ConsentDocument
    warnings: tuple[Problem, ...] = ()

    @property
    def subjects(self) -> list[Subject]:
        return self.document.subjects

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def subject(self, subject_id: str) -> Subject | None:
        return next((s for s in self.subjects if s.id == subject_id), None)

    def enrolment_paths(self, subject: Subject, modality: Modality) -> list[Path]:
        names = subject.enrolment.faces if modality is Modality.FACE else subject.enrolment.voices
        return [(self.base_dir / name) for name in names]

    def all_enrolment_paths(self) -> set[Path]:
        return {
            p.resolve()
            for s in self.subjects
            for m in Modality
            for p in self.enrolment_paths(s, m)
        }


# --------------------------------------------------------------------------------------------
# Loading with line numbers
# --------------------------------------------------------------------------------------------


def load_consent(path: Path) -> ConsentRecords:
    """Read and validate a consent file; raise ConsentFileError listing every problem by line."""
    path = Path(path)
    try:
        if path.stat().st_size > _MAX_CONSENT_BYTES:
            raise ConsentFileError([Problem(path, None, "", "file is larger than 20 MB")])
        text = path.read_text(encoding="utf-8")
    except ConsentFileError:
        raise
    except FileNotFoundError:
        raise ConsentFileError([Problem(path, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsentFileError([Problem(path, None, "", f"cannot read file: {exc}")]) from None

    loader = _ConsentLoader(text)
    root = None
    try:
        root = loader.get_single_node()
        data = loader.construct_document(root) if root is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and root is not None and mark is not None:
            loc = _path_to(root, mark.index)
            raise ConsentFileError([Problem(path, line, _dotted(loc), reason)]) from None
        raise ConsentFileError([Problem(path, line, "", f"not valid YAML: {reason}")]) from None
    finally:
        loader.dispose()

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConsentFileError([Problem(path, 1, "", "the top level must be a mapping with a 'subjects' list")])

    try:
        document = ConsentDocument.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(path, _line_of(root, err["loc"]), _dotted(err["loc"]), _plain_message(err))
            for err in exc.errors()
        ]
        raise ConsentFileError(problems) from None

    problems, warnings = _semantic_problems(path, root, document)
    if problems:
        raise ConsentFileError(problems)
    return ConsentRecords(path=path, document=document, warnings=tuple(warnings))


class _ConsentLoader(yaml.SafeLoader):
    """The safe YAML loader, with impossible dates reported at their line instead of crashing."""


def _construct_date(loader: yaml.SafeLoader, node: yaml.Node):
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(
            None, None, f"'{node.value}' is not a valid date ({exc})", node.start_mark
        ) from None


_ConsentLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_date)


def _semantic_problems(path: Path, root: Any, document: ConsentDocument) -> tuple[list[Problem], list[Problem]]:
    errors: list[Problem] = []
    warnings: list[Problem] = []
    seen: dict[str, int] = {}
    for i, subject in enumerate(document.subjects):
        loc = ("subjects", i, "id")
        if subject.id in seen:
            errors.append(
                Problem(path, _line_of(root, loc), _dotted(loc),
                        f"duplicate subject id '{subject.id}' (first defined as subjects.{seen[subject.id]})")
            )
        seen.setdefault(subject.id, i)
        for modality, names in ((Modality.FACE, subject.enrolment.faces), (Modality.VOICE, subject.enrolment.voices)):
            key = "faces" if modality is Modality.FACE else "voices"
            for j, name in enumerate(names):
                loc = ("subjects", i, "enrolment", key, j)
                resolved = (path.parent / name).resolve()
                if not resolved.is_relative_to(path.parent.resolve()):
                    errors.append(Problem(path, _line_of(root, loc), _dotted(loc),
                                          f"enrolment path '{name}' leaves the consent file's folder"))
                elif not resolved.is_file():
                    errors.append(Problem(path, _line_of(root, loc), _dotted(loc),
                                          f"enrolment file '{name}' does not exist"))
        for g, grant in enumerate(subject.grants):
            for key in ("expires", "withdrawn"):
                value = getattr(grant, key)
                if value is not None and value < grant.given:
                    loc = ("subjects", i, "grants", g, key)
                    errors.append(Problem(path, _line_of(root, loc), _dotted(loc),
                                          f"{key} ({value}) is before given ({grant.given})"))
            for p, purpose in enumerate(grant.purposes):
                if purpose not in KNOWN_PURPOSES:
                    loc = ("subjects", i, "grants", g, "purposes", p)
                    warnings.append(Problem(path, _line_of(root, loc), _dotted(loc),
                                            f"unknown purpose '{purpose}' (known: {', '.join(KNOWN_PURPOSES)})",
                                            is_error=False))
    return errors, warnings


def _line_of(node: Any, loc: tuple) -> int | None:
    """1-based line of the YAML node at `loc` (the deepest node that exists on the way)."""
    line = node.start_mark.line + 1 if node is not None else None
    for key in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(key, str):
            match = next((v for k, v in node.value if getattr(k, "value", None) == key), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _path_to(node: Any, index: int, loc: tuple = ()) -> tuple:
    """The key path of the YAML node that starts at character `index` (empty if not found)."""
    if node.start_mark.index == index and not isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        return loc
    if isinstance(node, yaml.MappingNode):
        children = [(getattr(k, "value", "?"), v) for k, v in node.value]
    elif isinstance(node, yaml.SequenceNode):
        children = list(enumerate(node.value))
    else:
        return ()
    for key, child in children:
        found = _path_to(child, index, (*loc, key))
        if found:
            return found
    return ()


def _dotted(loc: tuple) -> str:
    return ".".join(str(part) for part in loc)


def _plain_message(err: dict) -> str:
    message = err.get("msg", "invalid value")
    if err.get("type") == "extra_forbidden":
        return "unknown field (check the spelling against the documented format)"
    if err.get("type") == "enum":
        return f"{message}; got {err.get('input')!r}"
    return message.removeprefix("Value error, ")


# --------------------------------------------------------------------------------------------
# What a subject's grants allow
# --------------------------------------------------------------------------------------------


class ConsentOutcome(str, enum.Enum):
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


def decide_consent(subject: Subject | None, purpose: str, on: dt.date) -> ConsentDecision:
    """Whether `subject` consented to `purpose` on date `on`.

    An active grant covering the purpose wins. Otherwise the most telling reason is reported:
    a withdrawn grant for the purpose, then an expired one, then grants that exist but do not
    name the purpose, then no consent at all.
    """
    if subject is None or not subject.grants:
        return ConsentDecision(purpose, ConsentOutcome.NO_CONSENT)
    covering = [g for g in subject.grants if purpose in g.purposes]
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
