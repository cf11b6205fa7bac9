"""Writes the node's NodeImage status: coalesced, rate limited, skipped when unchanged (upstream §5.5).

Workers change the status book many times a second across many tags; the apiserver should see few
writes. One thread does all writing:

1. it sleeps until the book changes (`mark_dirty`), then waits `coalesce` seconds more so that changes made
   together (ten tags going Waiting at once) go out as one write; the write that finishes every tag of the
   spec goes out at once: nothing is left to gather, and jobs are waiting for it (each 1 s wave of a job
   with a parallelism waited the coalesce time on top, issue 9);
2. it takes a token from a bucket (upstream: 0.5 writes/s, burst 5), waiting when there is none, except for
   that finishing write (one per round of changes);
3. it takes the NodeImage as the informer holds it, or as our last write returned it when that is newer (the
   watch may not have brought our own last write back yet: starting from the cache then cost a conflict, a
   GET and a second write, more than half of the writes on a busy apiserver, issue 9), builds the status
   (`logic.plan.build_status`), and writes nothing if the stored status already equals it; otherwise it
   merge-patches the status subresource with that resourceVersion as precondition, and on a conflict starts
   over from a fresh GET (`patching.retry_on_conflict`). A failed write is retried after a short back-off.

Only tags still in the spec that was read are written, so a tag removed while its worker was pulling
never reappears in the status.

Tracing: a pull marking the status dirty from inside its task span is remembered (`tracelinks`), and the next
write is a `nodeimage.status.write` span in that pull's trace (linked to the other pulls it carries).
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from services.puller import statusbook, tracelinks
from services.puller.logic import plan
from services.shared.api import nodeimage, wire
from services.shared.clock import Clock, SystemClock
from services.shared.kube import backoff, errors, objects, patching, ratelimit, resources
from services.shared.telemetry import attributes

__all__ = ["StatusWriter", "WriterSettings"]

log = logging.getLogger(__name__)


WRITE_RETRY = backoff.BackoffPolicy(initial=0.5, factor=2.0, cap=10.0, jitter=0.2)
"""Wait after a failed write: the apiserver is down or refusing, and thousands of pullers must not stampede."""


@dataclass(frozen=True)
class _Decision:
    """A status write: the merge patch of `status`, and the whole status it leads to."""

    patch: Mapping[str, Any]
    wanted: dict[str, Any]


@dataclass(frozen=True)
class WriterSettings:
    """Timing of status writes."""

    qps: float = 0.5
    """Sustained writes per second (upstream's token bucket)."""
    burst: int = 5
    """Writes allowed back to back before the rate applies (upstream's burst)."""
    coalesce: float = 0.1
    """Seconds to gather more changes after the first one before writing."""
    retry: backoff.BackoffPolicy = WRITE_RETRY
    """Wait after a failed write."""


class StatusWriter:
    """The single writer of one NodeImage's status.

    Args:
        api: where to read and write.
        node_name: the NodeImage's name.
        book: what the workers know.
        settings: timing.
        clock: time source for the token bucket.
        on_write: called after each successful write (metrics).
        on_error: called with each error of a failed write (metrics).
        cached: the NodeImage as the informer holds it; the first try of a write starts from it (as upstream
            does), and only a conflict costs a fresh GET.
        tracer: where write spans go; the process-wide provider's when None.
    """

    def __init__(
        self,
        api: objects.ObjectApi,
        node_name: str,
        book: statusbook.StatusBook,
        *,
        settings: WriterSettings | None = None,
        clock: Clock | None = None,
        on_write: Callable[[], None] = lambda: None,
        on_error: Callable[[BaseException], None] = lambda error: None,
        cached: Callable[[], objects.RawObject | None] = lambda: None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self._api = api
        self._tracer = tracer or trace.get_tracer(__name__)
        self._traces = tracelinks.PendingTraces()
        self._on_write = on_write
        self._on_error = on_error
        self._cached = cached
        self._node_name = node_name
        self._book = book
        self._settings = settings or WriterSettings()
        self._clock = clock or SystemClock()
        self._bucket = ratelimit.TokenBucket(
            burst=self._settings.burst, per_second=self._settings.qps, now=self._clock.monotonic()
        )
        self._dirty = threading.Event()
        self._changed = threading.Event()
        """Set by every `mark_dirty`: wakes a writer waiting for a token, to check whether the round completed."""
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_written: dict[str, Any] | None = None
        self._returned: objects.RawObject | None = None
        """The NodeImage as our last write returned it."""
        self.observed_generation = 0
        """The spec generation the last sync acted on; written as `status.observedGeneration`."""
        self.writes = 0
        """Successful status writes, for metrics and tests."""

    @property
    def last_written(self) -> dict[str, Any] | None:
        """The status (as JSON) of the last successful write, to tell our own updates from others'."""
        with self._lock:
            return self._last_written

    def mark_dirty(self) -> None:
        """Something changed; a write will follow (coalesced, rate limited), in the caller's trace if it has one."""
        self._traces.add_current()
        self._dirty.set()
        self._changed.set()

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name=f"status writer {self._node_name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the write in progress, if any."""
        self._stopping.set()
        self._dirty.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def write_once(self) -> bool:
        """Read, build and write now if the status differs; True when a write was made.

        Raises:
            errors.KubeError: the read or the write failed (a conflict only after several fresh tries).
        """
        reads = iter((self._newest_known,))

        def read() -> objects.RawObject:
            first = next(reads, None)
            known = first() if first is not None else None
            return known if known is not None else self._read()

        with self._traces.span(self._tracer, "nodeimage.status.write", {attributes.K8S_NODE_NAME: self._node_name}):
            try:
                written = patching.retry_on_conflict(read, self._decide, self._write)
            except errors.NotFound:
                return False
            return written is not None

    # --- the writer thread -------------------------------------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._dirty.wait()
            if self._stopping.is_set():
                return
            if not self._round_complete():
                if self._stopping.wait(self._settings.coalesce):
                    return
                if not self._round_complete() and not self._wait_for_token():
                    return
            self._dirty.clear()
            try:
                self.write_once()
                failures = 0
            except errors.KubeError as error:
                self._on_error(error)
                delay = self._settings.retry.delay(failures)
                failures += 1
                log.warning(
                    "writing the status of NodeImage %s failed: %s; retrying in %.1fs", self._node_name, error, delay
                )
                self._dirty.set()
                if self._stopping.wait(delay):
                    return

    def _round_complete(self) -> bool:
        """Whether the pending status finishes every tag of the spec: that write goes out without waiting.

        It is the write jobs wait for, and there is at most one per round of spec changes, so skipping the
        bucket for it cannot flood the apiserver; it still takes a token when one is there.
        """
        cached = self._cached()
        if cached is None:
            return False
        try:
            node_image = nodeimage.NodeImage.from_dict(cached)
        except wire.InvalidObjectError:
            return False
        status = plan.build_status(node_image, self._book.snapshot())
        if status.desired == 0 or plan.is_still_pulling(status, node_image):
            return False
        self._bucket.take(self._clock.monotonic())
        return True

    def _wait_for_token(self) -> bool:
        """Block until the bucket allows a write, or a change completes the round (that write goes at once).

        False when stopping.
        """
        while not self._bucket.take(self._clock.monotonic()):
            missing = 1.0 - self._bucket.available(self._clock.monotonic())
            wait = missing / self._settings.qps if self._settings.qps > 0 else 1.0
            self._changed.clear()
            if self._round_complete():
                return True
            self._changed.wait(max(wait, 0.01))
            if self._stopping.is_set():
                return False
        return True

    def _newest_known(self) -> objects.RawObject | None:
        """A copy of the newer of the cached NodeImage and the one our last write returned; None if neither."""
        cached = self._cached()
        with self._lock:
            returned = self._returned
        if returned is not None and (cached is None or _version(returned) > _version(cached)):
            return copy.deepcopy(returned)
        return copy.deepcopy(cached) if cached is not None else None

    def _read(self) -> objects.RawObject:
        return self._api.get(resources.NODE_IMAGES, self._node_name)

    def _decide(self, current: objects.RawObject) -> _Decision | None:
        try:
            node_image = nodeimage.NodeImage.from_dict(current)
        except wire.InvalidObjectError as error:
            log.warning("NodeImage %s cannot be read (%s); not writing its status", self._node_name, error)
            return None
        status = plan.build_status(node_image, self._book.snapshot(), observed_generation=self.observed_generation)
        wanted = status.to_dict()
        stored = current.get("status") or {}
        if wanted == stored:
            with self._lock:
                self._last_written = wanted
            return None
        return _Decision(patch=patching.merge_patch(stored, wanted), wanted=wanted)

    def _write(self, current: objects.RawObject, decision: _Decision) -> objects.RawObject:
        written = patching.write(self._api, resources.NODE_IMAGES, current, {"status": decision.patch}, status=True)
        with self._lock:
            self._last_written = decision.wanted
            self._returned = written
        self.writes += 1
        self._on_write()
        return written


def _version(obj: objects.RawObject) -> int:
    """The resourceVersion as a number (etcd's are increasing integers); -1 when it is not one."""
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or "")
    except ValueError:
        return -1
