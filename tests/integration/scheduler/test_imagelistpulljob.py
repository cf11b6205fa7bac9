"""The ImageListPullJob controller against the real apiserver (upstream §3)."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster.process import wait_until
from services.shared.api import constants
from services.shared.kube import objects, resources
from tests.integration.scheduler import helpers
from tests.support.scheduler_harness import SchedulerHarness

pytestmark = pytest.mark.integration

TIMEOUT = helpers.TIMEOUT


def _children(kube: objects.ObjectApi, namespace: str) -> list[dict[str, Any]]:
    return [
        item
        for item in kube.list(resources.IMAGE_PULL_JOBS, namespace=namespace).items
        if not item["metadata"].get("deletionTimestamp")
    ]


def test_one_child_per_image_recreated_on_template_change(harness: SchedulerHarness) -> None:
    kube, namespace = harness.kube, harness.namespace
    harness.start()
    harness.create_list_job(
        "list",
        {
            "images": ["nginx:1.25", "busybox:1.36"],
            "selector": harness.selector,
            "parallelism": 1,
            "completionPolicy": {"type": "Never"},
        },
    )
    wait_until(lambda: len(_children(kube, namespace)) == 2, timeout=TIMEOUT, what="two children")
    first = _children(kube, namespace)
    assert sorted(c["spec"]["image"] for c in first) == ["busybox:1.36", "nginx:1.25"]
    assert all(c["metadata"]["name"].startswith("list-") for c in first)
    assert all(c["metadata"]["ownerReferences"][0]["controller"] for c in first)
    old_hash = first[0]["metadata"]["labels"][constants.LABEL_CONTROLLER_REVISION_HASH]

    def aggregated() -> bool:
        status = harness.list_job_status("list")
        return status.get("desired") == 2 and status.get("completed") == 2  # children with 0 targets add up

    wait_until(aggregated, timeout=TIMEOUT, what="status aggregated from the children")
    kube.patch(resources.IMAGE_LIST_PULL_JOBS, "list", {"spec": {"parallelism": 3}}, namespace=namespace)

    def recreated() -> bool:
        children = _children(kube, namespace)
        hashes = {c["metadata"]["labels"][constants.LABEL_CONTROLLER_REVISION_HASH] for c in children}
        return len(children) == 2 and old_hash not in hashes and all(c["spec"]["parallelism"] == 3 for c in children)

    wait_until(recreated, timeout=TIMEOUT, what="children recreated with the new template")
    names = {c["metadata"]["name"] for c in _children(kube, namespace)}
    assert not names & {c["metadata"]["name"] for c in first}
    listed = kube.get(resources.IMAGE_LIST_PULL_JOBS, "list", namespace=namespace)
    assert listed["metadata"]["labels"][constants.LABEL_CONTROLLER_REVISION_HASH] != old_hash

    kube.patch(resources.IMAGE_LIST_PULL_JOBS, "list", {"spec": {"images": ["nginx:1.25"]}}, namespace=namespace)
    wait_until(
        lambda: [c["spec"]["image"] for c in _children(kube, namespace)] == ["nginx:1.25"],
        timeout=TIMEOUT,
        what="child of the removed image deleted",
    )


def test_list_job_completes_and_ttl_deletes_it(harness: SchedulerHarness) -> None:
    harness.start()
    harness.create_list_job(
        "short",
        {"images": ["nginx:1.25"], "selector": harness.selector, "completionPolicy": {"ttlSecondsAfterFinished": 2}},
    )
    harness.wait_none_left(resources.IMAGE_LIST_PULL_JOBS, what="list job completed and deleted by TTL")


def test_list_status_aggregates_children_progress_and_failures(harness: SchedulerHarness) -> None:
    kube = harness.kube
    node = harness.node()
    harness.start()
    harness.create_list_job("agg", {"images": ["nginx:1.25", "busybox:1.36"], "selector": harness.selector})
    for image, tag in (("nginx", "1.25"), ("busybox", "1.36")):
        wait_until(lambda i=image, t=tag: helpers.tag_entry(kube, node, i, t) is not None, timeout=TIMEOUT, what=image)  # type: ignore[misc]

    wait_until(lambda: harness.list_job_status("agg").get("active") == 2, timeout=TIMEOUT, what="two active children")
    helpers.report(kube, node, "nginx", "1.25", "Succeeded")
    helpers.report(kube, node, "busybox", "1.36", "Failed", message="not found")
    wait_until(
        lambda: bool(harness.list_job_status("agg").get("completionTime")), timeout=TIMEOUT, what="list job completes"
    )
    final = harness.list_job_status("agg")
    assert (final["desired"], final["completed"], final["succeeded"], final["active"]) == (2, 2, 1, 0)
    failed = final["failedImageStatuses"]
    assert [f["name"] for f in failed] == ["busybox:1.36"]
    assert failed[0]["imagePullJob"].startswith("agg-")
