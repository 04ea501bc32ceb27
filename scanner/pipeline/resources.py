"""What a worker may take: how many workers a scan starts, and the time and memory each may use on a file.

`run_under_limits` runs one pool task within its limits: past the per-file time limit plus a
quarter (`stop_after`) the kernel ends the worker; past the memory ceiling the analysis stops with
a reason, and the address space is capped a little above it (`address_space_cap`).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

from scanner.analysis.recording import AnalysisSettings
from scanner.media.limits import memory_limit

#: Most worker processes a scan starts unless told otherwise (each holds the face and voice models,
#: about 0.5 GB).
MAX_DEFAULT_WORKERS = 8


def default_workers(limit: int = MAX_DEFAULT_WORKERS, cgroup: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """How many worker processes a scan uses unless told: one per CPU this process may run on.

    Counts the CPUs of this process's affinity mask, lowered by a container's CPU quota (cgroup v2
    `cpu.max`, e.g. "200000 100000" is 2 CPUs) when there is one, and caps the result at `limit`.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = cgroup.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, min(cpus, limit))


#: Share of the memory available to a scan that its worker processes may hold together by default.
DEFAULT_MEMORY_SHARE = 0.5


def default_memory_ceiling(
    workers: int, share: float = DEFAULT_MEMORY_SHARE, floor_bytes: int = 3 << 29,
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup/memory.max"),
) -> int | None:
    """Resident memory one worker may hold by default: `share` (half) of the memory this scan may
    use (the machine's, or a container's memory limit when lower), divided by `workers`, and at
    least `floor_bytes` (1.5 GB: one worker's need on an hour-long gallery meeting). None where
    the machine's memory cannot be read.
    """
    try:
        total = next(int(line.split()[1]) * 1024 for line in meminfo.read_text().splitlines()
                     if line.startswith("MemTotal:"))
    except (OSError, ValueError, StopIteration):
        return None
    try:
        limit = cgroup.read_text().strip()
        if limit != "max":
            total = min(total, int(limit))
    except (OSError, ValueError):
        pass
    return max(floor_bytes, int(share * total / max(1, workers)))


def stop_after(settings: AnalysisSettings) -> float | None:
    """How long one pool task may run before its worker is ended outright: None for never.

    The per-file time limit is checked between decoded frames and stages, so a decoder stuck inside
    one call never reaches a check. Past the limit plus a quarter (at least 30 s more, so that the
    check between frames always gets its chance first), the kernel ends the worker.
    """
    limit = settings.time_limit_s
    return None if not limit or limit <= 0 else limit + max(30.0, 0.25 * limit)


def run_under_limits(seconds: float | None, memory_bytes: int | None, function, *args):
    """Run one pool task in a worker, within its time and memory limits.

    Time: the kernel ends the worker (SIGALRM) if the task runs past `seconds`; the timer's default
    action needs nothing from the stuck worker, no Python code, no lock. Memory: past `memory_bytes`
    of resident memory the analysis stops with a reason (`memory_limit`, checked between
    frames and steps), and the worker's address space is capped a little above that
    (`address_space_cap`), so that one allocation which would take it far beyond fails with
    MemoryError (reported on the file) instead of waking the kernel's out-of-memory killer.
    """
    restore = address_space_cap(memory_bytes) if memory_bytes else None
    if seconds is not None:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        with memory_limit(memory_bytes):
            return function(*args)
    finally:
        if seconds is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if restore is not None:
            restore()


def address_space_cap(resident_bytes: int, slack_bytes: int = 1 << 30) -> Callable[[], None] | None:
    """Cap this process's address space (RLIMIT_AS) so that it can hold `resident_bytes` resident and
    no more than `slack_bytes` beyond; returns a function that lifts the cap again (None off Linux).

    The address space counts what the process has reserved but not touched (thread stacks, allocator
    arenas, model files mapped but unread), so the cap is the ceiling plus what is reserved and not
    resident now, plus the slack.
    """
    try:
        import resource  # Unix only: elsewhere there is no cap (ImportError below)

        status = Path("/proc/self/status").read_text()
        fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in status.splitlines()
                  if line.startswith(("VmSize:", "VmRSS:"))}
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = resident_bytes + max(0, fields["VmSize"] - fields["VmRSS"]) + slack_bytes
        if hard != resource.RLIM_INFINITY:
            cap = min(cap, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, OSError, ValueError, KeyError):
        return None
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
