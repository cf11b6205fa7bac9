"""Tag-entry writes of one reconcile run side by side, with a cap on writes in flight across all reconciles.

A job that starts a hundred nodes writes a hundred NodeImages. One after another, each waits a full apiserver
round trip, and on a busy apiserver the wave took seconds before the last node could start (issue 9: 8x the
ideal time at parallelism 100). The writes are independent (one NodeImage each, each with its own
resourceVersion precondition), so they may overlap; the cap keeps the scheduler from flooding the apiserver
and from outgrowing its connection pool when several jobs start nodes at once.

Parallelism is unaffected: which nodes start is decided before any write, and every write still records its
expectation before the reconcile returns. Each write runs in a copy of the caller's context, so its span stays
inside the reconcile's trace.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent import futures

__all__ = ["WritePool"]


class WritePool:
    """Runs batches of write tasks, at most `limit` tasks in flight over every caller at once."""

    def __init__(self, limit: int) -> None:
        self._limit = max(limit, 1)
        self._slots = threading.BoundedSemaphore(self._limit)

    @property
    def limit(self) -> int:
        """Writes allowed in flight at once."""
        return self._limit

    def run_all(self, tasks: Sequence[Callable[[], None]]) -> None:
        """Run every task and wait for all of them; then raise the first failure, in task order.

        A failed task does not cancel the others: each write that succeeded must be recorded (the caller's
        expectations) before the reconcile is retried, or the retry would decide from a stale cache.
        """
        if len(tasks) <= 1 or self._limit == 1:
            outcomes = [self._run(task) for task in tasks]
        else:
            threads = min(len(tasks), self._limit)
            with futures.ThreadPoolExecutor(threads, thread_name_prefix="nodeimage-write") as pool:
                submitted = [pool.submit(contextvars.copy_context().run, self._run, task) for task in tasks]
            outcomes = [future.result() for future in submitted]
        failure = next((outcome for outcome in outcomes if outcome is not None), None)
        if failure is not None:
            raise failure

    def _run(self, task: Callable[[], None]) -> Exception | None:
        with self._slots:
            try:
                task()
            except Exception as error:  # handed back to run_all, which raises it after the rest
                return error
        return None
