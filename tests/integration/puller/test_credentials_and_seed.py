"""Private registries through the Credentials service, and the seed's `kubectl patch nodeimage` command.

These tests run the puller's real `CredentialsClient` against a tiny test-only Credentials servicer that checks
the bearer token and answers fixed (right or wrong) credentials, in front of the real htpasswd registry and
containerd, so failure cases need no Secrets or jobs. The end-to-end path through the scheduler's real
Credentials service is `test_scheduler_credentials.py`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from localcluster.controlplane import ControlPlane
from localcluster.images import ImageBuilder, ImageRecipe
from localcluster.registry import Registry
from services.puller import credentials_client
from services.shared.api import imageref
from services.shared.auth import token_source
from services.shared.gen.prepull.v1 import credentials_pb2, credentials_pb2_grpc, types_pb2
from services.shared.rpc import server
from tests.integration.puller.conftest import NodeImages, PullerFactory
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration

FINAL = ("Succeeded", "Failed")
TOKEN = "test-token-for-the-fake-credentials-service"
SEED_PATCH = '{"spec":{"images":{"ubuntu":{"tags":[{"tag":"latest","pullPolicy":{"ttlSecondsAfterFinished":300}}]}}}}'


@dataclass
class FakeCredentialsService(credentials_pb2_grpc.CredentialsServicer):
    """Answers `credentials` to callers presenting `TOKEN`; records the images asked for."""

    username: str
    password: str
    asked: list[str] = field(default_factory=list)

    def GetPullCredentials(self, request: Any, context: grpc.ServicerContext) -> Any:
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {TOKEN}":
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        self.asked.append(request.image)
        credential = credentials_pb2.Credential(
            username=self.username,
            password=self.password,
            server="registry",
            source=types_pb2.ObjectRef(namespace="ns", name="pull-secret"),
        )
        return credentials_pb2.GetPullCredentialsResponse(credentials=[credential])


@dataclass
class CredentialsEndpoint:
    service: FakeCredentialsService
    client: credentials_client.CredentialsClient


def serve_credentials(service: FakeCredentialsService, token_file: Path) -> Iterator[CredentialsEndpoint]:
    grpc_server, port = server.create_server(
        "127.0.0.1:0", [(credentials_pb2_grpc.add_CredentialsServicer_to_server, service)]
    )
    grpc_server.start()
    client = credentials_client.CredentialsClient(f"127.0.0.1:{port}", token_source.FileTokenSource(token_file))
    try:
        yield CredentialsEndpoint(service, client)
    finally:
        client.close()
        grpc_server.stop(0).wait()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN)
    return path


@pytest.fixture
def good_credentials(auth_registry: Registry, token_file: Path) -> Iterator[CredentialsEndpoint]:
    assert auth_registry.credentials is not None
    service = FakeCredentialsService(auth_registry.credentials.username, auth_registry.credentials.password)
    yield from serve_credentials(service, token_file)


@pytest.fixture
def wrong_credentials(auth_registry: Registry, token_file: Path) -> Iterator[CredentialsEndpoint]:
    assert auth_registry.credentials is not None
    service = FakeCredentialsService(auth_registry.credentials.username, "not-the-password")
    yield from serve_credentials(service, token_file)


def private_image(image_builder: ImageBuilder, auth_registry: Registry) -> tuple[str, str, str]:
    repository = f"prepull-test/p{uuid.uuid4().hex[:10]}"
    pushed = image_builder.build_and_push(ImageRecipe(repository, total_bytes=128 << 10), auth_registry, repository)
    reference = imageref.parse(pushed.reference)
    image, tag = reference.nodeimage_entry()
    return image, tag, reference.pullable()


SECRETS = [{"namespace": "ns", "name": "pull-secret"}]


def test_private_registry_pulls_with_credentials_from_the_service(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    image_builder: ImageBuilder,
    auth_registry: Registry,
    good_credentials: CredentialsEndpoint,
) -> None:
    image, tag, reference = private_image(image_builder, auth_registry)
    name = node_images.create()
    start_puller(name, containerd_nodes.a, credentials=good_credentials.client)
    node_images.set_image(name, image, [{"tag": tag}], pull_secrets=SECRETS)

    status = node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Succeeded", status
    assert good_credentials.service.asked == [reference]
    assert "not-the-password" not in json.dumps(node_images.get(name))


def test_wrong_credentials_fail_clearly_after_the_retries(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    image_builder: ImageBuilder,
    auth_registry: Registry,
    wrong_credentials: CredentialsEndpoint,
) -> None:
    image, tag, reference = private_image(image_builder, auth_registry)
    name = node_images.create()
    puller = start_puller(name, containerd_nodes.a, credentials=wrong_credentials.client)
    policy = {"backoffLimit": 1, "ttlSecondsAfterFinished": 60}
    node_images.set_image(name, image, [{"tag": tag, "pullPolicy": policy}], pull_secrets=SECRETS)

    status = node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Failed"
    assert "401" in status["message"] or "unauthorized" in status["message"].lower(), status
    assert "not-the-password" not in status["message"]
    assert wrong_credentials.service.asked == [reference, reference]
    assert puller.images.pulls_of(reference) == 2


def test_image_without_pull_secrets_does_not_ask_for_credentials(
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    image_builder: ImageBuilder,
    auth_registry: Registry,
    good_credentials: CredentialsEndpoint,
) -> None:
    image, tag, _ = private_image(image_builder, auth_registry)
    name = node_images.create()
    start_puller(name, containerd_nodes.b, credentials=good_credentials.client)
    policy = {"backoffLimit": 0, "ttlSecondsAfterFinished": 60}
    node_images.set_image(name, image, [{"tag": tag, "pullPolicy": policy}])

    status = node_images.wait_for(name, image, tag, FINAL)

    assert status["phase"] == "Failed"
    assert good_credentials.service.asked == []


def test_seed_kubectl_patch_is_pulled(
    control_plane: ControlPlane,
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    image_builder: ImageBuilder,
    open_registry: Registry,
) -> None:
    image_builder.build_and_push(
        ImageRecipe("prepull-test/seed-ubuntu", total_bytes=64 << 10), open_registry, "library/ubuntu", "latest"
    )
    name = node_images.create()
    start_puller(name, containerd_nodes.b)

    control_plane.kubectl("patch", "nodeimage", name, "--type=merge", "-p", SEED_PATCH)

    status = node_images.wait_for(name, "ubuntu", "latest", FINAL)
    assert status["phase"] == "Succeeded", status
    assert status["imageID"].startswith("ubuntu@sha256:")
