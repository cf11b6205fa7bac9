"""List + watch one resource into a `store.Store` and tell handlers what changed, like client-go's informer.

The loop, on its own thread:

1. List (all pages) and replace the store; handlers hear the difference (`store.diff`), including
   synthetic deletes for objects that disappeared while we were not watching. The first list marks the
   informer synced.
2. Watch from the list's resourceVersion with bookmarks on, so quiet periods still advance our
   resourceVersion, and with a server-side `timeoutSeconds` drawn between two bounds: every connection is
   recycled after a few minutes (a silently stuck one cannot last), and many informers do not reconnect in
   step. A watch that ends normally is reopened from the last resourceVersion seen, without listing.
3. When the server says our resourceVersion is too old (410 Gone, as an HTTP status or as an ERROR event
   in the stream), forget it and go back to 1.
4. Any other failure (connection refused while the apiserver restarts, 5xx, 429) waits an exponential,
   jittered, capped back-off and retries: a watch from the last resourceVersion if we have one.

Handlers run on the informer thread, one event at a time, in order. They must be quick (typically: put a
key on a work queue) and must not modify the objects they are given. A handler that raises is logged and
does not stop the informer. There is no periodic resync unless `resync_interval` is set: level-triggered
controllers requeue themselves, and a resync at thousands of objects is load for nothing.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar, cast, overload

from services.shared.kube import backoff, errors, objects, store, watching
from services.shared.kube.resources import Resource

logger = logging.getLogger(__name__)

RawObject = objects.RawObject
T = TypeVar("T")

SHORT_WATCH_SECONDS = 1.0
"""A watch that ends sooner than this without any event counts as a failure (client-go does the same)."""


class ListerWatcher(Protocol):
    """What an informer needs of the apiserver; `objects.ObjectApi` (hence `kubeapi.KubeApi`) provides it."""

    def list_pages(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[objects.ObjectList]:
        """See `objects.ObjectApi.list_pages`."""
        ...

    def watch(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        resource_version: str | None = None,
        timeout_seconds: int,
        allow_bookmarks: bool = True,
    ) -> watching.WatchStream:
        """See `objects.ObjectApi.watch`."""
        ...


@dataclass(frozen=True)
class InformerSettings:
    """Timing of the list/watch loop. Defaults follow client-go's reflector."""

    watch_timeout_min: int = 300
    """Shortest server-side watch timeout, in seconds (client-go: 5 min)."""

    watch_timeout_max: int = 600
    """Longest; each watch picks uniformly between the two, so reconnects spread out."""

    backoff: backoff.BackoffPolicy = field(default_factory=backoff.BackoffPolicy)
    """Wait between failed attempts: 0.8 s doubling to 30 s, +20 % jitter (client-go: 0.8 s to 30 s)."""

    resync_interval: float | None = None
    """Seconds between deliveries of on_update(obj, obj) for every stored object; None (default) for never."""


@dataclass(frozen=True)
class Handlers(Generic[T]):
    """Callbacks for changes, given the stored items; any may be None."""

    on_add: Callable[[T], None] | None = None
    on_update: Callable[[T, T], None] | None = None
    """Called with (old, new)."""
    on_delete: Callable[[T], None] | None = None
    """Called with the last state we know: the final object from the watch, or our copy after a re-list."""


class Informer(Generic[T]):
    """Keeps `store` in step with the objects of one resource that match the selectors.

    The store holds what `transform` makes of each object as it arrives (the object's dict itself when
    there is none), page by page during a list: a controller caching thousands of big objects keeps only
    its compact form of them, and never every full dict at once. An object the transform refuses
    (`ValueError`) is logged and left out of the store, as if it did not exist, until a change makes it
    acceptable; the rest of the cache is unaffected.

    Args:
        api: where to list and watch (a `kubeapi.KubeApi`).
        resource: what to watch.
        namespace: only this namespace; None for all (or for cluster-scoped resources).
        label_selector: e.g. "app=puller,tier!=test".
        field_selector: e.g. "metadata.name=node-1" (the puller watches only its own NodeImage).
        settings: timing; defaults when None.
        rng: random source for timeouts and jitter (seed it in tests).
        transform: what to store of each object (given without `managedFields`); None stores the dict.
        page_size: objects per list page; None for the client's default. Smaller pages for big objects keep
            the transient dicts of a list small (the allocator rarely returns their memory once typed objects
            were allocated among them).
    """

    @overload
    def __init__(
        self: Informer[RawObject],
        api: ListerWatcher,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        settings: InformerSettings | None = None,
        rng: random.Random | None = None,
        transform: None = None,
        page_size: int | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        api: ListerWatcher,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        settings: InformerSettings | None = None,
        rng: random.Random | None = None,
        transform: Callable[[RawObject], T],
        page_size: int | None = None,
    ) -> None: ...

    def __init__(
        self,
        api: ListerWatcher,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        settings: InformerSettings | None = None,
        rng: random.Random | None = None,
        transform: Callable[[RawObject], T] | None = None,
        page_size: int | None = None,
    ) -> None:
        self._api = api
        self._resource = resource
        self._namespace = namespace
        self._label_selector = label_selector
        self._field_selector = field_selector
        self._settings = settings or InformerSettings()
        self._rng = rng or random.Random()
        self._backoff = backoff.Backoff(self._settings.backoff, self._rng)
        self._relisted_at_once = False
        """A 410 was answered by listing again without waiting; cleared once a watch makes progress."""
        self._unreachable = False
        """The last failure had no HTTP answer (connection refused, timeout)."""
        self._transform = transform
        self._page_size = page_size
        self.store: store.Store[T] = store.Store()
        self._handlers: list[Handlers[T]] = []
        self._dispatch_lock = threading.RLock()
        self._stream_lock = threading.Lock()
        self._stream: watching.WatchStream | None = None
        self._stopping = threading.Event()
        self._synced = threading.Event()
        self._threads: list[threading.Thread] = []
        self.resource_version: str | None = None
        """The last resourceVersion seen (list, event or bookmark); None when the next step is a list."""
        self.relists = 0
        """How many lists were done: 1 after the first sync, +1 for each 410 or unresumable gap."""

    def __repr__(self) -> str:
        selectors = ",".join(s for s in (self._label_selector, self._field_selector) if s)
        where = f" in {self._namespace}" if self._namespace else ""
        return f"Informer({self._resource.plural}{where}{f' [{selectors}]' if selectors else ''})"

    def add_handlers(self, handlers: Handlers[T]) -> None:
        """Register callbacks; added after start, they first get on_add for every stored object."""
        with self._dispatch_lock:
            if handlers.on_add is not None:
                for obj in self.store.list():
                    self._call(handlers.on_add, obj)
            self._handlers.append(handlers)

    def start(self) -> None:
        """Start the list/watch thread (and the resync thread, if configured). Call once."""
        if self._threads:
            raise RuntimeError(f"{self!r} already started")
        self._threads.append(threading.Thread(target=self._run, name=repr(self), daemon=True))
        if self._settings.resync_interval:
            self._threads.append(threading.Thread(target=self._resync, name=f"{self!r} resync", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching (closing an open watch at once) and wait up to `timeout` seconds for the threads."""
        self._stopping.set()
        with self._stream_lock:
            if self._stream is not None:
                self._stream.close()
        for thread in self._threads:
            thread.join(timeout)

    def has_synced(self) -> bool:
        """True once the first list has been stored and delivered to the handlers."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """Block until synced or `timeout` seconds passed; returns `has_synced()`."""
        return self._synced.wait(timeout)

    # --- the loop ------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch()
            except errors.KubeError as error:
                self._after_failure(error)
            except Exception:
                logger.exception("%r: unexpected failure; retrying", self)
                self._stopping.wait(self._backoff.next())

    def _after_failure(self, error: errors.KubeError) -> None:
        """Wait before the next attempt; after a first 410, list again at once.

        A 410 comes from an apiserver that answers: waiting the back-off (grown to 30 s during an outage) before
        listing again only delays recovery. A second 410 with no watch progress in between waits as usual, so a
        server that keeps answering 410 is not hammered.
        """
        if self._stopping.is_set():
            return
        if self._answered_again(error):
            self._backoff.reset()
        if errors.needs_relist(error) and not self._relisted_at_once:
            logger.info("%r: resourceVersion %s expired (%s); listing again now", self, self.resource_version, error)
            self.resource_version = None
            self._relisted_at_once = True
            return
        delay = self._backoff.next()
        if errors.needs_relist(error):
            logger.info("%r: resourceVersion %s expired (%s); listing again", self, self.resource_version, error)
            self.resource_version = None
        else:
            logger.warning("%r: %s; retrying in %.1fs", self, error, delay)
        self._stopping.wait(delay)

    def _relist(self) -> None:
        entries: list[store.Entry[T]] = []
        resource_version = ""
        for page in self._api.list_pages(
            self._resource,
            namespace=self._namespace,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
            page_size=self._page_size,
        ):
            resource_version = page.resource_version
            entries.extend(entry for entry in map(self._entry, page.items) if entry is not None)
            del page  # else this page's dicts stay alive while the next one is fetched and decoded
        with self._dispatch_lock:
            changes = self.store.replace(entries)
            self._deliver(changes)
        self.resource_version = resource_version
        self.relists += 1
        self._synced.set()
        logger.debug("%r: listed %d objects at resourceVersion %s", self, len(entries), self.resource_version)

    def _entry(self, obj: RawObject) -> store.Entry[T] | None:
        """What to store of `obj`, or None when the transform refuses it."""
        without_managed_fields(obj)
        key = objects.object_key(obj)
        try:
            item = cast(T, obj) if self._transform is None else self._transform(obj)
        except ValueError as error:
            logger.warning("%r: leaving %s out of the cache: %s", self, key, error)
            return None
        return store.Entry(key, store.resource_version_of(obj), item)

    def _watch(self) -> None:
        settings = self._settings
        stream = self._api.watch(
            self._resource,
            namespace=self._namespace,
            label_selector=self._label_selector,
            field_selector=self._field_selector,
            resource_version=self.resource_version,
            timeout_seconds=self._rng.randint(settings.watch_timeout_min, settings.watch_timeout_max),
            allow_bookmarks=True,
        )
        with self._stream_lock:
            self._stream = stream
        opened = time.monotonic()
        delivered = 0
        try:
            if self._stopping.is_set():
                return
            for event in stream:
                self._apply(event)
                self._backoff.reset()
                self._relisted_at_once = False
                delivered += 1
        finally:
            with self._stream_lock:
                self._stream = None
            stream.close()
        self._after_clean_end(seconds=time.monotonic() - opened, delivered=delivered)

    def _answered_again(self, error: errors.KubeError) -> bool:
        """Whether this failure is the apiserver's first answer after it could not be reached.

        After an outage the first answers are often errors (403 until its RBAC cache has loaded, 429, 5xx), and
        the back-off has grown to its cap while nothing answered: waiting that long again would delay recovery by
        up to 30 s. The server is back, so the back-off starts over; answers that keep failing grow it again.
        """
        unreachable_before = self._unreachable
        self._unreachable = isinstance(error, errors.TransportError)
        return unreachable_before and not self._unreachable

    def _after_clean_end(self, *, seconds: float, delivered: int) -> None:
        """A watch the server ended at once with nothing in it is a failure in disguise: back off, don't spin."""
        if delivered or seconds >= SHORT_WATCH_SECONDS:
            self._backoff.reset()
            self._relisted_at_once = False
            return
        delay = self._backoff.next()
        logger.warning("%r: watch ended after %.2fs without events; retrying in %.1fs", self, seconds, delay)
        self._stopping.wait(delay)

    def _apply(self, event: watching.WatchEvent) -> None:
        if event.type == watching.BOOKMARK:
            self.resource_version = event.resource_version or self.resource_version
            return
        if event.type not in (watching.ADDED, watching.MODIFIED, watching.DELETED):
            logger.warning("%r: ignoring watch event of unknown type %s", self, event.type)
        else:
            self._store_event(event)
        self.resource_version = event.resource_version or self.resource_version

    def _store_event(self, event: watching.WatchEvent) -> None:
        entry = self._entry(event.object)
        with self._dispatch_lock:
            if entry is None or event.type == watching.DELETED:
                old = self.store.remove(objects.object_key(event.object))
                gone = entry.item if entry is not None else old
                if gone is not None:
                    self._deliver(store.Changes(deleted=[gone]))
            else:
                old = self.store.upsert(entry)
                self._deliver(
                    store.Changes(added=[entry.item]) if old is None else store.Changes(updated=[(old, entry.item)])
                )

    def _resync(self) -> None:
        interval = self._settings.resync_interval or 0.0
        while not self._stopping.wait(interval):
            with self._dispatch_lock:
                self._deliver(store.Changes(updated=[(obj, obj) for obj in self.store.list()]))

    # --- handlers --------------------------------------------------------------------------------------

    def _deliver(self, changes: store.Changes[T]) -> None:
        for handlers in self._handlers:
            if handlers.on_add is not None:
                for obj in changes.added:
                    self._call(handlers.on_add, obj)
            if handlers.on_update is not None:
                for old, new in changes.updated:
                    self._call(handlers.on_update, old, new)
            if handlers.on_delete is not None:
                for obj in changes.deleted:
                    self._call(handlers.on_delete, obj)

    def _call(self, handler: Callable[..., None], *args: T) -> None:
        try:
            handler(*args)
        except Exception:
            logger.exception("%r: handler %r failed", self, handler)


def without_managed_fields(obj: RawObject) -> RawObject:
    """`obj` without `metadata.managedFields` (changed in place, and returned).

    Server-side apply's field ownership is up to half of an object's size (127 KiB of a 287 KiB NodeImage with
    200 tags): nothing we decide reads it, and our writes are merge patches, which leave it alone. Caches
    holding every NodeImage drop it, as client-go's informers do with a transform.
    """
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
    return obj
