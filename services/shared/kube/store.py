"""The informer's in-memory copy of the watched objects, and the pure diff that re-listing delivers.

Controllers read objects from the store instead of asking the apiserver, so a reconcile costs no request;
the store is shared between the informer thread (the only writer) and any number of worker threads, hence
the lock. What the store holds is the informer's choice: the dicts the apiserver sent, or a compact form
made from each one on arrival (a typed NodeImage is a quarter of its dict, and a cache of thousands of
them is most of a controller's memory). Either way, treat stored items as read-only: every reader shares them.

After a watch gap (410 Gone, apiserver restart) the informer lists again. `diff()` compares that list with
what the store held, so handlers hear about exactly what changed in the gap: adds, updates (by
resourceVersion), and deletes of objects that vanished, which no watch event will ever announce.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

from services.shared.kube import objects

RawObject = objects.RawObject
T = TypeVar("T")


class Entry(NamedTuple, Generic[T]):
    """One stored item with the key and resourceVersion of the object it was made from."""

    key: str
    resource_version: str
    item: T


@dataclass(frozen=True)
class Changes(Generic[T]):
    """What a re-list found, compared with the store."""

    added: list[T] = field(default_factory=list)
    updated: list[tuple[T, T]] = field(default_factory=list)
    """(old, new) pairs whose resourceVersion differs."""
    deleted: list[T] = field(default_factory=list)
    """The last known state of objects missing from the list."""


def diff(current: Mapping[str, Entry[T]], listed: Mapping[str, Entry[T]]) -> Changes[T]:
    """Compare the store's entries with a fresh list, both keyed by `objects.object_key`.

    Objects whose resourceVersion is unchanged are left out: nothing happened to them.
    """
    changes: Changes[T] = Changes()
    for key, new in listed.items():
        old = current.get(key)
        if old is None:
            changes.added.append(new.item)
        elif old.resource_version != new.resource_version:
            changes.updated.append((old.item, new.item))
    changes.deleted.extend(old.item for key, old in current.items() if key not in listed)
    return changes


def entry_of(obj: RawObject) -> Entry[RawObject]:
    """The entry storing an object as the apiserver sent it."""
    return Entry(objects.object_key(obj), resource_version_of(obj), obj)


def entries_of(listed: Iterable[RawObject]) -> builtins.list[Entry[RawObject]]:
    """Entries for objects stored as sent (what an informer without a transform stores)."""
    return [entry_of(obj) for obj in listed]


def resource_version_of(obj: RawObject) -> str:
    """`metadata.resourceVersion`, or "" when missing."""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Store(Generic[T]):
    """Items by key ("namespace/name" or "name"); thread-safe reads, written only by its informer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Entry[T]] = {}

    def get(self, key: str) -> T | None:
        """The item with this key, or None."""
        with self._lock:
            entry = self._entries.get(key)
        return None if entry is None else entry.item

    def list(self) -> builtins.list[T]:
        """A snapshot of every item."""
        with self._lock:
            return [entry.item for entry in self._entries.values()]

    def keys(self) -> builtins.list[str]:
        """A snapshot of every key."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def upsert(self, entry: Entry[T]) -> T | None:
        """Store `entry`; returns the item it replaced, or None if it is new."""
        with self._lock:
            old = self._entries.get(entry.key)
            self._entries[entry.key] = entry
        return None if old is None else old.item

    def remove(self, key: str) -> T | None:
        """Drop the item with this key; returns it, or None if there was none."""
        with self._lock:
            old = self._entries.pop(key, None)
        return None if old is None else old.item

    def replace(self, listed: Iterable[Entry[T]]) -> Changes[T]:
        """Make the store hold exactly `listed`; returns how that differs from before."""
        fresh = {entry.key: entry for entry in listed}
        with self._lock:
            changes = diff(self._entries, fresh)
            self._entries = fresh
            return changes
