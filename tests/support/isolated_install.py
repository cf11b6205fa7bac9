"""prepull installed from deploy/ on a control plane of its own, with its workloads running from the manifests.

The session's control plane is shared by most integration tests and has deploy/'s CRDs applied for all of them,
so a test that runs the workloads exactly as the manifests say (cluster-wide controllers, no namespace or node
filter) or that uninstalls prepull (deleting the CRDs) gets a control plane of its own. Its Nodes are named after
the session's containerd nodes, whose CRI sockets the pullers reach through the `/run/containerd` hostPath.
"""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import kubernetes.client

from localcluster import nodes
from localcluster.containerd import ContainerdNode
from localcluster.controlplane import ControlPlane
from localcluster.process import wait_until
from services.shared.gen.cri import api_pb2, api_pb2_grpc
from tests.support.deploy_manifests import DEPLOY_DIR, apply_deploy, kustomization_documents
from tests.support.workload_processes import LocalWorkloads

GROUP, VERSION = "prepull.io", "v1beta1"
# The hostPath the puller DaemonSet mounts for the CRI socket; a node's containerd keeps its socket in base_dir.
CONTAINERD_HOST_PATH = "/run/containerd"
# Nodes of a cluster prepull is installed into have been Ready for a while: past nodeimage-sync's creation delay.
READY_FOR = datetime.timedelta(hours=1)
JOB_TIMEOUT = 120.0
PLURALS = {"ImagePullJob": "imagepulljobs", "ImageListPullJob": "imagelistpulljobs"}


@dataclass
class Installed:
    """A control plane with deploy/ applied and the workloads running as local processes."""

    plane: ControlPlane
    api: kubernetes.client.ApiClient
    workloads: LocalWorkloads
    runtimes: Mapping[str, ContainerdNode]

    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)


@contextlib.contextmanager
def installed_and_running(state_dir: Path, runtimes: Sequence[ContainerdNode]) -> Iterator[Installed]:
    """Control plane, `kubectl apply -k deploy/`, a Node per runtime, then every workload of deploy/ running."""
    plane = ControlPlane(state_dir / "control-plane")
    plane.start()
    try:
        with plane.api_client() as api:
            apply_deploy(plane)
            for runtime in runtimes:
                register_long_ready_node(api, runtime.name)
            workloads = LocalWorkloads(
                api=api,
                kubeconfig=plane.kubeconfig,
                server=plane.server,
                state_dir=state_dir,
                documents=kustomization_documents(),
                host_paths={runtime.name: {CONTAINERD_HOST_PATH: runtime.base_dir} for runtime in runtimes},
            )
            try:
                workloads.start()
                workloads.wait_ready()
                yield Installed(plane, api, workloads, {runtime.name: runtime for runtime in runtimes})
            finally:
                print(workloads.log_tails(40))
                workloads.stop()
    finally:
        plane.stop()


def register_long_ready_node(api: kubernetes.client.ApiClient, name: str) -> None:
    """Node `name`, Ready since `READY_FOR` ago, labelled as a kubelet would."""
    manifest = nodes.node_manifest(name)
    since = (datetime.datetime.now(datetime.UTC) - READY_FOR).strftime("%Y-%m-%dT%H:%M:%SZ")
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": since}
    status = {**manifest["status"], "conditions": [{**ready, "lastTransitionTime": since}]}
    kubernetes.client.CoreV1Api(api).create_node({"metadata": manifest["metadata"], "status": status})


def create_namespace(api: kubernetes.client.ApiClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    kubernetes.client.CoreV1Api(api).create_namespace({"metadata": {"name": name}})
    return name


def create_job(installed: Installed, kind: str, namespace: str, name: str, spec: Mapping[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    installed.custom().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], body)


def wait_for_completion(installed: Installed, kind: str, namespace: str, name: str) -> dict[str, Any]:
    """Poll until the job has a completionTime; return its status."""
    seen: dict[str, Any] = {}

    def complete() -> bool:
        job = installed.custom().get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)
        seen.update(job.get("status") or {})
        return bool(seen.get("completionTime"))

    wait_until(complete, timeout=JOB_TIMEOUT, interval=0.5, what=f"{kind} {namespace}/{name} to complete ({seen})")
    return seen


def image_on_node(runtime: ContainerdNode, reference: str) -> bool:
    """CRI ImageStatus on the node's containerd: is the image there?"""
    with grpc.insecure_channel(runtime.cri_target) as channel:
        stub = api_pb2_grpc.ImageServiceStub(channel)
        answer = stub.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=reference)), timeout=10)
    return bool(answer.image.id)


__all__ = ["DEPLOY_DIR", "Installed", "installed_and_running"]
