"""Records every stage uses: ordered levels (tiers, severities, `--fail-on`) and time in a recording.

Times are seconds from the start of the recording.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(str, enum.Enum):
    """An ordered level used for cloneability tiers, finding severities and `--fail-on`."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for NONE up to 4 for CRITICAL: the order levels compare by."""
        return _LEVEL_ORDER.index(self)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Level):
            return NotImplemented
        return self.rank >= other.rank

    def lowered(self, steps: int = 1) -> "Level":
        """The level `steps` below this one, never below NONE."""
        return _LEVEL_ORDER[max(0, self.rank - steps)]


_LEVEL_ORDER = [Level.NONE, Level.LOW, Level.MEDIUM, Level.HIGH, Level.CRITICAL]


@dataclass(frozen=True)
class TimeRange:
    """A span of a recording in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        """Length in seconds (0 for an empty or reversed range)."""
        return max(0.0, self.end - self.start)


def timecode(seconds: float) -> str:
    """A time in a recording as people read it: 0:01.0, 12:05.3, 1:02:03.4 (from seconds)."""
    seconds = max(0.0, float(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:04.1f}"
    return f"{minutes}:{secs:04.1f}"


def merge_ranges(ranges: list[TimeRange], gap: float = 0.0) -> list[TimeRange]:
    """Union of time ranges; ranges closer than `gap` seconds are joined."""
    merged: list[TimeRange] = []
    for r in sorted(ranges, key=lambda r: (r.start, r.end)):
        if merged and r.start <= merged[-1].end + gap:
            last = merged[-1]
            merged[-1] = TimeRange(last.start, max(last.end, r.end))
        else:
            merged.append(r)
    return merged
