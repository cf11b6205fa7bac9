"""Only the Lease holder reconciles; a standby takes over when the leader stops."""

from __future__ import annotations

import pytest

from localcluster.process import wait_until
from services.scheduler import settings
from services.shared import leadership
from services.shared.api import constants
from services.shared.kube import leaderelection, objects
from tests.integration.scheduler import helpers
from tests.integration.scheduler.conftest import SchedulerFactory

pytestmark = pytest.mark.integration


def test_standby_takes_over_when_the_leader_stops(
    kube: objects.ObjectApi, kube_namespace: str, scheduler_factory: SchedulerFactory, test_label: dict[str, str]
) -> None:
    # The leader releases the Lease on stop, so takeover needs no expiry: only the retry period is short.
    timing = leaderelection.ElectionSettings(lease_duration=15.0, renew_deadline=10.0, retry_period=0.5)

    def candidate(identity: str) -> leadership.LeaderElectionSettings:
        return leadership.LeaderElectionSettings(
            resource_name=settings.LEASE_NAME, resource_namespace=kube_namespace, identity=identity, timing=timing
        )

    first = scheduler_factory(leader_election=candidate("first"))
    wait_until(lambda: first.leading, timeout=30, what="first replica to lead")
    second = scheduler_factory(leader_election=candidate("second"))
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
