"""Reconciling one NodeImage: observe (informer caches) → decide (`logic`) → apply (one write per decision).

The work queue hands a node name to one worker at a time. The reconcile reads the Node and the NodeImage
from the informer caches (no request), asks `logic.lifecycle` what to do, and then:

* creates the NodeImage (with the Node's labels), deletes it (guarded by its UID), or
* maintains it: spec first (`logic.spec`), then status (`logic.status`); each decision makes one write at
  most (the spec if it changed, else the status if it changed, then the Warning events for tags that pass
  failed). After a write the next decision is made on the object the apiserver returned, until one finds
  nothing to write (at most `MAX_WRITES_PER_RECONCILE` writes): a tag expiring is one reconcile that writes
  the spec and then the status, not one reconcile per write.

Every version a decision was made on is recorded in `OwnWrites`, and the NodeImage event handler skips its
watch event: our own writes do not come back as reconciles that would find nothing to do (issue 9).

Writes are merge patches guarded by the resourceVersion the decision was based on. The first decision uses
the cached object; when it turns out stale (409), the object is read from the apiserver and the decision is
made again (`patching.retry_on_conflict`), so a concurrent puller or scheduler write is never overwritten.
Decisions read typed `NodeImage`s only (the cache holds nothing else), and a patch carries just the images
whose entries changed, built from their typed values: a NodeImage with hundreds of tags is not re-encoded
whole for each write. A NodeImage that does not fit the API is not in the cache; for its Node's reconcile it
looks missing, and the create that follows meets AlreadyExists and ends quietly, without a requeue.
The reconcile returns when to look again: the soonest pending TTL, response timeout or deadline of the last
decision. Every write is a `nodeimage.write` span with the node's name and what was written; a write that
changes tag entries carrying their owners' trace contexts is a span of those jobs' traces (`logic.jobtraces`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Protocol

from opentelemetry import trace
from opentelemetry.context import Context

from services.nodeimage_sync.logic import jobtraces, lifecycle, requeue, spec, status
from services.nodeimage_sync.logic.lifecycle import NodeFacts, Step
from services.nodeimage_sync.metrics import Metrics
from services.nodeimage_sync.owners import OwnerResolver
from services.nodeimage_sync.ownwrites import OwnWrites
from services.shared import clock
from services.shared.api import constants, wire
from services.shared.api.meta import ObjectReference
from services.shared.api.nodeimage import NodeImage, NodeImageStatus
from services.shared.kube import controller, errors, informer, objects, patching, resources, store
from services.shared.telemetry import attributes, propagation

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

WRITE_ACTION: Final = "prepull.nodeimage.write"
"""Span attribute: what a NodeImage write did (`create`, `delete`, `spec`, `status`)."""

WRITE_CHANGES: Final = "prepull.nodeimage.changes"
"""Span attribute: what a spec or status write changed, one line per change (as the log line says)."""

MAX_WRITES_PER_RECONCILE = 3
"""A spec write and a status write is what one change needs; one more for a decision that still differs."""

MAX_TRACE_LINKS = 32
"""Owner traces linked from one write; more would bury the span (the newest owner's trace is the parent)."""

FAILURE_REASON = "PullImageFailed"
"""Upstream's event reason for pulls failed by the NodeImage controller (and by the daemon)."""


class EventSink(Protocol):
    """Where Warning events go (`services.shared.kube.events.EventRecorder` in production)."""

    def warning(self, involved: Mapping[str, Any], reason: str, message: str) -> None:
        """Record a Warning event about `involved` (an object dict with apiVersion, kind and metadata)."""
        ...


@dataclass(frozen=True)
class Timing:
    """The timers a reconcile uses, in seconds (from `settings.Settings`)."""

    creation_delay: float = 30.0
    response_timeout: float = 600.0
    min_requeue: float = 3.0
    requeue_jitter: float = 2.0


@dataclass(frozen=True)
class _Write:
    """A decided write: the patch, whether it goes to the status subresource, and what it does."""

    patch: dict[str, Any]
    to_status: bool
    changes: tuple[str, ...]
    failures: tuple[status.Failure, ...] = ()
    traces: tuple[str, ...] = ()
    """`traceparent`s of the jobs whose tag entries the write changes, newest last."""


class NodeImageReconciler:
    """The reconcile function of the NodeImage controller; safe to call from several worker threads.

    Args:
        api: for writes (and re-reads after a conflict).
        nodes: the Node informer's store (what nodeimage_sync needs of each Node).
        nodeimages: the NodeImage informer's store (typed).
        owners: decides whether a tag's owning jobs exist.
        events: where failure events go.
        metrics: counters to update.
        timing: the timers.
        clock: wall-clock time for the decisions.
        rng: jitter for short requeues.
        own_writes: where decided-on versions are recorded (`own_writes` exposes it for the event handler).
    """

    def __init__(
        self,
        *,
        api: objects.ObjectApi,
        nodes: store.Store[NodeFacts],
        nodeimages: store.Store[NodeImage],
        owners: OwnerResolver,
        events: EventSink,
        metrics: Metrics,
        timing: Timing,
        clock: clock.Clock,
        rng: random.Random | None = None,
        own_writes: OwnWrites | None = None,
    ) -> None:
        self.own_writes = own_writes or OwnWrites()
        """Versions already acted on: the NodeImage event handler skips their watch events."""
        self._api = api
        self._nodes = nodes
        self._nodeimages = nodeimages
        self._owners = owners
        self._events = events
        self._metrics = metrics
        self._timing = timing
        self._clock = clock
        self._rng = rng or random.Random()

    def reconcile(self, name: str) -> controller.Result:
        """Bring the NodeImage `name` in line with its Node; raises (to be retried) on apiserver failures."""
        started = time.monotonic()
        try:
            result = self._reconcile(name)
        except errors.KubeError as error:
            self._metrics.reconciles.labels(result="error").inc()
            self._metrics.api_errors.labels(error=type(error).__name__).inc()
            raise
        finally:
            self._metrics.reconcile_seconds.observe(time.monotonic() - started)
        self._metrics.reconciles.labels(result="ok").inc()
        return result

    def _reconcile(self, name: str) -> controller.Result:
        node = self._nodes.get(name)
        nodeimage = self._nodeimages.get(name)
        plan = lifecycle.plan_lifecycle(
            node=node,
            nodeimage=nodeimage,
            now=self._clock.now(),
            creation_delay=timedelta(seconds=self._timing.creation_delay),
        )
        if plan.step is Step.CREATE and node is not None:
            self._create(node)
        elif plan.step is Step.DELETE and nodeimage is not None:
            self._delete(nodeimage)
        elif plan.step is Step.WAIT:
            return controller.Result(requeue_after=plan.wait_seconds)
        elif plan.step is Step.MAINTAIN and nodeimage is not None:
            return self._maintain(nodeimage, node)
        return controller.Result()

    # --- lifecycle ----------------------------------------------------------------------------------------

    def _create(self, node: NodeFacts) -> None:
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND_NODE_IMAGE,
            "metadata": {"name": node.name, "labels": dict(node.labels)},
            "spec": {},
        }
        try:
            with _write_span(node.name, "create"):
                self._api.create(resources.NODE_IMAGES, body)
        except errors.AlreadyExists:
            # The cache has not caught up, or holds no NodeImage because this one does not fit the API (the
            # informer logged it): either way nothing to do until the next change brings the name back.
            log.debug("NodeImage %s already exists", node.name)
            return
        self._metrics.writes.labels(action="create").inc()
        log.info("created NodeImage %s", node.name, extra={"object": f"NodeImage/{node.name}"})

    def _delete(self, nodeimage: NodeImage) -> None:
        name = nodeimage.metadata.name
        try:
            with _write_span(name, "delete"):
                self._api.delete(resources.NODE_IMAGES, name, uid=nodeimage.metadata.uid or None)
        except (errors.NotFound, errors.Conflict):
            log.debug("NodeImage %s already gone or replaced", name)
            return
        self._metrics.writes.labels(action="delete").inc()
        log.info("deleted NodeImage %s: its Node is gone", name, extra={"object": f"NodeImage/{name}"})

    # --- maintenance --------------------------------------------------------------------------------------

    def _maintain(self, cached: NodeImage, node: NodeFacts | None) -> controller.Result:
        name = cached.metadata.name
        waits: list[float | None] = []
        with self.own_writes.acting(name) as decided_on:
            current = cached
            for _ in range(MAX_WRITES_PER_RECONCILE):
                try:
                    written = self._write_once(name, current, node, waits, decided_on)
                except errors.NotFound:
                    return controller.Result()
                except wire.InvalidObjectError as error:
                    # Another writer's version that does not fit the API (read after a conflict, or returned by
                    # our write): retrying cannot fix it, and the informer leaves it out of the cache until it does.
                    log.warning("NodeImage %s does not fit the API (%s); leaving it alone", name, error)
                    return controller.Result()
                if written is None:
                    break
                current = written
        delay = requeue.requeue_after(
            waits, minimum=self._timing.min_requeue, jitter=self._timing.requeue_jitter, rand=self._rng.random()
        )
        return controller.Result(requeue_after=delay)

    def _write_once(
        self,
        name: str,
        start: NodeImage,
        node: NodeFacts | None,
        waits: list[float | None],
        decided_on: list[str],
    ) -> NodeImage | None:
        """Decide on `start` (on a fresh read after a conflict) and make that write; the written object, or None
        when the decision found nothing to write. `waits` ends up holding the last decision's timers.

        Raises:
            wire.InvalidObjectError: a NodeImage read or written does not fit the API.
        """
        unread: list[NodeImage] = [start]

        def read() -> NodeImage:
            if unread:
                return unread.pop()
            return NodeImage.from_dict(self._api.get(resources.NODE_IMAGES, name))

        def decide(nodeimage: NodeImage) -> _Write | None:
            waits.clear()
            decision = self._decide(nodeimage, node, waits)
            decided_on.append(nodeimage.metadata.resource_version)
            return decision

        def write(nodeimage: NodeImage, decided: _Write) -> tuple[_Write, objects.RawObject]:
            action = "status" if decided.to_status else "spec"
            with _write_span(name, action, changes=decided.changes, traces=decided.traces):
                written = patching.write_at(
                    self._api,
                    resources.NODE_IMAGES,
                    name,
                    decided.patch,
                    resource_version=nodeimage.metadata.resource_version,
                    status=decided.to_status,
                )
            return decided, written

        outcome = patching.retry_on_conflict(read, decide, write)
        if outcome is None:
            return None
        decided, written = outcome
        self._after_write(name, decided)
        return NodeImage.from_dict(informer.without_managed_fields(written))

    def _decide(self, nodeimage: NodeImage, node: NodeFacts | None, waits: list[float | None]) -> _Write | None:
        now = self._clock.now()
        owners = self._resolve_owners(nodeimage)
        spec_plan = spec.maintain_spec(
            nodeimage, node_labels=node.labels if node is not None else None, owners=owners, now=now
        )
        waits.append(spec_plan.requeue_after)
        if spec_plan.changed:
            patch = _spec_patch(nodeimage, spec_plan)
            if patch:
                traces = jobtraces.changed_entry_traces(nodeimage.spec, spec_plan.spec)
                return _Write(patch, to_status=False, changes=spec_plan.changes, traces=traces)
        status_plan = status.maintain_status(
            nodeimage, now=now, response_timeout=timedelta(seconds=self._timing.response_timeout)
        )
        waits.append(status_plan.requeue_after)
        if not status_plan.changed:
            return None
        patch = _status_patch(nodeimage.status, status_plan)
        if not patch:
            return None
        changes = tuple(f"image {f.image} tag {f.tag}: {f.message}" for f in status_plan.failures) or (
            "status entries pruned and counts recomputed",
        )
        traces = jobtraces.entry_traces(nodeimage.spec, ((f.image, f.tag) for f in status_plan.failures))
        return _Write(patch, to_status=True, changes=changes, failures=status_plan.failures, traces=traces)

    def _resolve_owners(self, nodeimage: NodeImage) -> dict[spec.OwnerKey, bool]:
        lookups = self._owners.lookups
        resolved = self._owners.resolve(spec.job_references(nodeimage))
        self._metrics.owner_lookups.inc(self._owners.lookups - lookups)
        return resolved

    def _after_write(self, name: str, written: _Write) -> None:
        self._metrics.writes.labels(action="status" if written.to_status else "spec").inc()
        log.info("updated NodeImage %s: %s", name, "; ".join(written.changes), extra={"object": f"NodeImage/{name}"})
        nodeimage_ref = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND_NODE_IMAGE,
            "metadata": {"name": name},
        }
        for failure in written.failures:
            message = status.failure_event_message(
                image=failure.image, tag=failure.tag, node=name, message=failure.message
            )
            for owner in failure.owners:
                self._events.warning(_involved(owner), FAILURE_REASON, message)
            self._events.warning(nodeimage_ref, FAILURE_REASON, message)


def _write_span(
    name: str, action: str, *, changes: tuple[str, ...] = (), traces: tuple[str, ...] = ()
) -> AbstractContextManager[trace.Span]:
    """A `nodeimage.write` span for one write to the NodeImage `name` (`create`, `delete`, `spec`, `status`).

    With `traces` (the owning jobs' contexts of the entries it changes, newest last) the span is a child of the
    newest and links to the others, so each job's trace shows what happened to its tags; else a root.
    """
    contexts = [found for found in map(propagation.span_context_from_traceparent, traces) if found is not None]
    parent = trace.set_span_in_context(trace.NonRecordingSpan(contexts[-1]), Context()) if contexts else Context()
    span_attributes: dict[str, Any] = {attributes.K8S_NODE_NAME: name, WRITE_ACTION: action}
    if changes:
        span_attributes[WRITE_CHANGES] = changes
    return tracer.start_as_current_span(
        "nodeimage.write",
        context=parent,
        links=[trace.Link(each) for each in contexts[:-1][-MAX_TRACE_LINKS:]],
        attributes=span_attributes,
    )


def _spec_patch(current: NodeImage, plan: spec.SpecPlan) -> dict[str, Any]:
    """The merge patch from `current` to the planned labels and spec: the labels that changed, and the images
    that changed (each as the merge patch of its typed value; an image left untouched is not encoded at all)."""
    patch: dict[str, Any] = {}
    labels = patching.merge_patch(dict(current.metadata.labels or {}), dict(plan.labels))
    if labels:
        patch["metadata"] = {"labels": labels}
    images = _mapping_patch(current.spec.images, plan.spec.images)
    if images is None or images:
        patch["spec"] = {"images": images}
    return patch


def _status_patch(current: NodeImageStatus | None, plan: status.StatusPlan) -> dict[str, Any]:
    """The status merge patch from `current` to the planned entries and counts; {} when they are the same.

    A NodeImage without status gets `waiting: 0` with its counts, as the puller would write it.
    """
    patch: dict[str, Any] = {} if current is not None else {"waiting": 0}
    # The counts' JSON names (desired, succeeded, failed, pulling) are also their attribute names.
    patch.update(
        (count, value) for count, value in plan.counts.items() if current is None or getattr(current, count) != value
    )
    images = _mapping_patch(current.image_statuses if current is not None else None, plan.image_statuses)
    if images is None or images:
        patch["imageStatuses"] = images
    return {"status": patch} if patch else {}


def _mapping_patch(
    old: Mapping[str, wire.WireObject] | None, new: Mapping[str, wire.WireObject] | None
) -> dict[str, Any] | None:
    """The merge patch of a map of typed values (images by name): {} when nothing changed, None (remove the map)
    when it has been emptied.

    Entries that are the same object or equal are skipped without encoding; the others are each the merge
    patch of their encoded forms (lists inside replaced whole, as merge patch does).
    """
    before, after = old or {}, new or {}
    if not after:
        return None if before else {}
    patch: dict[str, Any] = {name: None for name in before if name not in after}
    for name, value in after.items():
        previous = before.get(name)
        if previous is value or previous == value:
            continue
        changed = patching.merge_patch(previous.to_dict() if previous is not None else {}, value.to_dict())
        if changed:
            patch[name] = changed
    return patch


def _involved(owner: ObjectReference) -> dict[str, Any]:
    """An owner reference in the shape the event recorder reads (apiVersion, kind, metadata)."""
    return {
        "apiVersion": owner.api_version,
        "kind": owner.kind,
        "metadata": {"namespace": owner.namespace, "name": owner.name, "uid": owner.uid},
    }
