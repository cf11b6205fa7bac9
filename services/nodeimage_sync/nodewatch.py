"""Fan-out of node changes to `NodeInventory.WatchNodes` streams.

Each watch subscribes a bounded queue of node names; the NodeImage informer and the inventory call
`notify(name)` when a node's labels or inventory summary may have changed, and every subscriber gets the
name. The stream (in the servicer) looks the node up and decides ADDED/MODIFIED/DELETED for its selector. A
subscriber that falls so far behind that its queue is full is closed: the client re-watches and gets a fresh
initial list, which the API promises is always enough (no replay of missed events). Closing the hub ends
every stream (shutdown, or leadership lost).
"""

from __future__ import annotations

import contextlib
import enum
import queue
import threading
from collections.abc import Callable, Iterator

from services.nodeimage_sync.queries import NodeSelection, NodeView

CLOSED = None
"""Put into a subscription's queue to end its stream."""

DEFAULT_BUFFER = 10_000
"""Names a slow watcher may lag behind before it is cut off: more than a full re-list of a large cluster."""


class Subscription:
    """One watcher's queue of changed node names; `None` means the stream must end."""

    def __init__(self, buffer: int) -> None:
        """An empty queue holding up to `buffer` names."""
        self.queue: queue.Queue[str | None] = queue.Queue(maxsize=buffer)
        self.closed = threading.Event()

    def close(self) -> None:
        """End the stream (idempotent)."""
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(queue.Full):  # the reader checks `closed` whenever it wakes
                self.queue.put_nowait(CLOSED)

    def get(self, timeout: float) -> str | None:
        """The next changed name, or None when closed or nothing arrived within `timeout`."""
        if self.closed.is_set():
            return None
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class NodeWatchHub:
    """The set of live subscriptions; thread-safe."""

    def __init__(self, *, buffer: int = DEFAULT_BUFFER) -> None:
        """No subscribers yet."""
        self._buffer = buffer
        self._lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._closed = False

    def subscribe(self) -> Subscription:
        """A new subscription (already closed if the hub is)."""
        subscription = Subscription(self._buffer)
        with self._lock:
            if self._closed:
                subscription.close()
            else:
                self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to `subscription`."""
        with self._lock:
            self._subscriptions.discard(subscription)

    def notify(self, name: str) -> None:
        """Tell every subscriber that node `name` may have changed; cut off those that cannot keep up."""
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            try:
                subscription.queue.put_nowait(name)
            except queue.Full:
                subscription.close()
                self.unsubscribe(subscription)

    def close(self) -> None:
        """End every stream, now and for later subscribers."""
        with self._lock:
            self._closed = True
            subscriptions = list(self._subscriptions)
            self._subscriptions.clear()
        for subscription in subscriptions:
            subscription.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._subscriptions)


class WatchEventType(enum.Enum):
    """What happened to a node, from one watcher's point of view (the proto's NodeEvent.Type)."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"
    SYNCED = "SYNCED"


def stream(
    hub: NodeWatchHub,
    *,
    lookup: Callable[[str], NodeView | None],
    initial: Callable[[], list[NodeView]],
    selection: NodeSelection,
    active: Callable[[], bool],
    poll_seconds: float = 1.0,
) -> Iterator[tuple[WatchEventType, NodeView | None]]:
    """The events of one watch: ADDED for each selected node, SYNCED, then changes until closed or inactive.

    Args:
        hub: where change notifications come from (subscribed before the initial list, so none is missed).
        lookup: the current view of a node, None when it is gone.
        initial: the selected nodes now.
        selection: which nodes the watcher wants.
        active: False once the client went away (checked at least every `poll_seconds`).
        poll_seconds: how long to block for a notification before checking `active`.
    """
    subscription = hub.subscribe()
    try:
        members: dict[str, NodeView] = {}
        for view in initial():
            members[view.name] = view
            yield WatchEventType.ADDED, view
        yield WatchEventType.SYNCED, None
        while active() and not subscription.closed.is_set():
            name = subscription.get(poll_seconds)
            if name is None:
                continue
            event = _change(members, name, lookup(name), selection)
            if event is not None:
                yield event
    finally:
        hub.unsubscribe(subscription)


def _change(
    members: dict[str, NodeView], name: str, current: NodeView | None, selection: NodeSelection
) -> tuple[WatchEventType, NodeView] | None:
    selected = current is not None and selection.admits(current.name, current.labels)
    previous = members.get(name)
    if selected and current is not None:
        members[name] = current
        if previous is None:
            return WatchEventType.ADDED, current
        return (WatchEventType.MODIFIED, current) if current != previous else None
    if previous is not None:
        del members[name]
        return WatchEventType.DELETED, previous
    return None
