"""The ImageListPullJob controller waits for its own writes to reach the cache (no 409 Conflicts).

Every change of a child re-queues its list job, often before the watch has delivered the list job's own last
status write. Deciding from that stale copy computed the status again and patched it with the stale
resourceVersion as precondition: a 409 Conflict, retried, but an error span and a wasted request each time.
Here a list job of many images goes through its whole life (children created, started, every pull reported,
completion) while its children change rapidly; the scheduler must not have one Conflict on a list job.
"""

from __future__ import annotations

import pytest

from localcluster.process import wait_until
from services.scheduler.app import SchedulerApp
from services.shared.kube import objects
from tests.integration.scheduler import helpers
from tests.support.scheduler_harness import SchedulerHarness

pytestmark = pytest.mark.integration

TIMEOUT = 120.0
IMAGES = tuple((f"img{index}", f"v{index}") for index in range(8))
"""(image, tag) pairs."""
LIST_JOB = "many"


def _list_job_conflicts(app: SchedulerApp) -> float:
    """Reconciles of list jobs that failed on a 409 Conflict (the scheduler's api error metric)."""
    value = app.metrics.registry.get_sample_value(
        "prepull_scheduler_api_errors_total", {"controller": "imagelistpulljob", "error": "Conflict"}
    )
    return value or 0.0


def _all_started(kube: objects.ObjectApi, nodes: list[str]) -> bool:
    return all(helpers.tag_entry(kube, node, image, tag) is not None for node in nodes for image, tag in IMAGES)


def test_a_list_jobs_life_has_no_conflicts_on_the_list_job(harness: SchedulerHarness) -> None:
    kube = harness.kube
    nodes = harness.nodes(2)
    app = harness.start()
    harness.create_list_job(
        LIST_JOB,
        {"images": [f"{image}:{tag}" for image, tag in IMAGES], "selector": harness.selector, "parallelism": 2},
    )
    wait_until(lambda: _all_started(kube, nodes), timeout=TIMEOUT, interval=0.2, what="every image started")
    for node in nodes:
        for image, tag in IMAGES:
            helpers.report(kube, node, image, tag, "Succeeded")
    wait_until(
        lambda: bool(harness.list_job_status(LIST_JOB).get("completionTime")), timeout=TIMEOUT, what="completion"
    )

    final = harness.list_job_status(LIST_JOB)
    assert (final["desired"], final["completed"], final["succeeded"], final["active"]) == (8, 8, 8, 0)
    assert _list_job_conflicts(app) == 0
