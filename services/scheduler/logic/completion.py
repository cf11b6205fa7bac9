"""Time arithmetic of finished and deadline-bound jobs (upstream-behaviour.md §2.2 steps 4 and 12, §2.7)."""

from __future__ import annotations

from datetime import datetime

__all__ = ["deadline_requeue", "ttl_remaining"]


def ttl_remaining(ttl_seconds: int | None, completion_time: datetime | None, now: datetime) -> float | None:
    """Seconds until a finished job is to be deleted (≤ 0: delete now); None when it has no TTL or is unfinished."""
    if ttl_seconds is None or completion_time is None:
        return None
    return ttl_seconds - (now - completion_time).total_seconds()


def deadline_requeue(
    deadline_seconds: int | None, start_time: datetime | None, now: datetime, minimum: float = 1.0
) -> float | None:
    """When to look at a running job again for its deadline: `max(minimum, deadline - elapsed)`; None without one."""
    if deadline_seconds is None or start_time is None:
        return None
    return max(minimum, deadline_seconds - (now - start_time).total_seconds())
