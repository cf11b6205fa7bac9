"""The puller works with nothing but its own ServiceAccount's RBAC (deploy/rbac/puller.yaml), which has no Secrets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import kubernetes.client
import pytest

from localcluster import identity
from localcluster.controlplane import ControlPlane
from localcluster.images import PushedImage
from services.puller import app, cri
from services.shared.api import imageref
from services.shared.kube import client, errors, kubeapi, resources
from tests.integration.puller.conftest import NodeImages, puller_settings
from tests.support import deploy_manifests
from tests.support.controlplane_fixtures import NodeIdentityFactory
from tests.support.node_fixtures import ContainerdNodes

pytestmark = pytest.mark.integration


def puller_api_token(
    control_plane: ControlPlane, admin_api: kubernetes.client.ApiClient, node: str, path: Path
) -> Path:
    """The API-server token the kubelet would project into the node's puller Pod (bound to that Pod)."""
    pod = kubernetes.client.CoreV1Api(admin_api).read_namespaced_pod(
        identity.placeholder_pod_name(node), identity.PULLER_NAMESPACE
    )
    issued = identity.request_pod_token(
        admin_api, pod=pod, audience=control_plane.service_account_issuer, expiration_seconds=3600
    )
    identity.write_token_file(path, issued.token)
    return path


def test_puller_pulls_with_its_own_rbac_and_cannot_read_secrets(
    control_plane: ControlPlane,
    admin_api: kubernetes.client.ApiClient,
    node_identity_factory: NodeIdentityFactory,
    node_images: NodeImages,
    containerd_nodes: ContainerdNodes,
    unique_image: Callable[..., PushedImage],
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    deploy_manifests.apply_deploy(control_plane)
    node = node_identity_factory().node
    node_images.api.create(
        resources.NODE_IMAGES, {"apiVersion": "prepull.io/v1beta1", "kind": "NodeImage", "metadata": {"name": node}}
    )
    node_images.created.append(node)
    token = puller_api_token(control_plane, admin_api, node, tmp_path / "token")
    api = kubeapi.KubeApi(
        client.from_token_file(server=control_plane.server, ca_file=control_plane.ca_file, token_file=token)
    )
    runtime = containerd_nodes.b.cri_target
    puller = app.PullerApp(puller_settings(node, runtime), api=api, images=cri.CriImageService(runtime))
    puller.start()
    try:
        pushed = unique_image()
        image, tag = imageref.parse(pushed.reference).nodeimage_entry()
        node_images.set_image(node, image, [{"tag": tag}])
        assert node_images.wait_for(node, image, tag, ("Succeeded", "Failed"))["phase"] == "Succeeded"
        assert node_images.wait_for_event(node, "PullImageSucceed")["source"]["component"] == "prepull.io/puller"
    finally:
        puller.stop()

    with pytest.raises(errors.Forbidden):
        api.list(resources.SECRETS, namespace=kube_namespace)
    with pytest.raises(errors.Forbidden):
        api.get(resources.SECRETS, "anything", namespace=kube_namespace)
    with pytest.raises(errors.Forbidden):
        api.patch(resources.NODE_IMAGES, node, {"spec": {"images": None}})
