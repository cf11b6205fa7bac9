"""The informer's in-memory copy of the watched objects, and the pure diff that re-listing delivers.

Controllers read objects from the store instead of asking the apiserver, so a reconcile costs no request;
the store is shared between the informer thread (the only writer) and any number of worker threads, hence
the lock. Objects are the dicts the apiserver sent: treat them as read-only and copy before changing one,
or every other reader sees the change.

After a watch gap (410 Gone, apiserver restart) the informer lists again. `diff()` compares that list with
what the store held, so handlers hear about exactly what changed in the gap: adds, updates (by
resourceVersion), and deletes of objects that vanished, which no watch event will ever announce.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.shared.kube import objects

RawObject = objects.RawObject


@dataclass(frozen=True)
class Changes:
    """What a re-list found, compared with the store."""

    added: list[RawObject] = field(default_factory=list)
    updated: list[tuple[RawObject, RawObject]] = field(default_factory=list)
    """(old, new) pairs whose resourceVersion differs."""
    deleted: list[RawObject] = field(default_factory=list)
    """The last known state of objects missing from the list."""


def diff(current: Mapping[str, RawObject], listed: Mapping[str, RawObject]) -> Changes:
    """Compare the store's objects with a fresh list, both keyed by `objects.object_key`.

    Objects whose resourceVersion is unchanged are left out: nothing happened to them.
    """
    changes = Changes()
    for key, new in listed.items():
        old = current.get(key)
        if old is None:
            changes.added.append(new)
        elif _resource_version(old) != _resource_version(new):
            changes.updated.append((old, new))
    changes.deleted.extend(old for key, old in current.items() if key not in listed)
    return changes


class Store:
    """Objects by key ("namespace/name" or "name"); thread-safe reads, written only by its informer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._objects: dict[str, RawObject] = {}

    def get(self, key: str) -> RawObject | None:
        """The object with this key, or None."""
        with self._lock:
            return self._objects.get(key)

    def list(self) -> list[RawObject]:
        """A snapshot of every object."""
        with self._lock:
            return list(self._objects.values())

    def keys(self) -> builtins.list[str]:
        """A snapshot of every key."""
        with self._lock:
            return list(self._objects)

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)

    def upsert(self, obj: RawObject) -> RawObject | None:
        """Store `obj`; returns the object it replaced, or None if it is new."""
        key = objects.object_key(obj)
        with self._lock:
            old = self._objects.get(key)
            self._objects[key] = obj
            return old

    def remove(self, key: str) -> RawObject | None:
        """Drop the object with this key; returns it, or None if there was none."""
        with self._lock:
            return self._objects.pop(key, None)

    def replace(self, listed: Iterable[RawObject]) -> Changes:
        """Make the store hold exactly `listed`; returns how that differs from before."""
        fresh = {objects.object_key(obj): obj for obj in listed}
        with self._lock:
            changes = diff(self._objects, fresh)
            self._objects = fresh
            return changes


def _resource_version(obj: RawObject) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")
