"""Time as an injected dependency.

TTLs, deadlines, back-off and cache expiry are computed from a `Clock` handed in by the composition root, never
from `time.time()` called deep inside logic, so tests can move time forward instead of sleeping (style
principle 3). Two readings are offered because they answer different questions:

- `now()` is wall-clock time (timezone-aware UTC). Use it for anything compared with timestamps stored in
  Kubernetes objects (`creationTimestamp`, `completionTime`), which are wall-clock too.
- `monotonic()` never goes backwards. Use it for local intervals (cache expiry, rate limits, elapsed time),
  which must not jump when NTP adjusts the system clock.
"""

from __future__ import annotations

import datetime
import threading
import time
from typing import Protocol


class Clock(Protocol):
    """The two readings of time a component may need."""

    def now(self) -> datetime.datetime:
        """Wall-clock time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards; only differences are meaningful."""
        ...


class SystemClock:
    """The real clock of the machine."""

    def now(self) -> datetime.datetime:
        """Current UTC time."""
        return datetime.datetime.now(datetime.UTC)

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to, for tests and simulations of timers.

    Both readings advance together, so code mixing them (a TTL computed from a stored timestamp, then
    waited for locally) sees a consistent world. Thread-safe, because the services' workers are threads.
    """

    def __init__(self, start: datetime.datetime | None = None) -> None:
        """Start at `start` (default 2024-01-01T00:00:00Z, a fixed instant so failures are reproducible)."""
        initial = start or datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
        if initial.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._lock = threading.Lock()
        self._now = initial.astimezone(datetime.UTC)
        self._monotonic = 1000.0

    def now(self) -> datetime.datetime:
        """The current simulated UTC time."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """The current simulated monotonic reading."""
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (never backwards: a monotonic clock cannot)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += datetime.timedelta(seconds=seconds)
            self._monotonic += seconds
