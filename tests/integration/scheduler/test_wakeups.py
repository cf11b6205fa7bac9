"""Wake-up selectivity (issue 5 item 3): one tag's status change reconciles only its job; idle means idle."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcluster.process import wait_until
from services.shared.kube import resources
from tests.integration.scheduler import helpers
from tests.support.scheduler_harness import SchedulerHarness

pytestmark = pytest.mark.integration

JOBS = 50
NODES = 200
IMAGE = "busybox"


def test_one_tag_status_change_reconciles_only_its_job(harness: SchedulerHarness) -> None:
    kube = harness.kube
    with ThreadPoolExecutor(8) as pool:
        nodes = sorted(pool.map(lambda _: harness.node(), range(NODES)))
    app = harness.start()
    for i in range(JOBS):
        harness.create_job(f"j{i}", {"image": f"{IMAGE}:1.{i}", "selector": harness.selector})

    def all_started() -> bool:
        return all(harness.job_status(f"j{i}").get("active") == 1 for i in range(JOBS))

    wait_until(all_started, timeout=180, interval=1.0, what="every job to start its first node")
    before = harness.wait_until_quiet(app)
    time.sleep(3)  # idle: nothing changes, so nothing may be reconciled
    assert Counter(app.job_reconciler.reconcile_counts) == before

    helpers.report(kube, nodes[0], IMAGE, "1.0", "Succeeded")
    wait_until(lambda: helpers.tag_entry(kube, nodes[1], IMAGE, "1.0") is not None, timeout=60, what="j0's next node")
    after = harness.wait_until_quiet(app)
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {f"{harness.namespace}/j0"}


def test_a_pod_change_wakes_only_the_pod_selector_jobs_it_matches(harness: SchedulerHarness) -> None:
    kube, kube_namespace = harness.kube, harness.namespace
    node = harness.node(labelled=False)
    app = harness.start()
    for app_label in ("web", "db"):
        spec = {
            "image": "nginx:1.25",
            "podSelector": {"matchLabels": {"app": app_label}},
            "completionPolicy": {"type": "Never"},
        }
        harness.create_job(app_label, spec)
    harness.create_job(
        "by-label", {"image": "nginx:1.25", "selector": harness.selector, "completionPolicy": {"type": "Never"}}
    )
    wait_until(
        lambda: all(harness.job_status(j) for j in ("web", "db", "by-label")),
        timeout=60,
        what="all jobs reconciled",
    )
    before = harness.wait_until_quiet(app)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": kube_namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.25"}]},
    }
    kube.create(resources.PODS, body, namespace=kube_namespace)
    wait_until(lambda: helpers.tag_entry(kube, node, "nginx", "1.25") is not None, timeout=60, what="web job starts")
    after = harness.wait_until_quiet(app)
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {f"{kube_namespace}/web"}
