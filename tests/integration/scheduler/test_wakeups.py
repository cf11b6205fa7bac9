"""Wake-up selectivity (issue 5 item 3): one tag's status change reconciles only its job; idle means idle."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcluster.process import wait_until
from services.scheduler.app import SchedulerApp
from services.shared.kube import objects, resources
from tests.integration.scheduler import helpers
from tests.integration.scheduler.conftest import SchedulerFactory

pytestmark = pytest.mark.integration

JOBS = 50
NODES = 200
IMAGE = "busybox"


def _quiet(app: SchedulerApp, seconds: float = 2.0) -> Counter[str]:
    """Wait until no reconcile happened for `seconds`; return the counts then."""
    last = Counter(app.job_reconciler.reconcile_counts)
    stable_since = time.monotonic()

    def settled() -> bool:
        nonlocal last, stable_since
        now = Counter(app.job_reconciler.reconcile_counts)
        if now != last:
            last, stable_since = now, time.monotonic()
        return time.monotonic() - stable_since >= seconds

    wait_until(settled, timeout=120, interval=0.2, what="the scheduler to go quiet")
    return last


def test_one_tag_status_change_reconciles_only_its_job(
    kube: objects.ObjectApi,
    kube_namespace: str,
    scheduler_factory: SchedulerFactory,
    node_images: Callable[..., str],
    test_label: dict[str, str],
) -> None:
    with ThreadPoolExecutor(8) as pool:
        nodes = sorted(pool.map(lambda _: node_images(labels=test_label), range(NODES)))
    app = scheduler_factory()
    selector = {"matchLabels": test_label}
    for i in range(JOBS):
        helpers.create_job(kube, kube_namespace, f"j{i}", {"image": f"{IMAGE}:1.{i}", "selector": selector})

    def all_started() -> bool:
        return all(helpers.job_status(kube, kube_namespace, f"j{i}").get("active") == 1 for i in range(JOBS))

    wait_until(all_started, timeout=180, interval=1.0, what="every job to start its first node")
    before = _quiet(app)
    time.sleep(3)  # idle: nothing changes, so nothing may be reconciled
    assert Counter(app.job_reconciler.reconcile_counts) == before

    helpers.report(kube, nodes[0], IMAGE, "1.0", "Succeeded")
    wait_until(lambda: helpers.tag_entry(kube, nodes[1], IMAGE, "1.0") is not None, timeout=60, what="j0's next node")
    after = _quiet(app)
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {f"{kube_namespace}/j0"}


def test_a_pod_change_wakes_only_the_pod_selector_jobs_it_matches(
    kube: objects.ObjectApi,
    kube_namespace: str,
    scheduler_factory: SchedulerFactory,
    node_images: Callable[..., str],
    test_label: dict[str, str],
) -> None:
    node = node_images()
    app = scheduler_factory()
    for app_label in ("web", "db"):
        spec = {
            "image": "nginx:1.25",
            "podSelector": {"matchLabels": {"app": app_label}},
            "completionPolicy": {"type": "Never"},
        }
        helpers.create_job(kube, kube_namespace, app_label, spec)
    helpers.create_job(
        kube,
        kube_namespace,
        "by-label",
        {"image": "nginx:1.25", "selector": {"matchLabels": test_label}, "completionPolicy": {"type": "Never"}},
    )
    wait_until(
        lambda: all(helpers.job_status(kube, kube_namespace, j) for j in ("web", "db", "by-label")),
        timeout=60,
        what="all jobs reconciled",
    )
    before = _quiet(app)
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": kube_namespace, "labels": {"app": "web"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx:1.25"}]},
    }
    kube.create(resources.PODS, body, namespace=kube_namespace)
    wait_until(lambda: helpers.tag_entry(kube, node, "nginx", "1.25") is not None, timeout=60, what="web job starts")
    after = _quiet(app)
    changed = {key for key in after if after[key] != before[key]}
    assert changed == {f"{kube_namespace}/web"}
