"""End to end with the scheduler's real Credentials service: an ImagePullJob naming a pull secret for the
htpasswd registry is assigned to a node, and that node's puller, presenting its Pod-bound token, fetches the
credentials just in time and pulls. The puller never reads the Secret itself."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import kubernetes.client
import pytest

from localcluster import identity
from localcluster.controlplane import ControlPlane
from localcluster.images import ImageBuilder, ImageRecipe
from localcluster.registry import Registry
from services.puller import credentials_client
from services.scheduler import settings as scheduler_settings
from services.scheduler.app import SchedulerApp
from services.scheduler.settings import SchedulerSettings
from services.shared import leadership
from services.shared.api import constants, imageref
from services.shared.auth import token_source
from services.shared.kube import errors, resources
from tests.integration.puller.conftest import NodeImages, PullerFactory, wait_until
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration


@pytest.fixture
def scheduler(
    control_plane: ControlPlane, kube_namespace: str, prepull_crds: tuple[str, ...]
) -> Iterator[SchedulerApp]:
    settings = SchedulerSettings(
        grpc_address="127.0.0.1:0",
        metrics_address="0",
        health_address="0",
        leader_election=leadership.LeaderElectionSettings(resource_name=scheduler_settings.LEASE_NAME, enabled=False),
        watch_namespace=kube_namespace,
        nodeimage_expectation_requeue_seconds=1.0,
    )
    app = SchedulerApp(settings, control_plane.api_client())
    app.start()
    yield app
    app.stop()


def pull_secret(namespace: str, registry: Registry) -> dict[str, Any]:
    assert registry.credentials is not None
    auths = {registry.address: {"username": registry.credentials.username, "password": registry.credentials.password}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "regcred", "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps({"auths": auths}).encode()).decode()},
    }


def test_job_with_pull_secret_is_pulled_through_the_credentials_service(
    admin_api: kubernetes.client.ApiClient,
    kube_namespace: str,
    scheduler: SchedulerApp,
    node_identity_factory: Callable[..., identity.NodeIdentity],
    node_images: NodeImages,
    start_puller: PullerFactory,
    containerd_nodes: ContainerdNodes,
    image_builder: ImageBuilder,
    auth_registry: Registry,
) -> None:
    repository = f"prepull-test/e2e{uuid.uuid4().hex[:8]}"
    pushed = image_builder.build_and_push(ImageRecipe(repository, total_bytes=64 << 10), auth_registry, repository)
    image, tag = imageref.parse(pushed.reference).nodeimage_entry()
    node = node_identity_factory()
    api = node_images.api
    node_image = {"apiVersion": constants.API_VERSION, "kind": "NodeImage", "metadata": {"name": node.node}}
    api.create(resources.NODE_IMAGES, node_image)
    node_images.created.append(node.node)
    api.create(resources.SECRETS, pull_secret(kube_namespace, auth_registry), namespace=kube_namespace)
    credentials = credentials_client.CredentialsClient(
        f"127.0.0.1:{scheduler.grpc_port}",
        token_source.FileTokenSource(node.token_file(identity.CREDENTIALS_AUDIENCE)),
    )
    start_puller(node.node, containerd_nodes.a, credentials=credentials)

    job = {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND_IMAGE_PULL_JOB,
        "metadata": {"name": "private", "namespace": kube_namespace},
        "spec": {
            "image": pushed.reference,
            "pullSecrets": ["regcred"],
            "selector": {"names": [node.node]},
            "completionPolicy": {"type": "Always"},
        },
    }
    api.create(resources.IMAGE_PULL_JOBS, job, namespace=kube_namespace)
    try:
        status = node_images.wait_for(node.node, image, tag, ("Succeeded", "Failed"))
        assert status["phase"] == "Succeeded", status

        def job_succeeded() -> bool:
            found = api.get(resources.IMAGE_PULL_JOBS, "private", namespace=kube_namespace)
            return (found.get("status") or {}).get("succeeded") == 1

        wait_until(job_succeeded, "the job to count the node as succeeded")
    finally:
        credentials.close()
        with contextlib.suppress(errors.KubeError):
            api.delete(resources.IMAGE_PULL_JOBS, "private", namespace=kube_namespace)
        kubernetes.client.CoreV1Api(admin_api).delete_collection_namespaced_pod(kube_namespace, grace_period_seconds=0)
