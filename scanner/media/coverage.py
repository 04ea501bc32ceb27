"""Decode accounting (coverage): what each decoding pass over a stream delivered.

A packet the decoder rejects does not end decoding; the stream goes on from the next packet, and
every pass records what it delivered (`StreamCoverage`): the stretches it could not decode
(rejected packets; data ending before the declared duration; more than `GAP_TOLERANCE_S` without
any data between packets of known length), the count of rejected packets, the causes in words, and
for video the sampled frames planned and decoded. Audio keeps its time line: a rejected stretch
becomes silence of the same length (`scanner.media.audio`).

`StreamTally` counts one pass packet by packet; `decode_log()` collects the coverage of every video
pass made inside it.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Callable, Iterator
from fractions import Fraction

import av

from scanner.media.containers import short_av_error
from scanner.media.limits import Deadline, bound, check_deadline
from scanner.models import StreamCoverage, TimeRange, join_coverage, merge_ranges

#: Stretches without data shorter than this (seconds) are the normal slack of container timing
#: (the last frame's length, audio encoder priming, rounding in a header's duration), not a gap.
GAP_TOLERANCE_S = 0.5

#: At most this many missing stretches are kept per stream: past it, neighbours are joined
#: (a file rejected every other packet would otherwise list thousands).
MAX_MISSING_RANGES = 200


class StreamTally:
    """What one decoding pass over one stream delivered, packet by packet.

    Times are seconds from `origin` (the stream's start, in its time base units), counted within
    the stretch [start_s, end_s) (the whole stream, or a window of it). `accepted(packet)` and
    `rejected(packet, exc)` are called for every demuxed packet; `stopped(exc)` when the
    container cannot be read further. `result()` turns it into a `StreamCoverage`.

    Packets of known length cover their own span; a packet of unknown length (0) covers up to the
    next packet (nothing shows data missing there). Spans closer than `gap_s` are joined.
    """

    def __init__(self, kind: str, time_base, origin: int | None, start_s: float, end_s: float,
                 nominal_s: float = 0.04, gap_s: float = GAP_TOLERANCE_S):
        self.kind = kind
        self.time_base = time_base or Fraction(1, 1)
        # Integer arithmetic per packet: the same correctly rounded seconds as float(Fraction), a
        # fraction of the cost (every packet of every pass comes through here).
        self._ticks = (self.time_base.numerator, self.time_base.denominator)
        self.origin = origin
        self.start_s = start_s
        self.end_s = end_s
        self.nominal_s = nominal_s
        self.gap_s = gap_s
        self.covered: list[list[float]] = []  # [start, end], mostly in order
        self.failed: list[TimeRange] = []
        self.errors = 0
        self.causes: dict[str, None] = {}
        self._open = False  # the last accepted packet had no length: it reaches the next one
        self.limit_s: float | None = None
        self.stopped_by: BaseException | None = None

    def _span(self, packet) -> tuple[float, float] | None:
        """(start, end) of a packet in seconds from `origin`; None without a timestamp."""
        pts = packet.pts if packet.pts is not None else packet.dts
        if pts is None:
            return None
        if self.origin is None:
            self.origin = pts
        num, den = self._ticks
        start = (pts - self.origin) * num / den
        length = packet.duration * num / den if packet.duration else 0.0
        return start, start + length

    def accepted(self, packet) -> None:
        """A packet the decoder took: its span counts as covered."""
        span = self._span(packet)
        if span is None:
            return
        start, end = span
        last = self.covered[-1] if self.covered else None
        if last is not None and (self._open or last[0] - self.gap_s <= start <= last[1] + self.gap_s):
            last[0], last[1] = min(last[0], start), max(last[1], end)
        else:
            self.covered.append([start, end])
        self._open = end <= start

    def rejected(self, packet, exc: BaseException) -> None:
        """A packet the decoder rejected with `exc`: its span (or `nominal_s`) counts as failed."""
        self.errors += 1
        self.causes.setdefault(f"the decoder rejected damaged data ({short_av_error(exc)})", None)
        span = self._span(packet)
        if span is not None:
            start, end = span
            self.failed.append(TimeRange(start, end if end > start else start + self.nominal_s))
        self._open = False

    def stopped(self, exc: BaseException) -> None:
        """The container could not be read further (`exc`): the rest counts as missing."""
        self.stopped_by = exc
        self.causes.setdefault(f"the container could not be read further ({short_av_error(exc)})", None)

    def cut(self, at_s: float, cause: str) -> None:
        """Decoding stops at `at_s` on purpose (a limit): the rest counts as missing, for `cause`."""
        self.limit_s = at_s
        self.causes.setdefault(cause, None)

    def result(self, frames_planned: int | None = None, frames_decoded: int | None = None) -> StreamCoverage:
        """The pass as a `StreamCoverage`: missing stretches within [start_s, end_s), errors, causes."""
        lo, hi = self.start_s, self.end_s
        spans = merge_ranges([TimeRange(a, b) for a, b in self.covered], gap=self.gap_s)
        holes: list[TimeRange] = []
        at = lo
        for span in spans:
            if span.start - at > self.gap_s:
                holes.append(TimeRange(at, min(span.start, hi)))
            at = max(at, span.end)
        if self.limit_s is not None and self.limit_s < hi:
            holes.append(TimeRange(min(at, self.limit_s), hi))
        elif hi - at > self.gap_s:
            if not spans and not self.errors:
                self.causes.setdefault("no decodable data", None)
            elif spans and not self.stopped_by:
                self.causes.setdefault(f"the data ends at {at:.1f} s of the {hi:.1f} s the header declares "
                                       "(truncated file)", None)
            holes.append(TimeRange(at, hi))
        if any(h.start > lo + 1e-9 and h.end < hi - 1e-9 for h in holes) and not self.errors:
            self.causes.setdefault("stretches without any data between packets", None)
        missing = [TimeRange(max(lo, r.start), min(hi, r.end)) for r in [*holes, *self.failed]]
        missing = merge_ranges([r for r in missing if r.end > r.start])
        gap = 1.0
        while len(missing) > MAX_MISSING_RANGES:
            missing, gap = merge_ranges(missing, gap=gap), gap * 4
        return StreamCoverage(
            kind=self.kind, start_s=lo, end_s=hi, missing=tuple(missing), errors=self.errors,
            causes=tuple(self.causes), frames_planned=frames_planned, frames_decoded=frames_decoded,
        )

    def close_open_end(self) -> None:
        """A stream without a declared length (`end_s` infinite) lasts as long as its data did."""
        if self.end_s == math.inf:
            self.end_s = max((b for _, b in self.covered), default=self.start_s)


def decoded_packets(container, stream, tally: StreamTally, deadline: Deadline | None,
                    on_rejected: Callable[[], None] | None = None) -> Iterator[list]:
    """Demux and decode `stream` packet by packet, yielding each packet's decoded frames.

    Every packet is counted in `tally`; one the decoder rejects is skipped (`on_rejected()` is then
    called) and decoding goes on. The limits are checked before each packet; an error reading the
    container itself is raised to the caller.
    """
    for packet in container.demux(stream):
        check_deadline(deadline)
        try:
            frames = packet.decode()
        except (av.FFmpegError, ValueError) as exc:
            tally.rejected(packet, exc)
            if on_rejected is not None:
                on_rejected()
            continue
        tally.accepted(packet)
        yield frames


def grid_points(lo: float, hi: float, interval: float) -> int:
    """Sampling-grid points (multiples of `interval` > 0) in [lo, hi)."""
    if not math.isfinite(hi) or hi <= lo:
        return 0
    return max(0, math.ceil(hi / interval - 1e-9) - math.ceil(lo / interval - 1e-9))


def with_planned_frames(coverage: StreamCoverage, interval: float, decoded: int) -> StreamCoverage:
    """`coverage` with the sampled frames decoded and planned: the decoded ones plus the grid points
    in missing stretches. A frame shown across several grid points (a still screen in a variable
    frame rate video) is one picture, sampled once. `interval` 0 (every frame kept): the missing
    stretches are not counted in frames."""
    lost = sum(grid_points(r.start, r.end, interval) for r in coverage.missing) if interval else 0
    return dataclasses.replace(coverage, frames_planned=decoded + lost, frames_decoded=decoded)


class DecodeLog:
    """The `StreamCoverage` of every video pass made inside a `decode_log()` block, in order."""

    def __init__(self) -> None:
        self.video: list[StreamCoverage] = []

    def video_coverage(self) -> StreamCoverage | None:
        """The passes joined into one coverage (`models.join_coverage`); None when there was none."""
        return join_coverage(self.video)


_LOG: contextvars.ContextVar[DecodeLog | None] = contextvars.ContextVar("likeness_decode_log", default=None)


@contextlib.contextmanager
def decode_log() -> Iterator[DecodeLog]:
    """Within this block, every `iter_frames` pass records its accounting in the yielded log.

    For the face pass of one file (``with coverage.decode_log() as log: ...``); passes made by code
    the caller does not wrap (lip reading) are not counted.
    """
    log_ = DecodeLog()
    with bound(_LOG, log_):
        yield log_


def record_video_pass(coverage: StreamCoverage) -> None:
    """Add one video pass's coverage to the enclosing `decode_log()` block, if any."""
    log_ = _LOG.get()
    if log_ is not None:
        log_.video.append(coverage)
