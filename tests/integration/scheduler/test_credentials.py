"""The Credentials gRPC service (design §3): who is refused, and what the puller of an assigned node gets."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import kubernetes.client
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from localcluster import identity, pki
from localcluster.controlplane import ControlPlane
from localcluster.process import wait_until
from services.shared.api import constants
from services.shared.gen.prepull.v1 import credentials_pb2, credentials_pb2_grpc
from services.shared.kube import objects, resources
from tests.integration.scheduler import helpers
from tests.integration.scheduler.conftest import SchedulerFactory

pytestmark = pytest.mark.integration

REGISTRY = "registry.example:5000"
IMAGE = f"{REGISTRY}/team/app:v1"


def _secret(namespace: str, password: str) -> dict[str, Any]:
    config = {"auths": {REGISTRY: {"username": "puller", "password": password}}}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "regcred", "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()},
    }


@pytest.fixture
def stub(scheduler_factory: SchedulerFactory) -> Iterator[credentials_pb2_grpc.CredentialsStub]:
    app = scheduler_factory()
    with grpc.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        yield credentials_pb2_grpc.CredentialsStub(channel)


def _ask(stub: credentials_pb2_grpc.CredentialsStub, image: str, token: str | None) -> Any:
    metadata = [("authorization", f"Bearer {token}")] if token is not None else []
    return stub.GetPullCredentials(
        credentials_pb2.GetPullCredentialsRequest(image=image), metadata=metadata, timeout=30
    )


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    error = raised.value
    assert "s3cret" not in str(error.details())
    code: grpc.StatusCode = error.code()
    return code


def test_credentials_refusals_and_answer_with_rotation(
    control_plane: ControlPlane,
    kube: objects.ObjectApi,
    admin_api: kubernetes.client.ApiClient,
    kube_namespace: str,
    stub: credentials_pb2_grpc.CredentialsStub,
    node_images: Callable[..., str],
    node_identity_factory: Callable[..., identity.NodeIdentity],
) -> None:
    node = node_identity_factory()
    node_images(name=node.node)
    kube.create(resources.SECRETS, _secret(kube_namespace, "s3cret-1"), namespace=kube_namespace)
    helpers.create_job(
        kube,
        kube_namespace,
        "private",
        {"image": IMAGE, "pullSecrets": ["regcred"], "selector": {"names": [node.node]}},
    )
    wait_until(
        lambda: helpers.tag_entry(kube, node.node, f"{REGISTRY}/team/app", "v1") is not None,
        timeout=60,
        what="assigned",
    )
    token = node.token(constants.AUDIENCE_CREDENTIALS)

    answer = _ask(stub, IMAGE, token)
    assert [(c.username, c.password, c.source.name) for c in answer.credentials] == [("puller", "s3cret-1", "regcred")]

    rotated = _secret(kube_namespace, "s3cret-2")
    kube.patch(resources.SECRETS, "regcred", {"data": rotated["data"]}, namespace=kube_namespace)
    assert _ask(stub, IMAGE, token).credentials[0].password == "s3cret-2"  # read at call time, no cache

    assert _code(lambda: _ask(stub, IMAGE, None)) == grpc.StatusCode.UNAUTHENTICATED
    assert _code(lambda: _ask(stub, IMAGE, "not.a.token")) == grpc.StatusCode.UNAUTHENTICATED
    other_audience = node.token(constants.AUDIENCE_INVENTORY)
    assert _code(lambda: _ask(stub, IMAGE, other_audience)) == grpc.StatusCode.UNAUTHENTICATED
    claims = _claims(token)
    real_key = pki.load_signing_key(control_plane.service_account_key)
    now = int(time.time())
    expired = pki.sign_jwt(
        real_key, claims | {"iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}, kid=pki.key_id(real_key)
    )
    assert _code(lambda: _ask(stub, IMAGE, expired)) == grpc.StatusCode.UNAUTHENTICATED
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = pki.sign_jwt(other_key, claims, kid=pki.key_id(real_key))
    assert _code(lambda: _ask(stub, IMAGE, forged)) == grpc.StatusCode.UNAUTHENTICATED
    unassigned = f"{REGISTRY}/team/other:v1"
    assert _code(lambda: _ask(stub, unassigned, token)) == grpc.StatusCode.PERMISSION_DENIED
    elsewhere = node_identity_factory()  # the puller of another node: the image is not assigned there
    assert _code(lambda: _ask(stub, IMAGE, elsewhere.token(constants.AUDIENCE_CREDENTIALS))) == (
        grpc.StatusCode.PERMISSION_DENIED
    )
    intruder = _intruder_token(admin_api, kube_namespace, node.node)
    assert _code(lambda: _ask(stub, IMAGE, intruder)) == grpc.StatusCode.PERMISSION_DENIED


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def _intruder_token(api: kubernetes.client.ApiClient, namespace: str, node: str) -> str:
    """A Pod-bound token for our audience, of a ServiceAccount other than the puller's, on the same node."""
    core = kubernetes.client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "intruder"}})
    pod = core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "intruder"},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "intruder",
                "automountServiceAccountToken": False,
                "containers": [{"name": "c", "image": "nginx:1.25"}],
            },
        },
    )
    issued = identity.request_pod_token(api, pod=pod, audience=constants.AUDIENCE_CREDENTIALS, expiration_seconds=600)
    return issued.token
