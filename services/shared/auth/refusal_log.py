"""Rate-limited log lines for refused gRPC calls.

Anyone who can reach a gRPC port can be refused, as often as they like: a line per refusal would let an
unauthenticated client fill the logs (and drown the one line that matters). So refusals of one kind (the
refusal's class and its client-facing reason) are logged at most once per interval: the first refusal of a
kind is logged at once, later ones within `interval_seconds` are only counted, and the next line of that kind
says how many were suppressed since the previous one. Counting is exact; only the lines are limited.

The table of kinds is bounded (`max_kinds`): past it, kinds whose interval has ended are dropped, and a
refusal of yet another kind is logged under its class alone, so no caller can grow it without limit.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from services.shared.auth.errors import AuthError
from services.shared.clock import Clock, SystemClock

__all__ = ["DEFAULT_INTERVAL_SECONDS", "RefusalLog"]

DEFAULT_INTERVAL_SECONDS = 60.0
"""One line per kind of refusal a minute: enough to see an attack or a broken client, not enough to flood."""

DEFAULT_MAX_KINDS = 256

_Kind = tuple[str, str]


@dataclass
class _Window:
    until: float
    suppressed: int = 0


class RefusalLog:
    """Logs refused calls at info level, at most one line per kind of refusal per `interval_seconds`.

    Args:
        logger: where the lines go.
        interval_seconds: the shortest time between two lines of one kind; 0 logs every refusal.
        max_kinds: how many kinds are told apart at once (see the module docstring).
        clock: monotonic time source (injectable for tests).
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        max_kinds: int = DEFAULT_MAX_KINDS,
        clock: Clock | None = None,
    ) -> None:
        """Nothing is logged yet."""
        if interval_seconds < 0:
            raise ValueError(f"interval_seconds must not be negative, got {interval_seconds}")
        self._log = logger
        self._interval = interval_seconds
        self._max_kinds = max_kinds
        self._clock = clock or SystemClock()
        self._windows: dict[_Kind, _Window] = {}
        self._lock = threading.Lock()
        self.refusals = 0
        """Every refusal reported, logged or not."""

    def refused(self, method: str, peer: str, error: AuthError) -> None:
        """Report one refused call; logs it unless a line of its kind was logged within the interval."""
        suppressed = self._admit_line(_kind_of(error))
        if suppressed is None:
            return
        if suppressed:
            self._log.info(
                "refused %s from %s: %s (%s); %d similar refusals not logged since the last line",
                method,
                peer,
                error,
                error.detail or "-",
                suppressed,
            )
        else:
            self._log.info("refused %s from %s: %s (%s)", method, peer, error, error.detail or "-")

    def _admit_line(self, kind: _Kind) -> int | None:
        """None when this refusal is only counted; otherwise how many of its kind went unlogged before it."""
        now = self._clock.monotonic()
        with self._lock:
            self.refusals += 1
            kind = self._bounded(kind, now)
            window = self._windows.get(kind)
            if window is not None and now < window.until:
                window.suppressed += 1
                return None
            self._windows[kind] = _Window(until=now + self._interval)
            return window.suppressed if window is not None else 0

    def _bounded(self, kind: _Kind, now: float) -> _Kind:
        """`kind`, or its class alone when the table is full of kinds still within their interval."""
        if kind in self._windows or len(self._windows) < self._max_kinds:
            return kind
        for known, window in list(self._windows.items()):
            if now >= window.until and not window.suppressed:
                del self._windows[known]
        return kind if len(self._windows) < self._max_kinds else (kind[0], "")


def _kind_of(error: AuthError) -> _Kind:
    return (type(error).__name__, str(error))
