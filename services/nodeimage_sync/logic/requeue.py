"""When to look at a NodeImage again: the earliest pending timer, but never in a tight loop.

Upstream (§4.1) turns waits under 3 s into 3 s plus up to 2 s of jitter: a TTL or timeout that is about to
fire is not worth a reconcile every few milliseconds, and many NodeImages whose timers fire together (one job
on thousands of nodes) spread out instead of arriving in one burst.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["requeue_after"]


def requeue_after(waits: Iterable[float | None], *, minimum: float, jitter: float, rand: float) -> float | None:
    """Seconds until the next reconcile for the smallest of `waits`; None when there is none.

    Args:
        waits: pending timers in seconds (None entries are ignored).
        minimum: waits shorter than this become `minimum + jitter * rand`.
        jitter: the spread added to short waits.
        rand: a random number in [0, 1) (injected, so the result is reproducible in tests).
    """
    pending = [wait for wait in waits if wait is not None]
    if not pending:
        return None
    soonest = min(pending)
    return minimum + jitter * rand if soonest < minimum else soonest
