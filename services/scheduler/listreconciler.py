"""The ImageListPullJob controller's I/O (upstream §3): one child ImagePullJob per image.

Per list job: while our own last write of it is not yet in the cache, wait (its event re-queues the list
job); label it with the template hash and record its trace context (one write, on first sight); if finished,
apply its TTL and stop (children go by their own TTL or by garbage collection through their owner reference);
otherwise wait until our last child creations and deletions show in the cache, compute the status from the
children, create missing children in slow-start batches, delete children of removed images or an older
template, and write the status if it changed.

Tracing (design §4, `tracecontext`): the list job has one trace, started on its first reconcile and recorded
in its `prepull.io/trace-context` annotation. Every reconcile is a `reconcile` span of it, and every child is
created with its own annotation already set to a span of that trace, so the children's spans (the scheduler's,
nodeimage_sync's and the pullers') all land in the list job's trace.

Waiting for our own writes (the shared `expectations`, as the ImagePullJob controller does): every change of a
child re-queues its list job, often before the watch has delivered the list job's own last write. Deciding from
that stale copy would write the status again with a stale resourceVersion: a 409 Conflict, retried, but an error
span and a wasted request. So each write of the list job records the resourceVersion it produced, and a
reconcile whose cached copy is older returns at once; the dispatcher re-queues the list job on every event of
it, which is what ends the wait (`--expectation-timeout` bounds it should that event be lost).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime
from typing import Any

from services.scheduler import expectations as expectations_module
from services.scheduler import jobmetadata, tracecontext
from services.scheduler.logic import completion, listjobs
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.view import ClusterView
from services.shared.api import constants, wire
from services.shared.api.imagelistpulljob import ImageListPullJob
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.clock import Clock
from services.shared.kube import controller, errors, events, objects, patching, resources
from services.shared.telemetry import attributes

__all__ = ["ListJobReconciler", "list_job_expectation_key"]

log = logging.getLogger(__name__)

CONTROLLER = "imagelistpulljob"


def list_job_expectation_key(key: str) -> str:
    """Expectation key of an ImageListPullJob."""
    return f"imagelistpulljob/{key}"


class ListJobReconciler:
    """Reconciles one ImageListPullJob key at a time."""

    def __init__(
        self,
        *,
        api: objects.ObjectApi,
        view: ClusterView,
        expectations: expectations_module.Expectations,
        recorder: events.EventRecorder,
        metrics: SchedulerMetrics,
        clock: Clock,
        expectation_requeue_seconds: float = 1.0,
        expectation_timeout_seconds: float = 300.0,
    ) -> None:
        self._api = api
        self._view = view
        self._expectations = expectations
        self._expectation_timeout = expectation_timeout_seconds
        self._recorder = recorder
        self._metrics = metrics
        self._clock = clock
        self._requeue = expectation_requeue_seconds
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, set[str], set[str]]] = {}
        """List job key → (deadline, child names created but unseen, child names deleted but still seen)."""
        self._traces = tracecontext.JobTraces()

    def reconcile(self, key: str) -> controller.Result | None:
        """One pass over the list job `key` (a `reconcile` span of its trace); raises to be retried with back-off."""
        self._metrics.reconciles.labels(CONTROLLER).inc()
        context, uid = self._traces.reconcile_context(self._view.list_jobs.raw(key), constants.KIND_IMAGE_LIST_PULL_JOB)
        span = (
            tracecontext.tracer.start_as_current_span(
                "reconcile", context=context, attributes=_job_attributes(key, uid)
            )
            if context is not None
            else contextlib.nullcontext()
        )
        try:
            with span:
                return self._reconcile(key)
        except Exception as error:
            self._metrics.reconcile_errors.labels(CONTROLLER).inc()
            if isinstance(error, errors.KubeError):
                self._metrics.api_errors.labels(CONTROLLER, type(error).__name__).inc()
            raise

    def _reconcile(self, key: str) -> controller.Result | None:
        raw = self._view.list_jobs.raw(key)
        if raw is None:
            with self._lock:
                self._pending.pop(key, None)
            self._expectations.forget(list_job_expectation_key(key))
            return None
        cached_version = (raw.get("metadata") or {}).get("resourceVersion")
        if not self._expectations.satisfied(list_job_expectation_key(key), cached_version, self._clock.monotonic()):
            return controller.Result(requeue_after=self._requeue)
        try:
            job = self._view.list_jobs.typed(raw)
        except wire.InvalidObjectError as error:
            log.warning("ImageListPullJob %s cannot be read: %s", key, error)
            return None
        if job.metadata.deletion_timestamp is not None:
            return None
        current_hash = listjobs.template_hash(job)
        if self._ensure_metadata(key, raw, current_hash):
            return None
        now = self._clock.now()
        if job.status is not None and job.status.completion_time is not None:
            return self._finished(job, now)
        children = self._children(job)
        if not self._caught_up(key, children):
            return controller.Result(requeue_after=self._requeue)
        by_image = {child.spec.image: child for child in children}
        status = listjobs.aggregate_status(job, by_image, now)
        plan = listjobs.plan_children(job.spec.images, children, current_hash)
        self._delete_children(key, raw, job, plan.delete)
        self._create_children(key, raw, job, plan.create, current_hash)
        new_status = status.to_dict()
        if new_status != (raw.get("status") or {}):
            written = patching.write(
                self._api,
                resources.IMAGE_LIST_PULL_JOBS,
                raw,
                {"status": patching.merge_patch(raw.get("status") or {}, new_status)},
                status=True,
            )
            self._expect_list_job(key, written)
        return None

    def _expect_list_job(self, key: str, written: objects.RawObject) -> None:
        """Hold back decisions on `key` until the cache holds `written` (what our write produced) or newer."""
        version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        self._expectations.expect(list_job_expectation_key(key), version, key, self._clock.monotonic())

    def _ensure_metadata(self, key: str, raw: objects.RawObject, current_hash: str) -> bool:
        """Label the list job with its template hash and record its trace context if missing; True on a write."""
        labels = {constants.LABEL_CONTROLLER_REVISION_HASH: current_hash}
        written = jobmetadata.write_missing(
            self._api, resources.IMAGE_LIST_PULL_JOBS, raw, traces=self._traces, labels=labels
        )
        if written is None:
            return False
        self._expect_list_job(key, written)
        return True

    def _finished(self, job: ImageListPullJob, now: datetime) -> controller.Result | None:
        status = job.status
        remaining = completion.ttl_remaining(
            job.spec.completion_policy.ttl_seconds_after_finished, status.completion_time if status else None, now
        )
        if remaining is None:
            return None
        if remaining > 0:
            return controller.Result(requeue_after=remaining)
        with contextlib.suppress(errors.NotFound):
            self._api.delete(
                resources.IMAGE_LIST_PULL_JOBS,
                job.metadata.name,
                namespace=job.metadata.namespace,
                uid=job.metadata.uid,
                propagation_policy="Background",
            )
        return None

    def _children(self, job: ImageListPullJob) -> list[ImagePullJob]:
        found = []
        for raw in self._view.jobs.informer.store.list():
            metadata = raw.get("metadata") or {}
            if metadata.get("namespace") != job.metadata.namespace or metadata.get("deletionTimestamp"):
                continue
            if any(owner.get("uid") == job.metadata.uid for owner in metadata.get("ownerReferences") or ()):
                with contextlib.suppress(wire.InvalidObjectError):
                    found.append(self._view.jobs.typed(raw))
        return sorted(found, key=lambda child: child.metadata.name)

    def _caught_up(self, key: str, children: list[ImagePullJob]) -> bool:
        names = {child.metadata.name for child in children}
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                return True
            deadline, created, deleted = pending
            if (created <= names and not (deleted & names)) or self._clock.monotonic() >= deadline:
                del self._pending[key]
                return True
            return False

    def _remember(self, key: str, *, created: set[str] | None = None, deleted: set[str] | None = None) -> None:
        with self._lock:
            _, was_created, was_deleted = self._pending.get(key, (0.0, set(), set()))
            self._pending[key] = (
                self._clock.monotonic() + self._expectation_timeout,
                was_created | (created or set()),
                was_deleted | (deleted or set()),
            )

    def _delete_children(self, key: str, raw: objects.RawObject, job: ImageListPullJob, names: tuple[str, ...]) -> None:
        for name in names:
            with contextlib.suppress(errors.NotFound):
                self._api.delete(
                    resources.IMAGE_PULL_JOBS, name, namespace=job.metadata.namespace, propagation_policy="Background"
                )
            self._remember(key, deleted={name})
            self._recorder.normal(raw, reason="SuccessfulDelete", message=f"Delete ImagePullJob {name}")

    def _create_children(
        self, key: str, raw: objects.RawObject, job: ImageListPullJob, images: tuple[str, ...], current_hash: str
    ) -> None:
        remaining = list(images)
        list_traceparent = self._traces.of_job(raw, constants.KIND_IMAGE_LIST_PULL_JOB)
        for batch in listjobs.slow_start_batches(len(images)):
            chunk, remaining = remaining[:batch], remaining[batch:]
            for image in chunk:
                name = self._create_child(job, image, current_hash, list_traceparent)
                self._remember(key, created={name})
                self._recorder.normal(raw, reason="SuccessfulCreate", message=f"Create ImagePullJob {name}")

    def _create_child(self, job: ImageListPullJob, image: str, current_hash: str, list_traceparent: str) -> str:
        """Create the child for `image`, its trace context a span of the list job's trace; the child's name."""
        with tracecontext.ChildJobTrace(
            list_traceparent=list_traceparent,
            namespace=job.metadata.namespace,
            list_name=job.metadata.name,
            image=image,
        ) as child_trace:
            body = _child_body(job, image, current_hash, child_trace.traceparent)
            created = self._api.create(resources.IMAGE_PULL_JOBS, body, namespace=job.metadata.namespace)
            metadata = created.get("metadata") or {}
            child_trace.name(name=str(metadata.get("name")), uid=str(metadata.get("uid") or ""))
        return str(metadata.get("name"))


def _job_attributes(key: str, uid: str) -> dict[str, str]:
    namespace, _, name = key.rpartition("/")
    return {
        attributes.JOB_KIND: constants.KIND_IMAGE_LIST_PULL_JOB,
        attributes.JOB_UID: uid,
        attributes.K8S_NAMESPACE_NAME: namespace,
        attributes.JOB_NAME: name,
    }


def _child_body(job: ImageListPullJob, image: str, current_hash: str, traceparent: str) -> dict[str, Any]:
    spec = job.spec.child_spec(image).to_dict()
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_IMAGE_PULL_JOB,
        "metadata": {
            "generateName": f"{job.metadata.name}-",
            "namespace": job.metadata.namespace,
            "labels": {constants.LABEL_CONTROLLER_REVISION_HASH: current_hash},
            "annotations": {constants.ANNOTATION_TRACE_CONTEXT: traceparent},
            "ownerReferences": [
                {
                    "apiVersion": constants.API_VERSION,
                    "kind": constants.KIND_IMAGE_LIST_PULL_JOB,
                    "name": job.metadata.name,
                    "uid": job.metadata.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
