"""Worker threads that drain a `workqueue.WorkQueue` through a reconcile function.

A controller's reconcile is level-based: given a key, it reads the current state (from informer stores),
makes it right, and says when it wants to look again (`Result.requeue_after`, e.g. when a TTL or deadline
falls due). This module owns the error policy so no reconcile has to: a reconcile that raises is retried
with the queue's per-key exponential back-off; one that returns resets that back-off. A conflict (someone
wrote the object first) is routine and logged quietly; anything else is logged with its traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.shared.kube import errors, workqueue

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class Result:
    """What a successful reconcile asks for next."""

    requeue_after: float | None = None
    """Look at the key again after this many seconds; None: only when something changes."""


Reconcile = Callable[[K], "Result | None"]
"""A reconcile function: returns a `Result` (or None, meaning `Result()`), raises to be retried."""


def process_next(queue: workqueue.WorkQueue[K], reconcile: Reconcile[K], *, name: str = "controller") -> bool:
    """Take one key, reconcile it, and schedule what follows; False once the queue is shut down."""
    key = queue.get()
    if key is None:
        return False
    try:
        result = reconcile(key)
    except errors.Conflict as error:
        logger.info("%s: %s conflicted (%s); retrying", name, key, error.message)
        queue.add_rate_limited(key)
    except Exception:
        logger.exception("%s: reconciling %s failed (attempt %d); retrying", name, key, queue.num_requeues(key) + 1)
        queue.add_rate_limited(key)
    else:
        queue.forget(key)
        if result is not None and result.requeue_after is not None:
            queue.add_after(key, result.requeue_after)
    finally:
        queue.done(key)
    return True


def run_workers(
    queue: workqueue.WorkQueue[K], reconcile: Reconcile[K], workers: int, *, name: str = "controller"
) -> list[threading.Thread]:
    """Start `workers` daemon threads that call `process_next` until the queue shuts down."""

    def work() -> None:
        while process_next(queue, reconcile, name=name):
            pass

    threads = [threading.Thread(target=work, name=f"{name}-worker-{i}", daemon=True) for i in range(workers)]
    for thread in threads:
        thread.start()
    return threads


class Controller(Generic[K]):
    """A queue plus its workers, started and stopped together; handlers feed `controller.queue`.

    Args:
        name: for thread names and log lines.
        reconcile: called with each key; see `Reconcile`.
        workers: how many keys may be reconciled at once (never the same key twice).
        queue: the queue to drain; a new one when None.
    """

    def __init__(
        self, name: str, reconcile: Reconcile[K], *, workers: int = 1, queue: workqueue.WorkQueue[K] | None = None
    ) -> None:
        self.name = name
        self.queue: workqueue.WorkQueue[K] = queue if queue is not None else workqueue.WorkQueue()
        self._reconcile = reconcile
        self._workers = workers
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads."""
        self._threads = run_workers(self.queue, self._reconcile, self._workers, name=self.name)

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the queue down and wait up to `timeout` seconds for each worker's current reconcile."""
        self.queue.shutdown()
        for thread in self._threads:
            thread.join(timeout)
