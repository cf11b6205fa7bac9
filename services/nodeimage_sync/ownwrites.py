"""Which NodeImage versions the reconciler has already acted on, so their watch events need no reconcile.

Every write nodeimage_sync makes comes back through its own watch. Reconciling that echo again only finds
nothing to do (the reconcile that wrote it has already decided on the written object), yet it costs a full
reconcile per write: a tag removed from the spec used to be three reconciles (the change, the echo of the spec
write, the echo of the status write) for one change (issue 9, finding 4).

The reconciler records each resourceVersion it made a decision on: the cached object, every object a write
returned (it decides on that one next, in the same reconcile), and another writer's version it read after a
conflict. The NodeImage event handler skips an update whose resourceVersion is recorded, once. A version the
reconciler never decided on, such as any other writer's change it has not read, is always reconciled. The
decisions themselves stay pure: this only tells the event handler which events carry nothing new.

A write's event can reach the handler before the writing worker has recorded the version (the watch is
faster than the HTTP response's bookkeeping). So while a worker is acting on a name, the handler waits for it
(bounded by `in_flight_wait`) before it looks.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

__all__ = ["OwnWrites"]

REMEMBERED_PER_NAME = 8
"""Versions kept per NodeImage; an unseen old one (a watch that skipped it after a relist) falls out."""


class OwnWrites:
    """Versions the reconciler acted on, per NodeImage name (thread-safe).

    Args:
        in_flight_wait: the longest the event handler waits for a worker still acting on the same name.
    """

    def __init__(self, *, in_flight_wait: float = 10.0) -> None:
        self._in_flight_wait = in_flight_wait
        self._cond = threading.Condition(threading.Lock())
        self._acting: set[str] = set()
        self._acted: dict[str, list[str]] = {}

    @contextlib.contextmanager
    def acting(self, name: str) -> Iterator[list[str]]:
        """Around a reconcile's decisions on `name`: append each resourceVersion decided on to the list yielded.

        What was appended is recorded when the block ends, even when it raised (the versions were still
        decided on); the name is then no longer in flight.
        """
        decided: list[str] = []
        with self._cond:
            self._acting.add(name)
        try:
            yield decided
        finally:
            with self._cond:
                self._acting.discard(name)
                if decided:
                    recorded = [*self._acted.get(name, ()), *(v for v in decided if v)]
                    self._acted[name] = recorded[-REMEMBERED_PER_NAME:]
                self._cond.notify_all()

    def is_echo(self, name: str, version: str) -> bool:
        """True (once) when the reconciler has already acted on `version` (a resourceVersion) of the NodeImage."""
        deadline = time.monotonic() + self._in_flight_wait
        with self._cond:
            while name in self._acting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            recorded = self._acted.get(name)
            if not version or not recorded or version not in recorded:
                return False
            recorded.remove(version)
            if not recorded:
                del self._acted[name]
            return True

    def forget(self, name: str) -> None:
        """The NodeImage is gone: drop what was recorded for it."""
        with self._cond:
            self._acted.pop(name, None)
