"""The reconciler's I/O decisions over an in-memory apiserver: create, delete, conflict re-decisions, events.

The same behaviours run against the real apiserver in tests/integration/nodeimage_sync; this tier forces the
cases a real cluster produces only by chance (a write that loses a race with the puller).
"""

from __future__ import annotations

import copy
import datetime
import itertools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from services.nodeimage_sync.logic.lifecycle import NodeFacts
from services.nodeimage_sync.logic.spec import OwnerKey
from services.nodeimage_sync.metrics import Metrics
from services.nodeimage_sync.owners import OwnerResolver
from services.nodeimage_sync.reconciler import NodeImageReconciler, Timing
from services.shared.api import constants, timefmt
from services.shared.api.nodeimage import NodeImage
from services.shared.clock import ManualClock
from services.shared.kube import errors, objects, store
from tests.support.merge_patch import apply_merge_patch

T = TypeVar("T")

NOW = datetime.datetime(2024, 5, 1, 10, 0, tzinfo=datetime.UTC)


class FakeApi:
    """NodeImages in memory, with resourceVersion preconditions; `racing` is applied just before a write."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.versions = itertools.count(1)
        self.racing: dict[str, Any] | None = None
        self.writes: list[tuple[str, str]] = []
        self.refused_creates = 0
        self.patches: list[Mapping[str, Any]] = []

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(obj)
        stored["metadata"]["resourceVersion"] = str(next(self.versions))
        stored["metadata"].setdefault("uid", f"uid-{stored['metadata']['name']}")
        self.objects[stored["metadata"]["name"]] = stored
        return copy.deepcopy(stored)

    def get(self, resource: Any, name: str, **_: Any) -> dict[str, Any]:
        if name not in self.objects:
            raise errors.NotFound("nope", code=404)
        found: dict[str, Any] = copy.deepcopy(self.objects[name])
        return found

    def create(self, resource: Any, body: Mapping[str, Any], **_: Any) -> dict[str, Any]:
        if body["metadata"]["name"] in self.objects:
            self.refused_creates += 1
            raise errors.AlreadyExists("taken", code=409)
        self.writes.append(("create", body["metadata"]["name"]))
        created: dict[str, Any] = self.put(dict(body))
        return created

    def delete(self, resource: Any, name: str, *, uid: str | None = None, **_: Any) -> None:
        if name not in self.objects:
            raise errors.NotFound("nope", code=404)
        if uid and self.objects[name]["metadata"]["uid"] != uid:
            raise errors.Conflict("uid precondition", code=409)
        self.writes.append(("delete", name))
        del self.objects[name]

    def patch(self, resource: Any, name: str, patch: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._patch("spec", name, patch, **kwargs)

    def patch_status(self, resource: Any, name: str, patch: Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        return self._patch("status", name, patch, **kwargs)

    def _patch(
        self, kind: str, name: str, patch: Mapping[str, Any], *, resource_version: str | None = None, **_: Any
    ) -> dict[str, Any]:
        if self.racing is not None:
            self.put(apply_merge_patch(self.objects[name], self.racing))
            self.racing = None
        current = self.objects[name]
        if resource_version and current["metadata"]["resourceVersion"] != resource_version:
            raise errors.Conflict("stale", code=409)
        self.writes.append((kind, name))
        self.patches.append(copy.deepcopy(dict(patch)))
        return self.put(apply_merge_patch(current, patch))


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str]] = []

    def warning(self, involved: Mapping[str, Any], reason: str, message: str) -> None:
        self.recorded.append((involved["metadata"]["name"], reason, message))


def cached(raws: list[dict[str, Any]], transform: Callable[[objects.RawObject], T]) -> store.Store[T]:
    """A store holding what the informer would: `transform` of each object, without those it refuses."""
    entries: list[store.Entry[T]] = []
    for raw in raws:
        try:
            entries.append(store.Entry(objects.object_key(raw), store.resource_version_of(raw), transform(raw)))
        except ValueError:
            continue
    cache: store.Store[T] = store.Store()
    cache.replace(entries)
    return cache


def reconciler_for(
    api: FakeApi, nodes: list[dict[str, Any]], nodeimages: list[dict[str, Any]], events: Events
) -> NodeImageReconciler:
    jobs: store.Store[OwnerKey] = store.Store()
    return NodeImageReconciler(
        api=api,  # type: ignore[arg-type]
        nodes=cached(nodes, NodeFacts.from_node),
        nodeimages=cached(nodeimages, NodeImage.from_dict),
        owners=OwnerResolver(api, jobs),  # type: ignore[arg-type]
        events=events,
        metrics=Metrics(CollectorRegistry()),
        timing=Timing(creation_delay=30, response_timeout=600),
        clock=ManualClock(NOW),
    )


def a_node(name: str, ready_for: float = 60.0, **labels: str) -> dict[str, Any]:
    since = timefmt.format_time(NOW - datetime.timedelta(seconds=ready_for))
    return {
        "metadata": {"name": name, "labels": labels, "resourceVersion": "1"},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": since}]},
    }


def a_nodeimage(name: str, *, labels: dict[str, str] | None = None, created_ago: float = 0.0) -> dict[str, Any]:
    job = {"apiVersion": constants.API_VERSION, "kind": "Deployment", "namespace": "ns", "name": "d", "uid": "u"}
    created = timefmt.format_time(NOW - datetime.timedelta(seconds=created_ago))
    tag = {"tag": "1", "createdAt": created, "pullPolicy": {"ttlSecondsAfterFinished": 60}, "ownerReferences": [job]}
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_NODE_IMAGE,
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"images": {"nginx": {"tags": [tag]}}},
    }


def test_ready_node_gets_a_nodeimage_with_labels_and_an_existing_one_is_fine():
    api, events = FakeApi(), Events()
    reconciler = reconciler_for(api, [a_node("n1", zone="a")], [], events)
    assert reconciler.reconcile("n1").requeue_after is None
    assert api.objects["n1"]["metadata"]["labels"] == {"zone": "a"}
    reconciler.reconcile("n1")  # the cache has not caught up: AlreadyExists is not an error
    assert api.writes == [("create", "n1")]


def test_node_inside_the_delay_is_requeued_for_the_rest():
    reconciler = reconciler_for(FakeApi(), [a_node("n1", ready_for=10)], [], Events())
    assert reconciler.reconcile("n1").requeue_after == 20.0


def test_orphan_is_deleted_by_uid():
    api = FakeApi()
    stored = api.put(a_nodeimage("n1"))
    reconciler_for(api, [], [stored], Events()).reconcile("n1")
    assert "n1" not in api.objects


def test_status_write_that_loses_a_race_is_decided_again_on_a_fresh_read():
    api, events = FakeApi(), Events()
    stored = api.put(a_nodeimage("n1", created_ago=601))
    reconciler = reconciler_for(api, [a_node("n1")], [stored], events)
    other = {"tag": "9", "phase": "Succeeded"}
    api.racing = {"status": {"desired": 1, "imageStatuses": {"redis": {"tags": [other]}}}}
    api.objects["n1"]["spec"]["images"]["redis"] = {"tags": [{"tag": "9", "createdAt": timefmt.format_time(NOW)}]}
    reconciler.reconcile("n1")
    statuses = api.objects["n1"]["status"]["imageStatuses"]
    assert statuses["redis"]["tags"] == [other], "the puller's concurrent write was lost"
    assert statuses["nginx"]["tags"][0]["message"] == "node has not responded for a long time"
    assert api.objects["n1"]["status"]["failed"] == 1
    message = "Failed to pull image nginx:1 on node n1 for node has not responded for a long time"
    assert events.recorded == [("d", "PullImageFailed", message), ("n1", "PullImageFailed", message)]


def test_labels_are_written_before_status_and_no_event_without_a_failure():
    api, events = FakeApi(), Events()
    stored = api.put(a_nodeimage("n1", labels={"zone": "old"}))
    reconciler = reconciler_for(api, [a_node("n1", zone="new")], [stored], events)
    result = reconciler.reconcile("n1")
    assert api.writes == [("spec", "n1")]
    assert api.objects["n1"]["metadata"]["labels"] == {"zone": "new"}
    assert result.requeue_after is None or result.requeue_after > 0
    assert events.recorded == []


def test_nodeimage_that_does_not_fit_the_api_is_left_alone_quietly():
    """Not in the cache (the informer refuses it), so it looks missing: the create meets AlreadyExists, once per
    reconcile, with no requeue and nothing written; its Node's other events change nothing."""
    api, events = FakeApi(), Events()
    unfit = a_nodeimage("n1")
    unfit["spec"]["images"]["nginx"]["tags"][0]["createdAt"] = "yesterday"
    api.put(unfit)
    reconciler = reconciler_for(api, [a_node("n1", zone="a")], [api.get(None, "n1")], events)
    for _ in range(3):
        assert reconciler.reconcile("n1").requeue_after is None
    assert api.refused_creates == 3
    assert api.writes == []
    assert api.objects["n1"]["spec"]["images"]["nginx"]["tags"][0]["createdAt"] == "yesterday"
    assert events.recorded == []


def test_a_spec_write_patches_only_the_image_that_changed():
    api, events = FakeApi(), Events()
    raw = a_nodeimage("n1", labels={"zone": "a"})
    raw["spec"]["images"]["redis"] = {"tags": [{"tag": "7", "pullPolicy": {"ttlSecondsAfterFinished": 60}}]}
    stored = api.put(raw)
    reconciler = reconciler_for(api, [a_node("n1", zone="a")], [stored], events)
    reconciler.reconcile("n1")
    assert api.writes[0] == ("spec", "n1")
    assert list(api.patches[0]) == ["spec"], "labels are unchanged"
    assert list(api.patches[0]["spec"]["images"]) == ["redis"], "the untouched image was written too"
    assert api.objects["n1"]["spec"]["images"]["redis"]["tags"][0]["createdAt"] == timefmt.format_time(NOW)
    assert api.objects["n1"]["spec"]["images"]["nginx"] == stored["spec"]["images"]["nginx"]


def test_a_status_write_patches_only_the_images_and_counts_that_changed():
    api, events = FakeApi(), Events()
    raw = a_nodeimage("n1", created_ago=601)
    fine = {"tag": "7", "createdAt": timefmt.format_time(NOW), "pullPolicy": {"ttlSecondsAfterFinished": 60}}
    raw["spec"]["images"]["redis"] = {"tags": [fine]}
    pulled = {"tag": "7", "phase": "Succeeded", "completionTime": timefmt.format_time(NOW)}
    raw["status"] = {"desired": 2, "succeeded": 1, "waiting": 0, "imageStatuses": {"redis": {"tags": [pulled]}}}
    stored = api.put(raw)
    reconciler_for(api, [a_node("n1")], [stored], events).reconcile("n1")
    assert api.writes == [("status", "n1")]
    patch = api.patches[0]["status"]
    assert patch["failed"] == 1
    assert "desired" not in patch and "succeeded" not in patch, "unchanged counts were written"
    assert list(patch["imageStatuses"]) == ["nginx"], "the untouched image's statuses were written too"
    assert api.objects["n1"]["status"]["imageStatuses"]["redis"] == {"tags": [pulled]}


def test_status_emptied_of_images_loses_the_map():
    api, events = FakeApi(), Events()
    raw = a_nodeimage("n1")
    gone = {"tag": "old", "phase": "Succeeded"}
    raw["status"] = {"desired": 1, "succeeded": 1, "waiting": 0, "imageStatuses": {"busybox": {"tags": [gone]}}}
    stored = api.put(raw)
    reconciler_for(api, [a_node("n1")], [stored], events).reconcile("n1")
    assert api.writes == [("status", "n1")]
    assert api.patches[0]["status"]["imageStatuses"] is None
    assert "imageStatuses" not in api.objects["n1"]["status"]
    assert api.objects["n1"]["status"]["succeeded"] == 0


def test_a_version_that_does_not_fit_the_api_read_after_a_conflict_ends_the_reconcile():
    api, events = FakeApi(), Events()
    stored = api.put(a_nodeimage("n1", labels={"zone": "old"}))
    reconciler = reconciler_for(api, [a_node("n1", zone="new")], [stored], events)
    api.racing = {"spec": {"images": {"nginx": {"tags": [{"tag": "1", "createdAt": "yesterday"}]}}}}
    assert reconciler.reconcile("n1").requeue_after is None
    assert api.writes == []
    assert api.objects["n1"]["metadata"]["labels"] == {"zone": "old"}
