"""Only the Lease holder reconciles; a standby takes over when the leader stops."""

from __future__ import annotations

import pytest

from localcluster.process import wait_until
from services.shared.api import constants
from services.shared.kube import objects
from tests.integration.scheduler import helpers
from tests.integration.scheduler.conftest import SchedulerFactory

pytestmark = pytest.mark.integration


def test_standby_takes_over_when_the_leader_stops(
    kube: objects.ObjectApi, kube_namespace: str, scheduler_factory: SchedulerFactory, test_label: dict[str, str]
) -> None:
    election = {
        "leader_election": True,
        "leader_election_namespace": kube_namespace,
        "lease_duration_seconds": 15.0,
        "renew_deadline_seconds": 10.0,
        "retry_period_seconds": 0.5,  # the leader releases the Lease on stop, so takeover needs no expiry
    }
    first = scheduler_factory(leader_identity="first", **election)
    wait_until(lambda: first.leading, timeout=30, what="first replica to lead")
    second = scheduler_factory(leader_identity="second", **election)
    helpers.create_job(kube, kube_namespace, "one", {"image": "nginx:1.25", "selector": {"matchLabels": test_label}})
    wait_until(
        lambda: bool(helpers.job_status(kube, kube_namespace, "one").get("completionTime")),
        timeout=30,
        what="the leader to reconcile",
    )
    assert not second.leading
    assert second.job_reconciler.reconcile_counts[f"{kube_namespace}/one"] == 0

    first.stop()
    wait_until(lambda: second.leading, timeout=30, what="the standby to take over")
    helpers.create_job(kube, kube_namespace, "two", {"image": "nginx:1.25", "selector": {"matchLabels": test_label}})
    wait_until(
        lambda: bool(helpers.job_status(kube, kube_namespace, "two").get("completionTime")),
        timeout=30,
        what="the new leader to reconcile",
    )
    job = helpers.get_job(kube, kube_namespace, "two")
    assert constants.ANNOTATION_TRACE_CONTEXT in job["metadata"]["annotations"]
