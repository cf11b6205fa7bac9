"""The workloads in deploy/ run as written: the manifests cannot drift from the code.

Each Deployment and DaemonSet of the default kustomization runs as a local process with exactly the container's
command, args and environment (downward-API values from a real stand-in Pod), under a token of its own
ServiceAccount bound to that Pod, against a control plane with `kubectl apply -k deploy/` applied. Only what
cannot exist outside a cluster is mapped (Service DNS names, listen ports, mounted token files, the CRI socket's
hostPath); `tests/support/workload_manifests.py` lists those rules. Then an ImagePullJob for a private image pulls
on both real containerd nodes, which needs every service, every identity and every address the manifests give.
"""

from __future__ import annotations

import base64
import copy
import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from localcluster.images import ImageBuilder, ImageRecipe
from localcluster.process import wait_until
from localcluster.registry import Registry
from tests.support import workload_manifests
from tests.support.deploy_manifests import kustomization_documents
from tests.support.isolated_install import (
    Installed,
    create_job,
    create_namespace,
    image_on_node,
    installed_and_running,
    wait_for_completion,
)
from tests.support.node_fixtures import ContainerdNodes
from tests.support.workload_processes import LocalWorkloads

pytestmark = pytest.mark.integration

LEASE_TIMEOUT = 60.0
INVENTORY_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, containerd_nodes: ContainerdNodes) -> Iterator[Installed]:
    with installed_and_running(Path(tmp_path_factory.mktemp("manifest-workloads")), list(containerd_nodes)) as ready:
        yield ready


def _workload_document(name: str) -> dict[str, Any]:
    (workload,) = (w for w in workload_manifests.workloads(kustomization_documents()) if w.name == name)
    return dict(workload.document)


def test_every_workload_of_the_kustomization_runs_in_its_own_stand_in_pods(installed: Installed) -> None:
    nodes = sorted(installed.runtimes)
    placed = {
        workload.name: sorted(pod.node for pod in installed.workloads.by_workload(workload.name))
        for workload in workload_manifests.workloads(kustomization_documents())
    }
    assert placed == {
        "prepull-scheduler": nodes[:1],
        "prepull-nodeimage-sync": nodes[:1],
        "prepull-puller": nodes,
    }
    for pod in installed.workloads.pods.values():
        assert pod.process.alive(), pod.process.log_tail(30)
        assert pod.ready(), pod.name


def test_leader_election_identity_and_namespace_come_from_the_downward_api(installed: Installed) -> None:
    coordination = kubernetes.client.CoordinationV1Api(installed.api)
    for workload in ("prepull-scheduler", "prepull-nodeimage-sync"):
        (pod,) = installed.workloads.by_workload(workload)

        def held_by_the_pod(pod_name: str = pod.name, lease: str = workload) -> bool:
            found = coordination.read_namespaced_lease(lease, "prepull-system")
            return bool(found.spec.holder_identity == pod_name)

        wait_until(held_by_the_pod, timeout=LEASE_TIMEOUT, what=f"Lease {workload} held by {pod.name}")


def test_pullers_report_their_inventory_to_nodeimage_sync_through_its_service(installed: Installed) -> None:
    (sync,) = installed.workloads.by_workload("prepull-nodeimage-sync")
    metrics_url = f"http://127.0.0.1:{sync.local.local_port('metrics')}/metrics"

    def every_node_reported() -> bool:
        with urllib.request.urlopen(metrics_url, timeout=5) as response:
            text = response.read().decode()
        line = next(line for line in text.splitlines() if line.startswith("prepull_nodeimage_sync_inventory_nodes "))
        return float(line.split()[1]) == len(installed.runtimes)

    wait_until(every_node_reported, timeout=INVENTORY_TIMEOUT, interval=0.5, what="an inventory from every node")


def test_private_image_job_pulls_on_every_real_node(
    installed: Installed, image_builder: ImageBuilder, auth_registry: Registry
) -> None:
    credentials = auth_registry.credentials
    assert credentials is not None
    repository = f"prepull-test/manifest-{uuid.uuid4().hex[:8]}"
    image = image_builder.build_and_push(
        ImageRecipe(repository, total_bytes=1 << 20, layers=2), auth_registry, repository
    )
    for runtime in installed.runtimes.values():
        assert not image_on_node(runtime, image.reference), runtime.name
    namespace = create_namespace(installed.api, "manifest")
    auth = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    config = {"auths": {auth_registry.address: {"auth": auth}}}
    secret = {
        "metadata": {"name": "registry-auth"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    kubernetes.client.CoreV1Api(installed.api).create_namespaced_secret(namespace, secret)
    spec = {"image": image.reference, "pullSecrets": ["registry-auth"], "completionPolicy": {"type": "Always"}}

    create_job(installed, "ImagePullJob", namespace, "private", spec)
    status = wait_for_completion(installed, "ImagePullJob", namespace, "private")

    nodes = len(installed.runtimes)
    assert (status["desired"], status["succeeded"], status["failed"]) == (nodes, nodes, 0), status
    for runtime in installed.runtimes.values():
        assert image_on_node(runtime, image.reference), runtime.name


def test_a_flag_the_code_does_not_know_stops_the_workload(installed: Installed, tmp_path: Path) -> None:
    """The drift this file guards against: a manifest flag renamed on one side only makes the service refuse."""
    drifted = copy.deepcopy(_workload_document("prepull-nodeimage-sync"))
    container = drifted["spec"]["template"]["spec"]["containers"][0]
    container["args"] = [
        arg.replace("--puller-service-account=", "--puller-serviceaccount=") for arg in container["args"]
    ]
    drifted["metadata"]["name"] = "drifted-nodeimage-sync"
    workloads = LocalWorkloads(
        api=installed.api,
        kubeconfig=installed.plane.kubeconfig,
        server=installed.plane.server,
        state_dir=tmp_path,
        documents=[drifted],
        host_paths={},
    )
    try:
        with pytest.raises(RuntimeError, match="--puller-serviceaccount"):
            workloads.start()
    finally:
        workloads.stop()
