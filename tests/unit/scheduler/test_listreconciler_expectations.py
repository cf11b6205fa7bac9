"""The list job controller does not decide from a cached copy older than its own last write of the list job.

An in-memory apiserver (resourceVersion preconditions, as the real one) and informer stores filled by hand
stand in for the watch, so "the cache has not caught up yet" is a state the test holds as long as it likes.
The same behaviour against the real apiserver: tests/integration/scheduler/test_listjob_expectations.py.
"""

from __future__ import annotations

import copy
import datetime
import itertools
from collections.abc import Mapping
from typing import Any

import pytest

from services.scheduler.expectations import Expectations
from services.scheduler.listreconciler import ListJobReconciler, list_job_expectation_key
from services.scheduler.metrics import SchedulerMetrics
from services.scheduler.view import ClusterView, node_image_informer
from services.shared.api import constants
from services.shared.clock import ManualClock
from services.shared.kube import controller, errors, events, informer, objects, resources, store
from services.shared.kube.resources import Resource
from tests.support.merge_patch import apply_merge_patch

NAMESPACE, NAME = "ns", "list"
KEY = f"{NAMESPACE}/{NAME}"
REQUEUE = 7.0
TIMEOUT = 60.0


class InMemoryApi:
    """Jobs and list jobs of one namespace; every write gets the next resourceVersion, stale patches get 409."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions = itertools.count(1)
        self.writes: list[tuple[str, str]] = []

    def put(self, resource: Resource, obj: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(obj))
        stored["metadata"]["resourceVersion"] = str(next(self.versions))
        stored["metadata"].setdefault("uid", f"uid-{stored['metadata']['name']}")
        self.objects[(resource.plural, stored["metadata"]["name"])] = stored
        return copy.deepcopy(stored)

    def create(self, resource: Resource, body: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        named = copy.deepcopy(dict(body))
        metadata = named["metadata"]
        metadata.setdefault("name", f"{metadata.pop('generateName', '')}{next(self.versions)}")
        self.writes.append(("create", metadata["name"]))
        return self.put(resource, named)

    def patch(self, resource: Resource, name: str, patch: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._patch("patch", resource, name, patch, **kwargs)

    def patch_status(self, resource: Resource, name: str, patch: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._patch("patch_status", resource, name, patch, **kwargs)

    def _patch(
        self,
        verb: str,
        resource: Resource,
        name: str,
        patch: Mapping[str, Any],
        *,
        resource_version: str | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        current = self.objects[(resource.plural, name)]
        if resource_version and current["metadata"]["resourceVersion"] != resource_version:
            raise errors.Conflict("stale resourceVersion", code=409)
        self.writes.append((verb, name))
        return self.put(resource, apply_merge_patch(current, patch))

    def stored(self, resource: Resource, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[(resource.plural, name)])


class Harness:
    """The reconciler over `InMemoryApi`, its informer stores updated only when the test says so."""

    def __init__(self) -> None:
        self.api = InMemoryApi()
        self.clock = ManualClock(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
        self.expectations = Expectations(TIMEOUT)
        lister: Any = self.api
        self.view = ClusterView(
            jobs=informer.Informer(lister, resources.IMAGE_PULL_JOBS, namespace=NAMESPACE),
            list_jobs=informer.Informer(lister, resources.IMAGE_LIST_PULL_JOBS, namespace=NAMESPACE),
            node_images=node_image_informer(lister),
            pods=informer.Informer(lister, resources.PODS, namespace=NAMESPACE),
        )
        writer: Any = self.api
        self.reconciler = ListJobReconciler(
            api=writer,
            view=self.view,
            expectations=self.expectations,
            recorder=events.EventRecorder(writer, component="test"),
            metrics=SchedulerMetrics(),
            clock=self.clock,
            expectation_requeue_seconds=REQUEUE,
            expectation_timeout_seconds=TIMEOUT,
        )

    def create_list_job(self, images: list[str]) -> None:
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND_IMAGE_LIST_PULL_JOB,
            "metadata": {"name": NAME, "namespace": NAMESPACE},
            "spec": {"images": images, "completionPolicy": {"type": "Never"}},
        }
        self.sync(self.api.put(resources.IMAGE_LIST_PULL_JOBS, body))

    def sync(self, raw: objects.RawObject) -> None:
        """The watch delivers `raw`."""
        listed = raw["kind"] == constants.KIND_IMAGE_LIST_PULL_JOB
        (self.view.list_jobs if listed else self.view.jobs).informer.store.upsert(store.entry_of(raw))

    def sync_all(self) -> None:
        """The watch delivers everything stored."""
        for stored in self.api.objects.values():
            self.sync(copy.deepcopy(stored))

    def list_job(self) -> dict[str, Any]:
        return self.api.stored(resources.IMAGE_LIST_PULL_JOBS, NAME)


@pytest.fixture
def harness() -> Harness:
    return Harness()


def test_a_reconcile_on_a_copy_older_than_its_own_metadata_write_waits_and_writes_nothing(harness: Harness) -> None:
    harness.create_list_job(["a:1"])
    assert harness.reconciler.reconcile(KEY) is None
    assert harness.api.writes == [("patch", NAME)]

    # A child event (say) re-queues the list job before the watch delivered the write: no decision, no write.
    assert harness.reconciler.reconcile(KEY) == controller.Result(requeue_after=REQUEUE)
    assert harness.api.writes == [("patch", NAME)]

    harness.sync(harness.list_job())
    assert harness.reconciler.reconcile(KEY) is None
    assert [verb for verb, _ in harness.api.writes] == ["patch", "create", "patch_status"]


def test_a_reconcile_on_a_copy_older_than_its_own_status_write_waits_and_writes_nothing(harness: Harness) -> None:
    harness.create_list_job(["a:1", "b:2"])
    harness.reconciler.reconcile(KEY)
    harness.sync(harness.list_job())
    harness.reconciler.reconcile(KEY)
    written = len(harness.api.writes)
    assert harness.api.writes[-1] == ("patch_status", NAME)

    # The children show up in the cache (their events re-queue the list job); the status write does not yet.
    for (plural, _), stored in list(harness.api.objects.items()):
        if plural == resources.IMAGE_PULL_JOBS.plural:
            harness.sync(copy.deepcopy(stored))
    assert harness.reconciler.reconcile(KEY) == controller.Result(requeue_after=REQUEUE)
    assert len(harness.api.writes) == written

    harness.sync_all()
    assert harness.reconciler.reconcile(KEY) is None
    assert harness.list_job()["status"]["desired"] == 2


def test_after_the_expectation_timeout_it_decides_from_whatever_the_cache_holds(harness: Harness) -> None:
    harness.create_list_job(["a:1"])
    harness.reconciler.reconcile(KEY)
    harness.clock.advance(TIMEOUT)
    # The write's event was lost: the reconcile decides from the old copy again (and its stale write conflicts).
    with pytest.raises(errors.Conflict):
        harness.reconciler.reconcile(KEY)


def test_a_deleted_list_job_leaves_nothing_pending(harness: Harness) -> None:
    harness.create_list_job(["a:1"])
    harness.reconciler.reconcile(KEY)
    harness.view.list_jobs.informer.store.remove(KEY)
    assert harness.reconciler.reconcile(KEY) is None
    assert harness.expectations.satisfied(list_job_expectation_key(KEY), None, harness.clock.monotonic())
