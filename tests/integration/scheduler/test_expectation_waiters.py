"""A job held back by a write to a shared NodeImage is woken by that write's event (issue 9, regression).

Several jobs (an ImageListPullJob's, say) write to the same NodeImages. A job that finds another job's write
not yet in the cache must wait for it; before the fix only the writer was woken by the write's event, and a
job of another image slept through `--nodeimage-expectation-requeue` (5 s per occurrence). Here that requeue
is set far beyond the test's timeout, so only the event can wake the job.

The other job's write in flight is made deterministic: its expectation is recorded for the version the
NodeImage's next write will carry, before any event for it exists; the test then makes that write.
"""

from __future__ import annotations

import time

import pytest

from localcluster.process import wait_until
from services.scheduler.dispatcher import node_image_key
from services.shared.kube import patching, resources
from tests.integration.scheduler import helpers
from tests.support.scheduler_harness import SchedulerHarness

pytestmark = pytest.mark.integration

IMAGE, TAG = "busybox", "1.36"
REQUEUE = 600.0
"""The fallback requeue: far longer than any wait below, so a job woken at all was woken by the event."""


def test_a_job_waiting_for_another_jobs_write_is_woken_by_its_event(harness: SchedulerHarness) -> None:
    kube = harness.kube
    node = harness.node()
    app = harness.start(nodeimage_expectation_requeue_seconds=REQUEUE, expectation_timeout_seconds=REQUEUE)
    wait_until(lambda: app.view.node_images.get(node) is not None, timeout=60, what="the NodeImage in the cache")
    stored = kube.get(resources.NODE_IMAGES, node)
    next_version = int(stored["metadata"]["resourceVersion"]) + 1
    app.expectations.expect(node_image_key(node), str(next_version), "elsewhere/other-job", time.monotonic())

    harness.create_job("waits", {"image": f"{IMAGE}:{TAG}", "selector": harness.selector})
    key = f"{harness.namespace}/waits"
    # First reconcile: finalizer and trace context; second (its own write's event): held back by the write.
    harness.wait_until_quiet(
        app, until=lambda counts: counts[key] >= 2, what=f"{key} to be reconciled and the scheduler to go quiet"
    )
    assert helpers.tag_entry(kube, node, IMAGE, TAG) is None

    # The other job's write lands (a change of another image in real life; an unrelated label here: neither
    # concerns this job's image or selector, so nothing but the expectation can wake the job).
    patching.write(kube, resources.NODE_IMAGES, stored, {"metadata": {"labels": {"unrelated": "change"}}})

    wait_until(
        lambda: helpers.tag_entry(kube, node, IMAGE, TAG) is not None,
        timeout=60,
        interval=0.2,
        what="the job to start the node once the write it waited for was seen",
    )
