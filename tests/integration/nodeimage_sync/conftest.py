"""Running nodeimage_sync in-process against the session's real apiserver, isolated per test.

Each test gets its own label (`nodeimage-sync-test/run=<id>`): the service runs with `--node-selector` on it,
and every Node the test registers carries it, so the service sees only that test's Nodes and NodeImages and
leaves everything else in the shared control plane alone. Timers are shortened through the settings.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from localcluster import nodes
from localcluster.controlplane import ControlPlane
from localcluster.process import wait_until
from services.nodeimage_sync.app import App
from services.nodeimage_sync.settings import Settings
from services.shared import leadership
from services.shared import settings as shared_settings
from services.shared.api import constants
from services.shared.kube import errors, kubeapi, leaderelection, resources

RUN_LABEL = "nodeimage-sync-test/run"
WAIT = 60.0


@dataclasses.dataclass
class SyncHarness:
    """One test's view: its label, namespace, admin API, and the services it started."""

    control_plane: ControlPlane
    admin: kubernetes.client.ApiClient
    namespace: str
    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:8])
    apps: list[App] = dataclasses.field(default_factory=list)
    node_names: list[str] = dataclasses.field(default_factory=list)

    @property
    def api(self) -> kubeapi.KubeApi:
        return kubeapi.KubeApi(self.admin)

    @property
    def selector(self) -> str:
        return f"{RUN_LABEL}={self.run_id}"

    def settings(self, **overrides: Any) -> Settings:
        common = shared_settings.CommonSettings(
            kubeconfig="",
            grpc_address="127.0.0.1:0",
            metrics_address="127.0.0.1:0",
            health_address="127.0.0.1:0",
            log_level="info",
        )
        values: dict[str, Any] = {
            "common": common,
            "creation_delay": 1.0,
            "min_requeue": 0.5,
            "requeue_jitter": 0.5,
            "node_selector": self.selector,
            "leader_election": self.election(),
            "auth": False,
            "shutdown_grace": 1.0,
        }
        values.update(overrides)
        return Settings(**values)

    def election(self, **changes: Any) -> leadership.LeaderElectionSettings:
        """This test's Lease (in its namespace), a fresh candidate identity, and short timers; `changes` win."""
        values: dict[str, Any] = {
            "resource_name": f"nodeimage-sync-{self.run_id}",
            "resource_namespace": self.namespace,
            "identity": f"replica-{uuid.uuid4().hex[:6]}",
            "timing": leaderelection.ElectionSettings(lease_duration=4.0, renew_deadline=3.0, retry_period=0.5),
        }
        values.update(changes)
        return leadership.LeaderElectionSettings(**values)

    def start(self, *, wait_leading: bool = True, **overrides: Any) -> App:
        app = App(self.settings(**overrides), api_client=self.control_plane.api_client())
        self.apps.append(app)
        app.start()
        if wait_leading:
            wait_until(app.is_leader, timeout=WAIT, what="nodeimage_sync to lead")
        return app

    def stop(self, app: App) -> None:
        app.stop()

    def register_node(self, labels: Mapping[str, str] | None = None, name: str | None = None) -> str:
        node = name or f"nis-{self.run_id}-{uuid.uuid4().hex[:6]}"
        nodes.register_node(self.admin, node, {RUN_LABEL: self.run_id, **(labels or {})})
        self.node_names.append(node)
        return node

    def nodeimage(self, name: str) -> dict[str, Any] | None:
        try:
            return self.api.get(resources.NODE_IMAGES, name)
        except errors.NotFound:
            return None

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float = WAIT) -> None:
        wait_until(lambda: bool(check()), timeout=timeout, interval=0.2, what=what)

    def create_fake_nodeimage(self, name: str, spec: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND_NODE_IMAGE,
            "metadata": {"name": name, "labels": {constants.LABEL_FAKE_NODE_IMAGE: "true", RUN_LABEL: self.run_id}},
            "spec": dict(spec or {}),
        }
        self.node_names.append(name)
        return self.api.create(resources.NODE_IMAGES, body)

    def create_job(self, name: str, image: str = "nginx:1.25") -> dict[str, Any]:
        body = {
            "apiVersion": constants.API_VERSION,
            "kind": constants.KIND_IMAGE_PULL_JOB,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"image": image},
        }
        return self.api.create(resources.IMAGE_PULL_JOBS, body, namespace=self.namespace)

    def cleanup(self) -> None:
        for app in self.apps:
            app.stop()
        core = kubernetes.client.CoreV1Api(self.admin)
        for name in self.node_names:
            _ignore_missing(functools.partial(core.delete_node, name))
            _ignore_missing(functools.partial(self.api.delete, resources.NODE_IMAGES, name))


def _ignore_missing(call: Callable[[], object]) -> None:
    with contextlib.suppress(ApiException, errors.NotFound):
        call()


@pytest.fixture
def sync(
    control_plane: ControlPlane, admin_api: kubernetes.client.ApiClient, prepull_crds: object, kube_namespace: str
) -> Iterator[SyncHarness]:
    """A per-test harness; every service it started is stopped and every object it made is deleted."""
    harness = SyncHarness(control_plane=control_plane, admin=admin_api, namespace=kube_namespace)
    try:
        yield harness
    finally:
        harness.cleanup()
