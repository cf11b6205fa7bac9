"""One change to a NodeImage costs nodeimage_sync one reconcile, against the real apiserver (issue 9, finding 4).

The service's own writes come back through its watch. Reconciling them again found nothing to do, yet it
tripled the work for one change: a tag removed from the spec was one reconcile for the change, one for the
echo of the status write that pruned the tag's status, and (when nodeimage_sync removed the tag itself) one
more for the echo of its spec write. Each test makes one change and counts reconciles with the service's own
Prometheus counter once everything the change set off has settled: the apiserver's current resourceVersion is
in the informer's cache, and every name added to the work queue has been reconciled.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from localcluster.process import wait_until
from services.nodeimage_sync.app import App
from services.shared.api import timefmt
from services.shared.kube import resources
from tests.integration.nodeimage_sync.conftest import SyncHarness

pytestmark = pytest.mark.integration

SETTLE_TIMEOUT = 60.0
STABLE_POLLS = 3
"""Consecutive polls (0.3 s apart) that must agree before the counts are read."""


def now_text(offset: float = 0.0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return timefmt.format_time(moment.replace(microsecond=0))


def tag_entry(tag: str, ttl: int) -> dict[str, Any]:
    return {"tag": tag, "createdAt": now_text(), "pullPolicy": {"ttlSecondsAfterFinished": ttl}, "version": 0}


def succeeded(tag: str, *, finished_ago: float = 0.0) -> dict[str, Any]:
    return {"tag": tag, "phase": "Succeeded", "version": 0, "completionTime": now_text(-finished_ago)}


def counter(app: App, name: str) -> float:
    registry = app.metrics.registry
    samples = [
        sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name == f"prepull_nodeimage_sync_{name}_total"
    ]
    return sum(samples)


def reconciles(app: App) -> float:
    return counter(app, "reconciles")


def settled(sync: SyncHarness, app: App, name: str) -> tuple[float, str]:
    """Wait until nothing is left to do for `name`; the reconcile count and resourceVersion then."""
    seen: list[tuple[float, str]] = []

    def quiet() -> bool:
        current = str(sync.api.get(resources.NODE_IMAGES, name)["metadata"]["resourceVersion"])
        cached_nodeimage = app.nodeimages.store.get(name)
        cached = cached_nodeimage.metadata.resource_version if cached_nodeimage is not None else None
        count = reconciles(app)
        idle = cached == current and counter(app, "queue_adds") == count and len(app.queue) == 0
        seen.append((count, current) if idle else (-1.0, ""))
        recent = seen[-STABLE_POLLS:]
        return len(recent) == STABLE_POLLS and recent[0][0] >= 0 and len(set(recent)) == 1

    wait_until(quiet, timeout=SETTLE_TIMEOUT, interval=0.3, what=f"nodeimage_sync idle on {name}")
    return seen[-1]


def images(sync: SyncHarness, name: str) -> dict[str, Any]:
    return ((sync.nodeimage(name) or {}).get("spec") or {}).get("images") or {}


def image_statuses(sync: SyncHarness, name: str) -> dict[str, Any]:
    return ((sync.nodeimage(name) or {}).get("status") or {}).get("imageStatuses") or {}


def two_images(sync: SyncHarness, name: str) -> None:
    spec = {"images": {"nginx": {"tags": [tag_entry("1.25", 3600)]}, "redis": {"tags": [tag_entry("7", 60)]}}}
    sync.create_fake_nodeimage(name, spec)


def report_pulled(sync: SyncHarness, name: str, *, redis_finished_ago: float = 0.0) -> None:
    """Write the status a puller writes after pulling both images."""
    statuses = {
        "nginx": {"tags": [succeeded("1.25")]},
        "redis": {"tags": [succeeded("7", finished_ago=redis_finished_ago)]},
    }
    sync.api.patch_status(
        resources.NODE_IMAGES, name, {"status": {"desired": 2, "succeeded": 2, "imageStatuses": statuses}}
    )


def test_an_image_removed_from_the_spec_is_one_reconcile(sync: SyncHarness) -> None:
    app = sync.start()
    name = f"fake-{sync.run_id}"
    two_images(sync, name)
    report_pulled(sync, name)
    before, _ = settled(sync, app, name)

    sync.api.patch(resources.NODE_IMAGES, name, {"spec": {"images": {"redis": None}}})
    sync.wait_for(lambda: "redis" not in image_statuses(sync, name), "the removed image's status pruned")
    after, _ = settled(sync, app, name)

    assert "nginx" in image_statuses(sync, name)
    assert after - before == 1, f"{after - before:.0f} reconciles for one change"


def test_a_tag_past_its_ttl_leaves_spec_and_status_in_one_reconcile(sync: SyncHarness) -> None:
    app = sync.start()
    name = f"fake-{sync.run_id}"
    two_images(sync, name)
    before, _ = settled(sync, app, name)

    report_pulled(sync, name, redis_finished_ago=120)  # the redis tag's 60 s TTL has already passed
    sync.wait_for(lambda: "redis" not in images(sync, name), "the expired tag removed from the spec")
    sync.wait_for(lambda: "redis" not in image_statuses(sync, name), "its status entry removed too")
    after, _ = settled(sync, app, name)

    assert list(images(sync, name)) == ["nginx"]
    assert "nginx" in image_statuses(sync, name)
    assert after - before == 1, f"{after - before:.0f} reconciles for one change"


def test_a_puller_recording_the_spec_generation_is_no_reconcile(sync: SyncHarness) -> None:
    app = sync.start()
    name = f"fake-{sync.run_id}"
    two_images(sync, name)
    report_pulled(sync, name)
    before, version = settled(sync, app, name)
    generation = sync.api.get(resources.NODE_IMAGES, name)["metadata"]["generation"]

    sync.api.patch_status(resources.NODE_IMAGES, name, {"status": {"observedGeneration": generation}})
    after, new_version = settled(sync, app, name)

    assert new_version != version, "the status write was not seen"
    assert after == before, "a change no decision reads was reconciled"
