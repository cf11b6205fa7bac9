"""The node side the puller stands on: real containerd per node, real registries, CRI over unix sockets.

Every test talks CRI v1 through our generated `runtime.v1` stubs, so these tests also prove that our
`protos/cri/api.proto` subset is wire-compatible with containerd.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
import pytest

from localcluster.containerd import ContainerdNode
from localcluster.faultproxy import FaultProxy
from localcluster.images import ImageBuilder, ImageRecipe, PushedImage
from localcluster.registry import Registry
from services.shared.gen.cri import api_pb2 as cri
from services.shared.gen.cri import api_pb2_grpc as cri_grpc
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration

PULL_TIMEOUT = 120.0


@contextmanager
def image_service(node: ContainerdNode) -> Iterator[cri_grpc.ImageServiceStub]:
    """A CRI ImageService client on the node's unix socket."""
    with grpc.insecure_channel(node.cri_target) as channel:
        yield cri_grpc.ImageServiceStub(channel)


def pull(node: ContainerdNode, reference: str, auth: cri.AuthConfig | None = None) -> str:
    """CRI PullImage on `node`; returns the image ref containerd answers."""
    request = cri.PullImageRequest(
        image=cri.ImageSpec(image=reference),
        auth=auth,
        sandbox_config=cri.PodSandboxConfig(
            metadata=cri.PodSandboxMetadata(name="prepull-test", namespace="default", uid="test-uid"),
            labels={"app": "prepull-test"},
        ),
    )
    with image_service(node) as images:
        response: cri.PullImageResponse = images.PullImage(request, timeout=PULL_TIMEOUT)
        return response.image_ref


def status(node: ContainerdNode, reference: str) -> cri.ImageStatusResponse:
    """CRI ImageStatus on `node`."""
    with image_service(node) as images:
        response: cri.ImageStatusResponse = images.ImageStatus(
            cri.ImageStatusRequest(image=cri.ImageSpec(image=reference)), timeout=30
        )
        return response


def pull_error(node: ContainerdNode, reference: str, auth: cri.AuthConfig | None = None) -> grpc.RpcError:
    """The gRPC error of a CRI pull that must fail."""
    with pytest.raises(grpc.RpcError) as caught:
        pull(node, reference, auth)
    return caught.value


def small_image(builder: ImageBuilder, registry: Registry, repository: str, tag: str = "v1") -> PushedImage:
    """A fresh 1 MiB, 2-layer image unique to `repository`, pushed to `registry`."""
    return builder.build_and_push(ImageRecipe(repository, total_bytes=1 << 20, layers=2), registry, repository, tag)


def test_each_node_answers_cri_version(containerd_nodes: ContainerdNodes) -> None:
    for node in containerd_nodes:
        with grpc.insecure_channel(node.cri_target) as channel:
            version = cri_grpc.RuntimeServiceStub(channel).Version(cri.VersionRequest(version="v1"), timeout=10)
        assert version.runtime_name == "containerd", node.name
        assert version.runtime_api_version == "v1", node.name
        assert version.runtime_version, node.name


def test_nodes_have_separate_sockets_and_stores(containerd_nodes: ContainerdNodes) -> None:
    a, b = containerd_nodes
    assert a.socket != b.socket
    with image_service(a) as images_a, image_service(b) as images_b:
        fs_a = images_a.ImageFsInfo(cri.ImageFsInfoRequest(), timeout=10).image_filesystems
        fs_b = images_b.ImageFsInfo(cri.ImageFsInfoRequest(), timeout=10).image_filesystems
    assert fs_a[0].fs_id.mountpoint.startswith(str(a.root))
    assert fs_b[0].fs_id.mountpoint.startswith(str(b.root))


def test_image_pulled_on_node_a_is_present_there_and_not_on_b(
    containerd_nodes: ContainerdNodes, image_builder: ImageBuilder, open_registry: Registry
) -> None:
    image = image_builder.build_and_push(
        ImageRecipe("prepull-test/a-only", total_bytes=6 << 20, layers=3), open_registry, "prepull-test/a-only", "v1"
    )

    image_ref = pull(containerd_nodes.a, image.reference)

    assert image_ref == image.image_id
    on_a = status(containerd_nodes.a, image.reference)
    assert on_a.HasField("image")
    assert on_a.image.id == image.image_id
    assert image.reference in on_a.image.repo_tags
    assert image.digest_reference in on_a.image.repo_digests
    assert on_a.image.size >= 6 << 20
    assert not status(containerd_nodes.b, image.reference).HasField("image")
    with image_service(containerd_nodes.a) as images:
        listed = images.ListImages(cri.ListImagesRequest(), timeout=30).images
    assert image.image_id in {listed_image.id for listed_image in listed}


def test_image_pulls_by_digest(containerd_nodes: ContainerdNodes, pushed_image: PushedImage) -> None:
    assert pull(containerd_nodes.b, pushed_image.digest_reference) == pushed_image.image_id
    assert status(containerd_nodes.b, pushed_image.digest_reference).image.id == pushed_image.image_id


def test_remove_image_makes_it_absent(
    containerd_nodes: ContainerdNodes, image_builder: ImageBuilder, open_registry: Registry
) -> None:
    image = small_image(image_builder, open_registry, "prepull-test/removed")
    pull(containerd_nodes.b, image.reference)
    assert status(containerd_nodes.b, image.reference).HasField("image")

    with image_service(containerd_nodes.b) as images:
        images.RemoveImage(cri.RemoveImageRequest(image=cri.ImageSpec(image=image.image_id)), timeout=30)

    assert not status(containerd_nodes.b, image.reference).HasField("image")


def test_missing_tag_is_not_found(containerd_nodes: ContainerdNodes, open_registry: Registry) -> None:
    error = pull_error(containerd_nodes.a, f"{open_registry.address}/prepull-test/never-pushed:v1")
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_auth_registry_refuses_anonymous_pull_and_accepts_credentials(
    containerd_nodes: ContainerdNodes, image_builder: ImageBuilder, auth_registry: Registry
) -> None:
    assert auth_registry.credentials is not None
    image = small_image(image_builder, auth_registry, "private/app")
    node = containerd_nodes.a

    anonymous = pull_error(node, image.reference)
    wrong = pull_error(node, image.reference, cri.AuthConfig(username="prepull", password="not-the-password"))

    for error in (anonymous, wrong):
        assert error.code() == grpc.StatusCode.UNKNOWN
        assert "401 Unauthorized" in (error.details() or "")
    assert not status(node, image.reference).HasField("image")
    right = cri.AuthConfig(username=auth_registry.credentials.username, password=auth_registry.credentials.password)
    assert pull(node, image.reference, right) == image.image_id
    assert status(node, image.reference).image.id == image.image_id


def test_ubuntu_latest_resolves_through_the_docker_io_mirror(
    containerd_nodes: ContainerdNodes, image_builder: ImageBuilder, open_registry: Registry
) -> None:
    ubuntu = image_builder.build_and_push(
        ImageRecipe("ubuntu", total_bytes=2 << 20, layers=2), open_registry, "library/ubuntu", "latest"
    )

    assert pull(containerd_nodes.b, "ubuntu:latest") == ubuntu.image_id

    present = status(containerd_nodes.b, "ubuntu:latest").image
    assert present.id == ubuntu.image_id
    assert "docker.io/library/ubuntu:latest" in present.repo_tags


def test_fault_proxy_answers_injected_statuses_and_resets(fault_proxy: FaultProxy) -> None:
    url = f"http://{fault_proxy.address}/v2/"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
    fault_proxy.fail_with(503)
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(url, timeout=10)
    assert failed.value.code == 503
    failed.value.close()
    fault_proxy.reset_connections()
    with pytest.raises((ConnectionResetError, urllib.error.URLError)):
        urllib.request.urlopen(url, timeout=10)
    fault_proxy.refuse_connections()
    with pytest.raises(urllib.error.URLError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert isinstance(refused.value.reason, ConnectionRefusedError)
    fault_proxy.pass_through()
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    ("fault", "expected_in_error"),
    [
        pytest.param(lambda proxy: proxy.fail_with(500), "500 Internal Server Error", id="http-500"),
        pytest.param(lambda proxy: proxy.fail_with(503), "503 Service Unavailable", id="http-503"),
        pytest.param(lambda proxy: proxy.reset_connections(), "connection reset by peer", id="reset"),
        pytest.param(lambda proxy: proxy.refuse_connections(), "connection refused", id="refused"),
    ],
)
def test_registry_behind_fault_proxy_fails_on_command_and_recovers(
    containerd_nodes: ContainerdNodes,
    image_builder: ImageBuilder,
    open_registry: Registry,
    fault_proxy: FaultProxy,
    fault: Callable[[FaultProxy], None],
    expected_in_error: str,
    request: pytest.FixtureRequest,
) -> None:
    image = small_image(image_builder, open_registry, f"prepull-test/faulty-{request.node.callspec.id}")
    reference = image.reference_via(fault_proxy.address)
    node = containerd_nodes.a
    seen_before = fault_proxy.requests_seen

    fault(fault_proxy)
    error = pull_error(node, reference)

    if fault_proxy.fault.refuse:
        assert fault_proxy.requests_seen == seen_before
    else:
        assert fault_proxy.requests_seen > seen_before
    assert expected_in_error in (error.details() or ""), error.details()
    assert not status(node, reference).HasField("image")
    fault_proxy.pass_through()
    assert pull(node, reference) == image.image_id
    assert status(node, reference).image.id == image.image_id


def test_delayed_registry_is_slow_but_pulls(
    containerd_nodes: ContainerdNodes, image_builder: ImageBuilder, open_registry: Registry, fault_proxy: FaultProxy
) -> None:
    image = small_image(image_builder, open_registry, "prepull-test/delayed")
    fault_proxy.delay(0.5)

    started = time.monotonic()
    assert pull(containerd_nodes.b, image.reference_via(fault_proxy.address)) == image.image_id

    # A pull makes at least four requests (manifest, config, two layers), each delayed by 0.5 s;
    # layers may download concurrently, so only the sequential part (manifest, then config) is certain.
    assert time.monotonic() - started >= 1.0


def test_restart_on_same_data_keeps_pulled_image(
    containerd_nodes: ContainerdNodes, image_builder: ImageBuilder, open_registry: Registry
) -> None:
    image = small_image(image_builder, open_registry, "prepull-test/survives-restart")
    node = containerd_nodes.a
    pull(node, image.reference)
    old_pid = node.process.pid

    node.restart()

    assert node.process.pid != old_pid
    assert node.version().runtime_name == "containerd"
    assert status(node, image.reference).image.id == image.image_id
