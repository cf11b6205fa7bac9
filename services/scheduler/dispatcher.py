"""Selective wake-ups: which jobs an informer event concerns (upstream §2.1, design §5, issue item 3).

An index of active jobs by their (image, tag) pair lets a NodeImage update wake only:

* for a pair whose tag entry changed: the jobs of that pair that own the entry or target the node;
* for a pair whose status alone changed: the jobs that own the entry (nobody else counts that status);
* for a label change: the label-selector jobs whose match flipped.

NodeImage creation and deletion wake every active job targeting the node. A Pod change wakes the podSelector
jobs of its namespace whose selector matches the old or new labels, only when the pod's node, labels or
activity changed. Finished jobs are not indexed: they are frozen and need no wake-ups. Jobs held back by a
cluster or registry pull cap are woken by any tag change (a pull somewhere may have ended). The decisions
themselves are pure functions in `logic.wakeups`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from services.scheduler import expectations as expectations_module
from services.scheduler.logic import labels as label_logic
from services.scheduler.logic import targets, wakeups
from services.scheduler.logic.targets import PodPlacement
from services.scheduler.view import ClusterView, pod_placement
from services.shared.api import constants, imageref
from services.shared.api.imagepulljob import ImagePullJob, ImagePullJobSpec
from services.shared.api.nodeimage import NodeImage
from services.shared.kube import informer, objects

__all__ = ["Dispatcher", "IndexedJob", "node_image_key"]

log = logging.getLogger(__name__)


def node_image_key(name: str) -> str:
    """Expectation key of a NodeImage."""
    return f"nodeimage/{name}"


@dataclass(frozen=True)
class IndexedJob:
    """What the dispatcher remembers of one active job."""

    key: str
    job: ImagePullJob
    pair: tuple[str, str] | None

    @property
    def uid(self) -> str:
        """The job's UID."""
        return self.job.metadata.uid


class Dispatcher:
    """Turns informer events into job keys on the queues."""

    def __init__(
        self,
        view: ClusterView,
        expectations: expectations_module.Expectations,
        enqueue_job: Callable[[str], None],
        enqueue_list_job: Callable[[str], None],
    ) -> None:
        self._view = view
        self._expectations = expectations
        self._enqueue_job = enqueue_job
        self._enqueue_list_job = enqueue_list_job
        self._lock = threading.Lock()
        self._jobs: dict[str, IndexedJob] = {}
        self._by_uid: dict[str, IndexedJob] = {}
        """The same jobs by UID: a reconcile asks for its tags' co-owners' specs on every target node."""
        self._by_pair: dict[tuple[str, str], set[str]] = {}
        self._pods_by_node: dict[str, dict[str, PodPlacement]] = {}
        self.capacity_waiters: Callable[[], set[str]] = set
        """Jobs held back by a cluster or registry pull cap; woken by any tag change (a pull may have ended)."""

    def register(self) -> None:
        """Attach the handlers to the view's informers."""
        self._view.jobs.informer.add_handlers(
            informer.Handlers(
                on_add=self._job_changed,
                on_update=lambda _old, new: self._job_changed(new),
                on_delete=self._job_deleted,
            )
        )
        self._view.list_jobs.informer.add_handlers(
            informer.Handlers(
                on_add=self._list_job_changed,
                on_update=lambda _old, new: self._list_job_changed(new),
                on_delete=self._list_job_changed,
            )
        )
        self._view.node_images.informer.add_handlers(
            informer.Handlers(on_add=self._node_added, on_update=self._node_updated, on_delete=self._node_deleted)
        )
        self._view.pods.add_handlers(
            informer.Handlers(on_add=self._pod_added, on_update=self._pod_updated, on_delete=self._pod_deleted)
        )

    # --- jobs --------------------------------------------------------------------------------------------

    def index(self, key: str, job: ImagePullJob | None) -> None:
        """Add, refresh or (with None, or a finished/deleting job) drop a job in the index."""
        active = (
            job is not None
            and job.metadata.deletion_timestamp is None
            and not (job.status and job.status.completion_time)
        )
        with self._lock:
            previous = self._jobs.pop(key, None)
            if previous is not None:
                self._by_uid.pop(previous.uid, None)
                if previous.pair is not None:
                    self._by_pair.get(previous.pair, set()).discard(key)
            if not active or job is None:
                return
            pair = _pair_of(job)
            self._jobs[key] = self._by_uid[job.metadata.uid] = IndexedJob(key, job, pair)
            if pair is not None:
                self._by_pair.setdefault(pair, set()).add(key)

    def specs_by_uid(self, uids: Iterable[str]) -> dict[str, ImagePullJobSpec]:
        """Specs of the indexed (active) jobs with these UIDs; finished or unknown jobs are left out."""
        with self._lock:
            found = ((uid, self._by_uid.get(uid)) for uid in set(uids))
            return {uid: entry.job.spec for uid, entry in found if entry is not None}

    def _job_changed(self, raw: objects.RawObject) -> None:
        key = objects.object_key(raw)
        try:
            self.index(key, self._view.jobs.typed(raw))
        except ValueError:
            log.warning("ImagePullJob %s does not parse; it is reconciled to report why", key)
            self.index(key, None)
        self._enqueue_job(key)
        owner = _list_job_owner(raw)
        if owner is not None:
            self._enqueue_list_job(owner)

    def _job_deleted(self, raw: objects.RawObject) -> None:
        key = objects.object_key(raw)
        self.index(key, None)
        self._view.jobs.forget(key)
        self._enqueue_job(key)
        owner = _list_job_owner(raw)
        if owner is not None:
            self._enqueue_list_job(owner)

    def _list_job_changed(self, raw: objects.RawObject) -> None:
        self._enqueue_list_job(objects.object_key(raw))

    # --- NodeImages ------------------------------------------------------------------------------------------

    def _node_added(self, node: NodeImage) -> None:
        self._release_waiters(node)
        self._wake_matching(node)

    def _node_deleted(self, node: NodeImage) -> None:
        for key in self.capacity_waiters():
            self._enqueue_job(key)
        self._expectations.forget(node_image_key(node.metadata.name))
        self._wake_matching(node)

    def _node_updated(self, old: NodeImage, new: NodeImage) -> None:
        self._release_waiters(new)
        if new.metadata.deletion_timestamp is not None and old.metadata.deletion_timestamp is None:
            self._wake_matching(new)
            return
        changes = wakeups.changed_pairs(old, new)
        woken: set[str] = self.capacity_waiters() if changes else set()
        pods = self._pods_on(new.metadata.name)
        with self._lock:
            jobs = dict(self._jobs)
            by_pair = {
                pair: [(key, jobs[key].uid) for key in self._by_pair.get(pair, ()) if key in jobs] for pair in changes
            }

        def targets_node(key: str) -> bool:
            entry = jobs[key]
            return self._targets(entry, old, pods) or self._targets(entry, new, pods)

        woken |= wakeups.jobs_for_pair_changes(changes, by_pair, targets_node)
        woken |= wakeups.label_match_flips(
            (
                (entry.key, entry.job.spec.selector)
                for entry in jobs.values()
                if entry.job.spec.selector is not None
                and entry.job.spec.selector.names is None
                and entry.job.spec.pod_selector is None
            ),
            old.metadata.labels,
            new.metadata.labels,
        )
        for key in woken:
            self._enqueue_job(key)

    def _release_waiters(self, node: NodeImage) -> None:
        waiters = self._expectations.observed(node_image_key(node.metadata.name), node.metadata.resource_version)
        for waiter in waiters:
            self._enqueue_job(str(waiter))

    def _wake_matching(self, node: NodeImage) -> None:
        pods = self._pods_on(node.metadata.name)
        with self._lock:
            woken = [entry.key for entry in self._jobs.values() if self._targets(entry, node, pods)]
        for key in woken:
            self._enqueue_job(key)

    @staticmethod
    def _targets(entry: IndexedJob, node: NodeImage, pods: Iterable[PodPlacement]) -> bool:
        try:
            return targets.node_matches_spec(entry.job.spec, entry.job.metadata.namespace, node, pods)
        except label_logic.UnknownOperatorError:
            return False

    # --- Pods ----------------------------------------------------------------------------------------------

    def _pods_on(self, node_name: str) -> list[PodPlacement]:
        with self._lock:
            return list(self._pods_by_node.get(node_name, {}).values())

    def _remember_pod(self, placement: PodPlacement, *, present: bool) -> None:
        key = f"{placement.namespace}/{placement.name}"
        with self._lock:
            if present and placement.node_name:
                self._pods_by_node.setdefault(placement.node_name, {})[key] = placement
            else:
                on_node = self._pods_by_node.get(placement.node_name)
                if on_node is not None:
                    on_node.pop(key, None)
                    if not on_node:
                        del self._pods_by_node[placement.node_name]

    def _pod_added(self, raw: objects.RawObject) -> None:
        placement = pod_placement(raw)
        self._remember_pod(placement, present=True)
        if placement.node_name:
            self._wake_pod_jobs(placement.namespace, (placement.labels,))

    def _pod_deleted(self, raw: objects.RawObject) -> None:
        placement = pod_placement(raw)
        self._remember_pod(placement, present=False)
        if placement.node_name:
            self._wake_pod_jobs(placement.namespace, (placement.labels,))

    def _pod_updated(self, old_raw: objects.RawObject, new_raw: objects.RawObject) -> None:
        old, new = pod_placement(old_raw), pod_placement(new_raw)
        if old.node_name != new.node_name:
            self._remember_pod(old, present=False)
        self._remember_pod(new, present=True)
        if (old.node_name, old.labels, old.active) == (new.node_name, new.labels, new.active):
            return
        if new.node_name or old.node_name:
            self._wake_pod_jobs(new.namespace, (old.labels, new.labels))

    def _wake_pod_jobs(self, namespace: str, label_sets: Iterable[dict[str, str] | object]) -> None:
        sets = list(label_sets)
        with self._lock:
            woken = [
                entry.key
                for entry in self._jobs.values()
                if entry.job.spec.pod_selector is not None
                and entry.job.metadata.namespace == namespace
                and any(_safe_match(entry, labels) for labels in sets)
            ]
        for key in woken:
            self._enqueue_job(key)


def _safe_match(entry: IndexedJob, labels: object) -> bool:
    selector = entry.job.spec.pod_selector
    if selector is None or not isinstance(labels, dict):
        return False
    try:
        return label_logic.matches(selector, labels)
    except label_logic.UnknownOperatorError:
        return False


def _pair_of(job: ImagePullJob) -> tuple[str, str] | None:
    try:
        entry = imageref.parse(job.spec.image).nodeimage_entry()
    except imageref.InvalidImageReference:
        return None
    return (entry.image, entry.tag)


def _list_job_owner(raw: objects.RawObject) -> str | None:
    metadata = raw.get("metadata") or {}
    for owner in metadata.get("ownerReferences") or ():
        if owner.get("kind") == constants.KIND_IMAGE_LIST_PULL_JOB and owner.get("controller"):
            return f"{metadata.get('namespace')}/{owner.get('name')}"
    return None
