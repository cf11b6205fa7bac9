"""The ImagePullJob controller's I/O: observe the cache, ask `logic`, apply the plan (upstream §2.2).

Per job key:

1. Gone: nothing to do. Our own last write not yet in the cache: wait for it (the informer event re-queues).
2. Being deleted, or finished: remove the finalizer. A finished job is frozen; with `ttlSecondsAfterFinished`
   it is deleted when the TTL runs out (re-queued until then).
3. First sight: add the finalizer and the trace-context annotation: the context of the job's root span, started
   and ended here (design §4, `tracecontext`).
4. Select targets, wait while any targeted NodeImage lacks our last write (that write's event re-queues the
   job, whichever job made it), compute the status, write tag entries into up to `parallelism - active`
   not-synced nodes (and, without taking a slot, into nodes whose entry must follow an edited pull policy),
   then write the status if it changed. A running job with a deadline is re-queued for it. Tag writes start
   from the cached NodeImage and carry its resourceVersion as a precondition; a conflict re-reads from the
   apiserver and decides again. The writes of one reconcile overlap (`writepool`, at most
   `--nodeimage-write-workers` in flight over all jobs); the nodes are chosen before the first one.

Every reconcile of a job is a `reconcile` span in the job's trace, and each tag-entry write a `nodeimage.write`
span inside it; a job already being deleted gets no span unless it was traced before.

With `--max-pulls-in-flight` or `--max-pulls-in-flight-per-registry`, step 4's node starts are serialised
across jobs and counted over every NodeImage; a job held back by a cap is woken by the next tag change.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from services.scheduler import dispatcher as dispatcher_module
from services.scheduler import expectations as expectations_module
from services.scheduler import jobmetadata, tracecontext, writepool
from services.scheduler.logic import completion, inflight, rollout, stalepolicies, tagentries, tagpolicy, targets
from services.scheduler.logic import status as job_status
from services.scheduler.logic.labels import UnknownOperatorError
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.settings import SchedulerSettings
from services.scheduler.view import ClusterView
from services.shared.api import constants, imageref, wire
from services.shared.api.imagepulljob import ImagePullJob
from services.shared.api.meta import ObjectReference
from services.shared.api.nodeimage import NodeImage, ReferenceObject, TraceContext
from services.shared.clock import Clock
from services.shared.kube import controller, errors, events, objects, patching, resources
from services.shared.telemetry import attributes

__all__ = ["JobReconciler", "job_expectation_key"]

log = logging.getLogger(__name__)

CONTROLLER = "imagepulljob"


def job_expectation_key(key: str) -> str:
    """Expectation key of an ImagePullJob."""
    return f"imagepulljob/{key}"


class JobReconciler:
    """Reconciles one ImagePullJob key at a time (several workers may run different keys)."""

    def __init__(
        self,
        *,
        api: objects.ObjectApi,
        view: ClusterView,
        dispatcher: dispatcher_module.Dispatcher,
        expectations: expectations_module.Expectations,
        recorder: events.EventRecorder,
        metrics: SchedulerMetrics,
        settings: SchedulerSettings,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._api = api
        self._view = view
        self._dispatcher = dispatcher
        self._expectations = expectations
        self._recorder = recorder
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._caps_lock = threading.Lock()
        """With cluster or registry caps, one job at a time counts pulls in flight and starts nodes."""
        self._capped = settings.max_pulls_in_flight > 0 or settings.max_pulls_in_flight_per_registry > 0
        self._capacity_waiters: set[str] = set()
        self._in_flight = inflight.InFlightCounter()
        """Pulls in flight over every NodeImage, for the caps; used under `_caps_lock`."""
        self._writes = writepool.WritePool(settings.nodeimage_write_workers)
        self._traces = tracecontext.JobTraces()
        self.reconcile_counts: collections.Counter[str] = collections.Counter()
        """Reconciles per job key: the test hook for wake-up selectivity (the metric has no per-job label)."""

    # --- entry point -----------------------------------------------------------------------------------------

    def reconcile(self, key: str) -> controller.Result | None:
        """One pass over the job `key` ("namespace/name"); raises to be retried with back-off."""
        self._metrics.reconciles.labels(CONTROLLER).inc()
        with self._lock:
            self.reconcile_counts[key] += 1
        context, uid = self._traces.reconcile_context(self._view.jobs.raw(key), constants.KIND_IMAGE_PULL_JOB)
        tracer = tracecontext.tracer
        span = (
            tracer.start_as_current_span("reconcile", context=context, attributes=_job_attributes(key, uid))
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
        raw = self._view.jobs.raw(key)
        if raw is None:
            self._dispatcher.index(key, None)
            self._expectations.forget(job_expectation_key(key))
            self._wait_for_capacity(key, blocked=False)
            with self._lock:
                self.reconcile_counts.pop(key, None)
            return None
        metadata = raw.get("metadata") or {}
        if not self._expectations.satisfied(
            job_expectation_key(key), metadata.get("resourceVersion"), self._clock.monotonic()
        ):
            return controller.Result(requeue_after=self._settings.nodeimage_expectation_requeue_seconds)
        try:
            job = self._view.jobs.typed(raw)
        except wire.InvalidObjectError as error:
            log.warning("ImagePullJob %s cannot be read: %s", key, error)
            return None
        self._dispatcher.index(key, job)
        now = self._clock.now()
        if job.metadata.deletion_timestamp is not None:
            self._remove_finalizer(key, raw)
            return None
        if job.status is not None and job.status.completion_time is not None:
            return self._finished(key, raw, job, now)
        if self._ensure_metadata(key, raw):
            return None
        return self._sync(key, raw, job, now)

    # --- finished and deleted jobs ---------------------------------------------------------------------------

    def _finished(self, key: str, raw: objects.RawObject, job: ImagePullJob, now: datetime) -> controller.Result | None:
        if self._remove_finalizer(key, raw):
            return None
        status = job.status
        remaining = completion.ttl_remaining(
            job.spec.completion_policy.ttl_seconds_after_finished, status.completion_time if status else None, now
        )
        if remaining is None:
            return None
        if remaining > 0:
            return controller.Result(requeue_after=remaining)
        log.info("deleting ImagePullJob %s: ttlSecondsAfterFinished has passed", key)
        with contextlib.suppress(errors.NotFound):
            self._api.delete(
                resources.IMAGE_PULL_JOBS,
                job.metadata.name,
                namespace=job.metadata.namespace,
                uid=job.metadata.uid,
                propagation_policy="Background",
            )
        return None

    def _remove_finalizer(self, key: str, raw: objects.RawObject) -> bool:
        finalizers = list((raw.get("metadata") or {}).get("finalizers") or ())
        if constants.JOB_FINALIZER not in finalizers:
            return False
        finalizers.remove(constants.JOB_FINALIZER)
        try:
            written = patching.write(
                self._api, resources.IMAGE_PULL_JOBS, raw, {"metadata": {"finalizers": finalizers or None}}
            )
        except errors.NotFound:
            return True
        self._expect_job(key, written)
        return True

    def _ensure_metadata(self, key: str, raw: objects.RawObject) -> bool:
        """Add the finalizer and the trace context if missing; True when a write was made."""
        written = jobmetadata.write_missing(
            self._api, resources.IMAGE_PULL_JOBS, raw, traces=self._traces, finalizer=constants.JOB_FINALIZER
        )
        if written is None:
            return False
        self._expect_job(key, written)
        return True

    # --- running jobs ----------------------------------------------------------------------------------------

    def _sync(self, key: str, raw: objects.RawObject, job: ImagePullJob, now: datetime) -> controller.Result | None:
        try:
            entry = imageref.parse(job.spec.image).nodeimage_entry()
        except imageref.InvalidImageReference as error:
            self._recorder.warning(raw, reason="InvalidImage", message=str(error))
            return None
        node_images = self._view.node_image_map()
        pods = self._view.pods_in(job.metadata.namespace) if job.spec.pod_selector is not None else []
        try:
            chosen_targets = targets.select_targets(job.spec, job.metadata.namespace, node_images, pods)
        except UnknownOperatorError as error:
            self._recorder.warning(raw, reason="InvalidSelector", message=str(error))
            return None
        if not self._targets_caught_up(key, chosen_targets):
            return controller.Result(requeue_after=self._settings.nodeimage_expectation_requeue_seconds)
        if job.status is None:
            self._check_secrets(raw, job)
        observation = job_status.observe(job, targets=chosen_targets, image=entry.image, tag=entry.tag, now=now)
        new_status = observation.status.to_dict()
        status_changed = new_status != (raw.get("status") or {})
        status_write = functools.partial(self._write_status, key, raw, new_status)
        if observation.finished_now:
            if status_changed:
                status_write()
        else:
            # The status goes out alongside the tag writes: it does not depend on them, and a reconcile that
            # waits for one write after the other holds up the next completion's reconcile (issue 9).
            waiting = self._start_nodes(
                key,
                job,
                observation=observation,
                entry=entry,
                now=now,
                alongside=(status_write,) if status_changed else (),
            )
            if waiting is not None:
                return waiting
        if status_changed:
            if observation.finished_now:
                self._report_finished(raw, observation)
                self._dispatcher.index(key, None)
            return None
        if tagpolicy.is_never(job.spec):
            return None
        requeue = completion.deadline_requeue(
            job.spec.completion_policy.active_deadline_seconds,
            observation.status.start_time,
            now,
            self._settings.minimum_deadline_requeue_seconds,
        )
        return None if requeue is None else controller.Result(requeue_after=requeue)

    def _targets_caught_up(self, key: str, nodes: Sequence[NodeImage]) -> bool:
        """False while a target's cached NodeImage lacks a write of ours (`key` is then released with that write).

        Only the targets with a write pending are checked, in target order: taking the expectations' lock once
        per target cost 1.5 ms of every reconcile at 3,000 nodes, nearly always to find nothing pending.
        """
        prefix = dispatcher_module.node_image_key("")
        pending = {name.removeprefix(prefix) for name in self._expectations.pending_keys(prefix)}
        mono = self._clock.monotonic()
        return not pending or all(
            self._expectations.satisfied(prefix + node.metadata.name, node.metadata.resource_version, mono, waiter=key)
            for node in nodes
            if node.metadata.name in pending
        )

    def _start_nodes(
        self,
        key: str,
        job: ImagePullJob,
        *,
        observation: job_status.Observation,
        entry: imageref.NodeImageEntry,
        now: datetime,
        alongside: Sequence[Callable[[], None]] = (),
    ) -> controller.Result | None:
        """Write tag entries into the free slots' nodes (and refresh stale pull policies), and `alongside`.

        Returns a requeue, writing nothing, when pull caps are on and our last writes are not in the cache yet
        (counting pulls in flight from a stale cache could exceed the cap).
        """
        with self._caps_lock if self._capped else contextlib.nullcontext():
            if self._capped and self._expectations.any_pending(
                dispatcher_module.node_image_key(""), key, self._clock.monotonic(), self._cached_node_version
            ):
                return controller.Result(requeue_after=self._settings.nodeimage_expectation_requeue_seconds)
            free = self._free_slots(job, observation.status.active, entry.image, entry.tag)
            if self._capped:
                self._wait_for_capacity(key, blocked=free < len(observation.not_synced))
            chosen = rollout.choose_nodes(observation.not_synced, free)
            chosen += stalepolicies.stale_policy_nodes(
                job, observation.owned, self._dispatcher.specs_by_uid, exclude=set(chosen)
            )
            refs = _secret_refs(job)
            self._writes.run_all(
                [
                    functools.partial(
                        self._write_tag_entry,
                        key,
                        job,
                        node_name=name,
                        image=entry.image,
                        tag=entry.tag,
                        refs=refs,
                        now=now,
                    )
                    for name in chosen
                ]
                + list(alongside)
            )
        return None

    def _write_status(self, key: str, raw: objects.RawObject, new_status: dict[str, Any]) -> None:
        written = patching.write(
            self._api,
            resources.IMAGE_PULL_JOBS,
            raw,
            {"status": patching.merge_patch(raw.get("status") or {}, new_status)},
            status=True,
        )
        self._expect_job(key, written)

    def _wait_for_capacity(self, key: str, *, blocked: bool) -> None:
        with self._lock:
            if blocked:
                self._capacity_waiters.add(key)
            else:
                self._capacity_waiters.discard(key)

    def capacity_waiters(self) -> set[str]:
        """Jobs held back by a pull cap, taken (and forgotten) so a finished pull anywhere can wake them."""
        with self._lock:
            waiters, self._capacity_waiters = self._capacity_waiters, set()
            return waiters

    def _cached_node_version(self, expectation_key: str) -> str | None:
        name = expectation_key.removeprefix(dispatcher_module.node_image_key(""))
        node = self._view.node_images.get(name)
        return None if node is None else node.metadata.resource_version or ""

    def _free_slots(self, job: ImagePullJob, active: int, image: str, tag: str) -> int:
        settings = self._settings
        if not self._capped:
            return rollout.slots(job.spec.parallelism, active)
        counted = self._in_flight.count(self._view.node_images.all())
        return rollout.slots(
            job.spec.parallelism,
            active,
            cluster_in_flight=counted.total,
            cluster_cap=settings.max_pulls_in_flight,
            registry_in_flight=counted.by_registry[inflight.registry_of(image, tag)],
            registry_cap=settings.max_pulls_in_flight_per_registry,
        )

    def _write_tag_entry(
        self,
        key: str,
        job: ImagePullJob,
        *,
        node_name: str,
        image: str,
        tag: str,
        refs: tuple[ReferenceObject, ...],
        now: datetime,
    ) -> None:
        annotations = job.metadata.annotations or {}
        traceparent = annotations.get(constants.ANNOTATION_TRACE_CONTEXT)
        request = tagentries.TagRequest(
            image=image,
            tag=tag,
            owner=ObjectReference(
                api_version=constants.API_VERSION,
                kind=constants.KIND_IMAGE_PULL_JOB,
                namespace=job.metadata.namespace,
                name=job.metadata.name,
                uid=job.metadata.uid,
            ),
            secret_refs=refs,
            new_policy=tagpolicy.new_tag_policy(job.spec, self._settings.tag_policy, self._rng.random()),
            image_pull_policy=job.spec.image_pull_policy or "IfNotPresent",
            sandbox_config=job.spec.sandbox_config,
            trace=TraceContext(uid=job.metadata.uid, traceparent=traceparent) if traceparent else None,
        )

        attempts = 0

        def read() -> NodeImage:
            # The cached copy is good enough for a first try: the write carries its resourceVersion as a
            # precondition, so a stale copy only costs a conflict, after which we read from the apiserver.
            nonlocal attempts
            attempts += 1
            cached = self._view.node_images.get(node_name) if attempts == 1 else None
            return (
                cached if cached is not None else NodeImage.from_dict(self._api.get(resources.NODE_IMAGES, node_name))
            )

        def decide(node: NodeImage) -> dict[str, Any] | None:
            owners = _owner_uids(node, image, tag) | {job.metadata.uid}
            specs = {**self._dispatcher.specs_by_uid(owners), job.metadata.uid: job.spec}
            planned = tagentries.plan_image_spec(node, request, now, specs)
            if planned is None:
                return None
            current = (node.spec.images or {}).get(image)
            old_image = current.to_dict() if current is not None else {}
            return {"spec": {"images": {image: patching.merge_patch(old_image, planned.to_dict()) or None}}}

        def write(node: NodeImage, patch: dict[str, Any]) -> objects.RawObject:
            return patching.write_at(
                self._api,
                resources.NODE_IMAGES,
                node.metadata.name,
                patch,
                resource_version=node.metadata.resource_version,
            )

        span_attributes = {
            attributes.K8S_NODE_NAME: node_name,
            attributes.CONTAINER_IMAGE_NAME: image,
            attributes.CONTAINER_IMAGE_TAGS: (tag,),
        }
        with tracecontext.tracer.start_as_current_span("nodeimage.write", attributes=span_attributes) as span:
            try:
                written = patching.retry_on_conflict(read, decide, write)
            except errors.NotFound:
                span.set_attribute(attributes.ERROR_TYPE, "NotFound")
                return
        if written is not None:
            self._metrics.tag_entries_written.inc()
            self._expectations.expect(
                dispatcher_module.node_image_key(node_name),
                str((written.get("metadata") or {}).get("resourceVersion") or ""),
                key,
                self._clock.monotonic(),
            )

    # --- reporting -------------------------------------------------------------------------------------------

    def _report_finished(self, raw: objects.RawObject, observation: job_status.Observation) -> None:
        status = observation.status
        if status.message == job_status.MESSAGE_DEADLINE:
            names = ", ".join(status.failed_nodes or ())
            self._recorder.warning(
                raw, reason="DeadlineExceeded", message=f"activeDeadlineSeconds passed; failed nodes: {names}"
            )
        else:
            self._recorder.normal(
                raw,
                reason="Completed",
                message=f"pulled on {status.succeeded} node(s), failed on {status.failed} of {status.desired}",
            )

    def _check_secrets(self, raw: objects.RawObject, job: ImagePullJob) -> None:
        """Warn on the job when a named pull secret is missing or unusable (never showing its contents)."""
        from services.shared import credentials  # noqa: PLC0415 -- only needed for jobs with pull secrets

        for name in job.spec.pull_secrets or ():
            try:
                secret = self._api.get(resources.SECRETS, name, namespace=job.metadata.namespace)
                credentials.pull_secret_from_object(secret)
            except errors.NotFound:
                self._recorder.warning(
                    raw,
                    reason="PullSecretNotFound",
                    message=f"pull secret {job.metadata.namespace}/{name} does not exist",
                )
            except credentials.InvalidPullSecret as error:
                self._recorder.warning(raw, reason="InvalidPullSecret", message=str(error))
            except errors.KubeError as error:
                log.warning("cannot read pull secret %s/%s: %s", job.metadata.namespace, name, error)

    def _expect_job(self, key: str, written: objects.RawObject) -> None:
        version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        self._expectations.expect(job_expectation_key(key), version, key, self._clock.monotonic())


def _job_attributes(key: str, uid: str) -> dict[str, str]:
    namespace, _, name = key.rpartition("/")
    return {
        attributes.JOB_KIND: constants.KIND_IMAGE_PULL_JOB,
        attributes.JOB_UID: uid,
        attributes.K8S_NAMESPACE_NAME: namespace,
        attributes.JOB_NAME: name,
    }


def _secret_refs(job: ImagePullJob) -> tuple[ReferenceObject, ...]:
    return tuple(ReferenceObject(namespace=job.metadata.namespace, name=name) for name in job.spec.pull_secrets or ())


def _owner_uids(node: NodeImage, image: str, tag: str) -> set[str]:
    spec = (node.spec.images or {}).get(image)
    entry = next((t for t in spec.tags if t.tag == tag), None) if spec else None
    return {owner.uid for owner in (entry.owner_references or ())} if entry else set()
