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
import yaml

from localcluster.identity import NODE_NAME_EXTRA, POD_NAME_EXTRA
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


def test_each_process_calls_the_apiserver_as_its_pods_service_account(installed: Installed) -> None:
    authentication = kubernetes.client.AuthenticationV1Api(installed.api)
    for pod in installed.workloads.pods.values():
        account = pod.local.workload.template["spec"]["serviceAccountName"]
        kubeconfig = yaml.safe_load(pod.local.kubeconfig.read_text())
        review = authentication.create_token_review({"spec": {"token": kubeconfig["users"][0]["user"]["token"]}})
        user = review.status.user
        assert review.status.authenticated, pod.name
        assert user.username == f"system:serviceaccount:{pod.local.workload.namespace}:{account}", pod.name
        assert user.extra[POD_NAME_EXTRA] == [pod.name]
        assert user.extra[NODE_NAME_EXTRA] == [pod.node]


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


# --- the map itself: explicit rules, and a loud failure for anything they do not cover -------------------------


def _local_pod(workload: workload_manifests.Workload, first_port: int) -> workload_manifests.LocalPod:
    pod = {
        "metadata": {"name": f"{workload.name}-x", "namespace": workload.namespace, "uid": "u"},
        "spec": {"nodeName": "node-x", "serviceAccountName": workload.template["spec"]["serviceAccountName"]},
    }
    ports = {str(number): first_port + index for index, number in enumerate(workload.container_ports().values())}
    volumes = {volume["name"]: Path(f"/local/{volume['name']}") for volume in workload.template["spec"]["volumes"]}
    return workload_manifests.LocalPod(workload, pod, ports, volumes, Path("/local/kubeconfig"))


def _puller_with_peers(
    puller_document: dict[str, Any] | None = None,
) -> tuple[workload_manifests.LocalPod, dict[tuple[str, str], workload_manifests.Endpoint]]:
    documents = kustomization_documents()
    peers = [
        _local_pod(w, 20000 + 100 * index)
        for index, w in enumerate(workload_manifests.workloads(documents))
        if w.name != "prepull-puller"
    ]
    puller = workload_manifests.Workload(puller_document or _workload_document("prepull-puller"))
    endpoints = workload_manifests.service_endpoints(workload_manifests.services(documents), peers)
    return _local_pod(puller, 30000), endpoints


def test_the_map_changes_only_cluster_addresses_paths_and_listen_ports() -> None:
    puller, endpoints = _puller_with_peers()
    scheduler = endpoints[("prepull-scheduler", "prepull-system")].pod.local_port("grpc")
    inventory = endpoints[("prepull-nodeimage-sync", "prepull-system")].pod.local_port("grpc")

    argv = workload_manifests.container_argv(puller, endpoints)

    assert argv[:2] == ["/usr/bin/env", "-i"]
    assert "NODE_NAME=node-x" in argv
    assert "KUBECONFIG=/local/kubeconfig" in argv
    assert f"--grpc-address=127.0.0.1:{puller.local_port('grpc')}" in argv
    assert f"--scheduler-address=dns:///127.0.0.1:{scheduler}" in argv
    assert f"--inventory-address=127.0.0.1:{inventory}" in argv
    assert "--cri-socket=unix:///local/containerd-run/containerd.sock" in argv
    assert "--credentials-token-file=/local/prepull-tokens/credentials/token" in argv
    assert "--log-level=info" in argv


@pytest.mark.parametrize(
    ("field", "replacement"),
    [
        ("args", "--scheduler-address=dns:///prepull-elsewhere.prepull-system.svc:9090"),
        ("env", {"name": "PHASE", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}),
        ("env", {"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}),
    ],
    ids=["unknown-service", "unknown-field", "secret-ref"],
)
def test_a_reference_without_a_rule_fails_instead_of_passing_through(field: str, replacement: object) -> None:
    document = copy.deepcopy(_workload_document("prepull-puller"))
    document["spec"]["template"]["spec"]["containers"][0][field].append(replacement)
    puller, endpoints = _puller_with_peers(document)
    with pytest.raises(workload_manifests.UnmappedReferenceError):
        workload_manifests.container_argv(puller, endpoints)
