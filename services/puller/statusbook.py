"""What the puller knows about each tag's pull, shared by the workers (writers) and the status writer (reader).

Each active tag has one worker, identified by a token the book hands out. A worker's reports are kept only
while its token is the tag's current one: once a worker is stopped (its tag was removed, its version bumped,
or its status adopted) whatever it still reports is dropped, so a cancelled pull never writes anything back.
Every accepted change calls `on_change`, which wakes the status writer.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

from services.puller.logic.tagstate import TagKey
from services.shared.api import nodeimage

__all__ = ["StatusBook"]


class StatusBook:
    """Known statuses and current worker tokens, by tag. Thread-safe."""

    def __init__(self, on_change: Callable[[], None] = lambda: None) -> None:
        """An empty book; `on_change` is called (outside the lock) after every accepted change."""
        self._lock = threading.Lock()
        self._statuses: dict[TagKey, nodeimage.ImageTagStatus] = {}
        self._tokens: dict[TagKey, int] = {}
        self._counter = itertools.count(1)
        self._on_change = on_change

    def snapshot(self) -> dict[TagKey, nodeimage.ImageTagStatus]:
        """A copy of the known statuses."""
        with self._lock:
            return dict(self._statuses)

    def get(self, key: TagKey) -> nodeimage.ImageTagStatus | None:
        """The known status of one tag."""
        with self._lock:
            return self._statuses.get(key)

    def claim(self, key: TagKey) -> int:
        """Make a new worker the tag's current one; returns its token (earlier tokens stop counting)."""
        with self._lock:
            token = next(self._counter)
            self._tokens[key] = token
            return token

    def release(self, key: TagKey, token: int) -> None:
        """The worker holding `token` was stopped: its later reports are dropped."""
        with self._lock:
            if self._tokens.get(key) == token:
                del self._tokens[key]

    def is_current(self, key: TagKey, token: int) -> bool:
        """Whether `token` is still the tag's current worker."""
        with self._lock:
            return self._tokens.get(key) == token

    def record(self, key: TagKey, token: int, status: nodeimage.ImageTagStatus) -> bool:
        """Store a worker's report if the worker is still current; False when it was dropped."""
        with self._lock:
            if self._tokens.get(key) != token:
                return False
            changed = self._statuses.get(key) != status
            self._statuses[key] = status
        if changed:
            self._on_change()
        return True

    def adopt(self, key: TagKey, status: nodeimage.ImageTagStatus) -> None:
        """Take a status stored by anyone (a finished round found at start, or nodeimage_sync's timeout)."""
        with self._lock:
            self._statuses[key] = status
        self._on_change()

    def forget(self, key: TagKey) -> None:
        """Drop a tag that left the spec."""
        with self._lock:
            self._statuses.pop(key, None)
            self._tokens.pop(key, None)
        self._on_change()

    def clear(self) -> None:
        """Drop everything (the NodeImage is gone)."""
        with self._lock:
            self._statuses.clear()
            self._tokens.clear()
