"""The scale benchmarks' cluster: an audited control plane, N simulated Nodes, our services and N node agents.

No containerd runs here: Node objects are registered through the API (as a kubelet would), nodeimage_sync and
the scheduler run as their own processes under their own ServiceAccounts (`localcluster.system`), and the N
pullers run as agents of one `bench.pullerhost` process under a ServiceAccount bound to the puller's ClusterRole.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import yaml
from kubernetes.client.exceptions import ApiException

from bench.audit import AuditedControlPlane
from localcluster import cluster, nodes
from localcluster.process import ManagedProcess, wait_until
from localcluster.system import NAMESPACE, PrepullSystem

REPO = Path(__file__).resolve().parent.parent
GROUP, VERSION = "prepull.io", "v1beta1"
HOST_ACCOUNT = "prepull-bench-pullers"
IDENTITIES = {
    "system:serviceaccount:prepull-system:prepull-scheduler": "scheduler",
    "system:serviceaccount:prepull-system:prepull-nodeimage-sync": "nodeimage_sync",
    f"system:serviceaccount:prepull-system:{HOST_ACCOUNT}": "puller",
}
REGISTER_WORKERS = 16
HTTP_CONFLICT = 409
AGENTS_PER_HOST = 100
"""Node agents per host process: 1,000 in one CPython process on 2 cores thrash (see docs/benchmarks.md)."""


@dataclass
class SimCluster:
    """Start with `start()`, then `start_services()` and `start_pullers()`; `stop()` ends everything."""

    state_dir: Path
    node_count: int
    sync_flags: Sequence[str] = ("--creation-delay", "0s")
    control: AuditedControlPlane = field(init=False)
    system: PrepullSystem | None = field(init=False, default=None)
    hosts: list[ManagedProcess] = field(init=False, default_factory=list)
    _api: kubernetes.client.ApiClient | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.control = AuditedControlPlane(self.state_dir / "control-plane", with_controller_manager=False)

    @property
    def node_names(self) -> list[str]:
        return cluster.node_names(self.node_count)

    @property
    def api(self) -> kubernetes.client.ApiClient:
        if self._api is None:
            self._api = self.admin_client(pool_maxsize=REGISTER_WORKERS + 8)
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
        names = self.node_names
        with futures.ThreadPoolExecutor(REGISTER_WORKERS) as pool:
            list(
                pool.map(
                    lambda i: nodes.register_node(self.api, names[i], cluster.default_labels(i)), range(len(names))
                )
            )

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

    def start_pullers(self, *, pull_latency: str = "0s", timeout: float = 900.0) -> None:
        """One agent per node, `AGENTS_PER_HOST` per `bench.pullerhost` process; returns once every agent synced."""
        self.stop_pullers()
        work = self.state_dir / "pullers"
        work.mkdir(parents=True, exist_ok=True)
        kubeconfig = self._host_kubeconfig(work)
        names = self.node_names
        for first in range(0, len(names), AGENTS_PER_HOST):
            index = first // AGENTS_PER_HOST
            nodes_file, ready = work / f"nodes-{index}.txt", work / f"ready-{index}"
            nodes_file.write_text("\n".join(names[first : first + AGENTS_PER_HOST]) + "\n")
            ready.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "bench.pullerhost", "--kubeconfig", str(kubeconfig)]
            argv += ["--nodes-file", str(nodes_file), "--ready-file", str(ready), "--pull-latency", pull_latency]
            host = ManagedProcess(name=f"pullerhost-{index}", argv=argv, log_path=work / f"host-{index}.log", cwd=REPO)
            host.start()
            self.hosts.append(host)
        for index, host in enumerate(self.hosts):
            _wait_ready(host, work / f"ready-{index}", timeout)

    @property
    def host_pids(self) -> list[int]:
        return [host.pid for host in self.hosts if host.pid is not None]

    def stop_pullers(self) -> None:
        for host in self.hosts:
            host.stop()
        self.hosts.clear()

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

    def _host_kubeconfig(self, work: Path) -> Path:
        """A ServiceAccount bound to the puller's ClusterRole, and a kubeconfig with its token."""
        core = kubernetes.client.CoreV1Api(self.api)
        rbac = kubernetes.client.RbacAuthorizationV1Api(self.api)
        binding = {
            "metadata": {"name": HOST_ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "prepull-puller"},
            "subjects": [{"kind": "ServiceAccount", "name": HOST_ACCOUNT, "namespace": NAMESPACE}],
        }
        _create_if_absent(core.create_namespaced_service_account, NAMESPACE, {"metadata": {"name": HOST_ACCOUNT}})
        _create_if_absent(rbac.create_cluster_role_binding, binding)
        request = {"spec": {"expirationSeconds": 24 * 3600}}
        token = core.create_namespaced_service_account_token(HOST_ACCOUNT, NAMESPACE, request).status.token
        admin = yaml.safe_load(self.control.kubeconfig.read_text())
        cluster_entry = admin["clusters"][0]
        document = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [cluster_entry],
            "users": [{"name": HOST_ACCOUNT, "user": {"token": token}}],
            "contexts": [{"name": HOST_ACCOUNT, "context": {"cluster": cluster_entry["name"], "user": HOST_ACCOUNT}}],
            "current-context": HOST_ACCOUNT,
        }
        path = work / "pullers.kubeconfig"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            yaml.safe_dump(document, handle)
        return path


def _wait_ready(host: ManagedProcess, ready: Path, timeout: float) -> None:
    wait_until(lambda: ready.exists() or not host.alive(), timeout=timeout, interval=0.5, what=host.name)
    if not host.alive():
        raise RuntimeError(f"puller host exited:\n{host.log_tail()}")


def _create_if_absent(create: Callable[..., object], *args: object) -> None:
    try:
        create(*args)
    except ApiException as error:
        if error.status != HTTP_CONFLICT:
            raise
