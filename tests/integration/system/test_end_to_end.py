"""The whole product on the local cluster: three services as processes, real apiserver, containerd and registries.

Each service runs as its own process under its own ServiceAccount with exactly the RBAC from deploy/ (and the
puller under a token bound to its node, checked by the admission policy from deploy/), the way `make demo` and
`make run` start them.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import kubernetes.client
import pytest

from localcluster.cluster import LocalCluster
from localcluster.images import ImageBuilder, ImageRecipe, PushedImage, push
from localcluster.process import wait_until
from localcluster.registry import Credentials
from localcluster.system import PrepullSystem
from services.shared.gen.cri import api_pb2, api_pb2_grpc

pytestmark = pytest.mark.integration

GROUP, VERSION = "prepull.io", "v1beta1"
JOB_TIMEOUT = 120.0


@dataclass(frozen=True)
class RegistryAt:
    """A registry as the image pusher needs it: address and optional credentials."""

    address: str
    credentials: Credentials | None = None


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, PrepullSystem]]:
    local = LocalCluster(Path(tmp_path_factory.mktemp("e2e")), node_count=3)
    local.start()
    services = PrepullSystem(local.describe(), extra_flags={"nodeimage_sync": ["--creation-delay", "1s"]})
    try:
        services.install()
        services.start()
        yield local, services
    finally:
        logs = services.log_tails(40)
        services.stop()
        local.stop()
        print(logs)


@pytest.fixture(scope="module")
def builder(tmp_path_factory: pytest.TempPathFactory) -> ImageBuilder:
    return ImageBuilder(Path(tmp_path_factory.mktemp("e2e-images")))


@pytest.fixture
def namespace(system: tuple[LocalCluster, PrepullSystem]) -> Iterator[str]:
    local, _ = system
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = kubernetes.client.CoreV1Api(local.api_client())
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


def custom(local: LocalCluster) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(local.api_client())


def create_job(local: LocalCluster, namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "ImagePullJob", "metadata": {"name": name}, "spec": spec}
    custom(local).create_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", body)


def wait_for_completion(local: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    """Poll until the job has a completionTime; return its status."""
    seen: dict[str, Any] = {}

    def complete() -> bool:
        job = custom(local).get_namespaced_custom_object(GROUP, VERSION, namespace, "imagepulljobs", name)
        seen.update(job.get("status") or {})
        return bool(seen.get("completionTime"))

    wait_until(complete, timeout=JOB_TIMEOUT, interval=0.5, what=f"job {namespace}/{name} to complete ({seen})")
    return seen


def image_on_node(local: LocalCluster, node: str, reference: str) -> bool:
    """CRI ImageStatus on that node's containerd: is the image there?"""
    socket = local.nodes[node].runtime.socket
    with grpc.insecure_channel(f"unix://{socket}") as channel:
        stub = api_pb2_grpc.ImageServiceStub(channel)
        answer = stub.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=reference)), timeout=10)
    return bool(answer.image.id)


def push_image(builder: ImageBuilder, registry: RegistryAt, repository: str) -> PushedImage:
    recipe = ImageRecipe(name=repository, total_bytes=2 * 2**20, layers=2, seed=uuid.uuid4().hex)
    return push(builder.build(recipe), registry, repository, "v1")


def test_selector_job_pulls_on_exactly_the_matching_nodes(
    system: tuple[LocalCluster, PrepullSystem], builder: ImageBuilder, namespace: str
) -> None:
    local, _ = system
    image = push_image(builder, RegistryAt(local.open_registry.address), "e2e/selected")
    spec = {
        "image": image.reference,
        "parallelism": 2,
        "selector": {"matchLabels": {"prepull.io/pool": "general"}},
        "completionPolicy": {"type": "Always"},
    }
    create_job(local, namespace, "selected", spec)
    status = wait_for_completion(local, namespace, "selected")
    general = sorted(name for name, node in local.nodes.items() if node.labels.get("prepull.io/pool") == "general")
    assert (status["desired"], status["succeeded"], status["failed"]) == (len(general), len(general), 0)
    for name in local.nodes:
        assert image_on_node(local, name, image.reference) == (name in general), name


def test_private_image_pulls_through_the_credentials_service_and_no_password_leaks(
    system: tuple[LocalCluster, PrepullSystem], builder: ImageBuilder, namespace: str
) -> None:
    local, services = system
    credentials = local.auth_registry.credentials
    assert credentials is not None
    image = push_image(builder, RegistryAt(local.auth_registry.address, credentials), "e2e/private")
    auth = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    config = {"auths": {local.auth_registry.address: {"auth": auth}}}
    secret = {
        "metadata": {"name": "registry-auth"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }
    kubernetes.client.CoreV1Api(local.api_client()).create_namespaced_secret(namespace, secret)
    spec = {
        "image": image.reference,
        "parallelism": 3,
        "pullSecrets": ["registry-auth"],
        "completionPolicy": {"type": "Always"},
    }
    create_job(local, namespace, "private", spec)
    status = wait_for_completion(local, namespace, "private")
    assert (status["desired"], status["succeeded"], status["failed"]) == (3, 3, 0), status
    assert all(image_on_node(local, name, image.reference) for name in local.nodes)
    for service in services.services.values():
        log = service.process.log_path.read_text()
        assert credentials.password not in log, service.name
        assert auth not in log, service.name


def test_seed_patch_of_a_nodeimage_is_pulled_by_that_node(
    system: tuple[LocalCluster, PrepullSystem], builder: ImageBuilder
) -> None:
    local, services = system
    ubuntu = ImageRecipe(name="ubuntu", total_bytes=2**20, layers=1, seed="seed-ubuntu")
    push(builder.build(ubuntu), RegistryAt(local.open_registry.address), "library/ubuntu", "latest")
    node = "node-2"
    wait_until(lambda: bool(services.kubectl("get", "nodeimage", node, "-o", "name")), timeout=30, what="NodeImage")
    patch = '{"spec":{"images":{"ubuntu":{"tags":[{"tag":"latest","pullPolicy":{"ttlSecondsAfterFinished":300}}]}}}}'
    services.kubectl("patch", "nodeimage", node, "--type=merge", "-p", patch)

    def pulled() -> bool:
        status = custom(local).get_cluster_custom_object(GROUP, VERSION, "nodeimages", node).get("status") or {}
        tags = status.get("imageStatuses", {}).get("ubuntu", {}).get("tags", [])
        return any(tag.get("tag") == "latest" and tag.get("phase") == "Succeeded" for tag in tags)

    wait_until(pulled, timeout=JOB_TIMEOUT, interval=0.5, what="ubuntu:latest Succeeded on node-2")
    assert image_on_node(local, node, "docker.io/library/ubuntu:latest")


def test_every_service_is_still_running_ready_and_leading(system: tuple[LocalCluster, PrepullSystem]) -> None:
    """Runs last in this module: leader election renewed its Lease under the manifests' RBAC all along."""
    _, services = system
    for service in services.services.values():
        assert service.process.alive(), f"{service.name} exited:\n{service.process.log_tail(20)}"
        assert service.ready(), service.name
