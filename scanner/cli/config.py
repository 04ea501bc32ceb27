"""The `likeness.toml` config file: the command line's options, the policy and the rubric in one place.

Command-line flags override the file; the file overrides the built-in defaults. Paths in the file
are relative to the file's folder. Example (every key optional):

```toml
[scan]
consent = "consent.yaml"
purposes = ["ai-training"]
fail_on = "high"          # exit 1 at or above this severity ("none" never fails)
show = "low"              # findings below this severity are left out of the outputs
formats = ["html", "json", "sarif"]
out = "likeness-report"
workers = 2
max_memory_gb = 4.0       # resident memory one worker may hold (default: half the memory / workers)
waivers = "likeness-waivers.yaml"
manifest = "likeness-manifest.yaml"

[analysis]
sample_fps = 2.0
max_width = 1280
face_detector = "hog"
max_pixels = 100000000    # larger images or frames are refused (decompression bombs)
max_duration_s = 14400    # longer recordings are refused
time_limit_s = 600        # one file's analysis stops (as unreadable) after this long

[policy]
retention_days = 1095     # 3 years; set to 0 to flag every dated recording
disabled = ["LK009"]
[policy.severity]
LK004 = "high"

[rubric]                  # thresholds of scanner.policy.risk.Rubric
voice_high_longest_s = 6.0

[storage]                 # s3:// and other object-store inputs (credentials: the environment, never here)
endpoint_url = "http://127.0.0.1:8333"   # an S3-compatible store; default AWS_ENDPOINT_URL, else AWS
region = "eu-central-1"
profile = "audit"         # a profile of ~/.aws/config; default AWS_PROFILE
anonymous = false         # public buckets, read without credentials
timeout_s = 60            # a stalled connection or read is retried after this long
retries = 3
spool_dir = "/var/tmp"    # where each worker copies the one object it analyses (default: the temp folder)
```
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from scanner.media.fileformat import FileFormatError, Problem, read_text
from scanner.media.objstore import StorageSettings
from scanner.models import Level
from scanner.policy.risk import Rubric
from scanner.policy.rules import RULES_BY_ID

CONFIG_NAME = "likeness.toml"


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScanTable(_Table):
    """`[scan]`: the defaults of `likeness scan`'s options (paths relative to the config file)."""

    consent: str | None = None
    purposes: list[str] | None = None
    fail_on: Level | None = None
    show: Level | None = None
    formats: list[str] | None = None
    out: str | None = None
    workers: int | None = Field(default=None, ge=1, le=256)
    max_memory_gb: float | None = Field(default=None, ge=0.5, le=4096)
    waivers: str | None = None
    manifest: str | None = None
    redact_thumbnails: bool | None = None


class AnalysisTable(_Table):
    """`[analysis]`: sampling and limits (`scanner.analysis.recording.AnalysisSettings`)."""

    sample_fps: float | None = Field(default=None, gt=0, le=60)
    max_width: int | None = Field(default=None, ge=160, le=7680)
    face_detector: str | None = Field(default=None, pattern="^(hog|cnn)$")
    max_pixels: int | None = Field(default=None, ge=10_000)
    max_duration_s: float | None = Field(default=None, gt=0)
    time_limit_s: float | None = Field(default=None, gt=0)


class StorageTable(_Table):
    """`[storage]`: how recordings in object storage are read (`scanner.media.objstore`)."""

    endpoint_url: str | None = Field(default=None, pattern=r"^https?://[^/@\s]+(/[^@\s]*)?$")
    region: str | None = None
    profile: str | None = None
    anonymous: bool | None = None
    timeout_s: float | None = Field(default=None, gt=0, le=3600)
    retries: int | None = Field(default=None, ge=0, le=20)
    spool_dir: str | None = None

    def settings(self, base: Path) -> StorageSettings:
        """The storage settings this table sets over the defaults; `spool_dir` relative to `base`."""
        values = {k: v for k, v in self.model_dump().items() if v is not None}
        if "spool_dir" in values:
            values["spool_dir"] = str(base / values["spool_dir"])
        return StorageSettings(**values)


class PolicyTable(_Table):
    """`[policy]`: retention period (days), disabled rules and severities by rule id or name."""

    retention_days: int | None = Field(default=None, ge=0)
    disabled: list[str] = Field(default_factory=list)
    severity: dict[str, Level] = Field(default_factory=dict)

    @field_validator("disabled")
    @classmethod
    def _known_rules(cls, value: list[str]) -> list[str]:
        _check_rule_ids(value)
        return value

    @field_validator("severity")
    @classmethod
    def _known_rule_keys(cls, value: dict[str, Level]) -> dict[str, Level]:
        _check_rule_ids(list(value))
        return value


def _check_rule_ids(ids: list[str]) -> None:
    unknown = [i for i in ids if i not in RULES_BY_ID]
    if unknown:
        raise ValueError(f"unknown rule id(s) {', '.join(unknown)} (known: {', '.join(RULES_BY_ID)})")


class LikenessConfig(_Table):
    """A likeness.toml: the `[scan]`, `[analysis]`, `[policy]`, `[storage]` and `[rubric]` tables."""

    scan: ScanTable = Field(default_factory=ScanTable)
    analysis: AnalysisTable = Field(default_factory=AnalysisTable)
    policy: PolicyTable = Field(default_factory=PolicyTable)
    storage: StorageTable = Field(default_factory=StorageTable)
    rubric: dict[str, float] = Field(default_factory=dict)

    @field_validator("rubric")
    @classmethod
    def _rubric_fields(cls, value: dict[str, float]) -> dict[str, float]:
        known = {f.name for f in dataclasses.fields(Rubric)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown rubric threshold(s) {', '.join(unknown)}")
        return value

    def rubric_settings(self) -> Rubric:
        """The cloneability rubric with the `[rubric]` table's thresholds over the defaults."""
        return dataclasses.replace(Rubric(), **{k: type(getattr(Rubric(), k))(v) for k, v in self.rubric.items()})


def load_config(path: Path) -> tuple[LikenessConfig, Path]:
    """Read a config file; return it with the folder its paths are relative to."""
    path = Path(path)
    text = read_text(path, max_bytes=1024 * 1024)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+)", str(exc))
        line = int(match.group(1)) if match else None
        raise FileFormatError([Problem(path, line, "", f"not valid TOML: {exc}")]) from None
    try:
        return LikenessConfig.model_validate(data), path.parent
    except ValidationError as exc:
        problems = [
            Problem(path, _line_of_key(text, err["loc"]), ".".join(str(p) for p in err["loc"]),
                    err["msg"].removeprefix("Value error, ") if err["type"] != "extra_forbidden" else "unknown key")
            for err in exc.errors()
        ]
        raise FileFormatError(problems) from None


def _line_of_key(text: str, loc: tuple) -> int | None:
    """The line where the last key of `loc` is set inside its table (TOML keeps no positions)."""
    table = None
    keys = [str(k) for k in loc if not isinstance(k, int)]
    if not keys:
        return None
    wanted_table = ".".join(keys[:-1]) if len(keys) > 1 else ""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            table = stripped.strip("[]").strip()
        elif (table or "") == wanted_table:
            if re.match(rf'^"?{re.escape(keys[-1])}"?\s*=', stripped):
                return number
    if wanted_table:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() == f"[{wanted_table}]":
                return number
    return None


def find_config() -> Path | None:
    """`likeness.toml` in the current folder, when there is one."""
    candidate = Path(CONFIG_NAME)
    return candidate if candidate.is_file() else None
