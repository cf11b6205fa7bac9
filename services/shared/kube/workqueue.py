"""A de-duplicating work queue of object keys, after client-go's `workqueue`: the heart of every controller.

Handlers add keys (cheap, from the informer thread); worker threads `get()` a key, reconcile it, and call
`done(key)`. The guarantees that make controllers simple:

- **De-duplication.** A key added many times before a worker takes it is processed once: ten NodeImage
  changes for one job in a burst cost one reconcile, which reads the latest state anyway.
- **One worker per key.** A key being processed is never handed to a second worker. If it is added again
  meanwhile it is marked dirty and queued again by `done()`, so the later change is not lost and two
  workers never race on one object.
- **Delays and retries.** `add_after(key, s)` schedules a key (a TTL, a deadline); `add_rate_limited(key)`
  schedules it after a per-key exponential back-off that grows with consecutive failures until `forget(key)`.
  A delayed key already scheduled earlier keeps the earlier time.
- **Shutdown.** After `shutdown()`, `get()` returns None at once and adds are ignored, so workers exit.

Time comes from an injected `clock.Clock`; delayed keys become due when that clock says so, which lets tests
step a fake clock instead of sleeping. Metrics are reported through `QueueMetrics` callbacks (called under
the queue's lock, so they must be cheap); `QueueCounters` keeps plain totals another module can export.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from services.shared import clock as clocks
from services.shared.kube import backoff

K = TypeVar("K", bound=Hashable)

DEFAULT_ITEM_BACKOFF = backoff.BackoffPolicy(initial=0.005, factor=2.0, cap=300.0, jitter=0.0)
"""client-go's per-item limiter starts at 5 ms and doubles; we cap at 5 min (not 1000 s) so that an object
that keeps failing is still retried a few times an hour."""


class QueueMetrics(Protocol):
    """Callbacks a queue makes as it works; implement to export them (e.g. as Prometheus metrics)."""

    def added(self) -> None:
        """A key was added (and not merged into one already waiting)."""
        ...

    def depth(self, depth: int) -> None:
        """The number of keys ready for a worker changed to `depth`."""
        ...

    def waited(self, seconds: float) -> None:
        """A key was handed to a worker after `seconds` in the queue."""
        ...

    def worked(self, seconds: float) -> None:
        """A worker finished a key after `seconds`."""
        ...

    def retried(self) -> None:
        """A key was scheduled for a rate-limited retry."""
        ...


@dataclass
class QueueCounters:
    """`QueueMetrics` as plain totals: read them to export, or to assert in tests."""

    adds: int = 0
    current_depth: int = 0
    retries: int = 0
    wait_seconds_total: float = 0.0
    wait_count: int = 0
    work_seconds_total: float = 0.0
    work_count: int = 0

    def added(self) -> None:
        """See `QueueMetrics.added`."""
        self.adds += 1

    def depth(self, depth: int) -> None:
        """See `QueueMetrics.depth`."""
        self.current_depth = depth

    def waited(self, seconds: float) -> None:
        """See `QueueMetrics.waited`."""
        self.wait_seconds_total += seconds
        self.wait_count += 1

    def worked(self, seconds: float) -> None:
        """See `QueueMetrics.worked`."""
        self.work_seconds_total += seconds
        self.work_count += 1

    def retried(self) -> None:
        """See `QueueMetrics.retried`."""
        self.retries += 1


class WorkQueue(Generic[K]):
    """Keys waiting for a worker; thread-safe. See the module docstring for the guarantees.

    Args:
        clock: time source for delays and metrics; the system clock when None.
        item_backoff: per-key back-off of `add_rate_limited`.
        metrics: where to report; a fresh `QueueCounters` (exposed as `.metrics`) when None.
    """

    def __init__(
        self,
        *,
        clock: clocks.Clock | None = None,
        item_backoff: backoff.BackoffPolicy = DEFAULT_ITEM_BACKOFF,
        metrics: QueueMetrics | None = None,
    ) -> None:
        self._clock = clock or clocks.SystemClock()
        self._item_backoff = item_backoff
        self.metrics: QueueMetrics = metrics or QueueCounters()
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[K] = collections.deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._sequence = itertools.count()
        self._failures: dict[K, int] = {}
        self._queued_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        self._shutting_down = False

    def add(self, key: K) -> None:
        """Queue `key` unless it is already queued; if a worker has it, queue it again after `done`."""
        with self._cond:
            self._add_locked(key)

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` once `delay` seconds have passed (at once if `delay` <= 0)."""
        with self._cond:
            if delay <= 0:
                self._add_locked(key)
                return
            due = self._clock.monotonic() + delay
            if self._shutting_down or self._due.get(key, due + 1) <= due:
                return
            self._due[key] = due
            heapq.heappush(self._waiting, (due, next(self._sequence), key))
            self._cond.notify_all()

    def add_rate_limited(self, key: K) -> None:
        """Queue `key` after its back-off, which doubles with each call until `forget(key)`."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            self.metrics.retried()
        self.add_after(key, self._item_backoff.delay(failures))

    def forget(self, key: K) -> None:
        """Reset the back-off of `key`: its next rate-limited add waits the initial delay again."""
        with self._cond:
            self._failures.pop(key, None)

    def num_requeues(self, key: K) -> int:
        """How many rate-limited adds `key` had since it was last forgotten."""
        with self._cond:
            return self._failures.get(key, 0)

    def get(self, timeout: float | None = None) -> K | None:
        """Take the next key, blocking until there is one; mark it as being processed.

        Args:
            timeout: give up after this many (real) seconds; None waits for ever.

        Returns:
            The key, or None when the queue is shut down or `timeout` passed.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._shutting_down:
                self._promote_due_locked()
                if self._queue:
                    return self._take_locked()
                wait = self._wait_seconds_locked(deadline)
                if wait is not None and wait <= 0:
                    return None
                self._cond.wait(wait)
            return None

    def done(self, key: K) -> None:
        """Mark `key` as processed; queue it again if it was added while being processed."""
        with self._cond:
            self._processing.discard(key)
            started = self._started_at.pop(key, None)
            if started is not None:
                self.metrics.worked(self._clock.monotonic() - started)
            if key in self._dirty and not self._shutting_down:
                self._enqueue_locked(key)

    def shutdown(self) -> None:
        """Stop handing out keys: blocked and future `get()` calls return None; adds are ignored."""
        with self._cond:
            self._shutting_down = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        """True after `shutdown()`."""
        with self._cond:
            return self._shutting_down

    def __len__(self) -> int:
        """Keys ready for a worker now (delayed keys count once they are due)."""
        with self._cond:
            self._promote_due_locked()
            return len(self._queue)

    # --- under the lock ---------------------------------------------------------------------------------

    def _add_locked(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self.metrics.added()
        self._dirty.add(key)
        if key not in self._processing:
            self._enqueue_locked(key)

    def _enqueue_locked(self, key: K) -> None:
        self._queue.append(key)
        self._queued_at[key] = self._clock.monotonic()
        self.metrics.depth(len(self._queue))
        self._cond.notify()

    def _take_locked(self) -> K:
        key = self._queue.popleft()
        now = self._clock.monotonic()
        self._dirty.discard(key)
        self._processing.add(key)
        self._started_at[key] = now
        self.metrics.waited(now - self._queued_at.pop(key, now))
        self.metrics.depth(len(self._queue))
        return key

    def _promote_due_locked(self) -> None:
        now = self._clock.monotonic()
        while self._waiting and self._waiting[0][0] <= now:
            due, _, key = heapq.heappop(self._waiting)
            if self._due.get(key) == due:  # else superseded by an earlier add_after of the same key
                del self._due[key]
                self._add_locked(key)

    def _wait_seconds_locked(self, deadline: float | None) -> float | None:
        """How long `get` may sleep: until the next delayed key is due, or the caller's deadline."""
        waits = []
        if self._waiting:
            waits.append(max(self._waiting[0][0] - self._clock.monotonic(), 0.001))
        if deadline is not None:
            waits.append(deadline - time.monotonic())
        return min(waits) if waits else None
