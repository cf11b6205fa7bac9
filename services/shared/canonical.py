"""One object per distinct value, for caches that hold the same small values many times over.

A scheduler caching every NodeImage holds each job's owner reference once per node it targets; nodeimage_sync's
inventory holds the same image, with the same tags and digests, once per node that has it. At thousands of nodes
those copies are most of the memory. A `Canonical` table hands out one object per key instead: every holder of
an equal value shares it. Only immutable values may be shared, since every holder sees the same object.

The table keeps what it hands out; values that nobody else holds any more are dropped whenever the table has
doubled since its last sweep, so it stays proportional to what is alive (amortized O(1) per lookup). Keys must
not refer to their values (a value referred to by its key is never seen as unheld). Threads may race on a
lookup: the loser keeps an equal value that is not shared, which costs memory, never correctness.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Canonical"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_HELD_DURING_SWEEP = 4
"""References to a value the sweep finds when nothing else holds it: the table's, the sweep's loop variable,
the dict-items tuple it was unpacked from, and `sys.getrefcount`'s own argument (checked by a unit test)."""


class Canonical(Generic[K, V]):
    """Shared values by key; see the module docstring."""

    def __init__(self, first_sweep: int = 4096) -> None:
        self._first_sweep = first_sweep
        self._sweep_at = first_sweep
        self._table: dict[K, V] = {}

    def get(self, key: K, make: Callable[[], V]) -> V:
        """The shared value for `key`, made by `make()` (and kept) if there is none."""
        found = self._table.get(key)
        if found is not None:
            return found
        remembered = self._table.setdefault(key, make())
        if len(self._table) >= self._sweep_at:
            self._sweep()
        return remembered

    def __len__(self) -> int:
        return len(self._table)

    def _sweep(self) -> None:
        self._table = {key: value for key, value in self._table.items() if sys.getrefcount(value) > _HELD_DURING_SWEEP}
        self._sweep_at = max(self._first_sweep, 2 * len(self._table))
