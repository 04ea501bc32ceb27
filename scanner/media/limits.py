"""Limits that keep one hostile or broken file from hanging or exhausting the machine.

Every limit ends in a `MediaError` whose message is a one-line reason; each is a parameter with the
default below (the table in docs/hostile-inputs.md lists them with their messages):

- pixels per frame (`DEFAULT_MAX_PIXELS`), checked on headers before any pixel is decoded;
- duration as the header states it (`DEFAULT_MAX_DURATION_S`), checked at probe time;
- plausible timing: frame rates within `MIN_FPS`-`MAX_FPS`, sample rates within
  `MIN_SAMPLE_RATE`-`MAX_SAMPLE_RATE` (a WAV declaring 1 Hz would otherwise be upsampled to gigabytes);
- audio decoded per file (`DEFAULT_MAX_AUDIO_S`);
- time per file: `time_limit(seconds)` (or an explicit `Deadline`);
- resident memory per worker process: `memory_limit(bytes)`.

The time and memory limits are context variables: decoders and analysis stages call
`check_deadline` / `check_limits` between frames and steps, and code that decodes through other
modules is covered without passing anything along.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import time
from collections.abc import Iterator

from scanner.models import MediaError

#: Default ceiling on the pixel count of a still image or a video frame (100 megapixels). Larger ones
#: are refused: decoding them could exhaust memory (decompression bombs) and no real photo of a person
#: needs it.
DEFAULT_MAX_PIXELS = 100_000_000

#: Default ceiling on the audio decoded from one recording (4 hours at the analysis rate).
DEFAULT_MAX_AUDIO_S = 4 * 3600.0

#: Default ceiling on a recording's duration as its header states it. Longer files are refused
#: at probe time: a header claiming years of media is broken or hostile, and more than the audio
#: ceiling could not be analysed whole anyway.
DEFAULT_MAX_DURATION_S = DEFAULT_MAX_AUDIO_S

#: Frame rates (fps) and sample rates (Hz) outside these ranges are corrupt or hostile timing metadata.
MIN_FPS, MAX_FPS = 0.01, 1000.0
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1000, 768_000


def format_duration(seconds: float) -> str:
    """A duration for a message: '4 h', '2.5 h', '12.0 min', '2.1 s', '2.78e+08 h'."""
    if seconds >= 3600:
        hours = seconds / 3600
        return f"{hours:.3g} h" if hours >= 1e6 else f"{hours:.2f}".rstrip("0").rstrip(".") + " h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f}".rstrip("0").rstrip(".") + " s"


@contextlib.contextmanager
def bound(variable: contextvars.ContextVar, value) -> Iterator[None]:
    """Within this block, `variable` holds `value` (in this thread and the contexts copied from it)."""
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)


# --------------------------------------------------------------------------------------------
# Per-file time limit
# --------------------------------------------------------------------------------------------


class Deadline:
    """A point in time after which decoding of the current file stops with a MediaError.

    `Deadline(seconds)` starts counting now. `check()` is called between decoded frames and
    packets, so the limit is honoured within one frame's decoding time.
    """

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.expires = time.monotonic() + self.seconds

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() > self.expires

    def check(self) -> None:
        """Raise MediaError("took longer than the N s per-file limit") once the deadline has passed."""
        if self.expired():
            raise MediaError(f"took longer than the {self.seconds:g} s per-file limit")


_DEADLINE: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("likeness_media_deadline", default=None)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[Deadline | None]:
    """Within this block, probe/iter_frames/load_audio stop with MediaError after `seconds`.

    For the analysis of one file: ``with limits.time_limit(300): ...``. None or <= 0: no limit.
    Code that decodes through other modules (the face analyser calls `iter_frames`) is covered
    without passing anything along.
    """
    deadline = Deadline(seconds) if seconds and seconds > 0 else None
    with bound(_DEADLINE, deadline):
        yield deadline


def active_deadline(explicit: Deadline | None) -> Deadline | None:
    """`explicit` when given, else the deadline of the enclosing `time_limit` block (None: no limit)."""
    return explicit if explicit is not None else _DEADLINE.get()


def check_deadline(deadline: Deadline | None) -> None:
    """Raise MediaError if `deadline` has passed or the enclosing `memory_limit` is exceeded."""
    if deadline is not None:
        deadline.check()
    ceiling = _CEILING.get()
    if ceiling is not None:
        ceiling.check()


# --------------------------------------------------------------------------------------------
# Per-file memory ceiling
# --------------------------------------------------------------------------------------------

#: Every memory-ceiling reason starts with this (a scan does not reuse such a result from its cache:
#: with more memory allowed, the file may well be analysed).
MEMORY_CEILING_REASON = "needed more memory than"

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident memory (RSS) in bytes, from /proc/self/statm; 0 where that is missing."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def memory_ceiling_message(limit_bytes: int) -> str:
    """The one-line reason reported for a file whose analysis passed the per-worker memory ceiling."""
    return (f"{MEMORY_CEILING_REASON} the {limit_bytes / 2**30:.1f} GB allowed per worker process "
            "(--max-memory); analysis stopped before the system ran out")


class MemoryCeiling:
    """A ceiling on this process's resident memory while one file is analysed.

    `check()` is called between decoded frames and between analysis stages (with the deadline), and
    reads the resident size at most every `every_s` seconds (default 0.05 s, so the reads cost
    nothing measurable). Past the ceiling it raises MediaError with `memory_ceiling_message`.
    """

    def __init__(self, limit_bytes: int, every_s: float = 0.05):
        self.limit_bytes = int(limit_bytes)
        self.every_s = every_s
        self._next = 0.0

    def exceeded(self) -> bool:
        """Whether this process holds more than `limit_bytes` resident now."""
        return resident_bytes() > self.limit_bytes

    def check(self) -> None:
        """Raise MediaError past the ceiling (looked at no more often than every `every_s`)."""
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        if self.exceeded():
            raise MediaError(memory_ceiling_message(self.limit_bytes))


_CEILING: contextvars.ContextVar[MemoryCeiling | None] = contextvars.ContextVar("likeness_memory_ceiling",
                                                                                 default=None)


@contextlib.contextmanager
def memory_limit(limit_bytes: int | None) -> Iterator[MemoryCeiling | None]:
    """Within this block, decoding (and every `check_limits()`) stops with MediaError once this
    process holds more than `limit_bytes` of resident memory. None or <= 0: no ceiling."""
    ceiling = MemoryCeiling(limit_bytes) if limit_bytes and limit_bytes > 0 else None
    with bound(_CEILING, ceiling):
        yield ceiling


def current_memory_ceiling() -> MemoryCeiling | None:
    """The ceiling of the enclosing `memory_limit` block, if any."""
    return _CEILING.get()


def check_limits() -> None:
    """Raise MediaError if the enclosing `time_limit` has expired or `memory_limit` is exceeded.

    For long computations outside the decoders (the analysis stages call it between steps).
    """
    check_deadline(_DEADLINE.get())
