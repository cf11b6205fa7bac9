"""One test's scheduler world for the scheduler's integration tests, as a single fixture: `harness`.

Every scheduler integration test needs the same pieces: the apiserver as admin, the test's namespace, a label
only its NodeImages carry, NodeImages made with it, and in-process schedulers watching the namespace (the
fixtures of `tests/integration/scheduler/conftest.py`, which this bundles and does not replace). It then
creates jobs in its namespace aimed at its labelled nodes and reads their statuses. `SchedulerHarness` holds
those pieces and says those steps once, so a test states only what is particular to it.

The root conftest loads it as a plugin (so its asserts are rewritten); tests under tests/integration/scheduler,
where the fixtures it bundles live, take `harness: SchedulerHarness`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from localcluster.process import wait_until
from services.scheduler.app import SchedulerApp
from services.shared.api import constants
from services.shared.kube import objects, resources
from tests.integration.scheduler import helpers

__all__ = ["SchedulerHarness", "harness"]


@dataclasses.dataclass(frozen=True)
class SchedulerHarness:
    """The apiserver, the test's namespace and node label, and the makers of its NodeImages and schedulers."""

    kube: objects.ObjectApi
    """Raw-dict access to the apiserver as admin (CRDs installed)."""
    namespace: str
    """The test's own namespace: the only one its schedulers watch."""
    label: dict[str, str]
    """The label only this test's labelled NodeImages carry."""
    node_image_factory: Callable[..., str]
    """The `node_images` fixture: `make(name=None, labels=...)`, deleted after the test."""
    scheduler_factory: Callable[..., SchedulerApp]
    """The `scheduler_factory` fixture: `start(**settings_overrides)`, stopped after the test."""

    @property
    def selector(self) -> dict[str, Any]:
        """A job `selector` that targets exactly this test's labelled NodeImages."""
        return {"matchLabels": dict(self.label)}

    def start(self, **overrides: Any) -> SchedulerApp:
        """Start an in-process scheduler for the namespace (`SchedulerSettings` fields in `overrides`)."""
        return self.scheduler_factory(**overrides)

    def node(self, *, labelled: bool = True) -> str:
        """Create a NodeImage (carrying the test's label unless `labelled` is False); its name."""
        return self.node_image_factory(labels=self.label if labelled else {})

    def nodes(self, count: int) -> list[str]:
        """Create `count` labelled NodeImages; their names in sorted order (the order jobs take nodes in)."""
        return sorted(self.node() for _ in range(count))

    def create_job(self, name: str, spec: dict[str, Any]) -> objects.RawObject:
        """Create the ImagePullJob `name` in the namespace (`completionPolicy` defaulting to `{}`)."""
        return helpers.create_job(self.kube, self.namespace, name, spec)

    def job(self, name: str) -> objects.RawObject:
        """The ImagePullJob `name` as stored."""
        return helpers.get_job(self.kube, self.namespace, name)

    def job_status(self, name: str) -> dict[str, Any]:
        """The status of the ImagePullJob `name` ({} until written)."""
        return helpers.job_status(self.kube, self.namespace, name)

    def wait_job_completed(self, name: str, *, what: str, timeout: float = helpers.TIMEOUT) -> None:
        """Wait until the ImagePullJob `name` has a `completionTime`; `what` names the wait should it time out."""
        wait_until(lambda: bool(self.job_status(name).get("completionTime")), timeout=timeout, what=what)

    def wait_none_left(self, resource: resources.Resource, *, what: str, timeout: float = helpers.TIMEOUT) -> None:
        """Wait until the namespace holds no object of `resource` (gone by a TTL, say); `what` names the wait."""
        wait_until(lambda: not self.kube.list(resource, namespace=self.namespace).items, timeout=timeout, what=what)

    def wait_until_quiet(
        self,
        app: SchedulerApp,
        *,
        quiet: float = 2.0,
        until: Callable[[Counter[str]], bool] = lambda counts: True,
        what: str = "the scheduler to go quiet",
    ) -> Counter[str]:
        """Wait until `app` has reconciled no ImagePullJob for `quiet` seconds and `until(counts)` holds; the counts.

        The counts are reconciles per job key. Going quiet is the one observable end of "every wake-up has been
        handled": the counts stop changing.
        """
        last = Counter(app.job_reconciler.reconcile_counts)
        stable_since = time.monotonic()

        def settled() -> bool:
            nonlocal last, stable_since
            now = Counter(app.job_reconciler.reconcile_counts)
            if now != last:
                last, stable_since = now, time.monotonic()
            return until(now) and time.monotonic() - stable_since >= quiet

        wait_until(settled, timeout=120, interval=0.2, what=what)
        return last

    def create_list_job(self, name: str, spec: dict[str, Any]) -> objects.RawObject:
        """Create the ImageListPullJob `name` in the namespace."""
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND_IMAGE_LIST_PULL_JOB,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": spec,
        }
        return self.kube.create(resources.IMAGE_LIST_PULL_JOBS, body, namespace=self.namespace)

    def list_job_status(self, name: str) -> dict[str, Any]:
        """The status of the ImageListPullJob `name` ({} until written)."""
        return dict(self.kube.get(resources.IMAGE_LIST_PULL_JOBS, name, namespace=self.namespace).get("status") or {})


@pytest.fixture
def harness(
    kube: objects.ObjectApi,
    kube_namespace: str,
    test_label: dict[str, str],
    node_images: Callable[..., str],
    scheduler_factory: Callable[..., SchedulerApp],
) -> SchedulerHarness:
    """The test's scheduler world; its NodeImages, schedulers and jobs are cleaned up by the fixtures it holds."""
    return SchedulerHarness(kube, kube_namespace, test_label, node_images, scheduler_factory)
