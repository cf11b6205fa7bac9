"""Wake-up selectivity (issue 5 item 3): one tag's status change reconciles only its job; idle means idle."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from localcluster.process import wait_until
from services.scheduler.app import SchedulerApp
from services.shared.kube import objects
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
