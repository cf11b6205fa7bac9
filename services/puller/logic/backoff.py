"""Retry and timeout arithmetic of one tag's pull (upstream-behaviour.md §5.3, design §5).

A tag gets `backoffLimit + 1` attempts. Each attempt has `timeoutSeconds` to finish, cut short by whatever
is left of `activeDeadlineSeconds` counted from the worker's start (upstream measures the deadline from the
moment the tag started pulling). Between attempts the worker sleeps 1 s, doubling up to 30 s. Unlike
upstream we do not sleep after the last attempt: nothing follows it, so the sleep would only delay the
Failed status.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from services.shared.api import constants

__all__ = [
    "DeadlineExceeded",
    "RetryPolicy",
    "attempt_timeout",
    "attempts_for",
    "deadline_for",
    "timeout_for",
]

DEADLINE_MESSAGE = "pulling exceeds the activeDeadlineSeconds"
"""Upstream's failure message when the deadline passes before or between attempts."""


class DeadlineExceeded(Exception):  # noqa: N818 -- a condition, not a programming error
    """The tag's activeDeadlineSeconds has passed; no further attempt may start."""

    def __init__(self) -> None:
        """The message is upstream's."""
        super().__init__(DEADLINE_MESSAGE)


@dataclass(frozen=True)
class RetryPolicy:
    """Sleep between failed attempts: `initial` seconds, times two per failure, at most `cap`."""

    initial: float = 1.0
    cap: float = 30.0

    def sleep_after(self, failures: int) -> float:
        """Seconds to sleep after the `failures`-th consecutive failure (1 for the first)."""
        if failures < 1:
            return 0.0
        return min(self.cap, self.initial * 2.0 ** min(failures - 1, 62))


def attempts_for(backoff_limit: int | None) -> int:
    """How many attempts a tag gets: `backoffLimit + 1`; unset or negative counts as upstream's default 3."""
    limit = constants.DEFAULT_BACKOFF_LIMIT if backoff_limit is None or backoff_limit < 0 else backoff_limit
    return limit + 1


def timeout_for(timeout_seconds: int | None) -> int:
    """One attempt's timeout in seconds: `timeoutSeconds`, or upstream's 600 when unset or not positive."""
    if timeout_seconds is None or timeout_seconds <= 0:
        return constants.DEFAULT_PULL_TIMEOUT_SECONDS
    return timeout_seconds


def deadline_for(start: datetime.datetime, active_deadline_seconds: int | None) -> datetime.datetime | None:
    """When the tag must give up: `start + activeDeadlineSeconds`; None when no deadline is set."""
    if active_deadline_seconds is None:
        return None
    return start + datetime.timedelta(seconds=active_deadline_seconds)


def attempt_timeout(*, timeout_seconds: int, deadline: datetime.datetime | None, now: datetime.datetime) -> float:
    """Seconds the next attempt may take: the timeout, capped by the time left to the deadline.

    Raises:
        DeadlineExceeded: the deadline has already passed (or is now).
    """
    if deadline is None:
        return float(timeout_seconds)
    left = (deadline - now).total_seconds()
    if left <= 0:
        raise DeadlineExceeded()
    return min(float(timeout_seconds), left)
