"""Waiting for our own writes to reach the informer cache before deciding again.

After the scheduler writes a tag entry, the NodeImage in the cache is stale until the watch delivers the new
version. Deciding from the stale copy would count the node as not synced and start another node: parallelism
exceeded (upstream #1271). So each write records the resourceVersion it produced; while the cache is older,
the job waits. The informer handler reports each version it sees, which releases the waiting jobs at once
(the writer, and every job that found the write pending); a timeout (`--expectation-timeout`) stops a lost
event from blocking a job forever.

resourceVersions are opaque strings in the API contract; etcd-backed apiservers issue increasing integers,
which is what upstream relies on too. Unparsable ones are treated as satisfied.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

__all__ = ["Expectations"]


@dataclass
class _Pending:
    version: int
    deadline: float
    waiters: set[Hashable] = field(default_factory=set)


class Expectations:
    """Thread-safe map of object key → the newest resourceVersion we wrote and who waits for it."""

    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = timeout_seconds
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def expect(self, key: str, resource_version: str, waiter: Hashable, now: float) -> None:
        """Record that `waiter` must not decide on `key` until the cache holds `resource_version` or newer."""
        version = _number(resource_version)
        if version is None:
            return
        with self._lock:
            pending = self._pending.get(key)
            if pending is None or pending.version < version:
                pending = _Pending(version, now + self._timeout, set(pending.waiters) if pending else set())
                self._pending[key] = pending
            pending.waiters.add(waiter)

    def observed(self, key: str, resource_version: str) -> set[Hashable]:
        """The cache now holds `resource_version` of `key`; returns the waiters this releases."""
        version = _number(resource_version)
        with self._lock:
            pending = self._pending.get(key)
            if pending is None or (version is not None and version < pending.version):
                return set()
            del self._pending[key]
            return pending.waiters

    def satisfied(self, key: str, cached_version: str | None, now: float, *, waiter: Hashable | None = None) -> bool:
        """True when nothing is pending for `key`, the cache caught up, or the wait timed out.

        While it is still pending, `waiter` (when given) is released with the write like its author: a job that
        finds another job's write to a shared NodeImage in flight is re-queued by that write's event instead of
        sleeping through the fallback requeue (nothing else wakes it when the write concerns another image).
        """
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                return True
            version = _number(cached_version or "")
            if (version is not None and version >= pending.version) or now >= pending.deadline:
                del self._pending[key]
                return True
            if waiter is not None:
                pending.waiters.add(waiter)
            return False

    def pending_keys(self, prefix: str) -> list[str]:
        """The keys under `prefix` with a write recorded and not yet released (a snapshot, expired ones included).

        A reconcile checks only these of its targets with `satisfied`, instead of taking the lock per target.
        """
        with self._lock:
            return [key for key in self._pending if key.startswith(prefix)]

    def any_pending(
        self, prefix: str, waiter: Hashable, now: float, cached_version: Callable[[str], str | None]
    ) -> bool:
        """True while any unexpired write under `prefix` is not yet in the cache; `waiter` is then released with it.

        Cluster-wide caps count pulls over every NodeImage, so they must wait for *all* our writes.
        `cached_version(key)` gives the cache's resourceVersion of a key: a write the cache already holds (its
        event may have come before we recorded the write) is no longer pending.
        """
        with self._lock:
            live = []
            for key, pending in list(self._pending.items()):
                if not key.startswith(prefix):
                    continue
                version = _number(cached_version(key) or "")
                if now >= pending.deadline or (version is not None and version >= pending.version):
                    del self._pending[key]
                else:
                    live.append(pending)
            for pending in live:
                pending.waiters.add(waiter)
            return bool(live)

    def forget(self, key: str) -> None:
        """Drop whatever is pending for `key` (it was deleted)."""
        with self._lock:
            self._pending.pop(key, None)


def _number(resource_version: str) -> int | None:
    try:
        return int(resource_version)
    except ValueError:
        return None
