"""prepull on many simulated nodes: a real control plane, the real scheduler and nodeimage_sync processes, and
one puller agent per node hosted several per process (`localcluster.simnodes`) over a journaled simulated CRI.

The chaos suite runs its 50-node jobs here; no containerd or registry runs, so a node costs an agent (a few
threads), not a process. Helpers take the admin `ApiClient`, so they work on this system as on any other.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import urllib3

from localcluster.controlplane import ControlPlane
from localcluster.process import ManagedProcess, wait_until
from localcluster.simnodes import SimulatedNodeHosts
from localcluster.system import PrepullSystem

GROUP, VERSION = "prepull.io", "v1beta1"
API_ERRORS = (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError)


@dataclass
class SimulatedSystem:
    """The running pieces: control plane, the two cluster-wide services, and the node agents' hosts."""

    control: ControlPlane
    api: kubernetes.client.ApiClient
    services: PrepullSystem
    nodes: SimulatedNodeHosts

    def processes(self) -> dict[str, ManagedProcess]:
        """The node hosts by name: what a `Restarter` should keep running besides the services."""
        return dict(self.nodes.hosts)

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join([self.services.log_tails(lines), self.nodes.log_tails(lines)])


@contextlib.contextmanager
def running_simulated_system(
    state_dir: Path,
    *,
    nodes_per_host: Mapping[str, Sequence[str]],
    labels_of: Callable[[int], Mapping[str, str]],
    pull_latency: float,
    service_flags: Mapping[str, Sequence[str]],
    agent_flags: Sequence[str],
) -> Iterator[SimulatedSystem]:
    """Control plane, prepull installed, the Nodes registered, services and hosts running; all stopped on exit.

    Args:
        nodes_per_host: host process name -> the nodes whose agents it runs.
        labels_of: labels of the node at a position of the flattened node list.
        pull_latency: seconds every simulated pull takes.
        service_flags: extra flags per service ("scheduler", "nodeimage_sync").
        agent_flags: puller flags for every agent.
    """
    control = ControlPlane(state_dir / "control-plane")
    control.start()
    api = control.api_client()
    state = {"state_dir": str(state_dir), "kubeconfig": str(control.kubeconfig), "server": control.server, "nodes": []}
    services = PrepullSystem(state, extra_flags=service_flags)
    hosts = SimulatedNodeHosts(api, control.kubeconfig, state_dir / "nodes", pull_latency, agent_flags)
    system = SimulatedSystem(control, api, services, hosts)
    try:
        services.install()
        hosts.register([name for names in nodes_per_host.values() for name in names], labels_of)
        services.start()
        wait_until(
            lambda: set(nodeimage_names(api)) >= {n for names in nodes_per_host.values() for n in names},
            timeout=120,
            interval=0.5,
            what="a NodeImage for every simulated node",
        )
        hosts.start_hosts(nodes_per_host)
        yield system
    finally:
        logs = system.log_tails(40)
        hosts.stop()
        services.stop()
        api.close()
        control.stop()
        print(logs)


def custom(api: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api)


def nodeimages(api: kubernetes.client.ApiClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = custom(api).list_cluster_custom_object(GROUP, VERSION, "nodeimages")["items"]
    return items


def nodeimage_names(api: kubernetes.client.ApiClient) -> list[str]:
    return [item["metadata"]["name"] for item in nodeimages(api)]


@contextlib.contextmanager
def fresh_namespace(api: kubernetes.client.ApiClient, prefix: str) -> Iterator[str]:
    """A new namespace, deleted afterwards (without waiting for it to go)."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    try:
        yield name
    finally:
        with contextlib.suppress(*API_ERRORS):
            core.delete_namespace(name)


def create_job(api: kubernetes.client.ApiClient, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImagePullJob", "metadata": {"name": name}, "spec": spec}
    custom(api).create_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", body)


def job_status(api: kubernetes.client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    job = custom(api).get_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", name)
    status: dict[str, Any] = job.get("status") or {}
    return status


def job_complete(api: kubernetes.client.ApiClient, namespace: str, name: str) -> bool:
    """True once the job has a completionTime; False also while the apiserver does not answer."""
    try:
        return bool(job_status(api, namespace, name).get("completionTime"))
    except API_ERRORS:
        return False


def wait_for_completion(
    api: kubernetes.client.ApiClient, namespace: str, name: str, *, timeout: float
) -> dict[str, Any]:
    """Poll until the job has a completionTime; return its status. API errors (apiserver down) are retried."""
    seen: dict[str, Any] = {}

    def complete() -> bool:
        try:
            seen.update(job_status(api, namespace, name))
        except API_ERRORS:
            return False
        return bool(seen.get("completionTime"))

    wait_until(complete, timeout=timeout, interval=0.5, what=f"job {namespace}/{name} to complete ({seen})")
    return seen


def spec_entries(item: Mapping[str, Any], name: str, tag: str) -> list[dict[str, Any]]:
    """The spec tag entries of `name:tag` in one NodeImage."""
    tags: list[dict[str, Any]] = ((item.get("spec") or {}).get("images") or {}).get(name, {}).get("tags", [])
    return [entry for entry in tags if entry.get("tag") == tag]


def status_phases(item: Mapping[str, Any], name: str, tag: str) -> list[str]:
    """The status phases of `name:tag` in one NodeImage (empty when the puller has not reported it)."""
    images = ((item.get("status") or {}).get("imageStatuses") or {}).get(name, {})
    return [str(entry.get("phase")) for entry in images.get("tags", []) if entry.get("tag") == tag]
