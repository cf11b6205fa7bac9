"""Fixtures for the scheduler's integration tests: an in-process scheduler against the real apiserver.

No puller runs here: tests create the NodeImages they need (labelled per test, so jobs never see another
test's nodes) and write their statuses themselves, as a puller would. Each scheduler watches only the test's
namespace, so jobs of other tests are never touched.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes.client
import pytest

from localcluster.controlplane import ControlPlane
from services.scheduler import settings
from services.scheduler.app import SchedulerApp
from services.scheduler.settings import SchedulerSettings
from services.shared import leadership
from services.shared.kube import errors, kubeapi, objects, resources
from tests.integration.scheduler import helpers

SchedulerFactory = Callable[..., SchedulerApp]


@pytest.fixture
def kube(control_plane: ControlPlane, prepull_crds: tuple[str, ...]) -> Iterator[objects.ObjectApi]:
    """Raw-dict access to the apiserver as admin (CRDs installed)."""
    api_client = control_plane.api_client()
    yield kubeapi.KubeApi(api_client)
    api_client.close()


@pytest.fixture
def test_label() -> dict[str, str]:
    """A label only this test's NodeImages carry."""
    return {"prepull-test": uuid.uuid4().hex[:12]}


@pytest.fixture
def node_images(kube: objects.ObjectApi) -> Iterator[Callable[..., str]]:
    """Create NodeImages (deleted afterwards): `make(name=None, labels=...)` returns the name."""
    made: list[str] = []

    def make(name: str | None = None, *, labels: dict[str, str] | None = None) -> str:
        node = name or f"ni-{uuid.uuid4().hex[:8]}"
        helpers.create_node_image(kube, node, labels or {})
        made.append(node)
        return node

    yield make
    for name in made:
        with contextlib.suppress(errors.NotFound):
            kube.delete(resources.NODE_IMAGES, name)


@pytest.fixture
def scheduler_factory(
    control_plane: ControlPlane,
    admin_api: kubernetes.client.ApiClient,
    kube: objects.ObjectApi,
    kube_namespace: str,
) -> Iterator[SchedulerFactory]:
    """Start in-process schedulers for the test's namespace; at the end its jobs are deleted while one runs."""
    started: list[SchedulerApp] = []

    def start(**overrides: Any) -> SchedulerApp:
        values: dict[str, Any] = {
            "grpc_address": "127.0.0.1:0",
            "metrics_address": "0",
            "health_address": "0",
            "leader_election": leadership.LeaderElectionSettings(resource_name=settings.LEASE_NAME, enabled=False),
            "watch_namespace": kube_namespace,
            "nodeimage_expectation_requeue_seconds": 1.0,
        }
        values.update(overrides)
        app = SchedulerApp(SchedulerSettings(**values), control_plane.api_client())
        app.start()
        started.append(app)
        return app

    yield start
    if any(app.leading for app in started):
        helpers.delete_jobs(kube, kube_namespace)
    for app in started:
        app.stop()
    # Pods bound to NodeImage-only nodes have no kubelet to confirm a graceful deletion: remove them at once,
    # so the namespace can go.
    kubernetes.client.CoreV1Api(admin_api).delete_collection_namespaced_pod(kube_namespace, grace_period_seconds=0)
