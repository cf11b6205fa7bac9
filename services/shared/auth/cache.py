"""A small, bounded, thread-safe cache whose entries expire, for review results.

Every authenticated gRPC call would otherwise cost one or two API-server round trips. Pullers on thousands
of nodes call with the same token for its whole life, so a few seconds of caching removes almost all of that
load. The price is that a revoked token or a removed RBAC grant keeps working until its entry expires, which
is why the TTLs are seconds, not minutes (the API server's own webhook caches use minutes).

Bounded by entry count with least-recently-used eviction, so a flood of distinct (even bogus) keys costs
memory proportional to `max_entries`, never more. Expired entries are dropped when looked up or evicted.
Keys are whatever the caller makes them; for tokens, the caller uses a hash, never the token.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from services.shared.clock import Clock, SystemClock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Maps keys to values for a limited time; at most `max_entries` entries, least recently used evicted."""

    def __init__(self, *, max_entries: int, clock: Clock | None = None) -> None:
        """An empty cache; `clock.monotonic()` decides expiry."""
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._max_entries = max_entries
        self._clock = clock or SystemClock()
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value stored under `key`, or None when absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, value = entry
            if self._clock.monotonic() >= expires_at:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V, *, ttl_seconds: float) -> None:
        """Store `value` for `ttl_seconds`; a TTL of zero or less stores nothing (caching switched off)."""
        if ttl_seconds <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock.monotonic() + ttl_seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        """Entries held, expired ones not yet dropped included."""
        with self._lock:
            return len(self._entries)
