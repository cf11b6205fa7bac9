"""The node-local Puller gRPC API on real containerd, with real TokenReview and SubjectAccessReview."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import grpc
import kubernetes.client
import pytest

from localcluster.controlplane import ControlPlane
from localcluster.images import PushedImage
from services.puller import grpcserver
from services.shared.api import constants
from services.shared.gen.prepull.v1 import puller_pb2, puller_pb2_grpc, types_pb2
from tests.integration.puller.conftest import NodeImages, PullerFactory, PullerHandle
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration

AUDIENCE = "prepull.io/puller"
Progress = puller_pb2.PullProgress


@dataclass
class Endpoint:
    stub: puller_pb2_grpc.PullerStub
    puller: PullerHandle
    node_name: str


def service_account_token(api: kubernetes.client.ApiClient, namespace: str, name: str) -> str:
    """A token for a new ServiceAccount `name`, valid for the Puller API's audience."""
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    request = {"spec": {"audiences": [AUDIENCE], "expirationSeconds": 600}}
    return str(core.create_namespaced_service_account_token(name, namespace, request).status.token)


def allow_on_node_images(api: kubernetes.client.ApiClient, namespace: str, account: str, verbs: list[str]) -> None:
    rbac = kubernetes.client.RbacAuthorizationV1Api(api)
    role = f"puller-api-{namespace}-{account}"
    rules = [{"apiGroups": [constants.GROUP], "resources": [constants.PLURAL_NODE_IMAGES], "verbs": verbs}]
    rbac.create_cluster_role({"metadata": {"name": role}, "rules": rules})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        }
    )


@pytest.fixture
def endpoint(
    control_plane: ControlPlane,
    admin_api: kubernetes.client.ApiClient,
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
) -> Iterator[Endpoint]:
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a)
    server, port, _ = grpcserver.build(replace(puller.app.settings, auth=True), puller.app.local, admin_api)
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Endpoint(puller_pb2_grpc.PullerStub(channel), puller, name)
    finally:
        channel.close()
        server.stop(0).wait()


@pytest.fixture
def platform_token(admin_api: kubernetes.client.ApiClient, kube_namespace: str) -> str:
    """A caller allowed `get` and `update` on NodeImages."""
    token = service_account_token(admin_api, kube_namespace, "platform")
    allow_on_node_images(admin_api, kube_namespace, "platform", ["get", "update"])
    return token


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def test_pull_streams_phases_and_then_finds_the_image_present(
    endpoint: Endpoint, platform_token: str, unique_image: Callable[..., PushedImage]
) -> None:
    pushed = unique_image()
    request = puller_pb2.PullImageRequest(image=pushed.reference)

    updates = list(endpoint.stub.PullImage(request, metadata=bearer(platform_token), timeout=120))

    assert updates[0].phase == Progress.WAITING
    assert Progress.PULLING in [update.phase for update in updates]
    assert updates[-1].phase == Progress.SUCCEEDED, updates[-1]
    assert updates[-1].image.digest == pushed.image_id
    assert not updates[-1].already_present

    again = list(endpoint.stub.PullImage(request, metadata=bearer(platform_token), timeout=120))
    assert [update.phase for update in again] == [Progress.WAITING, Progress.SUCCEEDED]
    assert again[-1].already_present
    assert len(endpoint.puller.images.pull_calls) == 1

    status = endpoint.stub.ImageStatus(
        puller_pb2.ImageStatusRequest(image=pushed.reference), metadata=bearer(platform_token), timeout=30
    )
    assert status.image.digest == pushed.image_id
    listed = endpoint.stub.ListImages(puller_pb2.ListImagesRequest(), metadata=bearer(platform_token), timeout=30)
    assert pushed.image_id in [image.digest for image in listed.images]


def test_failed_pull_ends_the_stream_with_a_message(
    endpoint: Endpoint, platform_token: str, unique_image: Callable[..., PushedImage]
) -> None:
    missing = unique_image().reference.rsplit(":", 1)[0] + ":no-such-tag"
    request = puller_pb2.PullImageRequest(image=missing, pull_policy=types_pb2.IMAGE_PULL_POLICY_ALWAYS)

    updates = list(endpoint.stub.PullImage(request, metadata=bearer(platform_token), timeout=120))

    assert updates[-1].phase == Progress.FAILED
    assert "not found" in updates[-1].message


def test_invalid_reference_is_invalid_argument(endpoint: Endpoint, platform_token: str) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(endpoint.stub.PullImage(puller_pb2.PullImageRequest(image="Not/Valid"), metadata=bearer(platform_token)))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_callers_need_a_token_and_rbac(
    endpoint: Endpoint, admin_api: kubernetes.client.ApiClient, kube_namespace: str
) -> None:
    request = puller_pb2.ImageStatusRequest(image="busybox")
    with pytest.raises(grpc.RpcError) as anonymous:
        endpoint.stub.ImageStatus(request, timeout=30)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED

    reader = service_account_token(admin_api, kube_namespace, f"reader-{uuid.uuid4().hex[:6]}")
    with pytest.raises(grpc.RpcError) as unauthorized:
        endpoint.stub.ImageStatus(request, metadata=bearer(reader), timeout=30)
    assert unauthorized.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_disk_guard_refuses_with_resource_exhausted(
    control_plane: ControlPlane,
    admin_api: kubernetes.client.ApiClient,
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    platform_token: str,
) -> None:
    puller = start_puller(node_images.create(), containerd_nodes.b, min_free_disk_bytes=1 << 60)
    server, port, _ = grpcserver.build(puller.app.settings, puller.app.local, admin_api)
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = puller_pb2_grpc.PullerStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                list(stub.PullImage(puller_pb2.PullImageRequest(image="busybox"), metadata=bearer(platform_token)))
    finally:
        server.stop(0).wait()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "threshold" in (caught.value.details() or "")
    assert puller.images.pull_calls == []
