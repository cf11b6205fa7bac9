"""CPU seconds and memory of a process, from /proc (Linux only, like the rest of the local cluster)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """A process's cumulative CPU time and its resident memory now and at its peak."""

    cpu_seconds: float
    rss_bytes: int
    peak_rss_bytes: int


def usage(pid: int) -> Usage:
    """User+system CPU seconds so far, current RSS (VmRSS) and peak RSS (VmHWM) of `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat(5)
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) * 1024
    return Usage(cpu_seconds=cpu, rss_bytes=memory.get("VmRSS", 0), peak_rss_bytes=memory.get("VmHWM", 0))


def load_average() -> str:
    """The machine's load average over 1, 5 and 15 minutes, as `a / b / c` (to print next to a measurement)."""
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def mib(size: int) -> str:
    return f"{size / 2**20:.0f} MiB"


def usage_of(pids: Sequence[int]) -> Usage:
    """The sum over several processes (e.g. the node agents' host processes): CPU, RSS and peak RSS added up."""
    each = [usage(pid) for pid in pids]
    return Usage(
        cpu_seconds=sum(u.cpu_seconds for u in each),
        rss_bytes=sum(u.rss_bytes for u in each),
        peak_rss_bytes=sum(u.peak_rss_bytes for u in each),
    )
