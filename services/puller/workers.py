"""One worker thread per active tag, pulling through a bounded number of slots (upstream-behaviour.md §5.3).

A worker records `Waiting` at once, waits for one of the `--workers` pull slots, records `Pulling` with its
start time, and makes up to `backoffLimit + 1` attempts, each within its timeout (capped by what is left of
the deadline), sleeping 1 s doubling to 30 s between them. It holds a slot only while an attempt runs, so a
tag sleeping between retries does not keep another tag from pulling. An attempt:

1. checks the disk guard (CRI `ImageFsInfo`; refused below `--min-free-disk`);
2. for `IfNotPresent`, asks CRI `ImageStatus` (tags and digests count) and succeeds without pulling;
3. fetches credentials just in time when the image names pull secrets, and tries each in turn (no anonymous
   fallback once credentials exist, as upstream), else pulls anonymously;
4. reads the image id back with `ImageStatus` for the status's `imageID`.

Stopping a worker (tag removed, version bumped, status adopted, shutdown) cancels the CRI call in flight, and
the status book drops anything it reports afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from opentelemetry import trace
from opentelemetry.context import Context

from services.puller import cri, statusbook
from services.puller.credentials_client import AnonymousCredentials, CredentialsSource
from services.puller.logic import backoff, diskguard, plan, tagstate
from services.puller.logic.tagstate import PullTask, TagKey
from services.shared.api import nodeimage
from services.shared.api.pulloptions import SandboxConfig
from services.shared.clock import Clock, SystemClock
from services.shared.telemetry import attributes, propagation

__all__ = [
    "NoEvents",
    "NoMeasurements",
    "ProgressTracker",
    "PullEvents",
    "PullMeasurements",
    "PullSlots",
    "TagWorker",
    "WorkerDeps",
    "Workers",
]

log = logging.getLogger(__name__)

SLOT_POLL_SECONDS = 0.2
"""How often a worker waiting for a slot checks whether it was stopped."""


class PullEvents(Protocol):
    """Where finished pulls are announced (Kubernetes Events in production)."""

    def succeeded(self, task: PullTask, elapsed_seconds: float) -> None:
        """A tag was pulled (or found present)."""
        ...

    def failed(self, task: PullTask, message: str) -> None:
        """A tag failed after all its attempts."""
        ...


class NoEvents:
    """`PullEvents` that announces nothing."""

    def succeeded(self, task: PullTask, elapsed_seconds: float) -> None:
        """Nothing."""

    def failed(self, task: PullTask, message: str) -> None:
        """Nothing."""


class PullMeasurements(Protocol):
    """What the metrics want to know about pulls beyond their end (the `PullEvents`)."""

    def waited_for_slot(self, seconds: float) -> None:
        """An attempt got a pull slot after waiting `seconds`."""
        ...

    def pulled(self, size_bytes: int) -> None:
        """An image of `size_bytes` was pulled (not found present)."""
        ...

    def failed_because(self, reason: str, elapsed_seconds: float) -> None:
        """A tag failed for good; `reason` is a low-cardinality error class, `elapsed_seconds` since its start."""
        ...


class NoMeasurements:
    """`PullMeasurements` that keeps nothing."""

    def waited_for_slot(self, seconds: float) -> None:
        """Nothing."""

    def pulled(self, size_bytes: int) -> None:
        """Nothing."""

    def failed_because(self, reason: str, elapsed_seconds: float) -> None:
        """Nothing."""


class ProgressTracker(Protocol):
    """Byte progress of a pull in flight, where the runtime exposes it."""

    def track(self, reference: str, report: Callable[[int, int], None]) -> contextlib.AbstractContextManager[None]:
        """While the block runs, call `report(bytes_done, bytes_total)` as the pull of `reference` progresses."""
        ...


class PullSlots:
    """At most `limit` pulls at once (the `--workers` flag); `in_flight` is exported as a metric."""

    def __init__(self, limit: int) -> None:
        """`limit` must be at least 1."""
        if limit < 1:
            raise ValueError(f"need at least one pull slot, got {limit}")
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self.in_flight = 0

    @contextlib.contextmanager
    def slot(self, stop: threading.Event) -> Iterator[bool]:
        """Hold a slot for the block; yields False (holding nothing) when `stop` was set while waiting."""
        while not self._semaphore.acquire(timeout=SLOT_POLL_SECONDS):
            if stop.is_set():
                yield False
                return
        if stop.is_set():
            self._semaphore.release()
            yield False
            return
        with self._lock:
            self.in_flight += 1
        try:
            yield True
        finally:
            with self._lock:
                self.in_flight -= 1
            self._semaphore.release()


@dataclass
class WorkerDeps:
    """What every worker shares."""

    images: cri.ImageService
    slots: PullSlots
    credentials: CredentialsSource = field(default_factory=AnonymousCredentials)
    events: PullEvents = field(default_factory=NoEvents)
    measurements: PullMeasurements = field(default_factory=NoMeasurements)
    clock: Clock = field(default_factory=SystemClock)
    retry: backoff.RetryPolicy = field(default_factory=backoff.RetryPolicy)
    min_free_disk_bytes: int = 0
    progress: ProgressTracker | None = None
    on_pulled: Callable[[], None] = lambda: None
    """Called after each pull that changed the node's images (the inventory reporter listens)."""
    node_name: str = ""
    """For span attributes."""
    tracer: trace.Tracer = field(default_factory=lambda: trace.get_tracer(__name__))
    """Where task spans go (the process-wide provider unless a test hands its own)."""


class TagWorker:
    """Pulls one tag at one version on its own thread; see the module docstring."""

    def __init__(self, task: PullTask, *, deps: WorkerDeps, book: statusbook.StatusBook, token: int) -> None:
        self.task = task
        self._deps = deps
        self._book = book
        self._token = token
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pull {task.key}", daemon=True)
        self._status = tagstate.waiting(task.key, task.version)
        self._span: trace.Span = trace.INVALID_SPAN
        """The task span while the thread runs: attempts, image and outcome are recorded on it."""

    @property
    def token(self) -> int:
        """The worker's token in the status book."""
        return self._token

    def start(self) -> None:
        """Record Waiting and start pulling on the worker's thread."""
        self._record(self._status)
        self._thread.start()

    def stop(self) -> None:
        """Stop pulling (cancelling the CRI call in flight); returns at once."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()

    # --- the worker's thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        parent, links = _trace_parent(self.task.traceparents)
        with self._deps.tracer.start_as_current_span(
            f"pull {self.task.key}",
            context=parent,
            links=links,
            attributes={
                attributes.K8S_NODE_NAME: self._deps.node_name,
                attributes.CONTAINER_IMAGE_NAME: self.task.reference or str(self.task.key),
                attributes.TAG_VERSION: self.task.version,
            },
        ) as span:
            self._span = span
            try:
                self._pull()
            except Exception as error:  # a bug must not leave the tag Pulling forever
                log.exception("pulling %s failed unexpectedly", self.task.key)
                self._finish_failed(f"internal error in the puller: {type(error).__name__}", type(error).__name__)
            if self._status.phase == tagstate.Phase.FAILED:
                span.set_status(trace.Status(trace.StatusCode.ERROR, self._status.message))

    def _pull(self) -> None:
        task = self.task
        if task.invalid_reason:
            self._finish_failed(task.invalid_reason, "InvalidImageName")
            return
        started_at = self._deps.clock.monotonic()
        deadline = None
        last_error = ""
        last_error_type = ""
        for attempt in range(task.attempts):
            asked_at = self._deps.clock.monotonic()
            with self._deps.slots.slot(self._stop) as acquired:
                if not acquired:
                    return
                self._deps.measurements.waited_for_slot(self._deps.clock.monotonic() - asked_at)
                if attempt == 0:
                    start = self._deps.clock.now()
                    deadline = backoff.deadline_for(start, task.active_deadline_seconds)
                    self._status = tagstate.pulling(task.key, task.version, start)
                    self._record(self._status)
                try:
                    self._span.set_attribute(attributes.PULL_ATTEMPT, attempt + 1)
                    timeout = backoff.attempt_timeout(
                        timeout_seconds=task.timeout_seconds, deadline=deadline, now=self._deps.clock.now()
                    )
                    with self._deps.tracer.start_as_current_span(
                        "attempt", attributes={attributes.PULL_ATTEMPT: attempt + 1}
                    ):
                        runtime_id = self._attempt(timeout)
                except backoff.DeadlineExceeded as error:
                    last_error, last_error_type = str(error), type(error).__name__
                    break
                except cri.PullCancelled:
                    return
                except cri.RuntimeError_ as error:
                    last_error, last_error_type = str(error), type(error).__name__
                    log.info("pulling %s: attempt %d of %d failed: %s", task.key, attempt + 1, task.attempts, error)
                else:
                    self._finish_succeeded(runtime_id, self._deps.clock.monotonic() - started_at)
                    return
            if self._stop.is_set() or attempt + 1 >= task.attempts:
                break
            if self._stop.wait(self._deps.retry.sleep_after(attempt + 1)):
                return
        if not self._stop.is_set():
            elapsed = self._deps.clock.monotonic() - started_at
            self._span.set_attribute(attributes.PULL_DURATION_SECONDS, elapsed)
            self._finish_failed(last_error, last_error_type, elapsed)

    def _attempt(self, timeout: float) -> str:
        """One attempt; returns the runtime's image id ("" if unknown). Raises `cri.RuntimeError_`."""
        deps, task = self._deps, self.task
        refusal = diskguard.refusal(cri.free_space(deps.images), min_free_bytes=deps.min_free_disk_bytes)
        if refusal is not None:
            raise cri.PullFailed(refusal)
        if not task.always_pull:
            present = deps.images.image_status(task.reference)
            if present is not None:
                self._describe(present)
                return present.id
        credentials = deps.credentials.credentials_for(task.reference) if task.has_pull_secrets else []
        ends_at = deps.clock.monotonic() + timeout
        tracking = deps.progress.track(task.reference, self._report_progress) if deps.progress else _untracked()
        with tracking:
            pulled = pull_with_credentials(
                deps.images,
                task.reference,
                credentials,
                sandbox=task.sandbox_config,
                ends_at=ends_at,
                cancel=self._stop,
                clock=deps.clock,
            )
        deps.on_pulled()
        image = deps.images.image_status(task.reference)
        if image is not None:
            self._describe(image)
            deps.measurements.pulled(image.size)
        return image.id if image is not None else pulled

    def _describe(self, image: cri.RuntimeImage) -> None:
        """Put the image's digests and size on the task span."""
        if image.repo_digests:
            self._span.set_attribute(attributes.CONTAINER_IMAGE_REPO_DIGESTS, list(image.repo_digests))
        self._span.set_attribute(attributes.IMAGE_SIZE_BYTES, image.size)

    def _report_progress(self, done: int, total: int) -> None:
        if self._status.phase == tagstate.Phase.PULLING:
            self._status = tagstate.with_progress(self._status, done=done, total=total)
            self._record(self._status)

    def _finish_succeeded(self, runtime_id: str, elapsed: float) -> None:
        self._span.set_attribute(attributes.PULL_DURATION_SECONDS, elapsed)
        self._status = tagstate.succeeded(
            self._status, image_name=self.task.key.image, runtime_id=runtime_id, now=self._deps.clock.now()
        )
        if self._record(self._status):
            self._deps.events.succeeded(self.task, elapsed)

    def _finish_failed(self, message: str, error_type: str, elapsed: float = 0.0) -> None:
        reason = error_type or "PullFailed"
        self._span.set_attribute(attributes.ERROR_TYPE, reason)
        self._status = tagstate.failed(self._status, message=message, now=self._deps.clock.now())
        if self._record(self._status):
            self._deps.events.failed(self.task, self._status.message)
            self._deps.measurements.failed_because(reason, elapsed)

    def _record(self, status: nodeimage.ImageTagStatus) -> bool:
        return self._book.record(self.task.key, self._token, status)


def pull_with_credentials(
    images: cri.ImageService,
    reference: str,
    credentials: list[cri.Auth],
    *,
    sandbox: SandboxConfig | None,
    ends_at: float,
    cancel: threading.Event,
    clock: Clock,
) -> str:
    """Pull anonymously, or with each credential in turn until one works (the first success wins).

    With credentials there is no anonymous fallback (upstream §5.4): if all fail, their errors are joined.
    `ends_at` (on `clock.monotonic()`) bounds all tries together.

    Raises:
        cri.PullFailed: every try failed, or the time ran out.
        cri.PullCancelled: `cancel` was set.
        cri.RuntimeUnavailable: the runtime cannot be reached.
    """
    choices: list[cri.Auth | None] = list(credentials) or [None]
    errors: list[str] = []
    for auth in choices:
        left = ends_at - clock.monotonic()
        if left <= 0:
            errors.append(f"pulling image {reference} timed out")
            break
        try:
            return images.pull_image(reference, auth=auth, sandbox=sandbox, timeout=left, cancel=cancel)
        except (cri.PullCancelled, cri.RuntimeUnavailable):
            raise
        except cri.PullFailed as error:
            errors.append(str(error))
    raise cri.PullFailed("; ".join(errors))


@contextlib.contextmanager
def _untracked() -> Iterator[None]:
    yield


def _trace_parent(traceparents: tuple[str, ...]) -> tuple[Context | None, list[trace.Link]]:
    """The newest owner's context as parent, links to the other owners' (design §4); none when untraced."""
    if not traceparents:
        return None, []
    links = [
        trace.Link(context)
        for context in (propagation.span_context_from_traceparent(value) for value in traceparents[:-1])
        if context is not None
    ]
    return propagation.context_from_traceparent(traceparents[-1]), links


class Workers:
    """The workers of one node, applied from `plan.SyncPlan`s; used by the reconciler's single thread."""

    def __init__(self, deps: WorkerDeps, book: statusbook.StatusBook) -> None:
        self.deps = deps
        self.book = book
        self._lock = threading.Lock()
        self._workers: dict[TagKey, TagWorker] = {}

    def versions(self) -> dict[TagKey, int]:
        """The version each existing worker pulls."""
        with self._lock:
            return {key: worker.task.version for key, worker in self._workers.items()}

    def apply(self, sync_plan: plan.SyncPlan) -> None:
        """Stop, forget, adopt, then start, so a restarted tag's old worker can no longer report."""
        with self._lock:
            for key in sync_plan.stop:
                worker = self._workers.pop(key)
                worker.stop()
                self.book.release(key, worker.token)
            for key in sync_plan.forget:
                self.book.forget(key)
            for key, status in sync_plan.adopt.items():
                self.book.adopt(key, status)
            for task in sync_plan.start:
                worker = TagWorker(task, deps=self.deps, book=self.book, token=self.book.claim(task.key))
                self._workers[task.key] = worker
                worker.start()

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every worker and wait up to `timeout` seconds for their threads."""
        with self._lock:
            stopped = list(self._workers.items())
            self._workers.clear()
        for key, worker in stopped:
            worker.stop()
            self.book.release(key, worker.token)
        ends = time.monotonic() + timeout
        for _, worker in stopped:
            worker.join(max(0.0, ends - time.monotonic()))

    def running(self) -> int:
        """Workers whose thread still runs (waiting, pulling or sleeping between attempts)."""
        with self._lock:
            return sum(worker.alive() for worker in self._workers.values())
