"""The scale benchmarks' cluster: an audited control plane, N simulated Nodes, our services and N node agents.

No containerd runs here: Node objects are registered through the API (as a kubelet would), nodeimage_sync and
the scheduler run as their own processes under their own ServiceAccounts (`localcluster.system`), and the N
pullers run as agents, `AGENTS_PER_HOST` per `localcluster.simnodes` host process, under a ServiceAccount bound
to the puller's ClusterRole, over the simulated runtime without a journal (a pull touches no file).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from bench.audit import AuditedControlPlane
from localcluster import cluster, simnodes
from localcluster.process import wait_until
from localcluster.simnodes import SimulatedNodeHosts
from localcluster.system import PrepullSystem
from services.shared import settings as shared_settings

GROUP, VERSION = "prepull.io", "v1beta1"
IDENTITIES = {
    "system:serviceaccount:prepull-system:prepull-scheduler": "scheduler",
    "system:serviceaccount:prepull-system:prepull-nodeimage-sync": "nodeimage_sync",
    f"system:serviceaccount:{simnodes.NAMESPACE}:{simnodes.HOST_ACCOUNT}": "puller",
}
ADMIN_CONNECTIONS = 24
"""The admin client's connection pool; registering the Nodes uses all of it at once (`SimulatedNodeHosts.register`)."""
HTTP_CONFLICT = 409
AGENTS_PER_HOST = 100
"""Node agents per host process: 1,000 in one CPython process on 2 cores thrash (see docs/benchmarks.md)."""
AGENT_STARTERS = 16
"""Agents a host starts concurrently."""
AGENT_SYNC_SECONDS = 300.0
PULLERS_READY_SECONDS = 900.0


@dataclass
class SimCluster:
    """Start with `start()`, then `start_services()` and `start_pullers()`; `stop()` ends everything."""

    state_dir: Path
    node_count: int
    sync_flags: Sequence[str] = ("--creation-delay", "0s")
    control: AuditedControlPlane = field(init=False)
    system: PrepullSystem | None = field(init=False, default=None)
    pullers: SimulatedNodeHosts | None = field(init=False, default=None)
    _api: kubernetes.client.ApiClient | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.control = AuditedControlPlane(self.state_dir / "control-plane", with_controller_manager=False)

    @property
    def node_names(self) -> list[str]:
        return cluster.node_names(self.node_count)

    @property
    def api(self) -> kubernetes.client.ApiClient:
        if self._api is None:
            self._api = self.admin_client(pool_maxsize=ADMIN_CONNECTIONS)
        return self._api

    def admin_client(self, *, pool_maxsize: int) -> kubernetes.client.ApiClient:
        """A new admin client whose connection pool fits `pool_maxsize` concurrent callers."""
        config = kubernetes.client.Configuration()
        kubernetes.config.load_kube_config(config_file=str(self.control.kubeconfig), client_configuration=config)
        config.connection_pool_maxsize = pool_maxsize
        return kubernetes.client.ApiClient(config)

    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    def start(self) -> None:
        """Control plane, CRDs and RBAC from deploy/, and the N Node objects (Ready, zone/pool labels)."""
        self.control.start()
        self.system = PrepullSystem(self._state(), extra_flags={"nodeimage_sync": list(self.sync_flags)})
        self.system.install()
        self.pullers = SimulatedNodeHosts(
            self.api,
            self.control.kubeconfig,
            self.state_dir / "pullers",
            journaled=False,
            starters=AGENT_STARTERS,
            sync_timeout=AGENT_SYNC_SECONDS,
            ready_timeout=PULLERS_READY_SECONDS,
        )
        self.pullers.register(self.node_names, cluster.default_labels)

    def start_services(self) -> None:
        """nodeimage_sync and the scheduler, as processes under their own identities; returns when both lead."""
        assert self.system is not None
        self.system.start()

    def stop_services(self) -> None:
        if self.system is not None:
            self.system.stop()

    def service_pid(self, name: str) -> int:
        assert self.system is not None
        pid = self.system.services[name].process.pid
        assert pid is not None
        return pid

    def start_pullers(self, *, pull_latency: str = "0s") -> None:
        """One agent per node, `AGENTS_PER_HOST` per host process; returns once every agent synced."""
        assert self.pullers is not None, "start() registers the nodes first"
        self.stop_pullers()
        self.pullers.pull_latency = shared_settings.duration(pull_latency).total_seconds()
        names = self.node_names
        hosts = {
            f"pullerhost-{first // AGENTS_PER_HOST}": names[first : first + AGENTS_PER_HOST]
            for first in range(0, len(names), AGENTS_PER_HOST)
        }
        self.pullers.start_hosts(hosts)

    @property
    def host_pids(self) -> list[int]:
        return self.pullers.pids if self.pullers is not None else []

    def stop_pullers(self) -> None:
        if self.pullers is not None:
            self.pullers.stop()

    def stop(self) -> None:
        self.stop_pullers()
        self.stop_services()
        if self._api is not None:
            self._api.close()
        self.control.stop()

    def nodeimage_count(self) -> int:
        """NodeImages in the cluster, from one small list call (limit=1 and remainingItemCount)."""
        answer = self.custom().list_cluster_custom_object(GROUP, VERSION, "nodeimages", limit=1)
        return len(answer.get("items", [])) + int(answer["metadata"].get("remainingItemCount") or 0)

    def create_job(self, namespace: str, name: str, spec: dict[str, Any]) -> None:
        self.ensure_namespace(namespace)
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImagePullJob", "metadata": {"name": name}, "spec": spec}
        self.custom().create_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", body)

    def job_status(self, namespace: str, name: str) -> dict[str, Any]:
        job = self.custom().get_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", name)
        status: dict[str, Any] = job.get("status") or {}
        return status

    def wait_complete(self, namespace: str, name: str, *, timeout: float) -> tuple[float, dict[str, Any]]:
        """Seconds from now until the job reports a completionTime (polled every 0.2 s), and its status."""
        started = time.monotonic()
        seen: dict[str, Any] = {}

        def complete() -> bool:
            seen.clear()
            seen.update(self.job_status(namespace, name))
            return bool(seen.get("completionTime"))

        wait_until(complete, timeout=timeout, interval=0.2, what=f"job {namespace}/{name} to complete")
        return time.monotonic() - started, dict(seen)

    def ensure_namespace(self, namespace: str) -> None:
        _create_if_absent(kubernetes.client.CoreV1Api(self.api).create_namespace, {"metadata": {"name": namespace}})

    def _state(self) -> dict[str, Any]:
        return {
            "state_dir": str(self.state_dir),
            "kubeconfig": str(self.control.kubeconfig),
            "server": self.control.server,
            "nodes": [],
        }


def _create_if_absent(create: Callable[..., object], *args: object) -> None:
    try:
        create(*args)
    except ApiException as error:
        if error.status != HTTP_CONFLICT:
            raise
