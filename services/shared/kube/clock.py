"""Time as an injected dependency, so queues, back-offs, leases and event limits can be tested without sleeping.

Two readings are needed and they must not be mixed: a monotonic one for durations (it never jumps when an
operator or NTP moves the wall clock, so a lease never "expires" because the clock stepped), and the wall
clock for the timestamps other programs read (`renewTime` on a Lease, `lastTimestamp` on an Event).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """The two readings of time this package uses."""

    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward; only differences are meaningful."""
        ...

    def now(self) -> datetime:
        """The current wall-clock time, timezone-aware in UTC."""
        ...


class SystemClock:
    """The real clock: `time.monotonic()` and `datetime.now(UTC)`."""

    def monotonic(self) -> float:
        """See `Clock.monotonic`."""
        return time.monotonic()

    def now(self) -> datetime:
        """See `Clock.now`."""
        return datetime.now(UTC)
